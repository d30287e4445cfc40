"""Hostile files, each built here: links out of the folder, special files, decompression bombs."""

from __future__ import annotations

import os
import shutil
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from ingest.safety import Refused, admit_file, check_zip
from ingest.sources import scan_folder
from ragtune.index import KnowledgeIndex
from ragtune.retriever import Retriever

from ..conftest import KNOWLEDGE

SECRET = "root:x:0:0:root:/root:/bin/bash\nsvc-backup:x:998:998::/var/backups:/usr/sbin/nologin\n"


@pytest.fixture
def folder(tmp_path) -> Path:
    """A knowledge folder with one good file, and a secret file outside it."""
    kb = tmp_path / "kb"
    kb.mkdir()
    shutil.copy(KNOWLEDGE / "faq/billing-faq.md", kb / "good.md")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/passwd").write_text(SECRET)
    return kb


def reasons(failures) -> dict[str, str]:
    return {f.doc_id: f.reason for f in failures}


def test_a_link_out_of_the_folder_is_refused_and_never_indexed(settings, folder, embedder):
    (folder / "passwd.txt").symlink_to(folder.parent / "outside/passwd")
    if Path("/etc/passwd").is_file():
        (folder / "etc-passwd.txt").symlink_to("/etc/passwd")
    (folder / "notes").symlink_to(folder.parent / "outside", target_is_directory=True)

    items, failures = scan_folder(folder, settings.ingest)
    assert [i.doc_id for i in items] == ["good.md"]
    why = reasons(failures)
    assert "outside" in why["passwd.txt"] and "never followed" in why["passwd.txt"]
    assert "notes" in why and "outside" in why["notes"]
    if Path("/etc/passwd").is_file():
        assert "outside" in why["etc-passwd.txt"]

    # Even allowing links does not let one leave the folder.
    allowing = settings.ingest.model_copy(update={"follow_links": True})
    items, failures = scan_folder(folder, allowing)
    assert [i.doc_id for i in items] == ["good.md"] and "passwd.txt" in reasons(failures)

    report = run_ingest(settings, *scan_folder(folder, settings.ingest), embedder=embedder, source=str(folder))
    assert report.added == ["good.md"] and report.exit_code == 1
    index = KnowledgeIndex(settings)
    chunks = index.read_chunks(index.current_version())
    assert not any("root:x:0:0" in c.text or "nologin" in c.text for c in chunks)
    hits = Retriever(index, embedder, settings.retrieval).search("root daemon nologin bin bash", top_k=5).hits
    assert all(h.chunk.doc_id == "good.md" for h in hits)


def test_links_inside_the_folder_are_read_only_when_allowed(settings, folder):
    (folder / "sub").mkdir()
    (folder / "sub/page.md").write_text("# Page\n\nInvoices are emailed on the first of the month.\n")
    (folder / "alias.md").symlink_to(folder / "sub/page.md")
    (folder / "sub-link").symlink_to(folder / "sub", target_is_directory=True)

    items, failures = scan_folder(folder, settings.ingest)
    assert sorted(i.doc_id for i in items) == ["good.md", "sub/page.md"]
    why = reasons(failures)
    assert set(why) == {"alias.md", "sub-link"} and "ingest.follow_links" in why["alias.md"]

    allowing = settings.ingest.model_copy(update={"follow_links": True})
    items, failures = scan_folder(folder, allowing)
    # The linked file is read; the linked folder is not walked twice (its target is scanned as itself).
    assert sorted(i.doc_id for i in items) == ["alias.md", "good.md", "sub/page.md"] and not failures
    assert "first of the month" in items[0].load().sections[0].text


def test_a_fifo_is_refused_without_blocking(settings, folder):
    os.mkfifo(folder / "pipe.txt")  # opening it for reading would wait for a writer forever
    started = time.perf_counter()
    items, failures = scan_folder(folder, settings.ingest)
    assert time.perf_counter() - started < 5
    assert [i.doc_id for i in items] == ["good.md"]
    assert "not a regular file" in reasons(failures)["pipe.txt"]


def test_a_file_swapped_for_a_link_after_the_scan_is_refused_at_parse_time(settings, folder):
    items, _ = scan_folder(folder, settings.ingest)
    (folder / "good.md").unlink()
    (folder / "good.md").symlink_to(folder.parent / "outside/passwd")
    with pytest.raises(Refused, match="outside"):
        items[0].load()


