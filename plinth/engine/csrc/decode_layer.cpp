// plinth::decode_layer(x, norm1, qkv, o, norm2, gate_up, down, cos, sin_signed, k_cache, v_cache, slots,
// block_tables, context_lens, block_size, heads, kv_heads, eps, scale, ..., keep): one Llama decoder layer for
// a step attended row by row of a bf16 model whose projections are packed for plinth::bf16_linear (bits =
// 16) or quantized for plinth::qlinear (bits = 4 or 8: each projection's packed weight, scales and, for
// int4, zeros); with the step's adapter tokens (lora_rows, lora_slots), each projection then adds their
// LoRA deltas through plinth::lora_add_, as LoraLinear.forward does. With `keep`, only those rows go on
// past the attention, their adapter tokens being kept_rows/kept_slots, and the output holds them alone
// (DecoderLayer.forward's keep).
//
// Why: at one stream of SmolLM2-135M a decode step spent ~5 ms of its ~19 outside the matmuls, most of
// it in the interpreter between them: 30 layers of module calls, views and ~20 operators each, a few
// microseconds apiece from Python (benchmarks/decode_profile.py). Here the layer is the same operators
// in the same order as plinth/engine/model.py's DecoderLayer (Plinth's RMSNorm, matmuls and decode
// attention through the dispatcher, ATen's mul/roll/add/silu for the rest), called from C++: the same
// bits, without the interpreter. plinth/engine/decode_layer.py says when a step can take it.
//
// The element-wise steps between them (rotary, residual adds, SiLU-and-mul) are loops here rather than
// ATen's ~15 operators a layer, with ATen's arithmetic: bf16 operands widened to float32, each product
// and sum rounded to bf16 where ATen's operator would round it, SiLU as x / (1 + exp(-x)) with the
// exp ATen's vectorized kernel uses (Sleef) on ATen's chunks of a row (32 elements on AVX-512, 16 on
// AVX2) and std::exp on the rest, as its scalar tail does. tests/engine/test_decode_layer.py holds the result to the Python layer's bits.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <cmath>

#include "simd.h"
#ifdef PLINTH_SIMD  // where bf16_linear and decode_attention are registered

namespace {

namespace simd = plinth_simd;
using Tensor = at::Tensor;
using bf16 = c10::BFloat16;
using simd::F32x16;

// Element-wise steps over at most this many tokens run on the calling thread: a decode step's few rows
// cost less than waking the pool, while a prefill's thousands of rows are split between the threads.
constexpr int64_t kSerialTokens = 64;

// x * cos + roll(x, dim / 2) * sin_signed for each head of each token (RotaryEmbedding.rotate): q and k
// heads of qkv's first columns, into a new [tokens, heads, dim] tensor.
Tensor rotate(const Tensor& qkv, const Tensor& cos, const Tensor& sin_signed, int64_t heads, int64_t dim) {
  const int64_t tokens = qkv.size(0), half = dim / 2;
  Tensor out = at::empty({tokens, heads, dim}, qkv.options());
  const bf16* src = qkv.const_data_ptr<bf16>();
  const bf16* c = cos.const_data_ptr<bf16>();
  const bf16* s = sin_signed.const_data_ptr<bf16>();
  bf16* dst = out.mutable_data_ptr<bf16>();
  const int64_t row = qkv.stride(0), table = cos.stride(0);
  at::parallel_for(0, tokens, kSerialTokens, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        const bf16* x = src + t * row + h * dim;
        bf16* y = dst + (t * heads + h) * dim;
        const bf16* ct = c + t * table;
        const bf16* st = s + t * table;
        if (half % 16 == 0) {  // 16 lanes never straddle the roll's wrap
          for (int64_t i = 0; i < dim; i += 16) {
            const int64_t j = i < half ? i + half : i - half;  // roll: y[i] takes x[i - dim / 2] (mod dim)
            const F32x16 a = simd::round_bf16(simd::mul(simd::load_bf16(x + i), simd::load_bf16(ct + i)));
            const F32x16 b = simd::round_bf16(simd::mul(simd::load_bf16(x + j), simd::load_bf16(st + i)));
            simd::store_bf16(y + i, simd::add(a, b));
          }
          continue;
        }
        for (int64_t i = 0; i < dim; ++i) {  // e.g. 48- or 80-wide heads: element by element, same roundings
          const int64_t j = i < half ? i + half : i - half;
          const bf16 a = static_cast<bf16>(static_cast<float>(x[i]) * static_cast<float>(ct[i]));
          const bf16 b = static_cast<bf16>(static_cast<float>(x[j]) * static_cast<float>(st[i]));
          y[i] = static_cast<bf16>(static_cast<float>(a) + static_cast<float>(b));
        }
      }
  });
  return out;
}

