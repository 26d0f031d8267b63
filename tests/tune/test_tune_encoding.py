"""Assistant-only labels through the model's own chat template, checked by hand on the tiny template.

The tiny checkpoints' template renders ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message and
``<|im_start|>assistant\\n`` as the generation prompt, so the expected spans below are written out.
"""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from plinth.tune import (
    IGNORE_INDEX,
    ChatExample,
    ChatTurn,
    CompletionExample,
    TemplateError,
    encode_example,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return AutoTokenizer.from_pretrained(tiny_llama)


def trained_spans(tokenizer, encoded) -> list[str]:
    """The text of each run of consecutive trained tokens."""
    spans, current = [], []
    for token, label in zip(encoded.input_ids, encoded.labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current))
            current = []
    return spans + ([tokenizer.decode(current)] if current else [])


def test_only_assistant_answers_and_their_end_of_turn_are_trained(tokenizer) -> None:
    example = ChatExample(
        1,
        (
            ChatTurn("system", "Be brief."),
            ChatTurn("user", "Hi there"),
            ChatTurn("assistant", "Hello friend"),
            ChatTurn("user", "Bye"),
            ChatTurn("assistant", "See you"),
        ),
    )
    encoded = encode_example(tokenizer, example, max_length=512)
    assert tokenizer.decode(encoded.input_ids) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
        "<|im_start|>assistant\nHello friend<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\nSee you<|im_end|>\n"
    )
    assert trained_spans(tokenizer, encoded) == ["Hello friend<|im_end|>", "See you<|im_end|>"]
    assert encoded.labels[-1] == IGNORE_INDEX  # the newline after the last <|im_end|> is never generated


def test_an_assistant_message_with_weight_zero_is_context_only(tokenizer) -> None:
    example = ChatExample(
        1,
        (
            ChatTurn("user", "a"),
            ChatTurn("assistant", "wrong answer", trained=False),
            ChatTurn("user", "b"),
            ChatTurn("assistant", "right answer"),
        ),
    )
    assert trained_spans(tokenizer, encode_example(tokenizer, example, 512)) == ["right answer<|im_end|>"]


def test_prompt_completion_trains_the_completion_and_eos(tokenizer) -> None:
    encoded = encode_example(tokenizer, CompletionExample(1, "The sky is", " blue"), max_length=512)
    assert tokenizer.decode(encoded.input_ids) == "The sky is blue<|im_end|>"
    assert trained_spans(tokenizer, encoded) == [" blue<|im_end|>"]
    assert encoded.labels[: len(tokenizer.encode("The sky is"))] == [IGNORE_INDEX] * len(
        tokenizer.encode("The sky is")
    )


def test_max_length_cuts_ids_and_labels_together(tokenizer) -> None:
    example = ChatExample(1, (ChatTurn("user", "word " * 50), ChatTurn("assistant", "ok")))
    encoded = encode_example(tokenizer, example, max_length=10)
    assert len(encoded.input_ids) == len(encoded.labels) == 10
    assert encoded.num_trained == 0


def test_a_template_that_renders_history_differently_is_refused(tokenizer) -> None:
    # Renders only the message count and the last message, so a prefix of the conversation is not a
    # prefix of its rendering: an assistant-only mask cannot match what is served.
    tokenizer = _copy(tokenizer)
    tokenizer.chat_template = (
        "{{ messages|length }}{{ '<|im_start|>' + messages[-1]['role'] + '\\n' + messages[-1]['content'] }}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )
    example = ChatExample(4, (ChatTurn("user", "a"), ChatTurn("assistant", "b")))
    with pytest.raises(TemplateError, match="renders the first 1 message"):
        encode_example(tokenizer, example, max_length=512)


def test_a_tokenizer_without_a_template_cannot_train_chat(tokenizer) -> None:
    tokenizer = _copy(tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(TemplateError, match="no chat template"):
        encode_example(tokenizer, ChatExample(1, (ChatTurn("user", "a"), ChatTurn("assistant", "b"))), 512)


def _copy(tokenizer):
    import copy

    return copy.deepcopy(tokenizer)
