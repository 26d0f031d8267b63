"""A serving engine's decode step beside another thread's torch work: torch's threads against one.

``plinth serve`` steps its engine on a thread of its own, and its workers' threads embed (``/v1/embeddings``,
knowledge bases) and run the guard's encoder. With GNU OpenMP each of those threads gets a team of its own,
and once the teams hold more threads than there are CPUs, libgomp throttles every team's waiting
(plinth/engine/threads.py). This script builds an engine on a thread marked with ``engine_thread`` and
times one stream's decode steps (median ms) in three settings, alternated round by round:

- ``alone``: no other thread has run torch;
- ``beside torch's threads``: another thread, still alive, has embedded a sentence with
  sentence-transformers and torch's own thread count (what every such thread did before);
- ``beside share_cores``: another thread, still alive, has embedded it through Plinth's
  ``SentenceEmbedder``, whose ``share_cores`` puts that thread's torch ops on one thread.

It prints each setting's median step, its ratio to ``alone`` and the embedding's own time::

    .venv/bin/python benchmarks/shared_cores.py                 # SmolLM2 bf16 (needs `make bench`'s model)
    .venv/bin/python benchmarks/shared_cores.py --model tiny    # a random tiny llama (CI smoke run)
"""

from __future__ import annotations

import argparse
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

SETTINGS = ("alone", "beside torch's threads", "beside share_cores")


class EngineThread:
    """An engine built and stepped on one thread marked as an engine's, as ``AsyncLLMEngine`` does."""

    def __init__(self, model: str) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(model,), daemon=True)
        self._thread.start()
        self.call(lambda engine: None)  # built

    def call(self, job: Callable) -> object:
        done: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs.put((job, done))
        result = done.get()
        if isinstance(result, BaseException):
            raise result
        return result

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _run(self, model: str) -> None:
        from plinth.engine import EngineConfig, LLMEngine
        from plinth.engine.threads import engine_thread, hold_engine_threads

        with engine_thread():
            engine = LLMEngine(EngineConfig(model=model, dtype="bfloat16", device="cpu", max_model_len=256))
            while (item := self._jobs.get()) is not None:
                hold_engine_threads()
                job, done = item
                try:
                    done.put(job(engine))
                except BaseException as exc:  # handed to the caller
                    done.put(exc)


def decode_step_ms(engine, tokens: int, seed: int) -> float:  # noqa: ANN001 - an LLMEngine
    """The median decode step of one request (128 prompt tokens, ``tokens`` generated greedily)."""
    from plinth.engine import SamplingParams

    rng = random.Random(seed)
    vocab = min(engine.model_config.vocab_size, 49000)
    engine.add_request([rng.randrange(16, vocab) for _ in range(128)],
                       SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True))  # fmt: skip
    times = []
    while engine.has_unfinished():
        start = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[2:])  # the prefill and the first decode step left out


class Neighbour:
    """A thread that embeds one sentence, then stays alive (a server's worker thread is reused) until
    :meth:`leave`. ``plinth`` embeds through ``SentenceEmbedder``; otherwise straight through
    sentence-transformers with torch's own thread count."""

    def __init__(self, plinth: bool) -> None:
        self.seconds = 0.0
        self._ready, self._leave = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(plinth,), daemon=True)
        self._thread.start()
        self._ready.wait()

    def leave(self) -> None:
        self._leave.set()
        self._thread.join()

    def _run(self, plinth: bool) -> None:
        import torch

        text = ["A short sentence to embed, as a knowledge base or the guard would."]
        if plinth:
            from plinth.llm.embedder import SentenceEmbedder

            embed = SentenceEmbedder().embed
        else:
            from sentence_transformers import SentenceTransformer

            from plinth.engine.threads import DEFAULT_THREADS
            from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL, resolve_model

            # torch's count, as every thread had before share_cores: one share_cores call also lowers
            # the count that threads starting later begin with
            torch.set_num_threads(DEFAULT_THREADS)
            embed = SentenceTransformer(resolve_model(DEFAULT_EMBEDDING_MODEL), device="cpu").encode
        embed(text)  # loads the model
        start = time.perf_counter()
        embed(text)
        self.seconds = time.perf_counter() - start
        self._ready.set()
        self._leave.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model", default="smollm2-135m-instruct", help="packaged name, checkpoint dir, or 'tiny'"
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", type=int, default=48, help="tokens generated per timing")
    args = p.parse_args(argv)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "tiny":
            from plinth.engine.checkpoint import init_random

            model = str(init_random("llama", "tiny", Path(tmp) / "tiny", seed=0))
        else:
            from plinth.llm.catalog import resolve

            model = resolve(args.model, Path(".bench"))[0]
        engine = EngineThread(model)
        steps: dict[str, list[float]] = {s: [] for s in SETTINGS}
        embeds: dict[str, list[float]] = {s: [] for s in SETTINGS[1:]}
        engine.call(lambda e: decode_step_ms(e, args.tokens, 0))  # warm-up
        for rnd in range(args.rounds):
            for setting in SETTINGS:
                neighbour = None if setting == "alone" else Neighbour(plinth=setting == SETTINGS[2])
                step = engine.call(lambda e, seed=rnd: decode_step_ms(e, args.tokens, seed))
                steps[setting].append(float(step))
                if neighbour is not None:
                    embeds[setting].append(1000 * neighbour.seconds)
                    neighbour.leave()
        engine.stop()
    alone = statistics.median(steps["alone"])
    print(f"{Path(model).name}, bf16, torch threads {torch.get_num_threads()}, {args.rounds} rounds, "
          f"median decode step of one stream (ms)\n")  # fmt: skip
    print("| setting | step, ms (each round) | median | against alone | neighbour's 2nd embedding, ms |")
    print("|---|---|---:|---:|---:|")
    for setting in SETTINGS:
        median = statistics.median(steps[setting])
        each = " / ".join(f"{t:.2f}" for t in steps[setting])
        embed = f"{statistics.median(embeds[setting]):.0f}" if setting in embeds else "–"
        print(f"| {setting} | {each} | {median:.2f} | {median / alone:.2f}x | {embed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
