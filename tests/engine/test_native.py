"""Plinth's native operators are optional: turned off (``PLINTH_NATIVE=0``) or unbuildable (no working
compiler), the engine logs why and decodes with torch's operators what it decodes with them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from plinth.engine import EngineConfig, LLMEngine, SamplingParams, native

PROMPTS = [[5, 17, 300, 42, 9, 77, 8], [1000, 3, 3, 250]]
SCRIPT = """
import json, logging, sys
logging.basicConfig(level=logging.WARNING, format="%(message)s")
from plinth.engine import EngineConfig, LLMEngine, SamplingParams, native
engine = LLMEngine(EngineConfig(model=sys.argv[1], dtype="bfloat16", device="cpu"))
params = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
print(json.dumps({"native": native.available(), "tokens": engine.generate(json.loads(sys.argv[2]), params)}))
"""


def _greedy_here(model: Path) -> list[list[int]]:
    engine = LLMEngine(EngineConfig(model=str(model), dtype="bfloat16", device="cpu"))
    return engine.generate(PROMPTS, SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True))


def _run(model: Path, **env: str) -> tuple[dict, str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model), json.dumps(PROMPTS)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_the_operators_build_here_and_the_engine_uses_them(tiny_llama: Path) -> None:
    assert native.available()
    assert native.build_dir().is_dir()
    assert _greedy_here(tiny_llama)  # the engine ran with them (RMSNorm calls torch.ops.plinth.rms_norm)


def test_turned_off_the_engine_decodes_the_same_with_torch(tiny_llama: Path) -> None:
    got, _ = _run(tiny_llama, PLINTH_NATIVE="0")
    assert got["native"] is False
    assert got["tokens"] == _greedy_here(tiny_llama)


def test_an_unbuildable_library_is_a_warning_not_a_failure(tiny_llama: Path, tmp_path: Path) -> None:
    got, stderr = _run(tiny_llama, CXX=str(tmp_path / "no-such-compiler"), PLINTH_NATIVE_DIR=str(tmp_path))
    assert got["native"] is False
    assert "native operators unavailable, using torch's" in stderr
    assert got["tokens"] == _greedy_here(tiny_llama)


def test_has_names_only_operators_registered_for_this_cpu() -> None:
    assert native.has("rms_norm")
    assert not native.has("no_such_operator")
    assert ("qlinear" in native.report()) == native.has("qlinear")
