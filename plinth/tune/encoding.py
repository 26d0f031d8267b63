"""Examples to token ids and labels: loss on what the model should say, through its own chat template.

Contract: :func:`encode_example` returns ``input_ids`` and ``labels`` (``-100`` where no loss is taken)
tokenized exactly as Plinth serves the model:

- chat examples are rendered with the tokenizer's own chat template. Templates without
  ``{% generation %}`` markers (SmolLM2's has none) give no assistant mask, so the mask comes from
  rendering prefixes: the tokens of ``messages[:i]`` with the generation prompt (what the server sends
  for turn ``i``) are context, those up to ``messages[:i + 1]`` are the assistant's answer. Each must
  be a token prefix of the whole conversation, otherwise the template renders history differently from
  the live prompt (or tokens merge across the boundary) and :class:`TemplateError` says so. The answer
  is trained through its end-of-turn token (``<|im_end|>``: the model learns to stop); what a template
  adds after that token (a newline) is never generated, so it is not trained.
- ``{"prompt", "completion"}`` examples are raw text as ``/v1/completions`` serves them: the prompt
  encoded alone (with the tokenizer's special tokens), then the completion and the EOS token, trained.

Example::

    >>> encode_example(tokenizer, ChatExample(1, (ChatTurn("user", "Hi"), ChatTurn("assistant", "Yo"))),
    ...                max_length=512).labels  # doctest: +SKIP
    [-100, ..., -100, 56, 2]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plinth.tune.data import ChatExample, CompletionExample, Example

__all__ = ["IGNORE_INDEX", "EncodedExample", "TemplateError", "encode_example"]

IGNORE_INDEX = -100  # the label transformers' loss skips


class TemplateError(ValueError):
    """The chat template cannot give a faithful assistant-only mask for an example."""


@dataclass(frozen=True, slots=True)
class EncodedExample:
    line: int
    input_ids: list[int]
    labels: list[int]

    @property
    def num_trained(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def encode_example(tokenizer: Any, example: Example, max_length: int) -> EncodedExample:
    """Token ids and labels for ``example``, cut to ``max_length`` tokens (see the module docstring)."""
    if isinstance(example, CompletionExample):
        ids, labels = _encode_completion(tokenizer, example)
    else:
        ids, labels = _encode_chat(tokenizer, example)
    assert len(ids) == len(labels)
    return EncodedExample(example.line, ids[:max_length], labels[:max_length])


def _encode_completion(tokenizer: Any, example: CompletionExample) -> tuple[list[int], list[int]]:
    prompt = tokenizer.encode(example.prompt, add_special_tokens=True)
    answer = tokenizer.encode(example.completion, add_special_tokens=False) + [_eos_id(tokenizer)]
    return prompt + answer, [IGNORE_INDEX] * len(prompt) + answer


def _encode_chat(tokenizer: Any, example: ChatExample) -> tuple[list[int], list[int]]:
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("the base model has no chat template; use prompt/completion examples")
    messages = [{"role": t.role, "content": t.content} for t in example.messages]
    ids = _render(tokenizer, messages, generation_prompt=False)
    labels = [IGNORE_INDEX] * len(ids)
    end_of_turn = _end_of_turn_ids(tokenizer)
    for i, turn in enumerate(example.messages):
        if turn.role != "assistant" or not turn.trained:
            continue
        start = len(_prefix_of(ids, _render(tokenizer, messages[:i], generation_prompt=True), i))
        stop = len(_prefix_of(ids, _render(tokenizer, messages[: i + 1], generation_prompt=False), i + 1))
        stop = _through_end_of_turn(ids, start, stop, end_of_turn)
        labels[start:stop] = ids[start:stop]
    return ids, labels


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return list(tokenizer.encode(text, add_special_tokens=False))  # the template already has BOS


def _prefix_of(ids: list[int], prefix: list[int], n_messages: int) -> list[int]:
    if ids[: len(prefix)] != prefix:
        raise TemplateError(
            f"the chat template renders the first {n_messages} message(s) differently on their own than "
            "inside the whole conversation, so an assistant-only loss would not match what is served"
        )
    return prefix


def _through_end_of_turn(ids: list[int], start: int, stop: int, end_of_turn: set[int]) -> int:
    """``stop`` moved back to just after the answer's last end-of-turn token, if it has one."""
    for position in range(stop - 1, start - 1, -1):
        if ids[position] in end_of_turn:
            return position + 1
    return stop


def _end_of_turn_ids(tokenizer: Any) -> set[int]:
    ids = {_eos_id(tokenizer)}
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end, int) and end != tokenizer.unk_token_id:
        ids.add(end)
    return ids


def _eos_id(tokenizer: Any) -> int:
    if tokenizer.eos_token_id is None:
        raise TemplateError("the base model's tokenizer has no end-of-sequence token")
    return int(tokenizer.eos_token_id)
