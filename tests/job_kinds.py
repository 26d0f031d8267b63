"""Job kinds for the supervisor tests: each runs in a real spawned worker process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from plinth.jobs import JobContext, JobStopped


def count(ctx: JobContext) -> dict:
    """Count to ``steps``, a checkpoint every ``every`` steps; resume from the newest checkpoint."""
    steps, every = ctx.job.request["steps"], ctx.job.request.get("every", 5)
    latest = ctx.latest_checkpoint()
    start = json.loads(Path(latest.path, "state.json").read_text())["step"] if latest else 0
    if start:
        ctx.event(f"Resumed from checkpoint at step {start}", step=start)
    for step in range(start + 1, steps + 1):
        if ctx.should_stop():
            raise JobStopped
        time.sleep(ctx.job.request.get("sleep", 0.02))
        if step % every == 0:
            folder = ctx.work_dir / f"checkpoint-{step}"
            folder.mkdir(exist_ok=True)
            (folder / "state.json").write_text(json.dumps({"step": step}))
            ctx.checkpoint(step, folder, {"step": step, "train_loss": 1.0 / step})
    return {"steps": steps, "resumed_from": start}


def fail(ctx: JobContext) -> dict:
    error = ValueError("n_epochs must be between 1 and 50, not 0")
    error.param = "n_epochs"  # type: ignore[attr-defined]
    raise error


def disk_full(ctx: JobContext) -> dict:
    raise OSError(28, "No space left on device")


def crash(ctx: JobContext) -> dict:
    os._exit(9)
