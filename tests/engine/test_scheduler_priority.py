"""Priority classes in the scheduler, stepped by hand (no model): interactive requests are admitted before
waiting batch requests, take the budget first, and push batch requests out of a full running batch."""

from __future__ import annotations

from plinth.engine import BATCH_PRIORITY, INTERACTIVE_PRIORITY, SamplingParams
from plinth.engine.block_manager import BlockManager
from plinth.engine.sampler import SamplingState
from plinth.engine.scheduler import Scheduler
from plinth.engine.sequence import Sequence, Status


def _seq(name: str, priority: int, prompt_len: int = 4) -> Sequence:
    params = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True, priority=priority)
    ids = list(range(1, prompt_len + 1))
    return Sequence(name, ids, params, SamplingState.create(params, ids, ()))


def _scheduler(max_num_seqs: int = 4, num_blocks: int = 64) -> Scheduler:
    blocks = BlockManager(num_blocks, block_size=4, enable_prefix_caching=False)
    return Scheduler(blocks, max_num_seqs=max_num_seqs, max_num_batched_tokens=256, max_model_len=64)


def _step(scheduler: Scheduler) -> list[str]:
    """One step: schedule, then pretend every sampling sequence produced token 5; the scheduled ids."""
    batch = scheduler.schedule()
    sampled = [5 for item in batch if item.samples]
    scheduler.postprocess(batch, sampled, [None] * len(sampled))
    return [item.seq.request_id for item in batch]


def test_waiting_interactive_requests_are_admitted_before_waiting_batch_requests():
    scheduler = _scheduler(max_num_seqs=2)
    for name in ("b1", "b2", "b3"):
        scheduler.add(_seq(name, BATCH_PRIORITY))
    scheduler.add(_seq("i1", INTERACTIVE_PRIORITY))
    scheduler.add(_seq("i2", INTERACTIVE_PRIORITY))
    assert [s.request_id for s in scheduler.waiting] == ["i1", "i2", "b1", "b2", "b3"]
    assert _step(scheduler) == ["i1", "i2"]


def test_an_interactive_request_preempts_batch_requests_when_the_batch_is_full():
    scheduler = _scheduler(max_num_seqs=2)
    scheduler.add(_seq("b1", BATCH_PRIORITY))
    scheduler.add(_seq("b2", BATCH_PRIORITY))
    assert _step(scheduler) == ["b1", "b2"]
    scheduler.add(_seq("i1", INTERACTIVE_PRIORITY))
    assert _step(scheduler) == ["i1"]  # b2, the newest batch request, made room; b1 sits out the prefill
    assert [s.request_id for s in scheduler.running] == ["i1", "b1"]  # interactive first in the budget
    assert [s.request_id for s in scheduler.waiting] == ["b2"]
    assert scheduler.num_preemptions == 1


def test_an_interactive_request_preempts_batch_requests_when_the_cache_is_full():
    scheduler = _scheduler(max_num_seqs=8, num_blocks=4)  # 4 blocks of 4 tokens
    scheduler.add(_seq("b1", BATCH_PRIORITY, prompt_len=7))
    scheduler.add(_seq("b2", BATCH_PRIORITY, prompt_len=7))
    assert _step(scheduler) == ["b1", "b2"]
    scheduler.add(_seq("i1", INTERACTIVE_PRIORITY, prompt_len=7))
    assert "i1" in _step(scheduler)
    assert scheduler.waiting[0].request_id == "b2" and scheduler.waiting[0].status is Status.WAITING


def test_batch_requests_never_preempt_interactive_ones():
    scheduler = _scheduler(max_num_seqs=2)
    scheduler.add(_seq("i1", INTERACTIVE_PRIORITY))
    scheduler.add(_seq("i2", INTERACTIVE_PRIORITY))
    _step(scheduler)
    scheduler.add(_seq("b1", BATCH_PRIORITY))
    assert _step(scheduler) == ["i1", "i2"]
    assert scheduler.num_preemptions == 0


def test_under_cache_pressure_the_batch_request_is_the_victim():
    scheduler = _scheduler(max_num_seqs=8, num_blocks=5)
    scheduler.add(_seq("i1", INTERACTIVE_PRIORITY, prompt_len=8))
    scheduler.add(_seq("b1", BATCH_PRIORITY, prompt_len=8))
    _step(scheduler)
    for _ in range(6):  # decoding grows both; the cache runs out
        _step(scheduler)
        if scheduler.num_preemptions:
            break
    assert scheduler.num_preemptions == 1
    assert [s.request_id for s in scheduler.running] == ["i1"]
    assert [s.request_id for s in scheduler.waiting] == ["b1"]


