// plinth::lora_add_(out, x, rows, slots, lora_a, lora_bt): out[rows[i]] += Bt[s]^T · (A[s] · x[rows[i]])
// for s = slots[i]: each decode token's unmerged LoRA delta from its own adapter slot, bf16 CPU tensors.
//
// Why: with an adapter per token, a decode step has to read each token's A and B once, ~48 KB a
// projection at rank 16; the torch paths either gathered them into copies (index_select, then two
// batched matrix-vector products) or multiplied every token by every slot of the step's span and masked
// the other slots' products away (two GEMMs tokens x span x rank wide, a one-hot multiply and an add:
// ~9 ms of a 32-token step of the `small` llama with q/v adapters, benchmarks/lora.py). Here each token
// reads its slot's A and B where they lie, once, and does only its own products: the shrink on
// vdpbf16ps or its AVX2 form (simd.h; 16 ranks' sums side by side, one reduce16), the expand in float32
// over 16 outputs at a time, the sum added to the base output and rounded to bf16 once.
//
// Each token's delta depends on nothing but its own row and slot, so the operator is batch-invariant.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "simd.h"
#ifdef PLINTH_SIMD

namespace {

namespace simd = plinth_simd;
using bf16 = c10::BFloat16;
using simd::F32x16;

// The next token's rows into L2 while this token's are read: each token's A and B are a fresh 48 KB
// (rank 16) somewhere in memory, and the hardware prefetcher alone read them at ~16 GB/s.
inline void prefetch(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t at = 0; at < bytes; at += 64) _mm_prefetch(c + at, _MM_HINT_T1);
}

// h[r] = A[r] · x, one row of A after the other (A is read front to back, as it lies), 32 inputs per
// pair product (the tail zero-padded); the rank's sums in groups of 16, one reduce16 each.
void shrink(const bf16* a, const bf16* x, int64_t rank, int64_t in, float* h, const bf16* next) {
  const int64_t whole = in / 32 * 32;
  alignas(64) bf16 x_tail[32] = {};
  std::copy(x + whole, x + in, x_tail);
  for (int64_t r0 = 0; r0 < rank; r0 += 16) {
    const int64_t rows = std::min<int64_t>(16, rank - r0);
    F32x16 acc[16];
    for (int r = 0; r < 16; ++r) acc[r] = simd::zero();
    for (int64_t r = 0; r < rows; ++r) {
      const bf16* row = a + (r0 + r) * in;
      if (next) prefetch(next + (r0 + r) * in, in * sizeof(bf16));
      F32x16 sum[2] = {simd::zero(), simd::zero()};
      int64_t i = 0;
      for (; i + 64 <= in; i += 64) {
        sum[0] = simd::dot_pairs(sum[0], row + i, x + i);
        sum[1] = simd::dot_pairs(sum[1], row + i + 32, x + i + 32);
      }
      if (i < whole) sum[0] = simd::dot_pairs(sum[0], row + i, x + i);
      if (whole < in) {
        alignas(64) bf16 row_tail[32] = {};
        std::copy(row + whole, row + in, row_tail);
        sum[0] = simd::dot_pairs(sum[0], row_tail, x_tail);
      }
      acc[r] = simd::add(sum[0], sum[1]);
    }
    alignas(64) float sums[16];
    simd::storeu(sums, simd::reduce16(acc));
    std::copy_n(sums, rows, h + r0);
  }
}

// y += sum_r h[r] * bt[r] in float32 (acc: width floats), one row of Bt after the other, then rounded to
// bf16 once.
void expand(const float* h, const bf16* bt, int64_t rank, int64_t width, bf16* y, float* acc, const bf16* next) {
  const int64_t whole = width / 16 * 16, tail = width - whole;
  for (int64_t j = 0; j < whole; j += 16) simd::storeu(acc + j, simd::load_bf16(y + j));
  if (tail) simd::storeu(acc + whole, simd::load_first(y + whole, tail));
  for (int64_t r = 0; r < rank; ++r) {
    const F32x16 weight = simd::set1(h[r]);
    const bf16* row = bt + r * width;
    if (next) prefetch(next + r * width, width * sizeof(bf16));
    for (int64_t j = 0; j < whole; j += 16)
      simd::storeu(acc + j, simd::fmadd(weight, simd::load_bf16(row + j), simd::loadu(acc + j)));
    if (tail)
      simd::storeu(acc + whole, simd::fmadd(weight, simd::load_first(row + whole, tail), simd::loadu(acc + whole)));
  }
  for (int64_t j = 0; j < whole; j += 16) simd::store_bf16(y + j, simd::loadu(acc + j));
  if (tail) simd::store_first(y + whole, simd::loadu(acc + whole), tail);
}

