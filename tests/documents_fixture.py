"""Small real files for ingestion tests: a text PDF with an outline, an HTML page, a docs.jsonl."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HTML_PAGE = """<!doctype html>
<html><head><title>X1000 LED guide</title>
<meta name="product" content="halcyon-router-x1000"><meta name="version" content="2.4">
<script>var tracking = "should never be indexed";</script></head>
<body><nav>Home | Products</nav>
<h1>LED status lights</h1>
<p>The status LED on the front of the X1000 shows what the router is doing.</p>
<h2>Colours</h2>
<table><tr><th>Colour</th><th>Meaning</th></tr>
<tr><td>Solid white</td><td>Online</td></tr>
<tr><td>Blinking amber</td><td>Firmware update in progress</td></tr></table>
<h2>Turning the LED off</h2>
<ol><li>Open the Halcyon Home app.</li><li>Tap Devices, then X1000.</li>
<li>Switch off Status light.</li></ol>
</body></html>
"""


def pdf_bytes(pages: Sequence[str], title: str = "") -> bytes:
    """A minimal valid PDF, one line of Helvetica text per page; pypdf reads it back."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for number, text in enumerate(pages):
        page_id, content_id = 4 + 2 * number, 5 + 2 * number
        kids.append(f"{page_id} 0 R")
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET"
        objects += [
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            "/Resources << /Font << /F1 3 0 R >> >> >>",
            f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream",
        ]
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    objects.insert(2, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return _assemble(objects, title)


def _assemble(objects: list[str], title: str) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    info = f"<< /Title ({title}) >>" if title else "<< >>"
    for number, body in enumerate([*objects, info], 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    trailer = f"<< /Size {len(offsets) + 1} /Root 1 0 R /Info {len(offsets)} 0 R >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def pdf_with_outline(path: Path, pages: Sequence[str], headings: Sequence[str]) -> Path:
    """A PDF whose outline (bookmarks) names each page, written with pypdf."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(pages, title="Camera manual"))))
    for number, heading in enumerate(headings):
        writer.add_outline_item(title=heading, page_number=number)
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def write_eval_set(
    folder: Path, docs: Sequence[dict[str, Any]], questions: Sequence[dict[str, Any]]
) -> Path:
    """A folder in the eval-set format: docs.jsonl and questions.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    return folder
