"""Write the bundled demo knowledge base (knowledge/) from scripts/knowledge_content.py.

Run: .venv/bin/python scripts/make_knowledge.py [OUT_DIR]
The file extension of each entry picks its format (md, txt, html, pdf, docx), so the demo base
exercises every parser. Output is deterministic, so re-running it changes nothing in git.
"""

from __future__ import annotations

import html
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from knowledge_content import DOCS  # noqa: E402

FIXED_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def write_md(path: Path, title: str, sections) -> None:
    parts = [f"# {title}\n"]
    for heading, paragraphs in sections:
        parts.append(f"## {heading}\n" if heading else "")
        parts.extend(p + "\n" for p in paragraphs)
    path.write_text("\n".join(parts), encoding="utf-8")


def write_txt(path: Path, title: str, sections) -> None:
    lines = [title, ""]
    for heading, paragraphs in sections:
        if heading:
            lines += [heading, ""]
        for paragraph in paragraphs:
            lines += [paragraph, ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_html(path: Path, title: str, sections) -> None:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for heading, paragraphs in sections:
        body.append(f"<h2>{html.escape(heading)}</h2>")
        body.extend(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    page = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)} | Northwind Cloud</title>"
        "<style>body{font-family:sans-serif}</style></head>\n<body>\n"
        "<nav><a href=\"/\">Home</a> <a href=\"/pricing\">Pricing</a></nav>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n<footer>(c) Northwind Cloud GmbH</footer>\n</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")


def write_pdf(path: Path, title: str, sections) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(title)
    pdf.set_author("Northwind Cloud GmbH")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    for heading, paragraphs in sections:
        pdf.set_font("Helvetica", "B", 12)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    pdf.output(str(path))


def write_docx(path: Path, title: str, sections) -> None:
    from docx import Document

    document = Document()
    document.core_properties.title = title
    document.core_properties.author = "Northwind Cloud GmbH"
    document.core_properties.created = FIXED_DATE.replace(tzinfo=None)
    document.core_properties.modified = FIXED_DATE.replace(tzinfo=None)
    document.core_properties.last_modified_by = "Northwind Cloud GmbH"
    document.add_heading(title, level=0)
    for heading, paragraphs in sections:
        document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    document.save(str(path))


WRITERS = {".md": write_md, ".txt": write_txt, ".html": write_html, ".pdf": write_pdf, ".docx": write_docx}


def main(out: Path) -> None:
    for rel, title, sections in DOCS:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        WRITERS[path.suffix](path, title, sections)
    print(f"wrote {len(DOCS)} documents to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "knowledge")
