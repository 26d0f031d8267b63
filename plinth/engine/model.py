"""A compact Llama-family decoder (Llama 2/3, Mistral, Qwen2/2.5, Qwen3, and the mixture-of-experts
Mixtral and Qwen3-MoE) written for batched decoding.

Input is the flat list of new tokens of every request in a step plus their positions; attention reads
and writes the paged KV cache through :class:`~plinth.engine.attention.AttentionMetadata`. q/k/v and
gate/up projections are fused (fewer, larger matmuls); :meth:`CausalLM.load_weights` maps Hugging Face
tensor names onto the fused layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from plinth.engine.attention import AttentionMetadata, paged_attention
from plinth.engine.decode_layer import FusedLayer, fuse, step_allows
from plinth.engine.layers import RMSNorm, RotaryEmbedding, SiluAndMul
from plinth.engine.lora.layers import LoraContext, LoraLinear
from plinth.engine.model_config import ModelConfig


class StepInterrupted(Exception):  # noqa: N818 - an outcome the engine expects, not an error
    """``interrupt()`` said yes between two decoder layers: the step was given up before its end. Nothing
    it computed counts; K/V it wrote are rewritten with the same values when the step runs again."""


def projection(
    in_features: int, sub_sizes: list[int], bias: bool, lora: LoraContext | None, names: tuple[str, ...]
) -> nn.Linear:
    """A (possibly fused) projection; with LoRA enabled, one that also applies adapter slots."""
    if lora is None:
        return nn.Linear(in_features, sum(sub_sizes), bias=bias)
    return LoraLinear(in_features, sub_sizes, bias, lora, names)


class GatedMLP(nn.Module):
    """``down(silu(gate(x)) * up(x))`` with gate and up fused into one matmul."""

    def __init__(self, hidden: int, intermediate: int, lora: LoraContext | None) -> None:
        super().__init__()
        self.gate_up_proj = projection(
            hidden, [intermediate, intermediate], False, lora, ("gate_proj", "up_proj")
        )
        self.down_proj = projection(intermediate, [hidden], False, lora, ("down_proj",))
        self.act = SiluAndMul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_up_proj(x)))


class SparseMoe(nn.Module):
    """A router and ``num_experts`` gated MLPs; each token gets the weighted sum of its top-k experts.

    Tokens are grouped by expert once per call (a stable sort of the step's ``tokens x k`` choices), so
    each expert chosen in the step runs one pair of matmuls over exactly its tokens, in ascending expert
    order (the reference's order of summation), and the experts no token chose cost nothing. The
    experts are ordinary linears, so bf16 prepacking, int8/int4 quantization and batch-invariant row tiles
    apply to them as to the dense layers. LoRA adapters do not reach them (``lora/adapter.py`` refuses
    adapters that target them).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.top_k, self.normalize = cfg.num_experts_per_tok, cfg.norm_topk_prob
        self.float_weights = cfg.router_float32
        self.gate = nn.Linear(cfg.hidden_size, cfg.num_experts, bias=False)
        self.experts = nn.ModuleList(
            GatedMLP(cfg.hidden_size, cfg.moe_intermediate_size, None) for _ in range(cfg.num_experts)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.gate(x), dim=-1, dtype=torch.float32)
        weights, chosen = torch.topk(probs, self.top_k, dim=-1)  # [T, k] each
        if self.normalize:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        if not self.float_weights:
            weights = weights.to(x.dtype)
        flat = chosen.flatten()
        order = torch.argsort(flat, stable=True)
        counts = torch.bincount(flat, minlength=len(self.experts)).tolist()
        tokens, token_weights = order // self.top_k, weights.flatten()[order]
        out = torch.zeros_like(x)
        start = 0
        for expert, count in zip(self.experts, counts, strict=True):
            if count:
                rows = tokens[start : start + count]
                y = expert(x.index_select(0, rows)) * token_weights[start : start + count, None]
                out.index_add_(0, rows, y.to(x.dtype))
                start += count
        return out


def kept_rows(lora: LoraContext | None) -> AbstractContextManager[None]:
    """Adapter products on the kept rows' own batch (:meth:`LoraContext.on_kept_rows`), past the last
    layer's attention; nothing to switch in a model without adapter slots."""
    return lora.on_kept_rows() if lora is not None else nullcontext()


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, lora: LoraContext | None) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_size, self.kv_size = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
        sizes = [self.q_size, self.kv_size, self.kv_size]
        self.qkv_proj = projection(
            cfg.hidden_size, sizes, cfg.attention_bias, lora, ("q_proj", "k_proj", "v_proj")
        )
        self.o_proj = projection(self.q_size, [cfg.hidden_size], False, lora, ("o_proj",))
        self.lora = lora
        self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if cfg.qk_norm else None
        self.scale = cfg.head_dim**-0.5

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        kv: tuple[torch.Tensor, torch.Tensor],
        meta: AttentionMetadata,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The attention block's output for every row, or for the rows ``keep`` indexes (every row's K/V
        is written to the cache either way)."""
        qkv = self.qkv_proj(x)
        tokens = qkv.shape[0]
        if self.q_norm is not None and self.k_norm is not None:
            q, k, v = qkv.split([self.q_size, self.kv_size, self.kv_size], dim=-1)
            q = self.q_norm(q.view(tokens, self.num_heads, self.head_dim))
            k = self.k_norm(k.view(tokens, self.num_kv_heads, self.head_dim))
            qk = torch.cat((q, k), dim=1)
        else:
            qk = qkv[:, : self.q_size + self.kv_size].view(tokens, -1, self.head_dim)
            v = qkv[:, self.q_size + self.kv_size :]
        qk = RotaryEmbedding.rotate(qk, rope)  # q and k heads rotated in one call
        q, k = qk.split([self.num_heads, self.num_kv_heads], dim=1)
        v = v.reshape(tokens, self.num_kv_heads, self.head_dim)
        out = paged_attention(q, k, v, kv[0], kv[1], meta, self.scale).reshape(-1, self.q_size)
        if keep is None:
            return self.o_proj(out)
        with kept_rows(self.lora):
            return self.o_proj(out.index_select(0, keep))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, lora: LoraContext | None, sparse: bool = False) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg, lora)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lora = lora
        self.mlp: GatedMLP | SparseMoe = (
            SparseMoe(cfg) if sparse else GatedMLP(cfg.hidden_size, cfg.intermediate_size, lora)
        )

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        kv: tuple[torch.Tensor, torch.Tensor],
        meta: AttentionMetadata,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Every row's output, or with ``keep`` (the model's last layer in a prefill) only those rows':
        past the attention, whose K/V every later token reads, no other row is wanted."""
        attended = self.self_attn(self.input_layernorm(x), rope, kv, meta, keep)
        if keep is None:
            x = x + attended
            return x + self.mlp(self.post_attention_layernorm(x))
        x = x.index_select(0, keep) + attended
        with kept_rows(self.lora):  # the adapters' rows are the kept ones now
            return x + self.mlp(self.post_attention_layernorm(x))


