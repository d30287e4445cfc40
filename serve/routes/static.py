"""The browser front ends, served by the API itself (plain files, no build step, no CDN).

`/widget.js` is the support widget a company adds to its pages with one script tag; `/demo` a
sample company page with the widget on it; `/admin` the admin console (the page is open, its API
calls need the admin key). The files are package data in serve/static/, read once per process.
Every response carries its content type, an ETag (a matching If-None-Match gets a 304), a cache
policy and, where the browser accepts it, gzip. The pages get a strict Content-Security-Policy:
scripts, styles and API calls from this origin only, no inline script or style, no framing.
"""

from __future__ import annotations

import gzip
import hashlib
import html
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ragtune.errors import NotFoundError

router = APIRouter(include_in_schema=False)

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
MEDIA_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "html": "text/html; charset=utf-8"}
# Files under /static/: the console's and the demo page's own script and styles.
STATIC_FILES = ("admin.js", "admin.css", "demo.css")
# The widget is fetched by every page of a customer's site; its URL carries no version, so caches
# keep it briefly and then revalidate cheaply with the ETag.
WIDGET_CACHE = "public, max-age=300"
# /demo?key=...&lang=de: query parameters that become the widget's data-* attributes.
DEMO_OPTIONS = ("key", "title", "lang", "strings", "contact", "accent", "accent-text", "position", "open")
DEMO_DEFAULTS = {"title": "Northwind Cloud support", "contact": "support@northwind.example"}
DEMO_SLOT = b"<!-- widget -->"
KEY_NOTE_SLOT = b"<!-- key note -->"
# Shown on /demo when the server checks keys and the page was opened without one: the widget would
# only tell a customer that the chat is unavailable (the reason goes to the browser console).
KEY_NOTE = (
    b'<p class="note key-note" role="note"><strong>This server requires API keys.</strong> The widget on this page '
    b"needs one: open <code>/demo?key=WIDGET_KEY</code> with a widget key from <code>auth.widget_keys</code> (this page "
    b"comes from the API itself, so the key's origins need not list it). Without it the chat answers "
    b"&ldquo;not available&rdquo;, and the browser console says why.</p>"
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    etag: str  # strong, quoted; the gzip variant appends -gz


def make_asset(body: bytes, media_type: str) -> Asset:
    digest = hashlib.sha256(body).hexdigest()[:24]
    return Asset(body, gzip.compress(body, 9, mtime=0), media_type, f'"{digest}"')


@lru_cache(maxsize=16)
def static_asset(name: str) -> Asset:
    body = resources.files("serve").joinpath("static", name).read_bytes()
    return make_asset(body, MEDIA_TYPES[name.rsplit(".", 1)[-1]])


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def send(request: Request, asset: Asset, cache_control: str, headers: dict[str, str] | None = None) -> Response:
    gz = "gzip" in request.headers.get("accept-encoding", "").lower()
    etag = asset.etag[:-1] + '-gz"' if gz else asset.etag
    out = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff"}
    out |= headers or {}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=out)
    if gz:
        out["Content-Encoding"] = "gzip"
    return Response(asset.gzipped if gz else asset.body, media_type=asset.media_type, headers=out)


def demo_page(query: dict[str, str], keys_required: bool = False) -> Asset:
    """demo.html with the widget's script tag, its data-* attributes taken from the query (escaped),
    and, when the server checks keys and the query brings none, a note saying how to give one."""
    options = DEMO_DEFAULTS | {name: value for name, value in query.items() if name in DEMO_OPTIONS and value}
    attributes = "".join(f' data-{name}="{html.escape(value, quote=True)}"' for name, value in options.items())
    tag = f'<script src="/widget.js"{attributes} defer></script>'.encode()
    note = KEY_NOTE if keys_required and "key" not in options else b""
    body = static_asset("demo.html").body.replace(DEMO_SLOT, tag).replace(KEY_NOTE_SLOT, note)
    return make_asset(body, MEDIA_TYPES["html"])


@router.api_route("/widget.js", methods=["GET", "HEAD"])
async def widget(request: Request) -> Response:
    # Pages that isolate themselves (Cross-Origin-Embedder-Policy) may still load it.
    return send(request, static_asset("widget.js"), WIDGET_CACHE, {"Cross-Origin-Resource-Policy": "cross-origin"})


@router.api_route("/demo", methods=["GET", "HEAD"])
async def demo(request: Request) -> Response:
    keys_required = not request.app.state.access.open
    return send(request, demo_page(dict(request.query_params), keys_required), "no-cache", PAGE_HEADERS)


@router.api_route("/admin", methods=["GET", "HEAD"])
async def admin(request: Request) -> Response:
    return send(request, static_asset("admin.html"), "no-cache", PAGE_HEADERS)


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
async def static_file(name: str, request: Request) -> Response:
    if name not in STATIC_FILES:
        raise NotFoundError(f"no static file {name!r}; there are: {', '.join(STATIC_FILES)}")
    return send(request, static_asset(name), "no-cache")
