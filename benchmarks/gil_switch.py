"""GIL switch interval: how long the engine's decode steps take beside a thread that runs Python
without pause (what a flooded event loop is), for each ``--intervals`` value of ``sys.setswitchinterval``.

Why: every torch op the engine thread runs releases the GIL and takes it back; when another thread holds
it, taking it back waits up to the switch interval (5 ms by default), hundreds of times per step. This
shows that cost directly, without HTTP, and is what ``gil_switch_interval_ms`` (``plinth serve``) is set from.

Method: one greedy request of ``--output-len`` tokens (``ignore_eos``) stepped on an ``LLMEngine`` to its
end, the median of ``--repeats``; alone, then with a second thread spinning on ``sum(range(50))``.

Reproduce (CPU; the tiny random llama of ``.bench/``)::

    .venv/bin/python benchmarks/gil_switch.py
    .venv/bin/python benchmarks/gil_switch.py --intervals 5,1,0.5,0.2,0.1 --output-len 32
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import prepare_model  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=".bench/llama-tiny")
    p.add_argument("--intervals", default="5,1,0.2", help="switch intervals to try, in ms")
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument("--repeats", type=int, default=15)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from plinth.engine import EngineConfig
    from plinth.engine.llm_engine import LLMEngine
    from plinth.engine.sampling_params import SamplingParams

    args = parse_args(argv)
    engine = LLMEngine(
        EngineConfig(model=str(prepare_model(args.model, quick=True)), device="cpu", dtype="float32")
    )
    params = SamplingParams(max_tokens=args.output_len, temperature=0.0, ignore_eos=True)

    def generate_ms() -> float:
        engine.add_request(list(range(1, 8)), params)
        start = time.perf_counter()
        while engine.has_unfinished():
            engine.step()
        return (time.perf_counter() - start) * 1000

    def median_ms() -> float:
        return statistics.median(generate_ms() for _ in range(args.repeats))

    for _ in range(3):
        generate_ms()  # warm-up
    print(f"{args.output_len} decode steps, median of {args.repeats}")
    for interval_ms in (float(x) for x in args.intervals.split(",")):
        sys.setswitchinterval(interval_ms / 1000)
        alone = median_ms()
        stop = threading.Event()
        spinner = threading.Thread(target=_spin, args=(stop,))
        spinner.start()
        try:
            busy = median_ms()
        finally:
            stop.set()
            spinner.join()
        print(f"switch interval {interval_ms:g} ms: alone {alone:.1f} ms, beside a busy thread {busy:.1f} ms "
              f"({busy / alone:.1f}×)")  # fmt: skip
    return 0


def _spin(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(50))


if __name__ == "__main__":
    raise SystemExit(main())
