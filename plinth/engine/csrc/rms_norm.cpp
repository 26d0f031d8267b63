// plinth::rms_norm(x, weight, eps): Llama's RMSNorm in one operator, for bf16/fp16 CPU tensors.
//
// Why: on CPU, ATen's rms_norm is a composite of about 25 dispatched operators, and a decode step of a
// small model runs 2 norms per layer on one row each; there the dispatches, not the arithmetic, are
// the cost (benchmarks/README.md, decode_profile.py). The arithmetic is the reference's (Hugging
// Face's LlamaRMSNorm): normalize in float32, round to the input's dtype, then multiply by the weight
// and round again. The sum of squares is taken in 16 float lanes, then added pairwise, close to the
// order of ATen's vectorized reduction; in bf16 the result matches the reference formula in all but a
// few elements in 10^5, by one or two units in the last place (tests/engine/test_layers.py). Compiled
// without fused multiply-adds (plinth/engine/native.py), so each product is rounded as torch rounds it.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <torch/library.h>

#include <cmath>
#include <vector>

#include "simd.h"

namespace {

constexpr int64_t kLanes = 16;

// 1 / sqrt(mean square + eps) of a row whose 16 lane sums are `lanes`: the lanes added pairwise, halves
// onto halves, as ATen's vectorized reduction ends.
inline float inverse_rms(float* lanes, int64_t n, float eps) {
  for (int64_t width = kLanes / 2; width > 0; width /= 2) {
    for (int64_t j = 0; j < width; ++j) lanes[j] += lanes[j + width];
  }
  return 1.f / std::sqrt(lanes[0] / static_cast<float>(n) + eps);
}

template <typename T>
void norm_rows(const T* x, const T* w, T* y, int64_t rows, int64_t n, float eps) {
  at::parallel_for(0, rows, /*grain_size=*/32, [&](int64_t begin, int64_t end) {
    std::vector<float> row(n);
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * n;
      for (int64_t i = 0; i < n; ++i) row[i] = static_cast<float>(xr[i]);
      float lanes[kLanes] = {0.f};
      int64_t i = 0;
      for (; i + kLanes <= n; i += kLanes) {
        for (int64_t j = 0; j < kLanes; ++j) lanes[j] += row[i + j] * row[i + j];
      }
      for (; i < n; ++i) lanes[i % kLanes] += row[i] * row[i];
      const float inv = inverse_rms(lanes, n, eps);
      T* yr = y + r * n;
      for (int64_t k = 0; k < n; ++k) {
        const T normed = static_cast<T>(row[k] * inv);  // rounded to the dtype, as the reference does
        yr[k] = static_cast<T>(static_cast<float>(w[k]) * static_cast<float>(normed));
      }
    }
  });
}

#ifdef PLINTH_SIMD
// The same arithmetic on bf16 rows, 16 lanes at a time: each square rounded to float32 and added to its
// lane (no fused multiply-add), each product rounded to bf16 where the scalar loop rounds it. A 16-prompt
// wave's prefill runs 61 norms of 2,048 rows: 198-211 us each element by element, 147-158 so (the source
// before built beside this one, benchmarks/against.py; 2-core Zen 4).
template <>
void norm_rows(const c10::BFloat16* x, const c10::BFloat16* w, c10::BFloat16* y, int64_t rows, int64_t n,
               float eps) {
  namespace simd = plinth_simd;
  at::parallel_for(0, rows, /*grain_size=*/32, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const c10::BFloat16* xr = x + r * n;
      simd::F32x16 sums = simd::zero();
      int64_t i = 0;
      for (; i + kLanes <= n; i += kLanes) {
        const simd::F32x16 v = simd::load_bf16(xr + i);
        sums = simd::add(sums, simd::mul(v, v));
      }
      float lanes[kLanes];
      simd::storeu(lanes, sums);
      for (; i < n; ++i) lanes[i % kLanes] += static_cast<float>(xr[i]) * static_cast<float>(xr[i]);
      const float inv = inverse_rms(lanes, n, eps);
      const simd::F32x16 scale = simd::set1(inv);
      c10::BFloat16* yr = y + r * n;
      int64_t k = 0;
      for (; k + kLanes <= n; k += kLanes) {
        const simd::F32x16 normed = simd::round_bf16(simd::mul(simd::load_bf16(xr + k), scale));
        simd::store_bf16(yr + k, simd::mul(simd::load_bf16(w + k), normed));
      }
      for (; k < n; ++k) {
        const c10::BFloat16 normed = static_cast<c10::BFloat16>(static_cast<float>(xr[k]) * inv);
        yr[k] = static_cast<c10::BFloat16>(static_cast<float>(w[k]) * static_cast<float>(normed));
      }
    }
  });
}
#endif

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  TORCH_CHECK(x.device().is_cpu() && weight.device().is_cpu(), "plinth::rms_norm: CPU tensors only");
  TORCH_CHECK(x.scalar_type() == weight.scalar_type(), "plinth::rms_norm: x and weight dtypes differ");
  TORCH_CHECK(weight.dim() == 1 && x.dim() >= 1 && x.size(-1) == weight.size(0),
              "plinth::rms_norm: weight must be [hidden] with hidden = x.size(-1)");
  const at::Tensor xc = x.contiguous();
  const at::Tensor wc = weight.contiguous();
  at::Tensor y = at::empty_like(xc);
  const int64_t n = xc.size(-1);
  const int64_t rows = n == 0 ? 0 : xc.numel() / n;
  const float e = static_cast<float>(eps);
  switch (xc.scalar_type()) {
    case at::kBFloat16:
      norm_rows(xc.const_data_ptr<c10::BFloat16>(), wc.const_data_ptr<c10::BFloat16>(),
                y.mutable_data_ptr<c10::BFloat16>(), rows, n, e);
      break;
    case at::kHalf:
      norm_rows(xc.const_data_ptr<c10::Half>(), wc.const_data_ptr<c10::Half>(),
                y.mutable_data_ptr<c10::Half>(), rows, n, e);
      break;
    default:
      TORCH_CHECK(false, "plinth::rms_norm: bfloat16 or float16 (float32 keeps ATen's), got ",
                  xc.scalar_type());
  }
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(plinth, CPU, m) { m.impl("rms_norm", &rms_norm); }
