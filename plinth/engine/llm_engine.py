"""The engine: token ids in, token ids out. It knows nothing of text, HTTP, tenants or RAG.

>>> engine = LLMEngine(EngineConfig(model="path/to/checkpoint"))   # doctest: +SKIP
>>> engine.generate([[1, 2, 3]], SamplingParams(max_tokens=4, temperature=0))   # doctest: +SKIP
[[17, 17, 5, 9]]

Not thread-safe: one thread calls it (``AsyncLLMEngine`` owns that thread in the server).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plinth.engine.block_manager import BlockManager
from plinth.engine.config import EngineConfig
from plinth.engine.lora.adapter import LoraAdapter
from plinth.engine.lora.manager import LoraManager, LoraStats, UnknownAdapterError
from plinth.engine.model import StepInterrupted
from plinth.engine.model_config import ModelConfig
from plinth.engine.model_runner import ModelRunner
from plinth.engine.outputs import RequestOutput
from plinth.engine.sampler import Sampler, SamplingState
from plinth.engine.sampling_params import SamplingParams
from plinth.engine.scheduler import ScheduledSeq, Scheduler
from plinth.engine.sequence import Sequence
from plinth.engine.weights import resolve_checkpoint

log = logging.getLogger(__name__)


class PromptTooLongError(ValueError):
    """The prompt plus the requested completion does not fit in the model's context."""

    def __init__(self, prompt_len: int, max_tokens: int, max_model_len: int) -> None:
        self.prompt_len, self.max_tokens, self.max_model_len = prompt_len, max_tokens, max_model_len
        super().__init__(
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} for the "
            "completion). Please reduce the prompt or max_tokens."
        )


@dataclass(slots=True)
class EngineStats:
    num_running: int
    num_waiting: int
    kv_blocks_used: int
    kv_blocks_total: int
    last_batch_size: int
    last_batch_tokens: int
    num_preemptions: int
    num_interrupted_steps: int = 0


