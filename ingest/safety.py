"""What ingestion refuses to read, checked before any parser sees a byte.

Every way a file enters the index goes through `admit_file` (the folder scan today, an upload
path later): the file's real path must lie inside the root it was found under (a link to
/etc/passwd is not a document), it must be a regular file of a supported type within the size
limit, it is read with a bounded read, and a zip-based format (docx, and pptx/xlsx/epub/odt when
they come) must pass `check_zip` before a parser opens it. Each refusal is a `Refused` (a
`ParseError`) with a reason a person can act on; docs/ingestion-safety.md lists them.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path

from ingest.parsers import PARSERS, ParseError
from ragtune.settings import IngestSettings

ZIP_SUFFIXES = frozenset({".docx", ".pptx", ".xlsx", ".epub", ".odt", ".ods", ".odp"})
# Entries smaller than this when inflated are not held to the ratio limit: tiny, highly
# repetitive XML parts legitimately compress far better than 100:1 and cost nothing to inflate.
RATIO_GRACE_BYTES = 1 << 20
_READ_STEP = 1 << 16


class Refused(ParseError):
    """A file ingestion will not read (outside the root, not a regular file, a bomb, too large)."""


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


def resolve_inside(path: Path, root: Path, allow_links: bool) -> Path:
    """The real path of `path`, if reading it is allowed; raise `Refused` otherwise.

    A path whose real location is outside the (real) root is always refused; a path that goes
    through a link anywhere below the root is refused unless `allow_links` (the link must then
    still end inside the root).
    """
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        return _refuse(f"is a link to {real}, outside {real_root}; links out of the folder are never followed")
    if not allow_links:
        # Any link on the way (the file itself or a folder above it) is refused: the path a
        # person sees in the folder must be the file that is read.
        rel = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(root)))
        current = Path(os.path.abspath(root))
        for part in rel.parts:
            current = current / part
            if current.is_symlink():
                return _refuse(f"is a link (to {real}); set ingest.follow_links = true to read links that stay inside the folder")
    return real


def _refuse(reason: str):
    raise Refused(reason)


def read_checked(path: Path, root: Path, settings: IngestSettings) -> bytes:
    """Read a file from under `root` after the path, type and size checks (no content checks)."""
    real = resolve_inside(path, root, settings.follow_links)
    suffix = path.suffix.lower()
    allowed = {e.lower() for e in settings.extensions} & set(PARSERS)
    if suffix not in allowed:
        raise Refused(f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(allowed))}")
    limit = int(settings.max_file_mb * 1024 * 1024)
    try:
        # O_NOFOLLOW: the resolved path cannot have been swapped for a link since it was checked.
        # O_NONBLOCK: opening a FIFO must not hang the run (it is refused just below).
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise Refused(f"cannot read file: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused("is not a regular file (a device, FIFO or socket); only files are read")
        if info.st_size > limit:
            raise Refused(f"file is {_mb(info.st_size)}, over the {settings.max_file_mb:g} MB limit (ingest.max_file_mb)")
        # Bounded by the size just checked (read(n) reserves n bytes up front, so not by the limit):
        # a file that grows meanwhile is not read whole.
        data = handle.read(info.st_size + 1)
    if len(data) > info.st_size:
        raise Refused("file grew while it was being read; run the ingest again once it is written")
    if not data:
        raise Refused("file is empty")
    return data


def check_zip(data: bytes, settings: IngestSettings, kind: str = "zip") -> None:
    """Refuse a zip container whose inflated content would be too large (a decompression bomb).

    Two stages: the central directory's declared sizes (entry count, total, ratio per entry) are
    checked without inflating anything; then every entry is inflated in small steps, counting
    the real bytes, so a header that lies about the size is caught with bounded memory.
    """
    max_total = int(settings.max_unzipped_mb * 1024 * 1024)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ParseError(f"corrupt or unreadable {kind} ({exc})") from exc
    with archive:
        entries = archive.infolist()
        if len(entries) > settings.max_zip_entries:
            raise Refused(
                f"{kind} holds {len(entries)} entries, over the {settings.max_zip_entries} limit (ingest.max_zip_entries)"
            )
        declared = sum(e.file_size for e in entries)
        if declared > max_total:
            raise Refused(
                f"{kind} would inflate to {_mb(declared)}, over the {settings.max_unzipped_mb:g} MB limit "
                "(ingest.max_unzipped_mb): a decompression bomb or an oversized document"
            )
        for entry in entries:
            _check_ratio(entry, entry.file_size, settings, kind)
        inflated = 0
        for entry in entries:
            if entry.is_dir():
                continue
            seen = 0
            try:
                with archive.open(entry) as stream:
                    while chunk := stream.read(_READ_STEP):
                        seen += len(chunk)
                        inflated += len(chunk)
                        if seen > entry.file_size or inflated > max_total:
                            raise Refused(
                                f"{kind} entry {entry.filename} inflates past its declared size or the "
                                f"{settings.max_unzipped_mb:g} MB limit (ingest.max_unzipped_mb): a decompression bomb"
                            )
                        _check_ratio(entry, seen, settings, kind)
            except Refused:
                raise
            except zipfile.BadZipFile as exc:
                if "CRC" in str(exc):  # Python's zipfile stops at the declared size; the rest fails the checksum
                    raise Refused(
                        f"{kind} entry {entry.filename} does not match its header (size or checksum): "
                        "corrupt, or a decompression bomb that lies about its size"
                    ) from exc
                raise ParseError(f"corrupt or unreadable {kind}: entry {entry.filename} ({exc})") from exc
            except (zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, ValueError, RuntimeError) as exc:
                # RuntimeError: an encrypted entry; NotImplementedError: an unknown compression method
                raise ParseError(f"corrupt or unreadable {kind}: entry {entry.filename} ({exc})") from exc


def _check_ratio(entry: zipfile.ZipInfo, inflated: int, settings: IngestSettings, kind: str) -> None:
    if inflated <= RATIO_GRACE_BYTES:
        return
    ratio = inflated / max(entry.compress_size, 1)
    if ratio > settings.max_compression_ratio:
        raise Refused(
            f"{kind} entry {entry.filename} inflates {ratio:.0f}:1, over the {settings.max_compression_ratio:g}:1 "
            "limit (ingest.max_compression_ratio): a decompression bomb"
        )


def check_content(data: bytes, suffix: str, settings: IngestSettings) -> None:
    """Content checks that need no parser: today the zip-container limits."""
    suffix = suffix.lower()
    if suffix in ZIP_SUFFIXES:
        check_zip(data, settings, kind=suffix.lstrip(".").upper())


def admit_file(path: Path, root: Path, settings: IngestSettings) -> bytes:
    """Every check ingestion makes before parsing; the bytes to parse, or `Refused`.

    The one entry point for any new way of bringing files in (an upload writes the file under
    its own root, then calls this).
    """
    data = read_checked(path, root, settings)
    check_content(data, path.suffix, settings)
    return data
