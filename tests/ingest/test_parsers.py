from pathlib import Path

import pytest

from ingest.parsers import ParseError, parse_file

from ..conftest import KNOWLEDGE


@pytest.mark.parametrize(
    ("rel", "title", "heading", "phrase"),
    [
        ("faq/billing-faq.md", "Billing FAQ", "Where do I find my invoices?", "Settings > Billing > Invoices"),
        ("faq/free-trial.txt", "Free trial", "", "14-day free trial"),
        ("products/pricing.html", "Pricing", "Business", "12 EUR per user per month"),
        ("policies/refund-policy.pdf", "Refund policy", "page 1", "within 30 days"),
        ("policies/privacy-policy.docx", "Privacy policy", "Your rights", "privacy@northwind.example"),
    ],
)
def test_every_bundled_format_keeps_title_and_structure(rel, title, heading, phrase):
    path = KNOWLEDGE / rel
    doc = parse_file(path.read_bytes(), path)
    assert doc.title == title
    sections = {s.heading: s.text for s in doc.sections}
    assert heading in sections
    assert phrase in " ".join(sections[heading].split())


def test_html_drops_navigation_and_scripts():
    page = b"<html><head><title>T | Site</title><script>var x='secret';</script></head><body><nav>Home Pricing</nav><h1>Real title</h1><p>Body text here.</p></body></html>"
    doc = parse_file(page, Path("x.html"))
    text = " ".join(s.text for s in doc.sections)
    assert doc.title == "Real title"
    assert "Body text here." in text
    assert "secret" not in text and "Home Pricing" not in text


def test_markdown_code_blocks_are_not_headings():
    md = b"# Guide\n\n## Setup\n\n```\n# not a heading\n```\nrun it\n"
    doc = parse_file(md, Path("g.md"))
    assert [s.heading for s in doc.sections] == ["Setup"]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n%%EOF", "PDF"),
        ("broken.docx", b"PK\x03\x04 not a zip at all", "DOCX"),
        ("empty.md", b"   \n\n", "empty"),
        ("image.png", b"\x89PNG\r\n", "unsupported file type .png"),
        ("binary.txt", b"\x00\x01\x02" * 100, "binary"),
    ],
)
def test_unreadable_files_raise_a_reason(name, data, reason):
    with pytest.raises(ParseError, match=reason):
        parse_file(data, Path(name))


def test_damaged_utf8_is_refused_not_indexed_as_mojibake():
    data = "Café opening hours\n\nThe café opens at 8.\n".encode() + b"\xff\xfe stray bytes\n"
    with pytest.raises(ParseError, match="invalid UTF-8 at byte"):
        parse_file(data, Path("cafe.txt"))


def test_a_legacy_encoded_file_is_decoded_by_detection():
    text = "Rückerstattung\n\nDie Größe der Rückerstattung hängt vom Tarif ab. Bitte prüfen Sie die Einstellungen für Übertragungen, bevor Sie größere Dateien hochladen.\n"
    doc = parse_file(text.encode("cp1252"), Path("de.txt"))
    assert doc.title == "Rückerstattung"
    assert "Die Größe der Rückerstattung hängt vom Tarif ab." in doc.sections[0].text
    russian = (
        "# Возврат\n\nКлиенты могут запросить возврат в течение тридцати дней после покупки. Обратитесь в службу поддержки.\n" * 2
    )
    assert "тридцати дней" in parse_file(russian.encode("cp1251"), Path("ru.md")).sections[0].text


def test_text_whose_encoding_cannot_be_told_is_refused():
    with pytest.raises(ParseError, match="cannot be detected with confidence|ambiguous"):
        parse_file(bytes(range(0x80, 0x100)) * 20, Path("noise.txt"))
    with pytest.raises(ParseError, match="ambiguous"):  # 4 bytes: Café? Cafй? Cafι? No way to know
        parse_file("Café".encode("cp1252"), Path("short.txt"))


def test_utf8_with_bom_and_utf16_with_bom_are_read():
    assert parse_file("\ufeffCafé\n\nThe café opens at 8.".encode("utf-8"), Path("a.txt")).title == "Café"
    assert parse_file("Café\n\nThe café opens at 8.".encode("utf-16"), Path("b.txt")).sections[0].text == "The café opens at 8."