class CausalLM(nn.Module):
    """The decoder stack plus LM head. ``forward`` returns hidden states; logits are computed only
    for the rows that sample (the last token of each request), which saves most of the LM-head cost."""

    def __init__(self, cfg: ModelConfig, lora: LoraContext | None = None) -> None:
        super().__init__()
        self.prune_last_layer = True  # see forward; benchmarks/short_prefill.py --against unpruned
        self.cfg, self.lora = cfg, lora
        self.rotary = RotaryEmbedding(
            cfg.head_dim, cfg.max_position_embeddings, cfg.rope_theta, cfg.rope_scaling
        )
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(
            DecoderLayer(cfg, lora, index in cfg.sparse_layers) for index in range(cfg.num_layers)
        )
        for index, layer in enumerate(self.layers):
            for module in layer.modules():
                if isinstance(module, LoraLinear):
                    module.layer_index = index
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.fused: list[FusedLayer | None] = []  # per layer, once fuse_decode_layers ran

    def fuse_decode_layers(self) -> None:
        """Take each layer's operands for ``plinth::decode_layer`` (:mod:`plinth.engine.decode_layer`);
        once the weights are in their final form (packed), as the operands are those very tensors."""
        self.fused = [fuse(layer) for layer in self.layers]

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        kv_caches: list[tuple[torch.Tensor, torch.Tensor]],
        meta: AttentionMetadata,
        interrupt: Callable[[], bool] | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states of every token, or of the rows ``keep`` indexes, in its order; ``interrupt`` is
        asked before each layer and raises :class:`StepInterrupted` when it says yes (a step of
        lower-class requests gives way to a newly arrived higher-class one within a layer's time
        instead of a whole step's).

        With ``keep`` (the rows that sample), the last layer goes on past its attention with those rows
        alone, their adapter tokens being ``LoraContext.kept``: a 16-prompt, 128-token prefill samples
        16 of its 2,048 rows, and taking the other 2,032 through the rest of the last layer (output
        projection, MLP) was ~3 % of the step (``benchmarks/short_prefill.py --against unpruned``). The kept
        rows' sums are the same either way (each kernel sums a row in an order of its own)."""
        x = self.embed_tokens(input_ids)
        rope = self.rotary.table(positions)  # looked up once per step, used by every layer
        lora = self.lora.batch if self.lora is not None else None
        fused = self.fused if self.fused and step_allows(meta, lora, x.dtype) else None
        kept = self.lora.kept if self.lora is not None else None
        last = len(self.layers) - 1
        for index, (layer, kv) in enumerate(zip(self.layers, kv_caches, strict=True)):
            if interrupt is not None and interrupt():
                raise StepInterrupted
            native = fused[index] if fused is not None else None
            only = keep if index == last and self.prune_last_layer else None
            if native is None:
                x = layer(x, rope, kv, meta, only)
            else:
                x = native(x, rope, kv, meta, lora, only, kept)
        if keep is not None and not self.prune_last_layer:
            x = x.index_select(0, keep)
        return self.norm(x)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]], adopt: bool = False) -> None:
        """Copy Hugging Face-named tensors in, fusing q/k/v and gate/up; every parameter must be set.

        ``adopt=True`` says each tensor is a fresh buffer nobody else holds (a GGUF's dequantized
        tensors): one that fills a whole parameter in its dtype becomes that parameter's storage
        instead of being copied, so the load never holds a tensor twice. The 57 MB embedding table of
        SmolLM2 and its copy were the start-up peak (``benchmarks/memory.py``)."""
        names = {name for name, _ in self.named_parameters()}  # names only: a layer quantized while
        missing = set(names)  # loading (ModelRunner._quantized_as_read) must be able to free its floats
        for hf_name, tensor in _per_expert(weights):
            name, rows = self._fused_target(hf_name.removeprefix("model."))
            if name is None:
                continue
            if name not in names:
                raise ValueError(f"unexpected tensor {hf_name!r} in checkpoint")
            param = self.get_parameter(name)
            target = param.data if rows is None else param.data[rows[0] : rows[1]]
            if target.shape != tensor.shape:
                raise ValueError(
                    f"{hf_name}: checkpoint shape {tuple(tensor.shape)} != model {tuple(target.shape)}"
                )
            if adopt and rows is None and _adoptable(tensor, target):
                param.data = tensor
            else:
                target.copy_(tensor)
            missing.discard(name)
        if self.cfg.tie_word_embeddings:
            missing.discard("lm_head.weight")
        if missing:
            raise ValueError(f"checkpoint is missing tensors: {sorted(missing)[:8]}")

    def _fused_target(self, name: str) -> tuple[str | None, tuple[int, int] | None]:
        """Map a checkpoint tensor name to (our parameter, row range inside it)."""
        if "rotary_emb" in name or (name == "lm_head.weight" and self.cfg.tie_word_embeddings):
            return None, None
        cfg = self.cfg
        name = name.replace(".block_sparse_moe.", ".mlp.")  # Mixtral's router and experts
        expert = _MIXTRAL_EXPERT.search(name)
        if expert is not None:  # w1 = gate, w3 = up, w2 = down
            name = f"{name[: expert.start(1)]}{_MIXTRAL_NAMES[expert[1]]}.weight"
        q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
        inter = cfg.moe_intermediate_size if ".experts." in name else cfg.intermediate_size
        shards = {
            "q_proj": ("qkv_proj", (0, q)),
            "k_proj": ("qkv_proj", (q, q + kv)),
            "v_proj": ("qkv_proj", (q + kv, q + 2 * kv)),
            "gate_proj": ("gate_up_proj", (0, inter)),
            "up_proj": ("gate_up_proj", (inter, 2 * inter)),
        }
        for shard, (fused, rows) in shards.items():
            if f".{shard}." in name:
                return name.replace(shard, fused), rows
        return name, None

    def init_dummy_weights(self, seed: int = 0) -> None:
        """Random weights in place (``--load-format dummy``): shapes and speed of a real model."""
        gen = torch.Generator(device=self.embed_tokens.weight.device).manual_seed(seed)
        for name, param in self.named_parameters():
            if name.endswith("norm.weight"):
                param.data.fill_(1.0)
            else:
                param.data.normal_(0.0, 0.02, generator=gen)


