"""The knowledge folder as the admin API sees it: safe names, safe paths, atomic writes.

Uploaded documents land in `ingest.source_dir`, the folder `ragtune ingest` reads, so it stays the
one source of truth. A document's id is its path relative to that folder with `/` separators
(what ingestion uses). Names coming from a client are refused, never repaired, when they could
reach outside the folder or hide in it: folders in a name, `..`, absolute paths, control and
invisible format characters, Windows device names, hidden files. A file is written under a hidden
temporary name in its final folder (ingestion skips hidden names), flushed to disk, then renamed:
readers see the old file or the new one, never half of one. A batch is all or nothing across a
crash: once every file is written, a journal listing the renames is written (and flushed) before
the first rename; the next start completes the renames of a journal it finds, and removes
temporaries no journal names (a batch killed before it was committed).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from ragtune.errors import NotFoundError, UploadRefused
from ragtune.folders import visible_entries
from serve.store.jobs import pid_alive

TEMP_PREFIX = ".ragtune-upload."
# Written once every file of a batch is on disk under its temporary name, removed once all are renamed:
# a start-up that finds one completes the renames (the batch was committed), so a batch is all or nothing.
JOURNAL_PREFIX = ".ragtune-upload-journal."
MAX_NAME_BYTES = 255
# CON, PRN, ... are devices on Windows whatever the extension ("con.md" opens the console).
DEVICE_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(10)}
)
_WINDOWS_RESERVED = re.compile(r'[<>:"|?*]')
_DRIVE = re.compile(r"^[A-Za-z]:")


def check_name(name: str, what: str = "file name") -> str:
    """The name, NFC-normalised, if it is one plain, visible, portable path segment; else UploadRefused."""
    name = unicodedata.normalize("NFC", name)
    if not name or not name.strip():
        raise UploadRefused(f"empty {what}")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise UploadRefused(f"{what} {name!r} is an absolute path; send a plain name like 'refunds.md'")
    if ".." in re.split(r"[/\\]", name):
        raise UploadRefused(f"{what} {name!r} climbs out of its folder ('..'); send a plain name like 'refunds.md'")
    if "/" in name or "\\" in name:
        raise UploadRefused(f"{what} {name!r} holds a folder; send a plain name (use the `folder` field for a subfolder)")
    bad = next((c for c in name if unicodedata.category(c).startswith("C")), None)
    if bad is not None:
        raise UploadRefused(f"{what} {name!r} holds a control or invisible character (U+{ord(bad):04X})")
    if name.startswith("."):
        raise UploadRefused(f"{what} {name!r} is hidden (starts with '.'); ingestion skips hidden files")
    if _WINDOWS_RESERVED.search(name) or name.endswith((".", " ")) or name != name.strip():
        raise UploadRefused(f'{what} {name!r} has characters file systems refuse (<>:"|?*, or a leading/trailing space or dot)')
    if name.split(".")[0].upper() in DEVICE_NAMES:
        raise UploadRefused(f"{what} {name!r} is a device name on Windows; rename the file")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UploadRefused(f"{what} is longer than {MAX_NAME_BYTES} bytes")
    return name


def doc_id_for(name: str, folder: str | None = None) -> str:
    """The document id an upload named `name` (into the optional subfolder `folder`) gets."""
    parts: list[str] = []
    if folder:
        if folder.startswith(("/", "\\")) or _DRIVE.match(folder):
            raise UploadRefused(f"folder {folder!r} is an absolute path; give one relative to the knowledge folder, like 'faq'")
        parts = [check_name(p, "folder name") for p in folder.rstrip("/").split("/")]
    return "/".join([*parts, check_name(name)])


def check_doc_id(doc_id: str) -> str:
    """A document id from a URL, if it can name a document: a relative path inside the folder with
    no `..`, empty or hidden segment (ingestion skips hidden names). The id of a file someone put in
    the folder by hand may break the naming rules for uploads (a device name, a control character)
    and is still a document that can be replaced or deleted; what can never be one is NotFoundError."""
    parts = doc_id.split("/")
    if (
        not doc_id
        or doc_id.startswith("/")
        or _DRIVE.match(doc_id)
        or "\x00" in doc_id
        or any(
            p in ("", ".", "..") or p.startswith(".") or len(p.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES for p in parts
        )
    ):
        raise NotFoundError(
            f"{doc_id!r} is not a document id (a path inside the knowledge folder, like 'faq/billing.md', with no '..' "
            "or hidden part); GET /v1/admin/documents lists them"
        )
    return doc_id


@dataclass
class FolderFile:
    doc_id: str
    size: int
    modified_at: float


class KnowledgeFolder:
    """Paths, writes and listing inside `root` (ingest.source_dir)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path_for(self, doc_id: str) -> Path:
        """Where `doc_id` lives; refused when a folder on the way is a link or a file, or the target
        is not a regular file (a link, a folder, a device), so a write can never leave the folder."""
        doc_id = check_doc_id(doc_id)
        current = self.root
        for part in doc_id.split("/")[:-1]:
            current = current / part
            if current.is_symlink() or (current.exists() and not current.is_dir()):
                raise UploadRefused(f"{doc_id}: {part!r} in the knowledge folder is a link or a file, not a folder")
        target = current / doc_id.split("/")[-1]
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise UploadRefused(f"{doc_id} is a link or not a regular file in the knowledge folder; it is not replaced")
        return target

    def existing(self, doc_id: str) -> Path:
        target = self.path_for(doc_id)
        if not target.is_file():
            raise NotFoundError(
                f"no document {doc_id!r} in the knowledge folder ({self.root}); GET /v1/admin/documents lists them"
            )
        return target

    def write_all(self, files: dict[str, bytes]) -> None:
        """Write every file or none: all to temporary names first, then a journal of the renames, then
        each renamed into place; a crash after the journal is completed at the next start."""
        temps: list[tuple[Path, Path]] = []
        try:
            for doc_id, data in files.items():
                target = self.path_for(doc_id)
                target.parent.mkdir(parents=True, exist_ok=True)
                temp = target.parent / f"{TEMP_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
                temps.append((temp, target))
                with open(temp, "xb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            for folder in {temp.parent for temp, _ in temps}:
                _fsync_dir(folder)
            journal = self._write_journal(temps)
        except BaseException:
            for temp, _ in temps:
                temp.unlink(missing_ok=True)
            raise
        for temp, target in temps:
            os.replace(temp, target)
        for folder in {target.parent for _, target in temps}:
            _fsync_dir(folder)
        journal.unlink()

    def _write_journal(self, temps: list[tuple[Path, Path]]) -> Path:
        journal = self.root / f"{JOURNAL_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        moves = [[t.relative_to(self.root).as_posix(), g.relative_to(self.root).as_posix()] for t, g in temps]
        with open(journal, "x", encoding="utf-8") as handle:
            json.dump({"moves": moves}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(self.root)
        return journal

    def complete_journals(self) -> list[str]:
        """Finish the renames of batches a stopped process committed (at start); the doc ids placed."""
        placed: list[str] = []
        for journal in sorted(self.root.glob(f"{JOURNAL_PREFIX}*")):
            writer_host, _, rest = journal.name[len(JOURNAL_PREFIX) :].rpartition(".")[0].rpartition(".")
            if writer_host != socket.gethostname() or not rest.isdigit() or (int(rest) != os.getpid() and pid_alive(int(rest))):
                continue  # another host's, or a live writer's: not ours to finish
            try:
                moves = json.loads(journal.read_text(encoding="utf-8"))["moves"]
            except (OSError, ValueError, KeyError):
                continue  # a journal cut short was never committed: its temporaries are swept below
            for temp_rel, doc_id in moves:
                temp = self.root / temp_rel
                if temp.is_file() and not temp.is_symlink() and Path(temp_rel).name.startswith(TEMP_PREFIX):
                    os.replace(temp, self.path_for(doc_id))
                    placed.append(doc_id)
            for folder in {(self.root / doc_id).parent for _, doc_id in moves}:
                _fsync_dir(folder)
            journal.unlink()
        return placed

    def delete(self, doc_id: str) -> None:
        target = self.existing(doc_id)
        target.unlink()
        _fsync_dir(target.parent)

    def files(self) -> list[FolderFile]:
        """Every visible regular file below the root, links not followed (what ingestion scans)."""
        found: list[FolderFile] = []
        for entry in visible_entries(self.root):
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                found.append(FolderFile(Path(entry.path).relative_to(self.root).as_posix(), info.st_size, info.st_mtime))
        return sorted(found, key=lambda f: f.doc_id)

    def sweep_temporaries(self) -> list[Path]:
        """Remove upload temporaries whose writer on this host is gone (killed mid-upload)."""
        host, removed = socket.gethostname(), []
        for folder, _dirs, names in os.walk(self.root):
            for name in names:
                if not name.startswith(TEMP_PREFIX):
                    continue
                writer_host, _, rest = name[len(TEMP_PREFIX) :].rpartition(".")[0].rpartition(".")
                if writer_host == host and rest.isdigit() and (int(rest) == os.getpid() or not pid_alive(int(rest))):
                    with contextlib.suppress(OSError):
                        (Path(folder) / name).unlink()
                        removed.append(Path(folder) / name)
        return removed


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