void lora_add_(at::Tensor& out, const at::Tensor& x, const at::Tensor& rows, const at::Tensor& slots,
               const at::Tensor& lora_a, const at::Tensor& lora_bt) {
  TORCH_CHECK(out.dim() == 2 && x.dim() == 2 && lora_a.dim() == 3 && lora_bt.dim() == 3 && rows.dim() == 1 &&
                  slots.dim() == 1, "plinth::lora_add_: out [t, out], x [t, in], rows and slots [n], A and Bt [s, r, *]");
  TORCH_CHECK(out.scalar_type() == at::kBFloat16 && x.scalar_type() == at::kBFloat16 &&
                  lora_a.scalar_type() == at::kBFloat16 && lora_bt.scalar_type() == at::kBFloat16,
              "plinth::lora_add_: bf16 tensors");
  TORCH_CHECK(rows.scalar_type() == at::kLong && slots.scalar_type() == at::kLong && rows.numel() == slots.numel(),
              "plinth::lora_add_: rows and slots are int64, one per token");
  TORCH_CHECK(out.device().is_cpu() && x.device().is_cpu() && lora_a.is_contiguous() && lora_bt.is_contiguous() &&
                  out.stride(1) == 1 && x.stride(1) == 1,
              "plinth::lora_add_: CPU tensors, rows of out and x contiguous, A and Bt contiguous");
  const int64_t num_slots = lora_a.size(0), rank = lora_a.size(1), in = lora_a.size(2), width = lora_bt.size(2);
  TORCH_CHECK(lora_bt.size(0) == num_slots && lora_bt.size(1) == rank && x.size(1) == in && out.size(1) == width,
              "plinth::lora_add_: shapes disagree: A ", lora_a.sizes(), ", Bt ", lora_bt.sizes(), ", x ", x.sizes(),
              ", out ", out.sizes());
  const at::Tensor rc = rows.contiguous(), sc = slots.contiguous();
  const int64_t* row = rc.const_data_ptr<int64_t>();
  const int64_t* slot = sc.const_data_ptr<int64_t>();
  const int64_t n = rows.numel();
  for (int64_t i = 0; i < n; ++i)
    TORCH_CHECK(row[i] >= 0 && row[i] < std::min(out.size(0), x.size(0)) && slot[i] >= 0 && slot[i] < num_slots,
                "plinth::lora_add_: token ", i, " has row ", row[i], " and slot ", slot[i], " out of range");
  const bf16* xs = x.const_data_ptr<bf16>();
  const bf16* as = lora_a.const_data_ptr<bf16>();
  const bf16* bts = lora_bt.const_data_ptr<bf16>();
  bf16* ys = out.mutable_data_ptr<bf16>();
  const int64_t x_stride = x.stride(0), out_stride = out.stride(0);
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> h(rank), acc(width + 16);
    for (int64_t i = begin; i < end; ++i) {
      const bool more = i + 1 < end;
      shrink(as + slot[i] * rank * in, xs + row[i] * x_stride, rank, in, h.data(),
             more ? as + slot[i + 1] * rank * in : nullptr);
      expand(h.data(), bts + slot[i] * rank * width, rank, width, ys + row[i] * out_stride, acc.data(),
             more ? bts + slot[i + 1] * rank * width : nullptr);
    }
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(plinth, m) {
  m.def("lora_add_(Tensor(a!) out, Tensor x, Tensor rows, Tensor slots, Tensor lora_a, Tensor lora_bt) -> ()");
}
TORCH_LIBRARY_IMPL(plinth, CPU, m) { m.impl("lora_add_", &lora_add_); }

#endif  // PLINTH_SIMD: without AVX512-BF16 or AVX2 the operator is not registered and decode tokens keep the
        // torch paths
