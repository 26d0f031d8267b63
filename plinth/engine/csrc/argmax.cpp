// plinth::argmax(x): the index of each row's maximum of a 2-D CPU tensor (float32, bfloat16 or
// float16), as torch.argmax(x, dim=-1) gives it: the first index on ties, and the first NaN's where a
// row holds one (NaN counts as the maximum).
//
// Why: the sampler's greedy pick (and its exponential race, an argmax too) over SmolLM2's 49,152 logits
// a row ran at ~4 GB/s in ATen's reduction, which carries an index beside each value through a scalar
// loop: 0.67-0.73 ms for 16 rows and 1.7-2.5 ms for 64 on a 2-core Zen 4, 3-4% of a 16- or 64-stream
// decode step (benchmarks/decode_profile.py, aten::max). Here each row takes two vector passes: its
// maximum 16 lanes at a time (NaNs noted on the side), then the first 16 that hold it. Plain loops
// written for the vectorizer were not vectorized (GCC 12 at -O3), hence simd.h. Over 1-64 rows 9-13x as
// fast as ATen's, and decode steps alternated between the two 1-4% faster at 16 and 64 streams
// (benchmarks/sampler_argmax.py).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "simd.h"
#ifdef PLINTH_SIMD

namespace {

namespace simd = plinth_simd;
using simd::F32x16;

inline F32x16 load16(const float* p) { return simd::loadu(p); }
inline F32x16 load16(const c10::BFloat16* p) { return simd::load_bf16(p); }
inline F32x16 load16(const c10::Half* p) { return simd::load_half(p); }

// Row `x` of n elements: the first index of its maximum, or of its first NaN.
template <typename T>
int64_t row_argmax(const T* x, int64_t n) {
  const int64_t whole = n / 16 * 16;
  F32x16 lanes = simd::set1(-INFINITY);
  unsigned nan = 0;
  for (int64_t i = 0; i < whole; i += 16) {
    const F32x16 v = load16(x + i);
    nan |= simd::mask_nan(v);
    lanes = simd::max(v, lanes);  // a NaN in v keeps the lane as it was: NaNs are counted above
  }
  alignas(64) float lane[16];  // once a row: no need for a vector reduction of its own
  simd::storeu(lane, lanes);
  float top = *std::max_element(lane, lane + 16);
  for (int64_t i = whole; i < n; ++i) {
    const float v = static_cast<float>(x[i]);
    nan |= v != v;
    top = v > top ? v : top;
  }
  const F32x16 target = simd::set1(top);
  for (int64_t i = 0; i < whole; i += 16) {
    const F32x16 v = load16(x + i);
    const unsigned hits = nan ? simd::mask_nan(v) : simd::mask_equal(v, target);
    if (hits) return i + __builtin_ctz(hits);
  }
  for (int64_t i = whole; i < n; ++i) {
    const float v = static_cast<float>(x[i]);
    if (nan ? v != v : v == top) return i;
  }
  return 0;  // unreachable: the maximum, or the NaN, is in the row
}

template <typename T>
void rows_argmax(const T* x, int64_t* out, int64_t rows, int64_t n) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) out[r] = row_argmax(x + r * n, n);
  });
}

at::Tensor argmax(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.size(1) > 0,
              "plinth::argmax: a 2-D CPU tensor with at least one column");
  const at::Tensor xc = x.contiguous();
  const int64_t rows = xc.size(0), n = xc.size(1);
  at::Tensor out = at::empty({rows}, xc.options().dtype(at::kLong));
  int64_t* o = out.mutable_data_ptr<int64_t>();
  switch (xc.scalar_type()) {
    case at::kFloat: rows_argmax(xc.const_data_ptr<float>(), o, rows, n); break;
    case at::kBFloat16: rows_argmax(xc.const_data_ptr<c10::BFloat16>(), o, rows, n); break;
    case at::kHalf: rows_argmax(xc.const_data_ptr<c10::Half>(), o, rows, n); break;
    default: TORCH_CHECK(false, "plinth::argmax: float32, bfloat16 or float16, got ", xc.scalar_type());
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(plinth, m) { m.def("argmax(Tensor x) -> Tensor"); }
TORCH_LIBRARY_IMPL(plinth, CPU, m) { m.impl("argmax", &argmax); }

#endif  // PLINTH_SIMD: elsewhere the sampler keeps ATen's max
