"""Continuous batching: which requests run in the next step, and how many tokens each.

Every step has a token budget (``max_num_batched_tokens``). Running requests go first, oldest first:
a decode costs one token, an unfinished prefill continues with the next chunk. Waiting requests are then
admitted in arrival order (within each share group; see Fair share) while budget, ``max_num_seqs`` and
cache blocks allow, so new requests join a running batch and prefills interleave with decodes. When the
cache is full, the newest running request is preempted (its blocks freed, recomputed later), never the
oldest: requests always make progress, nothing crashes, and arrival order is kept (no starvation).

Adapters: a request for a LoRA adapter is admitted only when its adapter holds (or can get) a compute
slot. Fairness is *FCFS with bounded bypass*: later requests whose adapters are resident may pass a
request waiting for a slot, but only ``max_bypass`` times; then admission stops until slots drain and
the oldest waiting request gets one. A cold adapter therefore waits at most for ``max_bypass``
admissions plus the running requests to finish, however hot the other adapters are.

Priority classes (``SamplingParams.priority``, lower first: interactive 0, batch 1): both queues are
kept in (priority, arrival) order, so a waiting interactive request is admitted before any waiting batch
request and running interactive requests take the token budget first. The preemption victim is the
newest request of the lowest class; and when a higher-class request waits while the running batch is
full (``max_num_seqs`` or cache blocks), lower-class requests are preempted to make room for it. While a
higher-class prompt is being prefilled, lower-class requests sit out (no step time spent on them), so an
interactive first token costs about what it costs on an idle engine. So a batch only ever uses what
interactive traffic leaves; within one class the order is FCFS as above, across share groups as below.

Fair share (``SamplingParams.share_group``; the server passes the tenant): within a class, waiting
requests are admitted round-robin across groups, each group's own requests in arrival order, a group
with fewer requests already running first (then the group admitted least recently). So a group with a
hundred queued requests delays another group's single request by at most one admission, not a hundred,
and a group holding most of the running batch gives the next free place to the others. Requests
without a group form one group.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from plinth.engine.block_manager import BlockManager
from plinth.engine.lora.manager import LoraManager
from plinth.engine.outputs import RequestOutput, TokenLogprob
from plinth.engine.sequence import Sequence, Status


@dataclass(slots=True)
class ScheduledSeq:
    seq: Sequence
    num_new: int
    samples: bool  # the chunk reaches the sequence's end, so its last logits pick the next token


class Scheduler:
    def __init__(
        self,
        block_manager: BlockManager,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        max_model_len: int,
        lora: LoraManager | None = None,
    ):
        self.block_manager, self.lora = block_manager, lora
        self.max_bypass = max_num_seqs
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_model_len = max_model_len
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.num_preemptions = 0
        self._admissions = 0
        self._last_admitted: dict[str | None, int] = {}  # share group -> admission count when last admitted

    def add(self, seq: Sequence) -> None:
        """Queue ``seq`` behind every waiting request of its class or a higher one."""
        index = len(self.waiting)
        while index > 0 and self.waiting[index - 1].params.priority > seq.params.priority:
            index -= 1
        self.waiting.insert(index, seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> list[ScheduledSeq]:
        budget = self.max_num_batched_tokens
        batch: list[ScheduledSeq] = []
        self._make_room_for_higher_class()
        preempted = False
        hold = self._prefilling_class()
        for seq in list(self.running):
            if budget == 0 or seq not in self.running:
                break
            if seq.params.priority > hold:
                continue  # a higher class is prefilling: this step is its alone
            num_new = min(seq.num_tokens - seq.num_computed, budget)
            while not self.block_manager.can_append(seq, num_new):
                preempted = True
                if self._preempt_newest() is seq:
                    break
            if seq.status is not Status.RUNNING:
                break
            self.block_manager.append(seq, num_new)
            batch.append(self._scheduled(seq, num_new))
            budget -= num_new
        if not preempted:
            self._admit(batch, budget, hold)
        return batch

    def _prefilling_class(self) -> int:
        """The highest class (lowest number) with a prompt to prefill, waiting or running; a large number
        when there is none. Lower classes sit out steps while it prefills, so a first token never waits
        behind a batch's decodes."""
        pending = [s.params.priority for s in self.waiting]
        pending += [s.params.priority for s in self.running if s.num_tokens - s.num_computed > 1]
        return min(pending, default=1 << 30)

    def _make_room_for_higher_class(self) -> None:
        """Preempt lower-class running requests while the first waiting request outranks them and cannot
        be admitted (no sequence slot or cache blocks), so it is admitted this step."""
        while self.waiting and self.running:
            head, victim = self.waiting[0], self.running[-1]
            if victim.params.priority <= head.params.priority:
                break
            blocks = self.block_manager.blocks_needed(head.num_tokens)
            if len(self.running) < self.max_num_seqs and blocks <= self.block_manager.num_free_blocks:
                break
            self._preempt_newest()

    def _admit(self, batch: list[ScheduledSeq], budget: int, hold: int) -> None:
        """Move waiting requests into the running batch in fair order (see the module docstring)."""
        blocked: Sequence | None = None  # oldest request waiting for an adapter slot
        order = self._fair_order()
        index = 0
        while index < len(order) and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = order[index]
            if seq.params.priority > hold:
                return  # the queue is in class order: the rest are lower classes
            if seq.lora_key is not None and self.lora is not None and not self.lora.can_acquire(seq.lora_key):
                blocked = blocked or seq
                if blocked.bypassed >= self.max_bypass:
                    return
                index += 1
                continue
            if not self.block_manager.allocate(seq):
                return
            if seq.lora_key is not None and self.lora is not None:
                seq.lora_slot = self.lora.acquire(seq.lora_key)
                assert seq.lora_slot is not None
            del order[index]
            self.waiting.remove(seq)
            self._admissions += 1
            self._last_admitted[seq.params.share_group] = self._admissions
            if blocked is not None:
                blocked.bypassed += 1
            seq.status = Status.RUNNING
            self._insert_running(seq)
            num_new = min(seq.num_tokens - seq.num_computed, budget)
            batch.append(self._scheduled(seq, num_new))
            budget -= num_new

    def _fair_order(self) -> list[Sequence]:
        """The waiting requests in admission order: by class, then by how many requests their group would
        run if admitted (its running ones plus its waiting ones ahead of it; so round-robin across
        groups, a group already running fewer going first), the least recently admitted group first on a
        tie, then arrival."""
        rounds: dict[tuple[int, str | None], int] = {}
        for seq in self.running:
            key = (seq.params.priority, seq.params.share_group)
            rounds[key] = rounds.get(key, -1) + 1
        keyed = []
        for position, seq in enumerate(self.waiting):
            group = seq.params.share_group
            turn = rounds[seq.params.priority, group] = rounds.get((seq.params.priority, group), -1) + 1
            keyed.append(((seq.params.priority, turn, self._last_admitted.get(group, 0), position), seq))
        return [seq for _, seq in sorted(keyed, key=lambda item: item[0])]

    def postprocess(
        self, batch: list[ScheduledSeq], token_ids: list[int], logprobs: list[TokenLogprob | None]
    ) -> list[RequestOutput]:
        """Advance each scheduled sequence, append sampled tokens and finish those that are done."""
        outputs = []
        sampled = iter(zip(token_ids, logprobs, strict=True))
        for item in batch:
            seq = item.seq
            seq.num_computed += item.num_new
            self.block_manager.register_full_blocks(seq)
            if not item.samples:
                continue
            token_id, logprob = next(sampled)
            accepted = seq.append_token(token_id)
            reason = self._finish_reason(seq, token_id) if accepted else "error"
            if reason:
                self._finish(seq, reason)
            outputs.append(_output(seq, [token_id], None if logprob is None else [logprob]))
        return outputs

    def abort(self, request_id: str) -> RequestOutput | None:
        for queue in (self.waiting, self.running):
            for seq in queue:
                if seq.request_id == request_id:
                    return self.finish_with(seq, "abort")
        return None

    def finish_with(self, seq: Sequence, reason: str) -> RequestOutput:
        """End a request early (``abort`` by the caller, ``error`` when its computation failed)."""
        self._finish(seq, reason)
        return _output(seq, [], None)

    def _scheduled(self, seq: Sequence, num_new: int) -> ScheduledSeq:
        return ScheduledSeq(seq, num_new, samples=seq.num_computed + num_new == seq.num_tokens)

    def _finish_reason(self, seq: Sequence, token_id: int) -> str | None:
        if seq.sampling.grammar_done:
            return "stop"
        if token_id in seq.sampling.stop_ids and seq.num_output_tokens >= seq.params.min_tokens:
            return "stop"
        if seq.num_output_tokens >= seq.params.max_tokens or seq.num_tokens >= self.max_model_len:
            return "length"
        return None

    def _finish(self, seq: Sequence, reason: str) -> None:
        if seq in self.running:
            self.running.remove(seq)
        else:
            self.waiting.remove(seq)
        self._free(seq)
        seq.status, seq.finish_reason = Status.FINISHED, reason

    def _free(self, seq: Sequence) -> None:
        self.block_manager.free_sequence(seq)
        if seq.lora_slot is not None and seq.lora_key is not None and self.lora is not None:
            self.lora.release(seq.lora_key)
            seq.lora_slot = None

    def _insert_running(self, seq: Sequence) -> None:
        """Append ``seq`` after the running requests of its class (ahead of lower classes)."""
        index = len(self.running)
        while index > 0 and self.running[index - 1].params.priority > seq.params.priority:
            index -= 1
        self.running.insert(index, seq)

    def _preempt_newest(self) -> Sequence:
        """Preempt the newest request of the lowest class; it waits first in its class."""
        victim = self.running.pop()
        self._free(victim)
        victim.status = Status.WAITING
        index = 0
        while index < len(self.waiting) and self.waiting[index].params.priority < victim.params.priority:
            index += 1
        self.waiting.insert(index, victim)
        self.num_preemptions += 1
        return victim


def _output(seq: Sequence, new_token_ids: list[int], logprobs: list[TokenLogprob] | None) -> RequestOutput:
    return RequestOutput(
        request_id=seq.request_id,
        new_token_ids=new_token_ids,
        new_logprobs=logprobs,
        finished=seq.is_finished,
        finish_reason=seq.finish_reason,
        num_prompt_tokens=seq.num_prompt_tokens,
        num_output_tokens=seq.num_output_tokens,
        num_cached_tokens=seq.num_cached_tokens,
    )
