"""The text layer around the engine: incremental detokenization with a real byte-level BPE tokenizer,
and LocalModel.stream over a scripted fake engine (stop strings, aborts, prompt-length errors)."""

import asyncio
import random

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from plinth.engine import PromptTooLongError, RequestOutput, SamplingParams
from plinth.llm import ChatModel, ChatOptions, GenerationError, IncrementalDetokenizer, LocalModel

CORPUS = [
    "Hello world, this is a small test of streaming text.",
    "日本語のテキストと中文文本 mixed with English words.",
    "Emoji too: 😀 🎉 👍🏽 and the family 👨‍👩‍👧 sequence.",
    "Stop strings like STOP or ### must never reach the client.",
]
TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    """A real byte-level BPE: multi-byte characters span several tokens, as in GPT-2/Llama 3/Qwen."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|end|>"]
    )
    tok.train_from_iterator(CORPUS * 3, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>")
    hf.chat_template = TEMPLATE
    return hf


def stream_text(tokenizer, ids, chunk_sizes=None, prompt_ids=()):
    detok = IncrementalDetokenizer(tokenizer, prompt_ids)
    deltas, i = [], 0
    sizes = iter(chunk_sizes or [])
    while i < len(ids):
        n = next(sizes, 1)
        deltas.append(detok.add(ids[i : i + n]))
        i += n
    deltas.append(detok.flush())
    return deltas


def full_decode(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


# -- IncrementalDetokenizer -----------------------------------------------------------------------


@pytest.mark.parametrize("text", CORPUS + ["🎉🎉🎉 中文", "a😀b", "👨‍👩‍👧"])
def test_streamed_text_equals_full_decode_and_never_splits_a_character(tokenizer, text):
    ids = tokenizer.encode(text)
    assert any(tokenizer.decode([i]).endswith("\ufffd") for i in ids) or text.isascii()  # fragments exist
    deltas = stream_text(tokenizer, ids)
    assert "".join(deltas) == text
    assert not any("\ufffd" in d for d in deltas)


def test_random_id_sequences_match_full_decode(tokenizer):
    rng = random.Random(0)
    vocab = len(tokenizer)
    for _ in range(60):
        ids = [rng.randrange(vocab) for _ in range(rng.randint(1, 25))]
        chunks = [rng.randint(1, 3) for _ in ids]
        assert "".join(stream_text(tokenizer, ids, chunks)) == full_decode(tokenizer, ids)


def test_prompt_is_context_only(tokenizer):
    prompt = tokenizer.encode("Hello world, 日本")
    generated = tokenizer.encode("語のテキスト 😀 done")
    deltas = stream_text(tokenizer, generated, prompt_ids=prompt)
    assert "".join(deltas) == full_decode(tokenizer, prompt + generated)[len("Hello world, 日本") :]


def test_special_tokens_are_skipped(tokenizer):
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    assert "".join(stream_text(tokenizer, tokenizer.encode("Hi 😀") + [end])) == "Hi 😀"


# -- LocalModel.stream over a fake engine ---------------------------------------------------------


class FakeEngine:
    """Plays back scripted steps as RequestOutputs; records params, aborts and closes."""

    def __init__(self, steps, finish_reason="length", delay=0.0):
        self.steps, self.finish_reason, self.delay = steps, finish_reason, delay
        self.params, self.prompts, self.aborted, self.steps_sent = [], [], [], 0
        self.closed = False

    async def generate(self, token_ids, params, request_id=None):
        self.params.append(params)
        self.prompts.append(list(token_ids))
        produced = 0
        try:
            for i, ids in enumerate(self.steps):
                await asyncio.sleep(self.delay)
                produced += len(ids)
                last = i == len(self.steps) - 1
                self.steps_sent += 1
                reason = self.finish_reason if last else None
                yield RequestOutput(request_id, list(ids), None, last, reason, len(token_ids), produced)
        finally:
            self.closed = True

    async def abort(self, request_id):
        self.aborted.append(request_id)


def make_model(tokenizer, engine, max_model_len=256):
    return LocalModel(engine, tokenizer, name="tiny", max_model_len=max_model_len)


async def collect(aiter):
    return [d async for d in aiter]


async def test_stream_yields_deltas_with_finish_reason_only_on_the_last(tokenizer):
    text = "Emoji too: 😀 🎉 and 日本語"
    engine = FakeEngine([[i] for i in tokenizer.encode(text)])
    deltas = await collect(make_model(tokenizer, engine).stream([1, 2, 3], SamplingParams(max_tokens=50)))
    assert "".join(d.text for d in deltas) == text
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].num_prompt_tokens == 3 and deltas[-1].num_output_tokens == len(deltas)
    assert engine.aborted == []  # finished normally: nothing to abort


async def test_stop_string_split_across_tokens_truncates_and_aborts(tokenizer):
    ids = tokenizer.encode("Hello world, this is STOP strings never reach")
    engine = FakeEngine([[i] for i in ids])
    model = make_model(tokenizer, engine)
    deltas = await collect(model.stream([1], SamplingParams(max_tokens=50), stop=["STOP"], request_id="r1"))
    assert "".join(d.text for d in deltas) == "Hello world, this is "
    assert deltas[-1].finish_reason == "stop"
    assert engine.aborted == ["r1"] and engine.closed
    assert engine.steps_sent < len(ids)  # stopped consuming the engine at the match


async def test_aclose_aborts_the_engine_request(tokenizer):
    engine = FakeEngine([[i] for i in tokenizer.encode("Hello world, this is a small test")])
    stream = make_model(tokenizer, engine).stream([1], SamplingParams(max_tokens=50), request_id="r2")
    await stream.__anext__()
    await stream.aclose()
    assert engine.aborted == ["r2"] and engine.closed


async def test_cancelling_the_consumer_aborts_the_engine_request(tokenizer):
    engine = FakeEngine([[i] for i in tokenizer.encode("Hello world")], delay=0.05)
    model = make_model(tokenizer, engine)
    started = asyncio.Event()

    async def consume():
        async for _ in model.stream([1], SamplingParams(max_tokens=50), request_id="r3"):
            started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.aborted == ["r3"]


def test_prompt_too_long_raises_before_anything_is_iterated(tokenizer):
    engine = FakeEngine([[5]])
    model = make_model(tokenizer, engine, max_model_len=10)
    with pytest.raises(PromptTooLongError) as info:
        model.stream(list(range(8)), SamplingParams(max_tokens=4))
    assert (info.value.prompt_len, info.value.max_model_len) == (8, 10)
    assert engine.prompts == []
    model.stream(list(range(8)), SamplingParams(max_tokens=2))  # exactly fits


# -- the ChatModel view ---------------------------------------------------------------------------


async def test_chat_uses_the_template_and_maps_options(tokenizer):
    engine = FakeEngine([[i] for i in tokenizer.encode("Hello world ### tail")], finish_reason="stop")
    model = make_model(tokenizer, engine, max_model_len=40)
    chat = model.as_chat_model()
    assert isinstance(chat, ChatModel) and chat.name == "tiny"
    options = ChatOptions(max_tokens=1000, temperature=0.0, stop=["###"], seed=7)
    result = await chat.chat([{"role": "user", "content": "hi"}], options)
    prompt = engine.prompts[0]
    assert full_decode(tokenizer, prompt) == "<|user|>hi\n<|assistant|>"
    params = engine.params[0]
    assert (params.temperature, params.seed, params.max_tokens) == (0.0, 7, 40 - len(prompt))
    assert (result.text, result.finish_reason) == ("Hello world ", "stop")
    assert result.usage.prompt_tokens == len(prompt) and result.usage.completion_tokens > 0


async def test_chat_stream_yields_only_text(tokenizer):
    engine = FakeEngine([[i] for i in tokenizer.encode("中文 😀")])
    chunks = [
        c
        async for c in make_model(tokenizer, engine)
        .as_chat_model()
        .stream([{"role": "user", "content": "x"}])
    ]
    assert "".join(chunks) == "中文 😀" and all(chunks)


def test_leading_spaces_survive_for_sentencepiece_style_tokenizers():
    """Metaspace decoders (Llama 2, Mistral) drop a leading space when a token is decoded alone;
    the prefix window keeps the previous tokens as context so spaces between words survive."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CORPUS * 3, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"]))
    sp = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    text = "Hello world, this is a small test"
    ids = sp.encode(text)
    assert sp.decode(ids[1:2]) == sp.decode(ids[1:2]).lstrip()  # alone, a token loses its space
    assert "".join(stream_text(sp, ids)) == full_decode(sp, ids) == text


