"""The formats read through llama-index (pptx, csv, xlsx, epub, ipynb), with real files."""

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ingest.parsers import ParseError, parse_file
from ingest.pipeline import run_ingest
from ingest.sources import scan_folder
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Retriever

from ..conftest import KNOWLEDGE, ROOT

NEW_FILES = [
    "products/release-notes-2026-q1.pptx",
    "company/data-centres.csv",
    "products/add-on-prices.xlsx",
    "products/team-onboarding-guide.epub",
    "products/api-examples.ipynb",
]


def parse(rel: str):
    path = KNOWLEDGE / rel
    return parse_file(path.read_bytes(), path)


@pytest.mark.parametrize(
    ("rel", "title", "headings", "heading", "phrase"),
    [
        (
            "products/release-notes-2026-q1.pptx",
            "Release notes Q1 2026",
            ["Release notes Q1 2026", "Desktop app 5.2", "Mobile app 8.0", "File requests", "Storage reports for admins"],
            "Mobile app 8.0",
            "Speaker notes: The scanner reads text in English, German",
        ),
        (
            "company/data-centres.csv",
            "Data centres",
            [""],
            "",
            "Region: US, Site: Hillsboro, Oregon, Role: replica, Certifications: ISO 27001; SOC 2 Type II",
        ),
        (
            "products/add-on-prices.xlsx",
            "Add-on prices",
            ["Storage add-ons", "Service add-ons"],
            "Storage add-ons",
            "Add-on: Extra 1 TB storage, Available on: Pro, Price per month (EUR): 4.99, Price per year (EUR): 49",
        ),
        (
            "products/team-onboarding-guide.epub",
            "Team onboarding guide",
            ["Before you invite anyone", "Moving files from another provider", "Your first week"],
            "Moving files from another provider",
            "It copies up to 2 TB per day and keeps folder structure",
        ),
        (
            "products/api-examples.ipynb",
            "API examples",
            ["Setup", "List the files in a folder", "Upload a large file"],
            "Upload a large file",
            "send the file in parts of 8 to 64 MB",
        ),
    ],
)
def test_each_new_format_keeps_title_and_structure(rel, title, headings, heading, phrase):
    doc = parse(rel)
    assert doc.title == title
    assert [s.heading for s in doc.sections] == headings
    assert phrase in dict((s.heading, s.text) for s in doc.sections)[heading]


def test_structure_details_survive_conversion():
    deck = parse("products/release-notes-2026-q1.pptx")
    desktop = deck.sections[1].text
    assert "Title:" not in desktop and "-----" not in desktop  # the reader's own framing is gone
    assert desktop.split("\n\n")[0].startswith("Metered connections")  # one paragraph per bullet
    rows = parse("company/data-centres.csv").sections[0].text.split("\n\n")
    assert len(rows) == 4 and all(r.startswith("Region: ") for r in rows)  # quoted commas kept in a cell
    prices = parse("products/add-on-prices.xlsx").sections[0].text
    assert "Price per month (EUR): 39," in prices  # not "39.0" from a float column
    book = parse("products/team-onboarding-guide.epub")
    assert all("chapter-1.xhtml" not in s.text for s in book.sections)  # the table of contents is dropped
    notebook = parse("products/api-examples.ipynb").sections[2].text
    assert 'requests.post(f"{BASE}/uploads/sessions"' in notebook and "In[" not in notebook


