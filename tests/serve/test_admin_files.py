"""The knowledge folder as the admin API writes it: names refused rather than repaired, no way out
of the folder through links, and several files written all or none."""

from __future__ import annotations

import os

import pytest

from ragtune.errors import NotFoundError, UploadRefused
from serve.admin.files import KnowledgeFolder, check_doc_id, check_name, doc_id_for


@pytest.mark.parametrize(
    "name", ["refunds.md", "Rückerstattung.md", "price list (2026).pdf", "a.b.c.txt", "console.md", "com10.md"]
)
def test_plain_names_pass(name):
    assert check_name(name) == name


def test_names_are_nfc_normalised():
    assert check_name("Cafe\u0301.md") == "Café.md"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("..", "climbs out"),
        ("../a.md", "climbs out"),
        ("a/../../b.md", "climbs out"),
        ("/etc/passwd", "absolute"),
        ("\\\\server\\share\\a.md", "absolute"),
        ("c:evil.md", "absolute"),
        ("a/b.md", "holds a folder"),
        ("a\\b.md", "holds a folder"),
        ("nul\x00.md", "control"),
        ("tab\t.md", "control"),
        ("zero\u200bwidth.md", "invisible"),
        (".env", "hidden"),
        ("aux.txt", "device name"),
        ("LPT1.md", "device name"),
        ("what?.md", "file systems refuse"),
        ("trailing.md.", "file systems refuse"),
        (" leading.md", "file systems refuse"),
        ("x" * 253 + ".md", "longer than 255"),
    ],
)
def test_unsafe_names_are_refused_with_the_reason(name, reason):
    with pytest.raises(UploadRefused, match=reason):
        check_name(name)


def test_doc_ids_and_folders():
    assert doc_id_for("a.md") == "a.md" and doc_id_for("a.md", "faq/billing") == "faq/billing/a.md"
    for folder in ("/etc", "../up", "faq/../..", ".git"):
        with pytest.raises(UploadRefused):
            doc_id_for("a.md", folder)
    # A document id names what is there (a file put in by hand may have any name); it never leaves the folder.
    assert check_doc_id("faq/a.md") == "faq/a.md" and check_doc_id("faq/CON.md") == "faq/CON.md"
    for doc_id in ("faq/../../a.md", "../a.md", "/etc/passwd", "C:/a.md", "faq//a.md", "faq/.git/config", "a\x00.md", ""):
        with pytest.raises(NotFoundError):
            check_doc_id(doc_id)


def test_links_never_lead_a_write_out_of_the_folder(tmp_path):
    root, outside = tmp_path / "kb", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.md").write_text("secret")
    os.symlink(outside, root / "linked")
    os.symlink(outside / "secret.md", root / "secret.md")
    folder = KnowledgeFolder(root)
    with pytest.raises(UploadRefused, match="link"):
        folder.write_all({"linked/new.md": b"# x"})
    with pytest.raises(UploadRefused, match="link"):
        folder.write_all({"secret.md": b"overwritten"})
    with pytest.raises(UploadRefused, match="link"):
        folder.delete("secret.md")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.md"] and (outside / "secret.md").read_text() == "secret"
    with pytest.raises(NotFoundError):
        folder.delete("missing.md")


def test_several_files_are_written_all_or_none(tmp_path):
    root = tmp_path / "kb"
    root.mkdir()
    (root / "blocked").write_text("a file where a folder would go")
    folder = KnowledgeFolder(root)
    with pytest.raises(UploadRefused):
        folder.write_all({"first.md": b"# first", "blocked/second.md": b"# second"})
    assert sorted(p.name for p in root.iterdir()) == ["blocked"]  # neither file, no temporary

    folder.write_all({"faq/first.md": b"# first", "second.md": b"# second"})
    assert [f.doc_id for f in folder.files()] == ["blocked", "faq/first.md", "second.md"]
    assert (root / "faq/first.md").read_bytes() == b"# first"
    assert not [p for p in root.rglob(".*")]
