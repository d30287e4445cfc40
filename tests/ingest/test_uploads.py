"""Upload checks (ingest.uploads): every real document type in knowledge/ passes, and content that
is not what its extension says is refused with the reason, before anything is written."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from ingest.uploads import check_upload
from ragtune.errors import PayloadTooLarge, UnsupportedFileType, UploadRefused
from ragtune.settings import IngestSettings

from ..conftest import KNOWLEDGE


def _zip(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("path", sorted(p.relative_to(KNOWLEDGE).as_posix() for p in KNOWLEDGE.rglob("*") if p.is_file()))
def test_every_real_document_in_the_knowledge_base_passes(path):
    check_upload(path, (KNOWLEDGE / path).read_bytes(), IngestSettings())


DOCX = (KNOWLEDGE / "policies/privacy-policy.docx").read_bytes()
PDF = (KNOWLEDGE / "policies/refund-policy.pdf").read_bytes()


@pytest.mark.parametrize(
    ("name", "data", "error", "reason"),
    [
        pytest.param("deck.pptx", DOCX, UploadRefused, "lacks ppt/presentation.xml", id="docx-as-pptx"),
        pytest.param("sheet.xlsx", DOCX, UploadRefused, "lacks xl/workbook.xml", id="docx-as-xlsx"),
        pytest.param(
            "book.epub",
            _zip({"mimetype": b"text/plain", "META-INF/container.xml": b"<container/>"}),
            UploadRefused,
            "mimetype",
            id="epub-wrong-mimetype",
        ),
        pytest.param("notes.ipynb", b"not json", UploadRefused, "invalid JSON", id="ipynb-not-json"),
        pytest.param("notes.ipynb", json.dumps({"a": 1}).encode(), UploadRefused, "no list of cells", id="ipynb-no-cells"),
        pytest.param("page.html", PDF, UploadRefused, "a PDF, not HTML", id="pdf-as-html"),
        pytest.param("rows.csv", b"\x7fELF\x02\x01\x01" + b"\0" * 40, UploadRefused, "a Linux program", id="elf-as-csv"),
        pytest.param("guide.md", DOCX, UploadRefused, "zip container", id="docx-as-markdown"),
        pytest.param("guide.pdf", DOCX, UploadRefused, "not a PDF (no %PDF- header); it looks like a zip", id="docx-as-pdf"),
        pytest.param("binary.txt", b"text\x00with\x00nuls", UploadRefused, "binary", id="nul-bytes-as-text"),
        pytest.param("policy.docx", PDF, UploadRefused, "zip container", id="pdf-as-docx"),
        pytest.param("archive.zip", _zip({"a.md": b"# A"}), UnsupportedFileType, "unsupported file type .zip", id="zip"),
    ],
)
def test_content_that_is_not_what_its_extension_says_is_refused(name, data, error, reason):
    with pytest.raises(error) as caught:
        check_upload(name, data, IngestSettings())
    assert reason in str(caught.value)


def test_limits_come_from_the_ingest_settings():
    settings = IngestSettings(extensions=[".md"], max_file_mb=0.001, max_unzipped_mb=1)
    with pytest.raises(UnsupportedFileType, match=r"accepted: \.md"):
        check_upload("policy.pdf", PDF, settings)
    with pytest.raises(PayloadTooLarge, match="ingest.max_file_mb"):
        check_upload("big.md", b"word " * 1000, settings)
    check_upload("small.md", b"# Small\n\nfits.", settings)
    # A docx that would inflate past max_unzipped_mb (by its declared sizes) is a bomb, whatever its parts.
    bomb = _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>" * 400_000})
    with pytest.raises(UploadRefused, match="decompression bomb"):
        check_upload("bomb.docx", bomb, IngestSettings(max_unzipped_mb=1))
