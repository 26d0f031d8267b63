"""Artifacts at fsspec URLs (``plinth.artifacts``), on fsspec's real ``memory://`` and ``file://``
filesystems: a fetch is cached per version, a failed one leaves nothing, an upload round-trips, and a
URL no installed implementation serves is refused up front (also as the ``artifact_store`` setting)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from pydantic import ValidationError

from plinth.artifacts import ArtifactError, fetch, upload_folder
from plinth.config import Settings


@pytest.fixture
def bucket() -> str:
    """A fresh folder on the process-wide memory filesystem, holding a two-file "adapter"."""
    root = f"/bucket-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    fs.pipe({f"{root}/sql/adapter_config.json": b'{"r": 4}', f"{root}/sql/weights.bin": b"0123"})
    yield root
    fs.rm(root, recursive=True)


def test_a_fetch_is_cached_per_version(bucket: str, tmp_path: Path) -> None:
    first = fetch(f"memory://{bucket}/sql", tmp_path)
    assert first.name == "sql" and (first / "weights.bin").read_bytes() == b"0123"
    assert fetch(f"memory://{bucket}/sql", tmp_path) == first  # unchanged: the same copy

    fsspec.filesystem("memory").pipe(f"{bucket}/sql/weights.bin", b"45678")
    second = fetch(f"memory://{bucket}/sql", tmp_path)
    assert second != first and (second / "weights.bin").read_bytes() == b"45678"


def test_a_failed_fetch_leaves_nothing(bucket: str, tmp_path: Path, monkeypatch) -> None:
    calls = []

    def flaky(self, rpath, lpath, **kwargs):  # the second file's download breaks off
        calls.append(rpath)
        if len(calls) == 2:
            raise ConnectionResetError("connection reset by peer")
        Path(lpath).write_bytes(self.cat_file(rpath))

    monkeypatch.setattr(MemoryFileSystem, "get_file", flaky)
    with pytest.raises(ArtifactError) as caught:
        fetch(f"memory://{bucket}/sql", tmp_path / "cache")
    assert caught.value.code == "artifact_unreadable" and "connection reset" in str(caught.value)
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written copy, no staging folder


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("nosuch://bucket/sql", "unsupported_protocol"),  # no fsspec implementation at all
        ("memory://nowhere/sql", "artifact_not_found"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, code: str, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as caught:
        fetch(url, tmp_path)
    assert caught.value.code == code


def test_a_fetch_past_its_size_limit_downloads_nothing(bucket: str, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError) as caught:
        fetch(f"memory://{bucket}/sql", tmp_path / "cache", max_bytes=11)  # it holds 8 + 4 bytes
    assert caught.value.code == "artifact_too_large" and not (tmp_path / "cache").exists()
    assert fetch(f"memory://{bucket}/sql", tmp_path / "cache", max_bytes=12).is_dir()


def test_an_upload_round_trips_through_file_urls(bucket: str, tmp_path: Path) -> None:
    local = fetch(f"memory://{bucket}/sql", tmp_path / "cache")
    store = f"file://{tmp_path / 'store'}/ft-1"
    assert upload_folder(local, store) == store
    again = fetch(store, tmp_path / "cache")
    assert sorted(p.name for p in again.iterdir()) == ["adapter_config.json", "weights.bin"]


def test_the_artifact_store_setting_must_be_a_url_fsspec_serves(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path, artifact_store="memory://plinth").artifact_store == "memory://plinth"
    for bad in ("plinth-artifacts", "nosuch://bucket"):
        with pytest.raises(ValidationError, match="artifact_store"):
            Settings(data_dir=tmp_path, artifact_store=bad)


def test_a_fine_tune_whose_registration_fails_leaves_nothing_in_the_store(
    bucket: str, tmp_path: Path
) -> None:
    from plinth.adapters import AdapterRegistryError
    from plinth.control.jobs import JobRow
    from plinth.server.app import _publish_adapter

    uploaded = []

    class Refusing:  # the registry's answer to an adapter that does not fit the base model
        def register(self, tenant, name, source, **kwargs):
            uploaded.extend(fsspec.filesystem("memory").ls(source.removeprefix("memory://"), detail=False))
            raise AdapterRegistryError("adapter 'ft': rank 64 exceeds --max-lora-rank 16", param="source")

    adapter = fetch(f"memory://{bucket}/sql", tmp_path)
    request = {"tenant": "acme", "fine_tuned_model": "ft", "model": "base"}
    job = JobRow(
        "ftjob-1", 1, "fine_tune", "running", request, None, None, False, 0, datetime.now(UTC), None, None
    )
    store = f"memory://{bucket}/store"
    with pytest.raises(AdapterRegistryError):
        _publish_adapter(Refusing(), store, job, {"adapter_path": str(adapter)})  # type: ignore[arg-type]
    assert len(uploaded) == 2  # it was uploaded, and registered from the store's URL
    assert not fsspec.filesystem("memory").exists(f"{bucket}/store/fine_tuned/ftjob-1")