class LLMEngine:
    def __init__(self, config: EngineConfig, name: str | None = None) -> None:
        if config.kv_cache_policy not in ("keep", "lean"):  # before the load, not after it
            raise ValueError(f"kv_cache_policy must be 'keep' or 'lean', not {config.kv_cache_policy!r}")
        self.config = config
        path = resolve_checkpoint(config.model, config.revision)
        self.model_config = ModelConfig.from_pretrained(path, name or config.model, config.max_model_len)
        self.runner = ModelRunner(self.model_config, config)
        cache_tokens = self.runner.num_blocks * config.block_size
        self.model_config.max_model_len = min(self.model_config.max_model_len, cache_tokens)
        ctx = self.runner.lora
        self.lora = None if ctx is None else LoraManager(ctx, self.model_config, config.max_cpu_loras)
        self.block_manager = BlockManager(
            self.runner.num_blocks,
            config.block_size,
            config.enable_prefix_caching,
            reuse_freed_first=config.kv_cache_policy == "lean",
        )
        self.scheduler = Scheduler(
            self.block_manager,
            config.max_num_seqs,
            config.max_num_batched_tokens,
            self.model_config.max_model_len,
            self.lora,
        )
        self.sampler = Sampler()
        self._last_batch = (0, 0)
        self._interrupted = 0

    def check_request(self, token_ids: list[int], params: SamplingParams, adapter: str | None = None) -> None:
        """Raise before queueing anything the engine could not serve."""
        if adapter is not None and (self.lora is None or not self.lora.is_registered(adapter)):
            raise UnknownAdapterError(adapter)
        if not token_ids:
            raise ValueError("the prompt is empty")
        vocab = self.model_config.vocab_size
        if min(token_ids) < 0 or max(token_ids) >= vocab:
            raise ValueError(f"prompt token ids must be in [0, {vocab})")
        if len(token_ids) + params.max_tokens > self.model_config.max_model_len:
            raise PromptTooLongError(len(token_ids), params.max_tokens, self.model_config.max_model_len)

    def add_request(
        self,
        token_ids: list[int],
        params: SamplingParams,
        request_id: str | None = None,
        adapter: str | None = None,
    ) -> str:
        self.check_request(token_ids, params, adapter)
        request_id = request_id or uuid.uuid4().hex
        sampling = SamplingState.create(params, list(token_ids), self.model_config.eos_token_ids)
        seq = Sequence(request_id, list(token_ids), params, sampling)
        if adapter is not None and self.lora is not None:
            seq.lora_key = self.lora.key_for(adapter)
        self.scheduler.add(seq)
        return request_id

    def add_lora(self, name: str, path: Path, preload: bool = True) -> LoraAdapter:
        """Register (or replace) an adapter; validates it, loads nothing into the compute path, and
        keeps it in host memory unless ``preload`` is False (then the first request reads it from disk).

        Safe to call from any thread while the engine steps.
        """
        if self.lora is None:
            raise ValueError("LoRA is not enabled for this engine (EngineConfig.enable_lora)")
        return self.lora.register(name, path, preload)

    def remove_lora(self, name: str) -> bool:
        """Unregister an adapter: its running requests finish, new ones fail with UnknownAdapterError."""
        return self.lora is not None and self.lora.unregister(name)

    def list_loras(self) -> list[str]:
        return [] if self.lora is None else self.lora.names()

    def lora_stats(self) -> LoraStats | None:
        return None if self.lora is None else self.lora.stats

    def abort(self, request_id: str) -> RequestOutput | None:
        return self.scheduler.abort(request_id)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self, arrived: Callable[[], int] | None = None) -> list[RequestOutput]:
        """Run one scheduled step. ``arrived()`` is the highest class (lowest priority number) among
        requests sent to the engine since the step began but not added yet: when it outranks every
        request in the step, the step is given up between two layers and returns nothing, so the next
        one (which the scheduler gives to the newcomer's prefill) starts a layer's time later, not a
        step's. Its requests are where they were: their tokens run again in a later step."""
        batch = self.scheduler.schedule()
        self._last_batch = (len(batch), sum(item.num_new for item in batch))
        if not batch:
            return []
        interrupt = None
        if arrived is not None:
            lowest = min(item.seq.params.priority for item in batch)
            interrupt = lambda: arrived() < lowest  # noqa: E731
        try:
            return self._run(batch, interrupt)
        except StepInterrupted:
            self._interrupted += 1
            return []
        except Exception:
            log.exception("engine step failed for %d requests; retrying them one by one", len(batch))
        return [out for item in batch for out in self._run_isolated(item)]

    def _run(
        self, batch: list[ScheduledSeq], interrupt: Callable[[], bool] | None = None
    ) -> list[RequestOutput]:
        logits = self.runner.run(batch, interrupt)
        token_ids, logprobs = self.sampler(logits, [item.seq.sampling for item in batch if item.samples])
        return self.scheduler.postprocess(batch, token_ids, logprobs)

    def _run_isolated(self, item: ScheduledSeq) -> list[RequestOutput]:
        """Re-run one request of a failed batch alone (K/V writes are idempotent): only it can fail."""
        try:
            return self._run([item])
        except Exception:
            log.exception("request %s failed", item.seq.request_id)
            return [self.scheduler.finish_with(item.seq, "error")]

    def stats(self) -> EngineStats:
        return EngineStats(
            num_running=len(self.scheduler.running),
            num_waiting=len(self.scheduler.waiting),
            kv_blocks_used=self.block_manager.num_used_blocks,
            kv_blocks_total=len(self.block_manager.blocks),
            last_batch_size=self._last_batch[0],
            last_batch_tokens=self._last_batch[1],
            num_preemptions=self.scheduler.num_preemptions,
            num_interrupted_steps=self._interrupted,
        )

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[list[int]]:
        """Run prompts to completion (offline use, tests); returns each one's generated ids."""
        ids = [self.add_request(p, params) for p in prompts]
        produced: dict[str, list[int]] = {i: [] for i in ids}
        while self.has_unfinished():
            for out in self.step():
                produced[out.request_id].extend(out.new_token_ids)
        return [produced[i] for i in ids]
