// plinth::decode_layer(x, norm1, qkv, o, norm2, gate_up, down, cos, sin_signed, k_cache, v_cache, slots,
// block_tables, context_lens, block_size, heads, kv_heads, eps, scale): one Llama decoder layer for a
// decode-only step of a bf16 model whose projections are packed for plinth::bf16_linear.
//
// Why: at one stream of SmolLM2-135M a decode step spent ~5 ms of its ~19 outside the matmuls, most of
// it in the interpreter between them: 30 layers of module calls, views and ~20 operators each, a few
// microseconds apiece from Python (benchmarks/decode_profile.py). Here the layer is the same operators
// in the same order as plinth/engine/model.py's DecoderLayer (Plinth's RMSNorm, matmul and decode
// attention through the dispatcher, ATen's mul/roll/add/silu for the rest), called from C++: the same
// bits, without the interpreter. plinth/engine/decode_layer.py says when a step can take it.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#if defined(__AVX512BF16__)  // where bf16_linear and decode_attention are registered

namespace {

using Tensor = at::Tensor;

Tensor norm(const Tensor& x, const Tensor& weight, double eps) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("plinth::rms_norm", "")
                             .typed<Tensor(const Tensor&, const Tensor&, double)>();
  return op.call(x, weight, eps);
}

Tensor packed_linear(const Tensor& x, const Tensor& packed) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("plinth::bf16_linear", "")
                             .typed<Tensor(const Tensor&, const Tensor&)>();
  return op.call(x, packed);
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

Tensor decode_layer(const Tensor& x, const Tensor& norm1, const Tensor& qkv_w, const Tensor& o_w,
                    const Tensor& norm2, const Tensor& gate_up_w, const Tensor& down_w, const Tensor& cos,
                    const Tensor& sin_signed, Tensor& k_cache, Tensor& v_cache, const Tensor& slots,
                    const Tensor& block_tables, const Tensor& context_lens, int64_t block_size, int64_t heads,
                    int64_t kv_heads, double eps, double scale) {
  TORCH_CHECK(x.dim() == 2 && k_cache.dim() == 3, "plinth::decode_layer: x [tokens, hidden], cache [slots, kv_heads, dim]");
  const int64_t tokens = x.size(0), dim = k_cache.size(2);
  // attention block (model.py Attention.forward, RotaryEmbedding.rotate)
  const Tensor qkv = packed_linear(norm(x, norm1, eps), qkv_w);
  const Tensor qk = qkv.narrow(1, 0, (heads + kv_heads) * dim).view({tokens, heads + kv_heads, dim});
  const Tensor rotated = at::add(at::mul(qk, cos), at::mul(at::roll(qk, {dim / 2}, {-1}), sin_signed));
  const Tensor v = qkv.narrow(1, (heads + kv_heads) * dim, kv_heads * dim).reshape({tokens, kv_heads, dim});
  const Tensor out = attend(rotated.narrow(1, 0, heads), rotated.narrow(1, heads, kv_heads), v, k_cache, v_cache,
                            slots, block_tables, context_lens, block_size, scale);
  const Tensor h = at::add(x, packed_linear(out.reshape({-1, heads * dim}), o_w));
  // MLP block (GatedMLP.forward, SiluAndMul.forward)
  const std::vector<Tensor> gate_up = packed_linear(norm(h, norm2, eps), gate_up_w).chunk(2, -1);
  return at::add(h, packed_linear(at::mul(at::silu(gate_up[0]), gate_up[1]), down_w));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(plinth, m) {
  m.def(
      "decode_layer(Tensor x, Tensor norm1, Tensor qkv, Tensor o, Tensor norm2, Tensor gate_up, Tensor down, "
      "Tensor cos, Tensor sin_signed, Tensor(a!) k_cache, Tensor(b!) v_cache, Tensor slots, Tensor block_tables, "
      "Tensor context_lens, int block_size, int heads, int kv_heads, float eps, float scale) -> Tensor");
}
TORCH_LIBRARY_IMPL(plinth, CPU, m) { m.impl("decode_layer", &decode_layer); }

#endif  // AVX512-BF16: without it the operator is not registered and every layer runs in Python
