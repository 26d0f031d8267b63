"""``plinth eval run SPEC.yaml`` end to end with a tiny random-weight model as target and judge: the
grammar makes even a random model's verdicts parse; results.json and report.html are written."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from plinth.cli import app

pytestmark = [pytest.mark.usefixtures("clean_env"), pytest.mark.slow]


def test_eval_run_with_a_tiny_random_model(tiny_llama, tmp_path) -> None:
    rows = [{"id": f"q{i}", "input": f"What is {i} plus {i}?", "reference": str(2 * i), "human_score": 1 + i}
            for i in range(4)]  # fmt: skip
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "name": "tiny",
        "dataset": "set.jsonl",
        "targets": [{"model": str(tiny_llama), "name": "tiny", "max_tokens": 8}],
        "metrics": ["exact_match", "token_f1", "rouge_l", "bleu", "json_valid"],
        "judge": {"model": str(tiny_llama), "criteria": ["correctness"], "rubrics": {"short": "Is it brief?"},
                  "samples": 2, "max_tokens": 64, "sampling_rate": 0.5},
        "concurrency": 2,
    }  # fmt: skip
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    args = [
        "--data-dir",
        str(tmp_path / "data"),
        "eval",
        "run",
        str(tmp_path / "spec.yaml"),
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]["tiny"]
    assert summary["items"] == 4 and summary["errors"] == 0 and summary["judged"] == 2
    assert 1 <= summary["judge.correctness"] <= 5 and "judge.short" in summary  # every verdict parsed
    results = json.loads((out / "results.json").read_text())
    judged = [r for r in results["items"] if r.get("judge")]
    assert all(len(r["judge"]["correctness"]["votes"]) == 2 for r in judged)
    assert all(v is not None for r in judged for v in r["judge"]["correctness"]["votes"])
    assert results["items"][0]["completion_tokens"] > 0 and results["items"][0]["latency_s"] > 0
    assert "<svg" in (out / "report.html").read_text()


def test_eval_run_rejects_a_bad_spec(tmp_path) -> None:
    (tmp_path / "spec.yaml").write_text("targets: []\n")
    result = CliRunner().invoke(app, ["eval", "run", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 2 and "dataset" in result.output


def test_eval_run_targets_an_adapter_beside_the_base_model(tiny_llama, tmp_path) -> None:
    from lora_fixtures import make_peft_adapter

    make_peft_adapter(tiny_llama, tmp_path / "adapters" / "tuned", seed=3)
    rows = [{"id": f"q{i}", "input": f"Name a colour {i}.", "reference": "red"} for i in range(3)]
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "dataset": "set.jsonl",
        "targets": [{"model": str(tiny_llama), "max_tokens": 6},
                    {"model": str(tiny_llama), "adapter": "adapters/tuned", "max_tokens": 6}],
        "metrics": ["exact_match"],
    }  # fmt: skip
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    args = ["--data-dir", str(tmp_path / "data"), "eval", "run", str(tmp_path / "spec.yaml")]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    base, tuned = f"model:{tiny_llama}", f"model:{tiny_llama}+tuned"
    assert set(json.loads(result.stdout)["summary"]) == {base, tuned}
    items = json.loads((tmp_path / "out" / "results.json").read_text())["items"]
    outputs = {(r["target"], r["id"]): r["output"] for r in items}
    assert len(outputs) == 6 and all(r["error"] is None for r in items if "error" in r)
    assert any(outputs[(base, r["id"])] != outputs[(tuned, r["id"])] for r in rows)  # the adapter applies

    spec["targets"][1]["adapter"] = "adapters/missing"
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 2 and "adapters/missing: no such folder" in missing.output
