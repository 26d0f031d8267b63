"""The model's answer with ``[n]`` markers -> plain output text + Bedrock-shaped citations.

Contract (mirrors Bedrock RetrieveAndGenerate):

- The markers are REMOVED from the output (Bedrock's ``output.text`` is plain text), together with the
  whitespace before them (``"Selick [1]."`` -> ``"Selick."``). ``[1, 2]`` and ``[1][2]`` both cite 1 and 2.
- Every sentence that carries at least one valid marker becomes one citation:
  ``{"generatedResponsePart": {"textResponsePart": {"text", "span": {"start", "end"}}},
  "retrievedReferences": [...]}``. ``span`` indexes the FINAL output text, ``end`` exclusive, so
  ``output[start:end] == text``.
- A reference is ``{"content": {"text", "type": "TEXT"}, "location", "metadata"}``; ``metadata`` is the
  chunk's metadata plus ``x-amz-bedrock-kb-chunk-id`` (Bedrock's key, so Bedrock clients find it) and
  ``x-plinth-kb-doc-id``.
- Source ids are 1-based ranks in the hits list; markers naming no source are removed and cite nothing.
- An answer with no valid marker at all (small models, such as the 135M default, rarely write them) is
  attributed by name: a sentence that names a retrieved source's ``title`` metadata cites that source.
  Otherwise it has no citations (``[]``): nothing is cited that the answer does not point at.

>>> out, cits = build_citations("Henry Selick directed it [1].", [hit])   # doctest: +SKIP
>>> out, cits[0]["generatedResponsePart"]["textResponsePart"]["span"]       # doctest: +SKIP
('Henry Selick directed it.', {'start': 0, 'end': 25})
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from plinth.knowledge.types import Hit

__all__ = ["build_citations", "reference", "strip_markers"]

_MARKER = re.compile(r"\s*\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# a sentence: up to ., ! or ? (and closing quotes/brackets) followed by whitespace or the end, or a line
_SENTENCE = re.compile(r"[^\n]*?(?:[.!?][\"')\]]*(?=\s|$)|(?=\n)|$)")


def strip_markers(answer: str) -> tuple[str, list[tuple[int, int]]]:
    """``answer`` without markers, and ``(position in the stripped text, source id)`` per cited id."""
    parts: list[str] = []
    marks: list[tuple[int, int]] = []
    length, last = 0, 0
    for match in _MARKER.finditer(answer):
        parts.append(answer[last : match.start()])
        length += match.start() - last
        marks += [(length, int(n)) for n in match.group(1).split(",")]
        last = match.end()
    parts.append(answer[last:])
    text = "".join(parts)
    lead = len(text) - len(text.lstrip())
    return text.strip(), [(max(0, pos - lead), n) for pos, n in marks]


def build_citations(answer: str, hits: Sequence[Hit]) -> tuple[str, list[dict[str, Any]]]:
    """The plain output text and its citations (see the module contract)."""
    text, marks = strip_markers(answer)
    cited: dict[tuple[int, int], list[int]] = {}
    sentences = _sentences(text)
    for pos, n in marks:
        if 1 <= n <= len(hits) and sentences:
            span = next((s for s in sentences if pos <= s[1]), sentences[-1])
            ids = cited.setdefault(span, [])
            if n not in ids:
                ids.append(n)
    if not cited:
        cited = _cited_by_title(text, sentences, hits)
    citations = [_citation(text, span, [hits[n - 1] for n in ids]) for span, ids in sorted(cited.items())]
    return text, citations


def _cited_by_title(
    text: str, sentences: list[tuple[int, int]], hits: Sequence[Hit]
) -> dict[tuple[int, int], list[int]]:
    """Sentences that name a source's title (whole words, any case) cite it: the fallback for markers."""
    titles = [(n, str(h.metadata.get("title") or "").strip()) for n, h in enumerate(hits, 1)]
    patterns = [
        (n, re.compile(rf"(?<!\w){re.escape(t)}(?!\w)", re.IGNORECASE)) for n, t in titles if len(t) > 2
    ]
    cited: dict[tuple[int, int], list[int]] = {}
    for span in sentences:
        sentence = text[span[0] : span[1]]
        ids = [n for n, pattern in patterns if pattern.search(sentence)]
        if ids:
            cited[span] = list(dict.fromkeys(ids))
    return cited


def reference(hit: Hit) -> dict[str, Any]:
    """One retrieved reference in Bedrock's shape."""
    metadata = {**hit.metadata, "x-amz-bedrock-kb-chunk-id": hit.chunk_id, "x-plinth-kb-doc-id": hit.doc_id}
    return {"content": {"text": hit.content, "type": "TEXT"}, "location": hit.location, "metadata": metadata}


def _sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each non-empty sentence, trimmed of surrounding whitespace, in order."""
    spans = []
    for match in _SENTENCE.finditer(text):
        chunk = match.group(0)
        if chunk.strip():
            start = match.start() + len(chunk) - len(chunk.lstrip())
            spans.append((start, match.start() + len(chunk.rstrip())))
    return spans


def _citation(text: str, span: tuple[int, int], hits: list[Hit]) -> dict[str, Any]:
    start, end = span
    part = {"textResponsePart": {"text": text[start:end], "span": {"start": start, "end": end}}}
    return {"generatedResponsePart": part, "retrievedReferences": [reference(h) for h in hits]}
