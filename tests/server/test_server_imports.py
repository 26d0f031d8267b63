"""The serving path imports no feature-only package: ``plinth serve`` with no SQL, knowledge-base or
guardrail request must not pay their resident memory (issue 18: peak RSS against llama.cpp's).

Each check runs in a fresh interpreter, since this test session has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# packages that only the SQL, knowledge-base, guardrail or GGUF routes need (tens of MB each)
FEATURE_ONLY = ("duckdb", "pyarrow", "sqlglot", "lancedb", "spacy", "presidio_analyzer",
                "presidio_anonymizer", "gguf", "pandas", "sklearn", "sentence_transformers")  # fmt: skip

BUILD_APP = textwrap.dedent(
    """
    import json, sys
    from plinth.config import Settings
    from plinth.control import open_control_plane
    from plinth.engine import EngineConfig
    from plinth.llm.local import LocalModel
    from plinth.server import create_app

    model_dir, data_dir = sys.argv[1], sys.argv[2]
    cfg = EngineConfig(model=model_dir, device="cpu", dtype="float32")
    cfg.kv_cache_memory_gb = 0.01
    model = LocalModel.load(cfg, name="tiny")
    cp = open_control_plane(f"sqlite:///{data_dir}/plinth.db")
    create_app(Settings(data_dir=data_dir), [model], cp)
    model.shutdown()
    print(json.dumps(sorted(sys.modules)))
    """
)


def _imported(code: str, *args: str) -> set[str]:
    run = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return {name.split(".")[0] for name in json.loads(run.stdout.splitlines()[-1])}


def test_importing_the_server_loads_no_feature_only_package():
    code = "import json, sys\nimport plinth.server.app\nprint(json.dumps(sorted(sys.modules)))"
    assert _imported(code) & set(FEATURE_ONLY) == set()


def test_building_the_app_on_a_safetensors_model_loads_no_feature_only_package(tmp_path, tiny_llama):
    assert _imported(BUILD_APP, str(tiny_llama), str(tmp_path)) & set(FEATURE_ONLY) == set()