def test_plain_notebook_and_european_csv(tmp_path):
    # An unexecuted notebook without exporter metadata, prose before the first code cell: the
    # bare IPYNBReader returns nothing for it.
    notebook = {
        "cells": [
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": "# Quota report\n\nRun this monthly to list members over 90% of their quota.",
            },
            {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": "print('quota')"},
            {"cell_type": "markdown", "metadata": {}, "source": "## Sending the report\n\nMail it to the finance team."},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    doc = parse_file(json.dumps(notebook).encode(), Path("quota.ipynb"))
    assert doc.title == "Quota report"
    sections = {s.heading: s.text for s in doc.sections}
    assert "members over 90% of their quota" in sections["Quota report"] and "print('quota')" in sections["Quota report"]
    assert sections["Sending the report"] == "Mail it to the finance team."
    # German Excel exports: semicolons, decimal commas, Windows-1252.
    csv = "Stadt;Preis\nKöln;4,99 €\nMünchen;5,49 €\n".encode("cp1252")
    doc = parse_file(csv, Path("preise.csv"))
    assert doc.sections[0].text == "Stadt: Köln, Preis: 4,99 €\n\nStadt: München, Preis: 5,49 €"


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


BROKEN = {
    "release-notes.pptx": ((KNOWLEDGE / NEW_FILES[0]).read_bytes()[:5000], "PPTX (not a valid zip container"),
    "prices.xlsx": (_zip({"hello.txt": b"hi"}), "unreadable XLSX"),
    "guide.epub": (_zip({"mimetype": b"application/epub+zip"}), "unreadable EPUB"),
    "examples.ipynb": (b'{"cells": [', "IPYNB (not a Jupyter notebook"),
    "regions.csv": (
        b"Region,Site\nEU,Frankfurt\nUS,Oregon,extra,fields\n",
        "CSV (ParserError: Expected 2 fields in line 3, saw 4)",
    ),
}
BOMB = _zip({"xl/worksheets/sheet1.xml": b"\0" * (3 * 1024 * 1024)})  # 3 MB of zeros in a few KB


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_corrupt_file_of_each_kind_raises_a_reason(name):
    data, reason = BROKEN[name]
    with pytest.raises(ParseError) as caught:
        parse_file(data, Path(name))
    assert reason in str(caught.value)
    assert "ragtune-read-" not in str(caught.value)  # names the file, not the reader's temporary copy


@pytest.mark.slow
def test_corrupt_files_are_reported_while_the_rest_is_published(settings, tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    for rel in NEW_FILES:
        (folder / Path(rel).name).write_bytes((KNOWLEDGE / rel).read_bytes())
    for name, (data, _) in BROKEN.items():
        (folder / f"broken-{name}").write_bytes(data)
    (folder / "broken-bomb.xlsx").write_bytes(BOMB)  # refused by ingest.safety before any reader runs
    items, failures = scan_folder(folder, settings.ingest)
    report = run_ingest(settings, items, failures, embedder=embedder, source=str(folder))
    assert report.published
    assert sorted(report.added) == sorted(Path(rel).name for rel in NEW_FILES)
    reasons = {f.doc_id: f.reason for f in report.failed}
    assert reasons.keys() == {f"broken-{name}" for name in BROKEN} | {"broken-bomb.xlsx"}
    assert "decompression bomb" in reasons["broken-bomb.xlsx"]

    # Incremental re-ingest works for these types like any other: edit the CSV, only it is redone.
    index = KnowledgeIndex(settings)
    old_ids = set(index.current_manifest().documents["data-centres.csv"].chunk_ids)
    (folder / "data-centres.csv").write_text('Region,Site,Role\nAPAC,"Singapore, Singapore",primary\n', encoding="utf-8")
    items, failures = scan_folder(folder, settings.ingest)
    again = run_ingest(settings, items, failures, embedder=embedder, source=str(folder))
    assert again.updated == ["data-centres.csv"] and len(again.unchanged) == 4 and again.chunks_embedded == 1
    chunks = {c.id: c for c in index.read_chunks(again.version)}
    assert not old_ids & chunks.keys()
    assert any("Site: Singapore, Singapore" in c.text for c in chunks.values() if c.doc_id == "data-centres.csv")


@pytest.mark.parametrize(
    ("rel", "module", "package"),
    [
        ("products/release-notes-2026-q1.pptx", "pptx", "python-pptx"),
        ("products/add-on-prices.xlsx", "openpyxl", "openpyxl"),
        ("products/team-onboarding-guide.epub", "ebooklib", "ebooklib"),
        ("products/api-examples.ipynb", "nbconvert", "nbconvert"),
    ],
)
def test_missing_extra_package_names_what_to_install(rel, module, package, monkeypatch):
    parse(rel)  # the readers are imported and work with the package present
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    with pytest.raises(ParseError, match=f"pip install {package}"):
        parse(rel)


def test_no_model_is_configured_or_resolved_by_reading():
    for rel in NEW_FILES:
        parse(rel)
    from llama_index.core import Settings

    # The readers were given no LLM or embedding model and never reached for the global default
    # (which would try a hosted model).
    assert Settings._llm is None and Settings._embed_model is None


def test_md_and_pdf_ingestion_does_not_import_llama_index(tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ingest.parsers import parse_file\n"
        f"for rel in ['faq/billing-faq.md', 'policies/refund-policy.pdf']:\n"
        f"    p = Path({str(KNOWLEDGE)!r}) / rel\n"
        "    parse_file(p.read_bytes(), p)\n"
        "heavy = sorted(m for m in ('llama_index', 'pandas', 'nltk', 'tiktoken') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_reading_leaves_logging_and_environment_as_they_were(tmp_path):
    # Run in a fresh process: the first import of llama-index's readers is what changes things.
    code = (
        "import logging, os\n"
        "from pathlib import Path\n"
        "from ingest.parsers import parse_file\n"
        "before = (list(logging.getLogger().handlers), logging.getLogger().level, dict(os.environ))\n"
        f"for rel in {NEW_FILES!r}:\n"
        f"    p = Path({str(KNOWLEDGE)!r}) / rel\n"
        "    parse_file(p.read_bytes(), p)\n"
        "after = (list(logging.getLogger().handlers), logging.getLogger().level, dict(os.environ))\n"
        "print(before == after)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True" and out.stderr == ""


def test_bundled_knowledge_ingests_every_new_format(knowledge_index):
    _, index = knowledge_index  # the fixture asserts that nothing failed
    documents = index.current_manifest().documents
    assert len(documents) == 41
    assert {documents[rel].doc_type for rel in NEW_FILES} == {"pptx", "csv", "xlsx", "epub", "ipynb"}


@pytest.mark.parametrize(
    ("question", "rel", "fact"),
    [
        (
            "Can the mobile app scan paper documents into a searchable PDF?",
            "products/release-notes-2026-q1.pptx",
            "Document scanner",
        ),
        ("Where is the replica data centre in Oregon and when did it open?", "company/data-centres.csv", "Hillsboro, Oregon"),
        ("How much does an extra 1 TB of storage cost per month on Pro?", "products/add-on-prices.xlsx", "4.99"),
        ("How much data does the migration assistant copy per day?", "products/team-onboarding-guide.epub", "2 TB per day"),
        ("How big must the parts of a resumable upload session be?", "products/api-examples.ipynb", "8 to 64 MB"),
    ],
)
def test_search_finds_facts_that_exist_only_in_the_new_files(retriever: Retriever, question, rel, fact):
    hits = retriever.search(question, top_k=3).hits
    assert any(h.chunk.doc_id == rel and fact in h.chunk.text for h in hits), [(h.chunk.doc_id, h.chunk.text[:60]) for h in hits]