def test_a_file_edited_after_the_scan_is_not_indexed_under_the_old_hash(settings, folder):
    items, _ = scan_folder(folder, settings.ingest)
    (folder / "good.md").write_text("# Changed\n\nSomething else entirely about shipping.\n")
    with pytest.raises(Exception, match="changed while it was being ingested"):
        items[0].load()


# ---- decompression bombs ------------------------------------------------------------------


def write_docx_bomb(path: Path, inflated_mb: int) -> None:
    """A real docx (the bundled one's parts) whose word/document.xml inflates to `inflated_mb` of zeros."""
    with (
        zipfile.ZipFile(KNOWLEDGE / "policies/privacy-policy.docx") as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bomb,
    ):
        for info in source.infolist():
            if info.filename != "word/document.xml":
                bomb.writestr(info.filename, source.read(info))
        with bomb.open("word/document.xml", "w") as stream:
            zeros = b"\0" * (1 << 20)
            for _ in range(inflated_mb):
                stream.write(zeros)


def lie_about_size(path: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size of `member` in the local and central headers to `size`."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1:
        name_len = struct.unpack_from("<H", data, local + 26)[0]
        if data[local + 30 : local + 30 + name_len] == name:
            struct.pack_into("<I", data, local + 22, size)
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_len] == name:
            struct.pack_into("<I", data, central + 24, size)
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def refused_quickly(path: Path, root: Path, settings) -> tuple[str, float, int]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(Refused) as caught:
            admit_file(path, root, settings.ingest)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(caught.value), seconds, peak


def test_a_docx_bomb_is_refused_from_its_directory_in_well_under_a_second(settings, folder, embedder):
    bomb = folder / "bomb.docx"
    write_docx_bomb(bomb, inflated_mb=300)
    assert bomb.stat().st_size < 1_000_000  # small on disk: the size limit alone would let it through

    reason, seconds, peak = refused_quickly(bomb, folder, settings)
    assert "decompression bomb" in reason and "ingest.max_unzipped_mb" in reason
    assert seconds < 0.5 and peak < 10 * 2**20

    report = run_ingest(settings, *scan_folder(folder, settings.ingest), embedder=embedder, source=str(folder))
    assert report.added == ["good.md"]
    assert "decompression bomb" in reasons(report.failed)["bomb.docx"]


def test_a_bomb_whose_header_lies_about_its_size_is_caught_while_inflating(settings, folder):
    bomb = folder / "liar.docx"
    write_docx_bomb(bomb, inflated_mb=60)
    lie_about_size(bomb, "word/document.xml", 4000)
    with zipfile.ZipFile(bomb) as archive:  # the directory now looks harmless
        assert archive.getinfo("word/document.xml").file_size == 4000
        assert sum(i.file_size for i in archive.infolist()) < settings.ingest.max_unzipped_mb * 2**20

    reason, seconds, peak = refused_quickly(bomb, folder, settings)
    assert "word/document.xml" in reason and "decompression bomb" in reason
    assert seconds < 1 and peak < 10 * 2**20


def test_a_high_ratio_entry_is_refused_even_under_the_total_limit(settings, tmp_path):
    path = tmp_path / "ratio.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * (20 << 20))  # 20 MB that deflates ~1000:1
    with pytest.raises(Refused, match=r"inflates \d+:1, over the 100:1 limit"):
        check_zip(path.read_bytes(), settings.ingest)
    lenient = settings.ingest.model_copy(update={"max_compression_ratio": 5000})
    check_zip(path.read_bytes(), lenient)  # within every limit: accepted


def test_too_many_entries_are_refused(settings, tmp_path):
    path = tmp_path / "many.docx"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(50):
            archive.writestr(f"part{i}.xml", b"<x/>")
    few = settings.ingest.model_copy(update={"max_zip_entries": 20})
    with pytest.raises(Refused, match="50 entries, over the 20 limit"):
        check_zip(path.read_bytes(), few)


def test_a_real_docx_passes_every_check(settings):
    data = admit_file(KNOWLEDGE / "policies/privacy-policy.docx", KNOWLEDGE, settings.ingest)
    assert data == (KNOWLEDGE / "policies/privacy-policy.docx").read_bytes()
