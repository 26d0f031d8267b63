"""File bytes -> plain text, one function per file type (txt, md, html, pdf, docx).

Contract: :func:`parse_file` returns a :class:`Parsed` (text, optional title, optional page offsets) or
raises :class:`UnsupportedType` (no parser for the suffix) or :class:`ParseError` (the file could not be
read as its type). Callers (``sources.py``) turn both into a skip reason; nothing here is fatal to a sync.

PDF pages: a PDF becomes *one* text (pages joined by a blank line) plus ``page_offsets``, the character
offset where each page starts. The chunker maps each chunk's start offset back to a 1-based page number
(``location["page"]``), so chunks cite pages while the document keeps one ``doc_id`` and one hash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

PAGE_SEPARATOR = "\n\n"


class UnsupportedType(Exception):
    """No parser handles this file's suffix."""


class ParseError(Exception):
    """The file has a supported suffix but could not be read as that type."""


@dataclass(slots=True)
class Parsed:
    """Extracted text; ``page_offsets[i]`` is the character offset where page ``i + 1`` starts."""

    text: str
    title: str | None = None
    page_offsets: list[int] | None = None


def parse_text(path: Path) -> Parsed:
    """txt and md: the text as is (Markdown markup is meaningful to readers and to the model)."""
    try:
        return Parsed(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 text: {exc.reason}") from exc


class _HTMLText(HTMLParser):
    """Collects visible text and the <title>; drops script, style, template and noscript bodies."""

    HIDDEN = frozenset({"script", "style", "template", "noscript"})
    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        (self.title_parts if self._in_title else self.parts).append(data)


def parse_html(path: Path) -> Parsed:
    """Visible text with block elements as line breaks; the <title> becomes the title and leads the text."""
    parser = _HTMLText()
    parser.feed(parse_text(path).text)
    parser.close()
    title = " ".join("".join(parser.title_parts).split()) or None
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    body = "\n".join(line for line in lines if line)
    text = f"{title}\n{body}" if title and body else (body or title or "")
    return Parsed(text, title=title)


def parse_pdf(path: Path) -> Parsed:
    """Text of every page (pypdf), pages joined by a blank line, with each page's start offset."""
    from pypdf import PdfReader

    try:
        pages = [page.extract_text() or "" for page in PdfReader(path).pages]
    except Exception as exc:  # pypdf raises many types on malformed files
        raise ParseError(f"unreadable PDF: {exc}") from exc
    offsets, parts, at = [], [], 0
    for page in pages:
        offsets.append(at)
        parts.append(page.strip())
        at += len(parts[-1]) + len(PAGE_SEPARATOR)
    return Parsed(PAGE_SEPARATOR.join(parts), page_offsets=offsets)


def parse_docx(path: Path) -> Parsed:
    """Paragraph text (python-docx), one paragraph per line; the core title property when set."""
    import docx

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises zipfile/KeyError/ValueError variants
        raise ParseError(f"unreadable DOCX: {exc}") from exc
    text = "\n".join(p.text for p in document.paragraphs if p.text.strip())
    return Parsed(text, title=document.core_properties.title or None)


PARSERS: dict[str, Callable[[Path], Parsed]] = {
    ".txt": parse_text,
    ".md": parse_text,
    ".markdown": parse_text,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
    ".docx": parse_docx,
}
SUPPORTED_SUFFIXES = tuple(PARSERS)


def parse_file(path: Path) -> Parsed:
    """Parse ``path`` by its (lower-cased) suffix; raises UnsupportedType or ParseError."""
    parser = PARSERS.get(path.suffix.lower())
    if parser is None:
        raise UnsupportedType(f"unsupported file type {path.suffix or '(no suffix)'!r}")
    try:
        return parser(path)
    except OSError as exc:
        raise ParseError(f"unreadable: {exc.strerror or exc}") from exc


def page_of(offset: int, page_offsets: list[int]) -> int:
    """1-based page containing character ``offset`` (the last page starting at or before it)."""
    from bisect import bisect_right

    return max(1, bisect_right(page_offsets, offset))
