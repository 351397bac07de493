"""Every source format, structure-aware chunking, bad files and incremental re-ingest of a
docs.jsonl collection, with the real embedder and the default store (Qdrant Edge) in temp dirs."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from knowledge.chunking import Chunk, Chunker
from knowledge.documents import SourceDocument, read_sources
from knowledge.embedding import Embedder
from knowledge.index import KnowledgeIndex, open_index
from knowledge.ingest import ingest
from tests.documents_fixture import HTML_PAGE, pdf_bytes, pdf_with_outline

ROUTER = "halcyon-router-x1000"
TABLE_HEAD = "| Code | Meaning |\n|---|---|\n"


@pytest.fixture
def index(tmp_path: Path, embedder: Embedder) -> Iterator[KnowledgeIndex]:
    index = open_index("formats", embedder, path=tmp_path / "index")
    yield index
    index.close()


def markdown(text: str, title: str = "Manual") -> SourceDocument:
    return SourceDocument("docs/m.md", text, "markdown", title, ROUTER, None, "hash")


def test_every_format_is_ingested_with_its_metadata(index: KnowledgeIndex, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "router").mkdir(parents=True)
    (docs / "router" / "leds.html").write_text(HTML_PAGE)
    pages = ["Hold reset for 10 seconds.", "Charge 4 hours."]
    pdf_with_outline(docs / "camera.pdf", pages, ["Reset", "Charging"])
    (docs / "notes.txt").write_text("The X1000 supports WPA3 on both bands.")
    records = [
        {
            "id": "s1",
            "title": "Bluetooth",
            "text": "Pair the S10 over Bluetooth.",
            "product": "galaxy-s10",
            "url": "https://example.test/bt",
        },
        {"id": "s2", "title": "Wi-Fi", "text": "Join a Wi-Fi network from Settings."},
    ]
    (docs / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "{broken\n")

    question = {"id": "q1", "question": "How do I pair?", "doc_ids": ["s1"]}
    (docs / "questions.jsonl").write_text(json.dumps(question) + "\n" + json.dumps(question))
    report = ingest(index, docs, product="fallback-product")
    assert sorted(report.added) == [
        "docs/camera.pdf",
        "docs/docs.jsonl#s1",
        "docs/docs.jsonl#s2",
        "docs/notes.txt",
        "docs/router/leds.html",
    ]
    reasons = dict(report.failed)  # the bad line, and the questions file as one failure
    assert sorted(reasons) == ["docs/docs.jsonl:3", "docs/questions.jsonl"]
    assert "holds questions" in reasons["docs/questions.jsonl"]

    html = index.search("what does blinking amber mean", product=ROUTER, limit=1)[0]
    assert html.source == "docs/router/leds.html" and "Blinking amber" in html.text
    assert html.heading_path == ["LED status lights", "Colours"] and html.version == "2.4"
    pdf = index.search("how long to charge", product="fallback-product", limit=1)[0]
    assert pdf.source == "docs/camera.pdf" and pdf.heading_path == ["Charging"]
    record = index.search("bluetooth pairing", product="galaxy-s10", limit=1)[0]
    assert (record.doc_id, record.title, record.url) == (
        "s1",
        "Bluetooth",
        "https://example.test/bt",
    )


def test_html_drops_scripts_and_navigation(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(HTML_PAGE)
    doc = read_sources(tmp_path / "page.html", "page.html").documents[0]
    assert doc.title == "X1000 LED guide" and doc.product == ROUTER
    assert "tracking" not in doc.text and "Home | Products" not in doc.text


def test_numbered_steps_and_tables_stay_whole() -> None:
    steps = "\n".join(f"{n}. Step number {n}: do the thing carefully." for n in range(1, 13))
    table = "| Code | Meaning |\n|---|---|\n" + "\n".join(
        f"| E{n} | Problem {n} |" for n in range(9)
    )
    text = f"# Manual\n\n## Reset\n\nTo reset the router:\n\n{steps}\n\n## Codes\n\n{table}\n"
    chunks = Chunker(chunk_size=200).split(markdown(text))
    step_chunks = [c for c in chunks if "Step number" in c.text]
    assert len(step_chunks) == 1 and step_chunks[0].text.startswith("To reset the router:")
    assert step_chunks[0].heading_path == ["Manual", "Reset"]
    assert next(c for c in chunks if "| E" in c.text).text.count("| E") == 9


def test_an_oversized_table_is_cut_between_rows_with_its_header() -> None:
    table = "| Code | Meaning |\n|---|---|\n" + "\n".join(
        f"| E{n} | Problem {n} |" for n in range(60)
    )
    chunks = Chunker(chunk_size=200, max_block=300).split(markdown(f"# Codes\n\n{table}\n"))
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.text.startswith("| Code | Meaning |\n|---|---|")
        assert all(line.startswith("|") and line.endswith("|") for line in chunk.text.splitlines())
    rows = [line for c in chunks for line in c.text.splitlines()[2:]]
    assert len(rows) == 60


def test_chunk_ids_are_stable_and_carry_the_heading_path() -> None:
    text = "# Manual\n\n## Setup\n\nPlug it in.\n\n### Cables\n\nUse the blue port.\n"
    first: Sequence[Chunk] = Chunker().split(markdown(text))
    second = Chunker().split(markdown(text))
    assert [c.id for c in first] == [c.id for c in second]
    assert [c.heading_path for c in first] == [["Manual", "Setup"], ["Manual", "Setup", "Cables"]]
    assert first[1].embedding_text.startswith("Manual > Setup > Cables\n")


def test_bad_files_are_reported_one_line_each(index: KnowledgeIndex, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("---\ntitle: Setup\n---\n# Setup\n\nPlug the router in.\n")
    (docs / "corrupt.pdf").write_bytes(pdf_bytes(["Reset the router."])[:150])
    (docs / "scan.pdf").write_bytes(pdf_bytes([""]))
    (docs / "huge.txt").write_text("word " * 5000)
    (docs / "empty.html").write_text("  ")
    (docs / "blob.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (docs / "cp1252.txt").write_bytes("Caf\xe9 cr\xe8me".encode("cp1252"))
    report = ingest(index, docs, max_bytes=10_000)
    reasons = dict(report.failed)
    assert report.added == ["docs/good.md"] and len(reasons) == 6
    assert "not a readable PDF" in reasons["docs/corrupt.pdf"]
    assert "no extractable text" in reasons["docs/scan.pdf"]
    assert "limit" in reasons["docs/huge.txt"]
    assert "empty" in reasons["docs/empty.html"]
    assert "binary" in reasons["docs/blob.md"]
    assert "UTF-8" in reasons["docs/cp1252.txt"]


def test_docs_jsonl_records_are_incremental_and_pruned(
    index: KnowledgeIndex, tmp_path: Path
) -> None:
    docs = tmp_path / "kb"
    docs.mkdir()

    def write(records: list[dict[str, str]]) -> None:
        (docs / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    a = {"id": "a", "title": "Reset", "text": "Hold the pinhole for 10 seconds."}
    b = {"id": "b", "title": "Setup", "text": "Plug the router in."}
    write([a, b])
    assert sorted(ingest(index, docs).added) == ["kb/docs.jsonl#a", "kb/docs.jsonl#b"]
    write([{**a, "text": "Hold the pinhole for 15 seconds."}])
    report = ingest(index, docs, prune=True)
    assert (report.updated, report.removed) == (["kb/docs.jsonl#a"], ["kb/docs.jsonl#b"])
    assert [h.text for h in index.search("pinhole", limit=5)] == [
        "Hold the pinhole for 15 seconds."
    ]


def test_a_failed_write_leaves_the_previous_version_whole(
    index: KnowledgeIndex, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "reset.md"
    page.write_text("# Reset\n\n" + "\n\n".join(f"Old step {n}." for n in range(5)))
    ingest(index, docs, chunker=Chunker(chunk_size=20))
    before = index.count()

    class BrokenEmbedder(Embedder):
        def embed(self, texts: Sequence[str], batch_size: int = 32) -> list[list[float]]:
            raise RuntimeError("embedder crashed")

    broken = KnowledgeIndex(index.client, index.collection, BrokenEmbedder(), store=index.store)
    page.write_text("# Reset\n\n" + "\n\n".join(f"New step {n}." for n in range(5)))
    with pytest.raises(RuntimeError):
        ingest(broken, docs, chunker=Chunker(chunk_size=20))
    assert index.count() == before
    assert all("Old step" in h.text for h in index.search("step", limit=10))


def test_ingest_command_reports_each_failure_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from knowledge.cli import ingest as ingest_command

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Setup\n\nPlug the router in.\n")
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4 not really")
    options = {"qdrant_path": tmp_path / "q", "qdrant_url": None, "collection": "kb"}
    ingest_command(docs, product=ROUTER, prune=False, **options)  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    assert "failed: docs/bad.pdf: not a readable PDF" in err
    assert "1 added, 0 updated, 0 unchanged, 0 removed, 1 failed" in out
    (docs / "good.md").unlink()
    with pytest.raises(typer.Exit):  # nothing readable at all: a non-zero exit
        ingest_command(docs, product=ROUTER, prune=True, **options)  # type: ignore[arg-type]
