"""Settings: source precedence (toml < env < kwargs), validation, and the --no-auth bind check."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from plinth.config import InsecureBindError, Settings, check_bind, is_loopback_host

pytestmark = pytest.mark.usefixtures("clean_env")


def test_defaults() -> None:
    s = Settings()
    assert (s.host, s.port, s.models, s.no_auth, s.dtype) == ("127.0.0.1", 8000, [], False, "auto")
    assert s.data_dir == Path("plinth-data")
    assert s.database_url == f"sqlite:///{Path('plinth-data') / 'plinth.db'}"


def test_database_url_follows_data_dir_unless_set(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).database_url == f"sqlite:///{tmp_path / 'plinth.db'}"
    assert Settings(data_dir=tmp_path, database_url="sqlite://").database_url == "sqlite://"


def test_precedence_toml_then_env_then_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "custom.toml"
    toml.write_text('port = 7000\ndtype = "float16"\nmodels = ["from-toml"]\nhost = "::1"\n')
    monkeypatch.setenv("PLINTH_CONFIG", str(toml))
    s = Settings()
    assert (s.port, s.dtype, s.models, s.host) == (7000, "float16", ["from-toml"], "::1")

    monkeypatch.setenv("PLINTH_PORT", "7100")
    monkeypatch.setenv("PLINTH_MODELS", "env-a,env-b")
    s = Settings()
    assert (s.port, s.models, s.dtype) == (7100, ["env-a", "env-b"], "float16")

    s = Settings(port=7200, models=["kw"])
    assert (s.port, s.models, s.dtype, s.host) == (7200, ["kw"], "float16", "::1")


def test_default_toml_in_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "plinth.toml").write_text("max_num_seqs = 3\n")
    assert Settings().max_num_seqs == 3


def test_config_kwarg_beats_plinth_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.toml").write_text("port = 1111\n")
    (tmp_path / "b.toml").write_text("port = 2222\n")
    monkeypatch.setenv("PLINTH_CONFIG", str(tmp_path / "a.toml"))
    assert Settings(config=tmp_path / "b.toml").port == 2222


def test_explicit_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        Settings(config=tmp_path / "nope.toml")


def test_models_env_accepts_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_MODELS", '["a", "b,c"]')
    assert Settings().models == ["a", "b,c"]


@pytest.mark.parametrize(
    "bad",
    [
        {"port": 0},
        {"port": 70000},
        {"dtype": "fp8"},
        {"device": "tpu"},
        {"device": "cuda:x"},
        {"device": "cpu\n"},
        {"load_format": "pt"},
        {"max_num_seqs": 0},
        {"kv_cache_memory_gb": 0},
        {"log_level": "loud"},
        {"not_a_setting": 1},
    ],
)
def test_invalid_values_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_unknown_toml_key_rejected(tmp_path: Path) -> None:
    (tmp_path / "plinth.toml").write_text("prot = 8001\n")
    with pytest.raises(ValidationError, match="prot"):
        Settings()


def test_invalid_env_value_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLINTH_PORT", "99999")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_valid_devices(device: str) -> None:
    assert Settings(device=device).device == device


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_no_auth_allowed_on_loopback(host: str) -> None:
    assert is_loopback_host(host)
    check_bind(Settings(no_auth=True, host=host))


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.com", "localhost.evil"]
)
def test_no_auth_refused_beyond_loopback(host: str) -> None:
    assert not is_loopback_host(host)
    with pytest.raises(InsecureBindError, match="refusing --no-auth"):
        check_bind(Settings(no_auth=True, host=host))


def test_auth_on_any_host_is_fine() -> None:
    check_bind(Settings(host="0.0.0.0"))


def test_engine_config_carries_settings() -> None:
    s = Settings(dtype="bfloat16", device="cpu", max_num_seqs=5, max_model_len=256, kv_cache_memory_gb=0.5)
    cfg = s.engine_config("some/model")
    assert (cfg.model, cfg.dtype, cfg.device, cfg.max_num_seqs) == ("some/model", "bfloat16", "cpu", 5)
    assert (cfg.max_model_len, cfg.kv_cache_memory_gb, cfg.load_format) == (256, 0.5, "auto")


def test_batch_invariant_is_off_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().engine_config("m").batch_invariant is False
    monkeypatch.setenv("PLINTH_BATCH_INVARIANT", "1")
    assert Settings().engine_config("m").batch_invariant is True


def test_lora_settings_reach_the_engine_config(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Settings().engine_config("m")
    assert (cfg.enable_lora, cfg.max_loras, cfg.max_lora_rank, cfg.max_cpu_loras) == (True, 8, 16, 64)
    s = Settings(max_loras=3, max_lora_rank=32, max_cpu_loras=5, enable_lora=False)
    cfg = s.engine_config("m")
    assert (cfg.enable_lora, cfg.max_loras, cfg.max_lora_rank, cfg.max_cpu_loras) == (False, 3, 32, 5)
    assert Settings().engine_config("m", enable_lora=False).enable_lora is False  # a merged model
    monkeypatch.setenv("PLINTH_ADAPTERS", "/a,/b")
    monkeypatch.setenv("PLINTH_API_KEY", "pk-x")
    s = Settings()
    assert (s.adapters, s.api_key, s.server_url) == (
        [Path("/a"), Path("/b")],
        "pk-x",
        "http://127.0.0.1:8000",
    )


def test_merge_lora_needs_adapters() -> None:
    with pytest.raises(ValidationError, match="adapters"):
        Settings(merge_lora="sql")
    assert Settings(merge_lora="sql", adapters=["/a"]).merge_lora == "sql"
