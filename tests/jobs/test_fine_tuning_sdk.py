"""The official ``openai`` SDK's files and fine-tuning calls, unchanged, against a live Plinth server on a
tiny model: files.create, fine_tuning.jobs.create / retrieve / list / list_events / cancel."""

from __future__ import annotations

import time

import openai
import pytest
from adapter_fixtures import control_plane, lora_model
from live_server import live_server
from test_fine_tuning_api import chat_lines

from plinth.config import Settings
from plinth.server import create_app

pytestmark = pytest.mark.slow


def test_the_sdk_uploads_trains_lists_events_and_cancels(tiny_checkpoint_factory, tmp_path):
    cp, keys = control_plane(tmp_path)
    settings = Settings(data_dir=tmp_path, max_lora_rank=8, job_threads=1)
    app = create_app(settings, [lora_model(tiny_checkpoint_factory("llama"))], cp)
    with live_server(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=keys.acme, max_retries=0, timeout=120)
        uploaded = client.files.create(file=("train.jsonl", chat_lines(16).encode()), purpose="fine-tune")
        assert uploaded.purpose == "fine-tune" and uploaded.bytes > 0
        assert client.files.retrieve(uploaded.id).filename == "train.jsonl"

        job = client.fine_tuning.jobs.create(
            model="base",
            training_file=uploaded.id,
            suffix="sdk",
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}},
            },
        )
        other = client.fine_tuning.jobs.create(
            model="base", training_file=uploaded.id, hyperparameters={"n_epochs": 20, "batch_size": 1}
        )
        assert client.fine_tuning.jobs.cancel(other.id).status == "cancelled"  # still queued behind `job`

        deadline = time.monotonic() + 240
        while (current := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, current
            time.sleep(0.5)
        assert current.status == "succeeded" and current.fine_tuned_model.startswith("ft:base:acme:sdk:")
        events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
        assert events[0].message == "The job has successfully completed" and len(events) > 3
        assert {j.id for j in client.fine_tuning.jobs.list(limit=10).data} == {job.id, other.id}
        checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
        assert len(checkpoints) == 1 and checkpoints[0].fine_tuning_job_id == job.id
        reply = client.chat.completions.create(
            model=current.fine_tuned_model, messages=[{"role": "user", "content": "colour?"}], max_tokens=3
        )
        assert reply.model == current.fine_tuned_model
        with pytest.raises(openai.NotFoundError):
            client.fine_tuning.jobs.retrieve("ftjob-nope")
    cp.close()
