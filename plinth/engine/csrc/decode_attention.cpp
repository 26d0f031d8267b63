// plinth::decode_attention(q, k, v, k_cache, v_cache, slots, block_tables, context_lens, scale):
// one new token per request: write its K/V into the paged cache, then attend its query heads over the
// request's context, for bf16/fp16 CPU tensors whose head size is a multiple of 16.
//
// Why: a one-stream decode step of SmolLM2 attends 30 times over ~200 positions, ~0.2 M multiply-adds
// each, and the torch path (two index_copy_ for the cache, views of the blocks, SDPA's flash kernel
// with a mask) cost ~70 us a layer in dispatch and set-up, ~2 ms of a 22 ms step
// (benchmarks/decode_profile.py). Here it is one operator: per request and KV head, the scores of its
// query heads in float32, a softmax with torch's vectorized exp (Sleef, as ATen's), and the weighted sum
// of the values in float32, rounded once to the cache's dtype.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>

extern "C" __m512 Sleef_expf16_u10(__m512);  // libtorch_cpu's, what Vectorized<float>::exp calls

namespace {

inline __m512 load16(const c10::BFloat16* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}
inline __m512 load16(const c10::Half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
template <typename T>
inline void store16(T* p, __m512 v) {
  alignas(64) float tmp[16];
  _mm512_store_ps(tmp, v);
  for (int i = 0; i < 16; ++i) p[i] = static_cast<T>(tmp[i]);  // round to nearest even, as torch does
}

template <typename T>
void attend(const T* q, const T* k, const T* v, T* k_cache, T* v_cache, const int64_t* slots,
            const int64_t* tables, const int64_t* lens, T* out, int64_t batch, int64_t heads,
            int64_t kv_heads, int64_t dim, int64_t table_width, int64_t block_size, float scale) {
  const int64_t group = heads / kv_heads;  // query heads per KV head
  const int64_t vecs = dim / 16;
  at::parallel_for(0, batch * kv_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> queries, scores, acc;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / kv_heads, h = task % kv_heads;
      const int64_t ctx = lens[b];
      const int64_t* table = tables + b * table_width;
      // the new token's K/V first: this task reads only head h of request b's context
      const int64_t new_row = (slots[b] * kv_heads + h) * dim;
      std::copy_n(k + (b * kv_heads + h) * dim, dim, k_cache + new_row);
      std::copy_n(v + (b * kv_heads + h) * dim, dim, v_cache + new_row);
      queries.resize(group * dim);
      for (int64_t g = 0; g < group; ++g)
        for (int64_t j = 0; j < vecs; ++j)
          _mm512_storeu_ps(&queries[g * dim + j * 16], load16(q + ((b * heads + h * group + g) * dim + j * 16)));
      scores.resize(group * ctx);
      for (int64_t p = 0; p < ctx; ++p) {
        const int64_t slot = table[p / block_size] * block_size + p % block_size;
        const T* key = k_cache + (slot * kv_heads + h) * dim;
        for (int64_t g = 0; g < group; ++g) {
          __m512 sum = _mm512_setzero_ps();
          for (int64_t j = 0; j < vecs; ++j)
            sum = _mm512_fmadd_ps(_mm512_loadu_ps(&queries[g * dim + j * 16]), load16(key + j * 16), sum);
          scores[g * ctx + p] = _mm512_reduce_add_ps(sum) * scale;
        }
      }
      std::vector<float> totals(group);
      for (int64_t g = 0; g < group; ++g) {  // softmax numerators in place, and their sum
        float* s = &scores[g * ctx];
        const float top = *std::max_element(s, s + ctx);
        __m512 total = _mm512_setzero_ps();
        int64_t p = 0;
        for (; p + 16 <= ctx; p += 16) {
          const __m512 e = Sleef_expf16_u10(_mm512_sub_ps(_mm512_loadu_ps(s + p), _mm512_set1_ps(top)));
          _mm512_storeu_ps(s + p, e);
          total = _mm512_add_ps(total, e);
        }
        if (p < ctx) {
          const __mmask16 tail = static_cast<__mmask16>((1u << (ctx - p)) - 1);
          const __m512 x = _mm512_maskz_loadu_ps(tail, s + p);
          const __m512 e = _mm512_maskz_mov_ps(tail, Sleef_expf16_u10(_mm512_sub_ps(x, _mm512_set1_ps(top))));
          _mm512_mask_storeu_ps(s + p, tail, e);
          total = _mm512_add_ps(total, e);
        }
        totals[g] = _mm512_reduce_add_ps(total);
      }
      acc.assign(group * dim, 0.f);
      for (int64_t p = 0; p < ctx; ++p) {
        const int64_t slot = table[p / block_size] * block_size + p % block_size;
        const T* value = v_cache + (slot * kv_heads + h) * dim;
        for (int64_t j = 0; j < vecs; ++j) {
          const __m512 vv = load16(value + j * 16);
          for (int64_t g = 0; g < group; ++g) {
            float* a = &acc[g * dim + j * 16];
            _mm512_storeu_ps(a, _mm512_fmadd_ps(_mm512_set1_ps(scores[g * ctx + p]), vv, _mm512_loadu_ps(a)));
          }
        }
      }
      for (int64_t g = 0; g < group; ++g) {
        const __m512 inv = _mm512_set1_ps(1.f / totals[g]);
        T* o = out + (b * heads + h * group + g) * dim;
        for (int64_t j = 0; j < vecs; ++j) store16(o + j * 16, _mm512_mul_ps(_mm512_loadu_ps(&acc[g * dim + j * 16]), inv));
      }
    }
  });
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, at::Tensor& k_cache,
                            at::Tensor& v_cache, const at::Tensor& slots, const at::Tensor& block_tables,
                            const at::Tensor& context_lens, int64_t block_size, double scale) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && k_cache.dim() == 3 && v_cache.dim() == 3,
              "plinth::decode_attention: q [B, heads, D], k/v [B, kv_heads, D], caches [slots, kv_heads, D]");
  const auto dtype = q.scalar_type();
  TORCH_CHECK((dtype == at::kBFloat16 || dtype == at::kHalf) && k.scalar_type() == dtype &&
                  v.scalar_type() == dtype && k_cache.scalar_type() == dtype && v_cache.scalar_type() == dtype,
              "plinth::decode_attention: bfloat16 or float16, the same for all");
  TORCH_CHECK(q.device().is_cpu() && k_cache.is_contiguous() && v_cache.is_contiguous(),
              "plinth::decode_attention: CPU tensors, contiguous caches");
  const int64_t batch = q.size(0), heads = q.size(1), dim = q.size(2), kv_heads = k_cache.size(1);
  TORCH_CHECK(dim % 16 == 0 && k_cache.size(2) == dim && heads % kv_heads == 0 && k.size(0) == batch &&
                  k.size(1) == kv_heads && k.size(2) == dim && v.sizes() == k.sizes() &&
                  v_cache.sizes() == k_cache.sizes(),
              "plinth::decode_attention: shapes disagree (the head size must be a multiple of 16)");
  TORCH_CHECK(slots.scalar_type() == at::kLong && block_tables.scalar_type() == at::kLong &&
                  context_lens.scalar_type() == at::kLong && slots.numel() == batch &&
                  block_tables.dim() == 2 && block_tables.size(0) == batch && context_lens.numel() == batch,
              "plinth::decode_attention: int64 slots [B], block_tables [B, N], context_lens [B]");
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const at::Tensor sc = slots.contiguous(), tc = block_tables.contiguous(), lc = context_lens.contiguous();
  const int64_t width = tc.size(1), cache_blocks = k_cache.size(0) / block_size;
  for (int64_t b = 0; b < batch; ++b) {  // what the loops index, checked once: no read outside the cache
    const int64_t ctx = lc.const_data_ptr<int64_t>()[b], slot = sc.const_data_ptr<int64_t>()[b];
    TORCH_CHECK(ctx >= 1 && ctx <= width * block_size && slot >= 0 && slot < k_cache.size(0),
                "plinth::decode_attention: request ", b, " has context ", ctx, " and slot ", slot);
    const int64_t* row = tc.const_data_ptr<int64_t>() + b * width;
    for (int64_t i = 0; i < (ctx + block_size - 1) / block_size; ++i)
      TORCH_CHECK(row[i] >= 0 && row[i] < cache_blocks, "plinth::decode_attention: block ", row[i], " out of range");
  }
  at::Tensor out = at::empty({batch, heads, dim}, q.options());
  const float s = static_cast<float>(scale);
  if (dtype == at::kBFloat16) {
    using T = c10::BFloat16;
    attend<T>(qc.const_data_ptr<T>(), kc.const_data_ptr<T>(), vc.const_data_ptr<T>(), k_cache.mutable_data_ptr<T>(),
              v_cache.mutable_data_ptr<T>(), sc.const_data_ptr<int64_t>(), tc.const_data_ptr<int64_t>(),
              lc.const_data_ptr<int64_t>(), out.mutable_data_ptr<T>(), batch, heads, kv_heads, dim, width,
              block_size, s);
  } else {
    using T = c10::Half;
    attend<T>(qc.const_data_ptr<T>(), kc.const_data_ptr<T>(), vc.const_data_ptr<T>(), k_cache.mutable_data_ptr<T>(),
              v_cache.mutable_data_ptr<T>(), sc.const_data_ptr<int64_t>(), tc.const_data_ptr<int64_t>(),
              lc.const_data_ptr<int64_t>(), out.mutable_data_ptr<T>(), batch, heads, kv_heads, dim, width,
              block_size, s);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(plinth, m) {
  m.def(
      "decode_attention(Tensor q, Tensor k, Tensor v, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor slots, "
      "Tensor block_tables, Tensor context_lens, int block_size, float scale) -> Tensor");
}
TORCH_LIBRARY_IMPL(plinth, CPU, m) { m.impl("decode_attention", &decode_attention); }

#endif  // AVX-512: without it the operator is not registered and decode attention keeps torch's path
