#!/bin/sh
# Builds llama.cpp's `llama-server` from the sources vendored in the llama-cpp-python sdist, for
# benchmarks/serve.py to measure Plinth against. Only `make bench` runs this (never `make demo`/`make test`):
# the build takes 10+ minutes on two cores. A no-op once the binary exists.
#   usage: scripts/build-llama-server.sh [PYTHON] [DEST]   (defaults: .venv/bin/python, .bench/llama.cpp)
set -eu
PYTHON=${1:-.venv/bin/python}
DEST=${2:-.bench/llama.cpp}
BIN="$DEST/build/bin/llama-server"
if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi
mkdir -p "$DEST"
if [ ! -d "$DEST/src" ]; then
    # --no-binary: the sdist is what carries llama.cpp's C++ sources (vendor/llama.cpp).
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: --dest "$DEST/sdist" llama-cpp-python
    mkdir -p "$DEST/unpack"
    tar -xzf "$DEST"/sdist/llama_cpp_python-*.tar.gz -C "$DEST/unpack"
    mv "$DEST"/unpack/llama_cpp_python-*/vendor/llama.cpp "$DEST/src"
    rm -rf "$DEST/unpack"
fi
# The CPU's vector extensions, named explicitly rather than -march=native: that also enables AMX, whose
# tile instructions kill the server with SIGILL on VMs that advertise AMX without granting it.
has() { grep -qw "$1" /proc/cpuinfo && echo ON || echo OFF; }
ISA="-DGGML_NATIVE=OFF -DGGML_AVX=$(has avx) -DGGML_AVX2=$(has avx2) -DGGML_FMA=$(has fma) -DGGML_F16C=$(has f16c)
 -DGGML_AVX512=$(has avx512f) -DGGML_AVX512_VBMI=$(has avx512vbmi) -DGGML_AVX512_VNNI=$(has avx512_vnni)
 -DGGML_AVX512_BF16=$(has avx512_bf16) -DGGML_AVX_VNNI=$(has avx_vnni) -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
 -DGGML_AMX_BF16=OFF"
# LLAMA_CURL=OFF: the server only reads local files, and libcurl headers may be absent.
# shellcheck disable=SC2086
cmake -S "$DEST/src" -B "$DEST/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF $ISA >/dev/null
nice -n 10 cmake --build "$DEST/build" --config Release -j"${JOBS:-2}" --target llama-server >/dev/null
echo "$BIN"