@pytest.mark.slow
async def test_real_engine_end_to_end(tmp_path):
    """LocalModel.load wires the real engine and the checkpoint's tokenizer (a tiny random model)."""
    from plinth.engine import EngineConfig
    from plinth.engine.checkpoint import init_random

    path = init_random("llama", "tiny", tmp_path / "ckpt")
    model = LocalModel.load(EngineConfig(model=str(path), device="cpu", kv_cache_memory_gb=0.05))
    try:
        assert model.is_random
        ids = model.encode_chat([{"role": "user", "content": "Hello 😀"}])
        deltas = await collect(model.stream(ids, SamplingParams(max_tokens=8, temperature=0.0)))
        generated = [t for d in deltas for t in d.token_ids]
        assert "".join(d.text for d in deltas) == model.decode(generated)
        assert deltas[-1].finish_reason in ("stop", "length") and deltas[-1].num_prompt_tokens == len(ids)
        with pytest.raises(PromptTooLongError):
            model.stream([1] * model.max_model_len, SamplingParams(max_tokens=1))
    finally:
        model.shutdown()


async def test_engine_failure_raises_generation_error(tokenizer):
    engine = FakeEngine([[i] for i in tokenizer.encode("Hello world")], finish_reason="error")
    stream = make_model(tokenizer, engine).stream([1], SamplingParams(max_tokens=50), request_id="r9")
    with pytest.raises(GenerationError, match="r9"):
        await collect(stream)
    assert engine.closed
