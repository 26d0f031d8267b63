"""Plinth's own CPU operators (``plinth/engine/csrc/*.cpp``), built on first use and loaded as torch ops.

Why native code: a decode step of a small model on a CPU spends about 40% of its time in hundreds of
small operators between the matmuls, a few microseconds each to dispatch; ``torch.compile`` did not
remove that cost (its own entry costs as much; ``benchmarks/README.md``). One operator for what the
reference runs as many (RMSNorm: about 25 on CPU) removes it where it is largest. And the int4/int8
weight-only matmuls (``qlinear``: AVX512-BF16 and AMX) read the weights 1.3-1.6x faster than torch's
CPU kernels for one row and compute 3-6x faster for many (``benchmarks/qlinear.py``).

Which CPUs: the vector operators are written once against ``csrc/simd.h``'s 16-lane float vector, one
zmm register on AVX512-BF16 and two ymm on AVX2 with FMA and F16C (AMD before Zen 4, Intel's client
cores), so the fused bf16 decode path runs on both (``qlinear`` has its own AVX2 tile), and a CPU
without AVX2 gets ``rms_norm`` alone.

How: :func:`torch.utils.cpp_extension.load` compiles the sources with the machine's C++ compiler and
ninja (the ``ninja`` package is a dependency) into ``~/.cache/plinth/native/<torch>-<cpu>-<sources>``
(``PLINTH_NATIVE_DIR`` moves it) and loads the library, which registers ``torch.ops.plinth.*``. It is
built for this CPU (``-march=native``), so the folder is named after the CPU's feature flags (a home
directory shared by different machines gets one build per kind of CPU) and after the sources' text (an
edited source builds anew). The first build takes ~7 s (``make install`` does it); later processes
load the built library directly, in milliseconds. Without a compiler, or with ``PLINTH_NATIVE=0``,
:func:`available` is False, one warning is logged, and callers use their torch path: the engine works
either way.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import sys
import threading
from pathlib import Path

import torch

__all__ = ["available", "build_dir", "has", "report"]

log = logging.getLogger(__name__)
SOURCES = sorted((Path(__file__).parent / "csrc").glob("*.cpp"))
HEADERS = sorted((Path(__file__).parent / "csrc").glob("*.h"))
OPS = ("rms_norm",)  # what the sources register as torch.ops.plinth.* on every CPU
# and what they register only where the CPU has the vector instructions (AVX512-BF16, or AVX2 with FMA and
# F16C; see has() and csrc/simd.h)
OPTIONAL_OPS = ("qlinear", "bf16_linear", "decode_attention", "lora_add_", "decode_layer", "argmax")
# -ffp-contract=off: no fused multiply-adds the source did not ask for, so each product and sum is
# rounded as torch's operators round; -fopenmp: at::parallel_for runs on torch's OpenMP threads (without
# it the loops run on one thread; torch's libgomp is already loaded, so no second runtime is)
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fopenmp")
_lock = threading.Lock()
_loaded: bool | None = None


def available() -> bool:
    """Whether ``torch.ops.plinth`` is loaded; builds and loads it on the first call (thread-safe: a
    library registers its namespace once per process, so it is loaded at most once)."""
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _loaded = _load()
    return _loaded


def _load() -> bool:
    if os.environ.get("PLINTH_NATIVE", "1") == "0":
        log.info("native operators disabled (PLINTH_NATIVE=0): using torch's")
        return False
    try:
        library = build_dir() / "plinth_ops.so"
        if library.is_file():  # built for these sources, this torch and this CPU: load it as it is
            torch.ops.load_library(str(library))
        else:
            _build(library.parent)
    except Exception as exc:  # no compiler, no ninja, a failed build: the torch path still works
        log.warning("native operators unavailable, using torch's (slower on CPU): %s", exc)
        return False
    return all(hasattr(torch.ops.plinth, op) for op in OPS)


def _build(folder: Path) -> None:
    """Compile and load the sources into ``folder`` (torch's builder: it locks the folder, so two
    processes starting at once build once)."""
    _ensure_ninja()
    from torch.utils.cpp_extension import load  # imports setuptools: only when building

    folder.mkdir(parents=True, exist_ok=True)
    load(
        name="plinth_ops",
        sources=[str(s) for s in SOURCES],
        extra_cflags=list(CFLAGS),
        extra_ldflags=["-fopenmp"],
        build_directory=str(folder),
        is_python_module=False,
        verbose=False,
    )


def has(op: str) -> bool:
    """Whether the native operator ``op`` is there: built, loaded, and registered for this CPU."""
    return available() and op in _registered()


@functools.cache
def _registered() -> frozenset[str]:
    # an operator a source declares only under #if (for an instruction set) is absent from the schema
    # registry elsewhere; hasattr on torch.ops would also find a declared but unimplemented one
    return frozenset(
        schema.name.split("::", 1)[1]
        for schema in torch._C._jit_get_all_schemas()
        if schema.name.startswith("plinth::")
    )


def build_dir() -> Path:
    """Where the library is built: one folder per torch version, CPU feature set, source text and flags."""
    root = Path(os.environ.get("PLINTH_NATIVE_DIR", Path.home() / ".cache" / "plinth" / "native"))
    text = b"".join(s.read_bytes() for s in SOURCES + HEADERS) + " ".join(CFLAGS).encode()
    sources = hashlib.sha1(text).hexdigest()[:10]
    return root / f"torch{torch.__version__.split('+')[0]}-cpu{_cpu_tag()}-src{sources}"


def _cpu_tag() -> str:
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return hashlib.sha1(flags.encode()).hexdigest()[:10]


def _ensure_ninja() -> None:
    """torch's builder runs ``ninja`` from PATH; a venv's own (the ``ninja`` package) is not on it
    unless the venv is activated."""
    if shutil.which("ninja"):
        return
    candidates = [Path(sys.executable).parent]
    try:
        import ninja  # the PyPI package ships the binary

        candidates.insert(0, Path(ninja.BIN_DIR))
    except ImportError:
        pass
    for folder in candidates:
        if (folder / "ninja").exists():
            os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
            return


def report() -> str:
    """One line on the operators' state, building them if needed (``make install`` prints it)."""
    if available():
        optional = ", ".join(op for op in OPTIONAL_OPS if has(op)) or "none for this CPU"
        return f"plinth native operators: loaded (optional: {optional}), built in {build_dir()}"
    return "plinth native operators: unavailable (see the warning above); the engine uses torch's"