// y = x + y, in place (the residual adds; y is a fresh matmul output, contiguous like x).
void add_into(const Tensor& x, Tensor& y) {
  const bf16* a = x.const_data_ptr<bf16>();
  bf16* b = y.mutable_data_ptr<bf16>();
  const int64_t n = y.numel(), width = y.size(-1);
  at::parallel_for(0, n, kSerialTokens * width, [&](int64_t first, int64_t last) {
    int64_t i = first;
    for (; i + 16 <= last; i += 16) simd::store_bf16(b + i, simd::add(simd::load_bf16(a + i), simd::load_bf16(b + i)));
    for (; i < last; ++i) b[i] = static_cast<bf16>(static_cast<float>(a[i]) + static_cast<float>(b[i]));
  });
}

// silu(gate) * up of a fused [tokens, 2 * width] gate/up output (SiluAndMul.forward), rows in parallel
// as ATen splits them.
Tensor silu_and_mul(const Tensor& gate_up) {
  const int64_t tokens = gate_up.size(0), width = gate_up.size(1) / 2;
  Tensor out = at::empty({tokens, width}, gate_up.options());
  const bf16* src = gate_up.const_data_ptr<bf16>();
  bf16* dst = out.mutable_data_ptr<bf16>();
  const F32x16 one = simd::set1(1.f);
  at::parallel_for(0, tokens, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const bf16* gate = src + t * 2 * width;
      const bf16* up = gate + width;
      bf16* y = dst + t * width;
      int64_t i = 0;
      for (; i + simd::kAtenChunk <= width; i += simd::kAtenChunk)  // ATen's chunks of bf16, 16 floats at a time
        for (int64_t k = i; k < i + simd::kAtenChunk; k += 16) {
          const F32x16 g = simd::load_bf16(gate + k);
          const F32x16 act = simd::round_bf16(simd::div(g, simd::add(one, simd::exp(simd::neg(g)))));
          simd::store_bf16(y + k, simd::mul(act, simd::load_bf16(up + k)));
        }
      for (; i < width; ++i) {  // ATen's scalar tail
        const float g = static_cast<float>(gate[i]);
        const bf16 act = static_cast<bf16>(g / (1.0f + std::exp(-g)));
        y[i] = static_cast<bf16>(static_cast<float>(act) * static_cast<float>(up[i]));
      }
    }
  });
  return out;
}

Tensor norm(const Tensor& x, const Tensor& weight, double eps) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("plinth::rms_norm", "")
                             .typed<Tensor(const Tensor&, const Tensor&, double)>();
  return op.call(x, weight, eps);
}

Tensor packed_linear(const Tensor& x, const Tensor& packed) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("plinth::bf16_linear", "")
                             .typed<Tensor(const Tensor&, const Tensor&, int64_t)>();
  return op.call(x, packed, plinth_simd::kGemmRows);
}

Tensor project(const Tensor& x, at::TensorList weight, int64_t bits) {
  if (bits == 16) return packed_linear(x, weight[0]);
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("plinth::qlinear", "")
          .typed<Tensor(const Tensor&, const Tensor&, const Tensor&, const std::optional<Tensor>&, int64_t, int64_t)>();
  const std::optional<Tensor> zeros = weight.size() > 2 ? std::optional<Tensor>(weight[2]) : std::nullopt;
  return op.call(x, weight[0], weight[1], zeros, bits, -1);  // the threshold for the weight's bits
}

// The LoRA deltas of projection `which` (0 qkv, 1 o, 2 gate/up, 3 down) into its output y, in the
// order LoraLinear.forward adds them: `where` holds (projection, first column, width) per sub-projection
// that an adapter targets, `weights` its A and Bt.
void adapt(int64_t which, const Tensor& input, Tensor& y, const std::optional<Tensor>& rows,
           const std::optional<Tensor>& slots, at::TensorList weights, at::IntArrayRef where) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("plinth::lora_add_", "")
                             .typed<void(Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                         const Tensor&)>();
  for (size_t e = 0; e + 2 < where.size(); e += 3) {
    if (where[e] != which) continue;
    Tensor out = y.narrow(1, where[e + 1], where[e + 2]);
    op.call(out, input, *rows, *slots, weights[2 * (e / 3)], weights[2 * (e / 3) + 1]);
  }
}

Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& k_cache, Tensor& v_cache,
              const Tensor& slots, const Tensor& block_tables, const Tensor& context_lens, int64_t block_size,
              double scale) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("plinth::decode_attention", "")
          .typed<Tensor(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&, const Tensor&,
                        const Tensor&, const Tensor&, int64_t, double)>();
  return op.call(q, k, v, k_cache, v_cache, slots, block_tables, context_lens, block_size, scale);
}