# ``layers.N.mlp.experts.E.w1.weight`` (Mixtral, after ``block_sparse_moe`` became ``mlp``).
_MIXTRAL_EXPERT = re.compile(r"\.experts\.\d+\.(w[123])\.weight$")
_MIXTRAL_NAMES = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}
# transformers 5 can also write an expert stack as one 3-D tensor per layer.
_STACKED_EXPERTS = re.compile(r"^(?P<prefix>.*\.experts)\.(?P<kind>gate_up_proj|down_proj)$")


def _adoptable(tensor: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether ``tensor`` can stand in for ``target``'s storage: same kind, and all of its own storage."""
    return (
        tensor.dtype == target.dtype
        and tensor.device == target.device
        and tensor.is_contiguous()
        and tensor.storage_offset() == 0
        and tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    )


def _per_expert(weights: Iterable[tuple[str, torch.Tensor]]) -> Iterable[tuple[str, torch.Tensor]]:
    """Checkpoint tensors with any stacked expert tensor (``experts.gate_up_proj``: ``[E, 2I, H]``,
    ``experts.down_proj``: ``[E, H, I]``) split into the per-expert names the hub's files use."""
    for name, tensor in weights:
        stacked = _STACKED_EXPERTS.match(name)
        if stacked is None:
            yield name, tensor
            continue
        for index, matrix in enumerate(tensor):
            yield f"{stacked['prefix']}.{index}.{stacked['kind']}.weight", matrix
