"""`ragtune doctor`: is this installation ready to serve? Each check says ok, warn or FAIL, and a
failure says how to fix it. Any failure exits 1; `--json` prints the same as one object.

Checks, in order: settings (do they load), the data directory (writable, free space), the index,
the embedding model, the answer engine (its self-check), Ollama (reachable, has the model; only
when the engine is Ollama), the Chroma server (only when chroma.url is set), the conversation
store (store.url, or the SQLite file) and the API keys (a server bound beyond loopback needs them).
Heavy packages are imported inside the checks, so `ragtune doctor --check keys` is quick.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from ragtune.errors import RagtuneError
from ragtune.settings import Settings

# Free space in the data directory: below WARN a large ingest may not fit; below FAIL even a
# conversation store or the next index version may not.
FREE_WARN_MB = 1024
FREE_FAIL_MB = 100
MIN_KEY_CHARS = 24
KEY_FIX = (
    'add a key: RAGTUNE_AUTH__ADMIN_KEYS=\'[{"name": "ops", "key": "..."}]\' with a key from '
    '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
)

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


def check_settings(load: Callable[[], Settings]) -> tuple[Settings | None, Check]:
    try:
        settings = load()
    except RagtuneError as exc:
        fix = "correct the setting named above in the settings file or its RAGTUNE_ variable; `ragtune config --docs` describes each"
        return None, Check("settings", "fail", str(exc), fix)
    return settings, Check("settings", "ok", "loaded")


def check_data_dir(settings: Settings, warn_below_mb: float | None = None, fail_below_mb: float | None = None) -> Check:
    warn_mb = FREE_WARN_MB if warn_below_mb is None else warn_below_mb
    fail_mb = FREE_FAIL_MB if fail_below_mb is None else fail_below_mb
    folder = Path(settings.data_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return Check(
            "data_dir",
            "fail",
            f"{folder} is not writable ({exc.strerror or exc})",
            "make it writable for the user running ragtune, or point RAGTUNE_DATA_DIR (data_dir) at a writable folder",
        )
    free_mb = shutil.disk_usage(folder).free // 2**20
    if free_mb < fail_mb:
        return Check(
            "data_dir",
            "fail",
            f"{folder}: only {free_mb} MB free (at least {fail_mb:g} MB needed)",
            "free disk space or move data_dir",
        )
    if free_mb < warn_mb:
        return Check(
            "data_dir",
            "warn",
            f"{folder}: {free_mb} MB free (under {warn_mb:g} MB; a large ingest may not fit)",
            "free disk space",
        )
    return Check("data_dir", "ok", f"{folder} writable, {free_mb} MB free")


def check_index(settings: Settings) -> Check:
    from ragtune.index import KnowledgeIndex

    manifest = KnowledgeIndex(settings).current_manifest()
    if manifest is None:
        return Check("index", "fail", f"no index published in {settings.data_dir}", "run `ragtune ingest`")
    return Check("index", "ok", f"version {manifest.version}: {len(manifest.documents)} documents, {manifest.chunk_count} chunks")


def check_embedding(settings: Settings) -> Check:
    from ragtune.embedding import Embedder

    embedder = Embedder(settings.embedding)
    embedder.embed_query("doctor")
    return Check("embedding", "ok", f"{settings.embedding.model}: {embedder.dimension} dimensions")


def check_engine(settings: Settings) -> Check:
    from serve.engines.check import check_engine as engine_check

    result = engine_check(settings)
    return Check("engine", "ok" if result.ok else "fail", result.detail, result.fix)


def uses_ollama(settings: Settings) -> bool:
    engine = settings.llm.engine
    return engine == "ollama" or (engine == "auto" and bool(settings.ollama.model))


def check_ollama(settings: Settings) -> Check:
    if not uses_ollama(settings):
        return Check("ollama", "skip", "the answer engine is not Ollama")
    from ollama import Client

    host, model = settings.ollama.host, settings.ollama.model or "ragtune"
    try:
        listed = Client(host=host, timeout=min(settings.ollama.timeout_s, 10)).list()
    except Exception as exc:
        return Check(
            "ollama",
            "fail",
            f"Ollama at {host} is not reachable ({type(exc).__name__}: {exc})",
            "start Ollama (`ollama serve`, or the compose service) or set ollama.host (RAGTUNE_OLLAMA__HOST) to where it runs",
        )
    names = {m.get("model") or m.get("name") for m in listed.get("models", [])}
    if model not in names and f"{model}:latest" not in names:
        return Check("ollama", "fail", f"Ollama at {host} has no model {model!r}", f"run `ollama create {model} -f Modelfile`")
    return Check("ollama", "ok", f"Ollama at {host} answers and has {model!r}")


def check_chroma(settings: Settings) -> Check:
    url = settings.chroma.url
    if not url:
        return Check("chroma", "skip", "embedded Chroma under the data directory (chroma.url is not set)")
    from ragtune.vectorstore import open_client

    try:
        open_client(settings.chroma, Path(settings.data_dir)).heartbeat()
    except Exception as exc:
        return Check(
            "chroma",
            "fail",
            f"Chroma server at {url} is not reachable ({type(exc).__name__}: {exc})",
            "start the Chroma server (`chroma run --host 0.0.0.0 --port 8000`, or the compose service), correct chroma.url, "
            "or unset chroma.url to use the embedded Chroma",
        )
    return Check("chroma", "ok", f"Chroma server at {url} answers")


def masked(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_store(settings: Settings) -> Check:
    from serve.store.db import Database

    url = settings.store.url
    where = masked(url) if url else f"SQLite {Path(settings.data_dir) / 'conversations.sqlite3'}"
    try:
        db = Database.open(url, Path(settings.data_dir), pool_size=1)
        try:
            current, head = db.revision()
        finally:
            db.close()
    except RagtuneError as exc:
        fix = (
            "start the Postgres server and check store.url (postgresql://user:password@host:5432/db), or unset store.url "
            "to keep conversations in SQLite on this machine"
            if url and url.startswith("postgres")
            else "make the data directory writable, or set store.url"
        )
        message = str(exc).replace(url, where) if url else str(exc)  # never print the password
        return Check("store", "fail", f"{where}: {message}", fix)
    schema = (
        f"schema at the newest migration ({head})"
        if current == head
        else f"schema at {current or 'no migration yet'}, {head} is the newest: `ragtune serve` or `ragtune db upgrade` migrates it"
    )
    return Check("store", "ok", f"{where} answers; {schema}")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_keys(settings: Settings) -> Check:
    auth = getattr(settings, "auth", None)  # the `auth` section (issue 10's access control)
    widget = list(getattr(auth, "widget_keys", None) or [])
    admin = list(getattr(auth, "admin_keys", None) or [])
    host = settings.server.host
    if not widget and not admin:
        if is_loopback(host):
            return Check("keys", "ok", f"no API keys: the API is open to loopback clients only (server.host {host})")
        return Check(
            "keys",
            "fail",
            f"no API key is configured while server.host is {host}: the API would be open to the network",
            f"{KEY_FIX}; or bind server.host to 127.0.0.1",
        )
    short = [k.name for k in widget + admin if getattr(k, "key", None) and len(k.key) < MIN_KEY_CHARS]
    if short:
        return Check("keys", "fail", f"key(s) {short} have fewer than {MIN_KEY_CHARS} characters", KEY_FIX)
    detail = f"{len(widget)} widget key(s), {len(admin)} admin key(s)"
    if not admin:
        return Check(
            "keys", "warn", f"{detail}: the admin API cannot be used", "add an admin key: " + KEY_FIX.removeprefix("add a key: ")
        )
    return Check("keys", "ok", detail)


CHECKS: dict[str, Callable[[Settings], Check]] = {
    "data_dir": check_data_dir,
    "index": check_index,
    "embedding": check_embedding,
    "engine": check_engine,
    "ollama": check_ollama,
    "chroma": check_chroma,
    "store": check_store,
    "keys": check_keys,
}
NAMES = ["settings", *CHECKS]
_MARK = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}


def run_checks(load: Callable[[], Settings], only: list[str] | None = None) -> list[Check]:
    settings, loaded = check_settings(load)
    results = [loaded] if not only or "settings" in only or settings is None else []
    if settings is None:
        return results
    for name in only or list(CHECKS):
        if name == "settings":
            continue
        try:
            results.append(CHECKS[name](settings))
        except RagtuneError as exc:
            results.append(Check(name, "fail", str(exc)))
        except Exception as exc:  # a check that breaks is a failure to report, not a traceback
            results.append(Check(name, "fail", f"{type(exc).__name__}: {exc}"))
    return results


def cmd_doctor(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    results = run_checks(load, args.check)
    failed = any(c.status == "fail" for c in results)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in results]}, indent=1))
    else:
        for c in results:
            print(f"{_MARK[c.status]} {c.name}: {c.detail}" + (f"\n     fix: {c.fix}" if c.fix and c.status != "ok" else ""))
    return 1 if failed else 0
