"""Knowledge-base sources: files (txt/md/html/pdf/docx + sidecars) and records (JSONL/CSV/JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import docx
import pytest

from plinth.knowledge.sources import FileSource, RecordSource, infer_schema, read_source
from plinth.knowledge.types import Document


def text_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF, one Helvetica text object per page (pypdf cannot write text itself)."""
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {n} >>"]
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {3 + 2 * n} 0 R >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def sidecar(path: Path, content: object) -> None:
    text = content if isinstance(content, str) else json.dumps(content)
    path.with_name(path.name + ".metadata.json").write_text(text)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("Plain notes about llamas.")
    (root / "guide.md").write_text("# Guide\n\nUse `plinth serve` to start.")
    (root / "page.html").write_text(
        "<html><head><title>The Page</title><style>p{color:red}</style><script>alert('x')</script>"
        "</head><body><p>Hello &amp; welcome.</p><p>Second para.</p></body></html>"
    )
    (root / "report.pdf").write_bytes(text_pdf(["First page text", "Second page text"]))
    document = docx.Document()
    document.add_paragraph("A docx paragraph.")
    document.add_paragraph("Another one.")
    document.save(str(root / "memo.docx"))
    (root / "sub" / "deep.txt").write_text("Nested file.")
    (root / "empty.txt").write_text("  \n")
    (root / "image.png").write_bytes(b"\x89PNG\r\n")
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    sidecar(root / "notes.txt", {"metadataAttributes": {"team": "ml", "year": 2024, "tags": ["a", "b"]}})
    sidecar(root / "guide.md", "{not json")
    sidecar(root / "page.html", {"metadataAttributes": {"owner": {"name": "x"}}})
    sidecar(root / "gone.txt", {"metadataAttributes": {}})
    return root


def by_id(documents: list[Document]) -> dict[str, Document]:
    return {d.doc_id: d for d in documents}


def test_folder_reads_each_type_and_reports_every_skip(folder: Path) -> None:
    documents, skipped = read_source(FileSource(str(folder)))
    docs = by_id(documents)
    assert set(docs) == {"notes.txt", "report.pdf", "memo.docx", "sub/deep.txt"}
    assert docs["notes.txt"].metadata == {"team": "ml", "year": 2024, "tags": ["a", "b"]}
    assert docs["memo.docx"].text == "A docx paragraph.\nAnother one."
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == {
        "guide.md",
        "page.html",
        "empty.txt",
        "image.png",
        "broken.pdf",
        "gone.txt.metadata.json",
    }
    assert "bad sidecar" in reasons["guide.md"]
    assert "'owner'" in reasons["page.html"] and "unsupported value type" in reasons["page.html"]
    assert reasons["empty.txt"] == "empty text"
    assert "unsupported file type '.png'" in reasons["image.png"]
    assert "unreadable PDF" in reasons["broken.pdf"]
    assert reasons["gone.txt.metadata.json"] == "sidecar without its file"


def test_html_drops_script_and_style_and_keeps_title(folder: Path) -> None:
    (folder / "page.html.metadata.json").unlink()
    documents, _ = read_source(FileSource(str(folder)))
    page = by_id(documents)["page.html"]
    assert page.title == "The Page"
    assert page.text == "The Page\nHello & welcome.\nSecond para."


def test_pdf_text_and_page_offsets(folder: Path) -> None:
    pdf = by_id(read_source(FileSource(str(folder)))[0])["report.pdf"]
    offsets = pdf.location["page_offsets"]
    assert pdf.location["type"] == "FILE" and pdf.location["uri"].endswith("report.pdf")
    assert len(offsets) == 2
    assert pdf.text[offsets[0] :].startswith("First page text")
    assert pdf.text[offsets[1] :].startswith("Second page text")


def test_glob_and_relative_path(folder: Path) -> None:
    documents, skipped = read_source(FileSource("docs/*.txt"), base_dir=folder.parent)
    assert sorted(d.doc_id for d in documents) == ["notes.txt"]
    assert [s.path for s in skipped] == ["empty.txt"]
    assert read_source(FileSource("nowhere/*.txt"), base_dir=folder.parent)[1][0].reason == "no files match"


