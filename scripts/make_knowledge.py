"""Write the bundled demo knowledge base (knowledge/) from scripts/knowledge_content.py.

Run: .venv/bin/python scripts/make_knowledge.py [OUT_DIR]
The file extension of each entry picks its format (md, txt, html, pdf, docx, pptx, csv, xlsx, epub,
ipynb), so the demo base exercises every parser and reader. Output is deterministic, so re-running it
changes nothing in git: the zip-based formats (docx, pptx, xlsx, epub) are rewritten with fixed entry
timestamps, because their libraries stamp every zip entry with the current time.
"""

from __future__ import annotations

import csv
import html
import json
import re
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from knowledge_content import DOCS  # noqa: E402

FIXED_DATE = datetime(2026, 1, 1, tzinfo=timezone.utc)


def fix_zip_times(path: Path) -> None:
    """Rewrite a zip with every entry dated FIXED_DATE (same order, same compression)."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for info, data in entries:
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            target.writestr(fixed, data)


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
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} | Northwind Cloud</title>"
        "<style>body{font-family:sans-serif}</style></head>\n<body>\n"
        '<nav><a href="/">Home</a> <a href="/pricing">Pricing</a></nav>\n<main>\n'
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
    fix_zip_times(path)


def write_pptx(path: Path, title: str, slides) -> None:
    from pptx import Presentation

    deck = Presentation()
    deck.core_properties.title = title
    deck.core_properties.author = "Northwind Cloud GmbH"
    deck.core_properties.created = FIXED_DATE.replace(tzinfo=None)
    deck.core_properties.modified = FIXED_DATE.replace(tzinfo=None)
    deck.core_properties.last_modified_by = "Northwind Cloud GmbH"
    deck.core_properties.revision = 1
    for number, (heading, bullets) in enumerate(slides):
        notes = [b.removeprefix("Notes: ") for b in bullets if b.startswith("Notes: ")]
        body = [b for b in bullets if not b.startswith("Notes: ")]
        if number == 0:  # the title slide: deck title, subtitle
            slide = deck.slides.add_slide(deck.slide_layouts[0])
            slide.shapes.title.text = title
            slide.placeholders[1].text = heading + "\n" + "\n".join(body)
        else:
            slide = deck.slides.add_slide(deck.slide_layouts[1])
            slide.shapes.title.text = heading
            frame = slide.placeholders[1].text_frame
            frame.text = body[0]
            for bullet in body[1:]:
                frame.add_paragraph().text = bullet
        if notes:
            slide.notes_slide.notes_text_frame.text = "\n".join(notes)
    deck.save(str(path))
    fix_zip_times(path)


def write_csv(path: Path, title: str, sections) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        for _, rows in sections:
            writer.writerows(rows)


def write_xlsx(path: Path, title: str, sheets) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    book.properties.title = title
    book.properties.creator = "Northwind Cloud GmbH"
    book.properties.lastModifiedBy = "Northwind Cloud GmbH"
    book.properties.created = FIXED_DATE.replace(tzinfo=None)
    book.properties.modified = FIXED_DATE.replace(tzinfo=None)
    for name, rows in sheets:
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(list(row))
    book.save(str(path))
    # openpyxl stamps docProps/core.xml with the save time whatever `modified` says.
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            if info.filename == "docProps/core.xml":
                stamp = FIXED_DATE.strftime("%Y-%m-%dT%H:%M:%SZ")
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp.encode(), data)
            target.writestr(info, data)
    fix_zip_times(path)


def write_epub(path: Path, title: str, chapters) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("urn:northwind:" + path.stem)
    book.set_title(title)
    book.set_language("en")
    book.add_author("Northwind Cloud GmbH")
    items = []
    for number, (heading, paragraphs) in enumerate(chapters, start=1):
        item = epub.EpubHtml(title=heading, file_name=f"chapter-{number}.xhtml", lang="en")
        item.content = f"<h1>{html.escape(heading)}</h1>" + "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    epub.write_epub(str(path), book, {"mtime": FIXED_DATE})
    fix_zip_times(path)


def write_ipynb(path: Path, title: str, sections) -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": f"# {title}"}]
    count = 0
    for heading, parts in sections:
        cells.append({"cell_type": "markdown", "metadata": {}, "source": f"## {heading}"})
        for part in parts:
            if isinstance(part, tuple):
                count += 1
                cells.append({"cell_type": "code", "execution_count": count, "metadata": {}, "outputs": [], "source": part[1]})
            else:
                cells.append({"cell_type": "markdown", "metadata": {}, "source": part})
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {
                "name": "python",
                "file_extension": ".py",
                "mimetype": "text/x-python",
                "nbconvert_exporter": "python",
                "pygments_lexer": "ipython3",
            },
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    for number, cell in enumerate(cells):
        cell["id"] = f"cell-{number}"
        cell["source"] = cell["source"].splitlines(keepends=True)
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


WRITERS = {
    ".md": write_md,
    ".txt": write_txt,
    ".html": write_html,
    ".pdf": write_pdf,
    ".docx": write_docx,
    ".pptx": write_pptx,
    ".csv": write_csv,
    ".xlsx": write_xlsx,
    ".epub": write_epub,
    ".ipynb": write_ipynb,
}


def main(out: Path) -> None:
    for rel, title, sections in DOCS:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        WRITERS[path.suffix](path, title, sections)
    print(f"wrote {len(DOCS)} documents to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "knowledge")
