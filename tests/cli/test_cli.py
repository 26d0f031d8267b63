"""The typer CLI: thin commands over Settings, the control plane, the server and checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

import plinth
from plinth import __version__
from plinth.cli import app
from plinth.config import Settings
from plinth.control import authenticate, open_control_plane

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Replace plinth.server.app with a stub whose serve() only records its settings."""
    calls: list[Settings] = []
    stub = types.ModuleType("plinth.server.app")
    stub.serve = calls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "plinth.server.app", stub)
    return calls


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "demo", "model", "keys"):
        assert command in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"plinth {__version__}"


def test_cli_import_does_not_load_torch_or_sqlalchemy() -> None:
    code = "import sys, plinth.cli; print(sorted({'torch', 'sqlalchemy'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(Path(plinth.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


def test_keys_create_prints_only_a_key_for_the_tenant(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "keys", "create", "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert "\n" not in key and key.startswith("pk-")
    cp = open_control_plane(f"sqlite:///{tmp_path / 'd' / 'plinth.db'}")
    assert authenticate(cp, key).name == "acme"
    assert not authenticate(cp, key).is_admin


def test_keys_create_defaults_to_local_and_honours_env_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLINTH_DATA_DIR", str(tmp_path / "envdir"))
    result = runner.invoke(app, ["keys", "create", "--admin"])
    assert result.exit_code == 0, result.output
    cp = open_control_plane(f"sqlite:///{tmp_path / 'envdir' / 'plinth.db'}")
    tenant = authenticate(cp, result.stdout.strip())
    assert (tenant.name, tenant.is_admin) == ("local", True)


def test_keys_create_bad_tenant_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "keys", "create", "--tenant", "Bad Name"])
    assert result.exit_code == 2
    assert "invalid tenant name" in result.output


def test_keys_list_and_revoke(tmp_path: Path) -> None:
    base = ["--data-dir", str(tmp_path)]
    key = runner.invoke(app, [*base, "keys", "create", "--tenant", "acme"]).stdout.strip()
    runner.invoke(app, [*base, "keys", "create", "--tenant", "globex"])
    listing = runner.invoke(app, [*base, "keys", "list", "--tenant", "acme"]).stdout
    assert key[:11] in listing and "acme" in listing and "globex" not in listing
    assert key not in listing

    result = runner.invoke(app, [*base, "keys", "revoke", key[:11]])
    assert result.exit_code == 0, result.output
    assert "revoked" in runner.invoke(app, [*base, "keys", "list"]).stdout
    assert runner.invoke(app, [*base, "keys", "revoke", key[:11]]).exit_code == 1


def test_serve_refuses_no_auth_on_public_host(served: list[Settings]) -> None:
    result = runner.invoke(app, ["serve", "--no-auth", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing --no-auth" in result.output
    assert served == []


def test_serve_passes_flags_to_settings(served: list[Settings], tmp_path: Path) -> None:
    args = ["serve", "--no-auth", "--model", "m1", "--model", "m2", "--port", "9001", "--max-num-seqs", "4"]
    result = runner.invoke(
        app, [*args, "--data-dir", str(tmp_path), "--load-format", "dummy", "--batch-invariant"]
    )
    assert result.exit_code == 0, result.output
    [settings] = served
    assert settings.models == ["m1", "m2"] and settings.no_auth and settings.host == "127.0.0.1"
    assert (settings.port, settings.max_num_seqs, settings.load_format) == (9001, 4, "dummy")
    assert settings.engine_config("m1").batch_invariant is True
    assert settings.data_dir == tmp_path


def test_absent_flags_leave_env_and_toml_alone(
    served: list[Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my.toml").write_text('dtype = "float16"\nport = 7000\n')
    monkeypatch.setenv("PLINTH_PORT", "7100")
    assert runner.invoke(app, ["serve", "--config", str(tmp_path / "my.toml")]).exit_code == 0
    assert (
        runner.invoke(app, ["--config", str(tmp_path / "my.toml"), "serve", "--port", "7200"]).exit_code == 0
    )
    assert [(s.dtype, s.port, s.no_auth) for s in served] == [
        ("float16", 7100, False),
        ("float16", 7200, False),
    ]


def test_serve_invalid_value_exits_2(served: list[Settings]) -> None:
    result = runner.invoke(app, ["serve", "--dtype", "fp8"])
    assert result.exit_code == 2
    assert "dtype" in result.output
    assert served == []


def test_demo_serves_the_random_model_without_auth(served: list[Settings], tmp_path: Path) -> None:
    (tmp_path / "plinth.toml").write_text('models = ["from-toml"]\n')
    result = runner.invoke(app, ["demo", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/" in result.stdout
    [settings] = served
    assert (settings.models, settings.no_auth, settings.port) == ([], True, 8123)


def test_demo_refuses_public_host(served: list[Settings]) -> None:
    assert runner.invoke(app, ["demo", "--host", "0.0.0.0"]).exit_code == 2
    assert served == []


def test_model_init_random_calls_the_checkpoint_writer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []
    stub = types.ModuleType("plinth.engine.checkpoint")
    stub.init_random = lambda arch, size, out, seed: calls.append((arch, size, out, seed)) or out  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "plinth.engine.checkpoint", stub)
    out = tmp_path / "ckpt"
    args = ["model", "init-random", "--arch", "qwen3", "--size", "tiny", "--out", str(out), "--seed", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls == [("qwen3", "tiny", out, 3)]
    assert str(out) in result.stdout and "RANDOM" in result.stdout


def test_model_init_random_rejects_unknown_arch(tmp_path: Path) -> None:
    args = ["model", "init-random", "--arch", "gpt2", "--size", "tiny", "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 2


def test_serve_passes_adapter_flags(served: list[Settings], tmp_path: Path) -> None:
    args = ["serve", "--model", "m", "--adapters", str(tmp_path), "--max-loras", "2", "--max-lora-rank", "64"]
    args += ["--max-cpu-loras", "9", "--merge-lora", "sql", "--no-enable-lora"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    [s] = served
    assert (s.adapters, s.max_loras, s.max_lora_rank, s.max_cpu_loras) == ([tmp_path], 2, 64, 9)
    assert (s.merge_lora, s.enable_lora) == ("sql", False)


def test_adapters_commands_are_listed() -> None:
    result = runner.invoke(app, ["adapters", "--help"])
    assert result.exit_code == 0
    assert all(cmd in result.output for cmd in ("list", "add", "rm"))