def test_hashes_are_stable_and_follow_text_and_metadata(folder: Path) -> None:
    first = {d.doc_id: d.content_hash for d in read_source(FileSource(str(folder)))[0]}
    assert first == {d.doc_id: d.content_hash for d in read_source(FileSource(str(folder)))[0]}
    (folder / "sub" / "deep.txt").write_text("Nested file, edited.")
    sidecar(folder / "notes.txt", {"metadataAttributes": {"team": "ml", "year": 2025, "tags": ["a", "b"]}})
    second = {d.doc_id: d.content_hash for d in read_source(FileSource(str(folder)))[0]}
    changed = {k for k in first if first[k] != second[k]}
    assert changed == {"sub/deep.txt", "notes.txt"}


def test_jsonl_records_with_mapping_ids_and_skips(tmp_path: Path) -> None:
    lines = [
        {"id": "m1", "title": "Alien", "plot": "Space horror.", "year": 1979, "genres": ["Horror", "SF"]},
        {"id": "m2", "title": "Heat", "plot": "Heist.", "year": 1995, "genres": []},
        {"title": "No id", "plot": "x"},
        {"id": "m1", "title": "Dup", "plot": "y"},
        {"id": "m3", "title": "", "plot": "  "},
        {"id": "m4", "plot": "Bad meta", "year": {"v": 1}},
    ]
    path = tmp_path / "movies.jsonl"
    path.write_text("\n".join([*map(json.dumps, lines), "{oops", "[1]"]) + "\n")
    spec = RecordSource(
        "movies.jsonl", ["title", "plot"], ["year", "genres"], id_field="id", title_field="title"
    )
    documents, skipped = read_source(spec, base_dir=tmp_path)
    docs = by_id(documents)
    assert set(docs) == {"m1", "m2"}
    assert docs["m1"].text == "Alien\nSpace horror." and docs["m1"].title == "Alien"
    assert docs["m1"].metadata == {"year": 1979, "genres": ["Horror", "SF"]}
    assert docs["m2"].metadata == {"year": 1995}  # empty list = absent
    assert docs["m1"].location == {"type": "FILE", "uri": str(path), "record": "m1"}
    reasons = [(s.path, s.reason.split(":")[0]) for s in skipped]
    assert reasons == [
        ("movies.jsonl:2", "missing id field 'id'"),
        ("movies.jsonl:3", "duplicate id 'm1'"),
        ("movies.jsonl:4", "empty text"),
        ("movies.jsonl:5", "metadata 'year'"),
        ("movies.jsonl:6", "invalid JSON"),
        ("movies.jsonl:7", "record is not an object"),
    ]


def test_csv_and_json_records_without_id_use_the_index(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("name,score,note\nAda,9.5,first\nBob,,second\n")
    (tmp_path / "b.json").write_text(json.dumps([{"name": "Cy", "score": 7, "note": "third"}]))
    (tmp_path / "c.json").write_text(json.dumps({"not": "a list"}))
    spec = RecordSource("*.*", text_fields=["note"], metadata_fields=["name", "score"])
    documents, skipped = read_source(spec, base_dir=tmp_path)
    assert [(d.doc_id, d.text, d.metadata) for d in documents] == [
        ("a.csv:0", "first", {"name": "Ada", "score": 9.5}),
        ("a.csv:1", "second", {"name": "Bob"}),
        ("b.json:0", "third", {"name": "Cy", "score": 7}),
    ]
    assert [(s.path, s.reason) for s in skipped] == [("c.json", "JSON file is not an array of records")]


def test_record_hash_changes_with_metadata_only(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    spec = RecordSource(str(path), ["t"], ["m"], id_field="id")
    path.write_text(json.dumps({"id": 1, "t": "same", "m": "x"}))
    before = read_source(spec)[0][0].content_hash
    path.write_text(json.dumps({"id": 1, "t": "same", "m": "y"}))
    assert read_source(spec)[0][0].content_hash != before


def test_infer_schema_resolves_mixes() -> None:
    def doc(metadata: dict) -> Document:
        return Document("d", "t", metadata, {}, "h")

    documents = [
        doc({"year": 1999, "kids": True, "tag": "a", "genres": ["x"], "mixed": 1, "rating": 7.5}),
        doc({"year": 2001, "kids": False, "tag": ["b", "c"], "genres": ["y"], "mixed": "one"}),
    ]
    assert infer_schema(documents) == {
        "year": "number",
        "kids": "boolean",
        "tag": "string_list",
        "genres": "string_list",
        "rating": "number",
    }