Tensor decode_layer(const Tensor& x, const Tensor& norm1, at::TensorList qkv_w, at::TensorList o_w,
                    const Tensor& norm2, at::TensorList gate_up_w, at::TensorList down_w, int64_t bits, const Tensor& cos,
                    const Tensor& sin_signed, Tensor& k_cache, Tensor& v_cache, const Tensor& slots,
                    const Tensor& block_tables, const Tensor& context_lens, int64_t block_size, int64_t heads,
                    int64_t kv_heads, double eps, double scale, const std::optional<Tensor>& lora_rows,
                    const std::optional<Tensor>& lora_slots, at::TensorList lora_weights,
                    at::IntArrayRef lora_where, const std::optional<Tensor>& keep,
                    const std::optional<Tensor>& kept_rows, const std::optional<Tensor>& kept_slots) {
  TORCH_CHECK(x.dim() == 2 && k_cache.dim() == 3, "plinth::decode_layer: x [tokens, hidden], cache [slots, kv_heads, dim]");
  const int64_t tokens = x.size(0), dim = k_cache.size(2);
  const size_t parts = bits == 16 ? 1 : 2;
  TORCH_CHECK((bits == 16 || bits == 8 || bits == 4) && qkv_w.size() >= parts && o_w.size() >= parts &&
                  gate_up_w.size() >= parts && down_w.size() >= parts,
              "plinth::decode_layer: bits 16 ([packed]), 8 or 4 ([packed, scales] or [packed, scales, zeros])");
  TORCH_CHECK(lora_where.size() % 3 == 0 && lora_weights.size() * 3 == lora_where.size() * 2 &&
                  (lora_where.empty() || (lora_rows.has_value() && lora_slots.has_value())),
              "plinth::decode_layer: per adapted sub-projection (projection, column, width) and A, Bt; rows and slots");
  // past the attention with `keep`, the adapter tokens are the kept rows' (kept_rows, kept_slots: none when
  // no kept row has an adapter)
  auto project_adapted = [&](int64_t which, const Tensor& input, at::TensorList weight) {
    Tensor y = project(input, weight, bits);
    const bool kept = keep.has_value() && which > 0;
    if (lora_where.empty() || (kept && !kept_rows.has_value())) return y;
    adapt(which, input, y, kept ? kept_rows : lora_rows, kept ? kept_slots : lora_slots, lora_weights, lora_where);
    return y;
  };
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && x.is_contiguous() && dim % 16 == 0 && cos.size(-1) == dim &&
                  cos.scalar_type() == at::kBFloat16 && sin_signed.scalar_type() == at::kBFloat16 &&
                  cos.stride(-1) == 1 && sin_signed.strides() == cos.strides() && cos.size(0) == tokens,
              "plinth::decode_layer: bf16 x, head size a multiple of 16, a cos/sin row per token");
  // attention block (model.py Attention.forward, RotaryEmbedding.rotate)
  const Tensor qkv = project_adapted(0, norm(x, norm1, eps), qkv_w);
  const Tensor rotated = rotate(qkv, cos, sin_signed, heads + kv_heads, dim);
  const Tensor v = qkv.narrow(1, (heads + kv_heads) * dim, kv_heads * dim).reshape({tokens, kv_heads, dim});
  const Tensor out = attend(rotated.narrow(1, 0, heads), rotated.narrow(1, heads, kv_heads), v, k_cache, v_cache,
                            slots, block_tables, context_lens, block_size, scale);
  // Past the attention, only the rows `keep` indexes, if given (the model's last layer in a prefill: every
  // row's K/V is in the cache now, and only the sampled rows' states are read)
  const Tensor attended = out.reshape({-1, heads * dim});
  const Tensor residual = keep.has_value() ? x.index_select(0, *keep) : x;
  Tensor h = project_adapted(1, keep.has_value() ? attended.index_select(0, *keep) : attended, o_w);
  add_into(residual, h);
  // MLP block (GatedMLP.forward, SiluAndMul.forward)
  Tensor y = project_adapted(3, silu_and_mul(project_adapted(2, norm(h, norm2, eps), gate_up_w)), down_w);
  add_into(h, y);
  return y;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(plinth, m) {
  m.def(
      "decode_layer(Tensor x, Tensor norm1, Tensor[] qkv, Tensor[] o, Tensor norm2, Tensor[] gate_up, Tensor[] down, "
      "int bits, Tensor cos, Tensor sin_signed, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor slots, Tensor block_tables, "
      "Tensor context_lens, int block_size, int heads, int kv_heads, float eps, float scale, Tensor? lora_rows, "
      "Tensor? lora_slots, Tensor[] lora_weights, int[] lora_where, Tensor? keep=None, Tensor? kept_rows=None, "
      "Tensor? kept_slots=None) -> Tensor");
}
TORCH_LIBRARY_IMPL(plinth, CPU, m) { m.impl("decode_layer", &decode_layer); }

#endif  // PLINTH_SIMD: without AVX512-BF16 or AVX2 the operator is not registered and every layer runs in
        // Python