def test_batch_requests_sit_out_the_steps_that_prefill_an_interactive_request():
    scheduler = _scheduler(max_num_seqs=8)
    scheduler.add(_seq("b1", BATCH_PRIORITY))
    scheduler.add(_seq("b2", BATCH_PRIORITY))
    _step(scheduler)
    scheduler.add(_seq("i1", INTERACTIVE_PRIORITY))
    scheduler.add(_seq("b3", BATCH_PRIORITY))
    assert _step(scheduler) == ["i1"]  # its prefill alone: no batch decode slows the first token
    assert _step(scheduler) == ["i1", "b1", "b2", "b3"]  # then decodes share steps again
    assert scheduler.num_preemptions == 0


def _grouped(
    name: str, group: str | None, priority: int = INTERACTIVE_PRIORITY, max_tokens: int = 2
) -> Sequence:
    params = SamplingParams(
        max_tokens=max_tokens, temperature=0.0, ignore_eos=True, priority=priority, share_group=group
    )
    return Sequence(name, [1, 2, 3, 4], params, SamplingState.create(params, [1, 2, 3, 4], ()))


def _admission_order(scheduler: Scheduler) -> list[str]:
    """Step until every request finished; the request ids in the order they were first scheduled."""
    admitted: list[str] = []
    while scheduler.has_unfinished():
        admitted += [name for name in _step(scheduler) if name not in admitted]
    return admitted


def test_a_flooding_group_does_not_delay_another_groups_single_request():
    scheduler = _scheduler(max_num_seqs=2)
    for index in range(6):
        scheduler.add(_grouped(f"a{index}", "tenant-a"))
    scheduler.add(_grouped("b0", "tenant-b"))
    assert _step(scheduler) == ["a0", "b0"]  # b0 arrived seventh, admitted second


def test_waiting_requests_are_admitted_round_robin_across_groups():
    scheduler = _scheduler(max_num_seqs=1)
    for name, group in [("a0", "a"), ("a1", "a"), ("a2", "a"), ("b0", "b"), ("b1", "b"), ("c0", "c")]:
        scheduler.add(_grouped(name, group))
    assert _admission_order(scheduler) == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_a_group_running_fewer_requests_is_admitted_first_though_admitted_more_recently():
    scheduler = _scheduler(max_num_seqs=3)
    scheduler.add(_grouped("a0", "a", max_tokens=50))
    scheduler.add(_grouped("a1", "a", max_tokens=50))
    _step(scheduler)
    scheduler.add(_grouped("b0", "b", max_tokens=50))
    _step(scheduler)
    scheduler.abort("b0")  # b was admitted last, and now runs nothing; a runs two
    scheduler.add(_grouped("a2", "a", max_tokens=50))
    scheduler.add(_grouped("b1", "b", max_tokens=50))
    assert "b1" in _step(scheduler) and [s.request_id for s in scheduler.waiting] == ["a2"]


def test_the_group_admitted_least_recently_goes_first():
    scheduler = _scheduler(max_num_seqs=1)
    scheduler.add(_grouped("a0", "a"))
    assert _step(scheduler) == ["a0"]
    scheduler.add(_grouped("a1", "a"))
    scheduler.add(_grouped("b0", "b"))  # arrived after a1, but a was just served
    assert _admission_order(scheduler) == ["a0", "b0", "a1"]


def test_requests_without_a_group_are_one_group():
    scheduler = _scheduler(max_num_seqs=1)
    for name in ("n0", "n1", "n2"):
        scheduler.add(_grouped(name, None))
    scheduler.add(_grouped("b0", "b"))
    assert _admission_order(scheduler) == ["n0", "b0", "n1", "n2"]


def test_fair_share_stays_inside_a_class_interactive_first():
    scheduler = _scheduler(max_num_seqs=1)
    for name in ("a0", "a1", "a2"):
        scheduler.add(_grouped(name, "a", BATCH_PRIORITY))
    scheduler.add(_grouped("b0", "b", BATCH_PRIORITY))
    scheduler.add(_grouped("a3", "a"))  # interactive: ahead of every batch request, whatever its group
    assert _admission_order(scheduler) == ["a3", "b0", "a0", "a1", "a2"]
