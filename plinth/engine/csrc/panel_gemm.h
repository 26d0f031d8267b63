// y = x @ W.T through MKL's float32 GEMM, the weight converted to float32 one panel of output blocks at
// a time: how Plinth's AVX2 kernels (bf16_linear.cpp, qlinear.cpp) multiply a prefill's many rows.
//
// Why: from a few hundred rows every product on an AVX2 CPU is bound by the FMA units, and MKL's
// register tiles keep them busier than the kernels' own small tiles, whose every weight vector also pays
// its conversion. SmolLM2's four layer shapes on a Zen 3, bf16 weights, each alternately both ways in
// one process, conversions included: 1.01-1.16x as fast at 192 rows, 1.14-1.24x at 256, 1.11-1.31x at
// 384, 1.11-1.60x at 2,048 (benchmarks/README.md, "Many rows through MKL"). Each output rounds once to
// bf16, but MKL sums in its own order, which depends on the shape: a row's bits then depend on how many
// rows came with it (batch-invariant mode tiles rows by 16 and never comes here).
//
// A panel is 1 MB of float32 weights, which each GEMM call of up to 512 rows reads again from L2: 4 MB
// panels ran 0.97-1.15x at 384 rows where 1 MB ones ran 1.11-1.31x; 256 KB ones, and calls of 256 or
// 2,048 rows, did no better.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/mm.h>

#include <algorithm>
#include <cstdint>

namespace plinth_panel {

constexpr int64_t kPanelFloats = int64_t{1} << 18;
constexpr int64_t kRowChunk = 512;
constexpr int64_t kBlock = 16;  // output rows per block, in both kernels' layouts

// y [M][blocks * 16] (bf16) = x [M][K] (bf16) @ W.T, where unpack(b0, nb, out) writes blocks
// [b0, b0 + nb) of W as float32 W.T columns: out[k * nb * 16 + n] for the blocks' rows n.
template <typename Unpack>
void gemm(const at::Tensor& x, at::Tensor& y, int64_t blocks, Unpack&& unpack) {
  const at::Tensor xf = x.to(at::kFloat);
  const int64_t M = x.size(0), K = x.size(1);
  const int64_t panel_blocks = std::clamp<int64_t>(kPanelFloats / (K * kBlock), 1, blocks);
  at::Tensor panel = at::empty({K * panel_blocks * kBlock}, xf.options());
  at::Tensor out = at::empty({std::min(M, kRowChunk) * panel_blocks * kBlock}, xf.options());
  for (int64_t b0 = 0; b0 < blocks; b0 += panel_blocks) {
    const int64_t nb = std::min(panel_blocks, blocks - b0), n = nb * kBlock;
    const at::Tensor w = panel.narrow(0, 0, K * n).view({K, n});
    unpack(b0, nb, w.data_ptr<float>());
    for (int64_t m0 = 0; m0 < M; m0 += kRowChunk) {
      const int64_t rows = std::min(kRowChunk, M - m0);
      at::Tensor o = out.narrow(0, 0, rows * n).view({rows, n});
      at::mm_out(o, xf.narrow(0, m0, rows), w);
      y.narrow(0, m0, rows).narrow(1, b0 * kBlock, n).copy_(o);
    }
  }
}

}  // namespace plinth_panel
