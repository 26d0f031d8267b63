"""The peers ``serve.py`` measures Plinth against: llama.cpp's ``llama-server`` and its GGUF inputs,
plus the peak-RSS probe every engine's process is measured with.

``llama-server`` is built from the sources vendored in the ``llama-cpp-python`` sdist by
``scripts/build-llama-server.sh`` (``make bench`` runs it). llama.cpp reads the shipped Q4_1 GGUF as is;
its bf16 counterpart is written here with the ``gguf`` library: every tensor dequantized to float32 by
the library's own dequantizers and stored as BF16 (F32 norms stay F32), metadata copied unchanged, so
the two files differ only in weight precision.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

LLAMA_SERVER = Path(".bench/llama.cpp/build/bin/llama-server")
START_TIMEOUT_S = 300


def peak_rss_bytes(pid: int) -> int:
    """The process's high-water resident set (``VmHWM``), read while it is still alive."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def write_bf16_gguf(source: Path, dest: Path) -> Path:
    """``source`` GGUF rewritten with BF16 matrices (once; reused when ``dest`` exists)."""
    import gguf

    if dest.is_file():
        return dest
    reader = gguf.GGUFReader(source)
    arch = str(reader.fields["general.architecture"].contents())
    tmp = dest.with_suffix(".partial")
    writer = gguf.GGUFWriter(tmp, arch)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        if field.name == "general.file_type":
            writer.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
            continue
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    for tensor in reader.tensors:
        values = np.asarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        if values.ndim == 1:  # norms: llama.cpp keeps them F32
            writer.add_tensor(tensor.name, values)
            continue
        packed = gguf.quants.quantize(values, gguf.GGMLQuantizationType.BF16)
        writer.add_tensor(
            tensor.name, packed, raw_shape=packed.shape, raw_dtype=gguf.GGMLQuantizationType.BF16
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.rename(dest)
    return dest


@contextlib.contextmanager
def llama_server(
    binary: Path, model: Path, port: int, slots: int, ctx_per_slot: int, threads: int
) -> Iterator[Any]:
    """``llama-server`` with ``slots`` parallel sequences and continuous batching on ``threads`` threads;
    yields ``(url, process)`` once ``/health`` answers ok."""
    cmd = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
           "-np", str(slots), "-c", str(slots * ctx_per_slot), "--cont-batching", "-t", str(threads),
           "-tb", str(threads), "--no-webui"]  # fmt: skip
    # Its log goes to a file: a pipe nobody reads fills up and stalls the server mid-run.
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, Path(log.name))
        try:
            yield url, proc
        except httpx.HTTPError as e:
            if proc.poll() is not None:  # say why it died, not only that the connection dropped
                raise RuntimeError(
                    f"llama-server exited with {proc.returncode}:\n{_tail(Path(log.name))}"
                ) from e
            raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        log.close()
        Path(log.name).unlink(missing_ok=True)


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"llama-server was not healthy after {START_TIMEOUT_S}s")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def llama_request(prompt: list[int], output_len: int) -> dict[str, Any]:
    """A native ``/completion`` body: token-id prompt, greedy, exactly ``output_len`` tokens, no reuse."""
    return {"prompt": prompt, "n_predict": output_len, "ignore_eos": True, "temperature": 0, "top_k": 1,
            "stream": True, "cache_prompt": False}  # fmt: skip


def llama_chunk(chunk: dict[str, Any]) -> tuple[bool, int | None]:
    """(chunk carries a token, output token count if this is the final chunk) of a streamed reply."""
    tokens = int(chunk["tokens_predicted"]) if chunk.get("stop") is True else None
    return bool(chunk.get("content") or chunk.get("tokens")), tokens
