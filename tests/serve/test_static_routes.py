"""The front-end files over HTTP: content types, ETags and 304s, gzip, the pages' strict CSP,
the demo page's escaping of its options, the widget's size budget and packaging."""

from __future__ import annotations

import gzip
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest
import tomllib

from serve.routes.static import PAGE_CSP

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "serve" / "static"
PLAIN = {"Accept-Encoding": "identity"}


@pytest.fixture
def client(make_client, knowledge_index):
    settings, _ = knowledge_index
    return make_client(settings.model_copy(update={"llm": settings.llm.model_copy(update={"engine": "none"})}), engine=None)


def test_widget_script_is_served_with_type_etag_and_cache_policy(client):
    response = client.get("/widget.js", headers=PLAIN)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "content-encoding" not in response.headers
    assert response.content == (STATIC / "widget.js").read_bytes()
    etag = response.headers["etag"]

    again = client.get("/widget.js", headers=PLAIN | {"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get("/widget.js", headers=PLAIN | {"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get("/widget.js", headers=PLAIN | {"If-None-Match": '"stale"'}).status_code == 200
    assert client.head("/widget.js", headers=PLAIN).status_code == 200


def test_gzip_is_a_separate_variant_with_its_own_etag(client):
    plain = client.get("/widget.js", headers=PLAIN)
    zipped = client.get("/widget.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    assert zipped.content == plain.content  # httpx inflates it
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert (
        client.get("/widget.js", headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]}).status_code == 304
    )


def test_widget_stays_a_few_kilobytes():
    body = (STATIC / "widget.js").read_bytes()
    assert len(body) < 24_000, len(body)
    assert len(gzip.compress(body, 9)) < 8_000


@pytest.mark.parametrize("path", ["/demo", "/admin"])
def test_pages_have_a_strict_content_security_policy(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert "unsafe" not in PAGE_CSP and "default-src 'none'" in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-cache"
    page = response.text
    # Nothing inline that the policy would block: every script has a src, no style blocks or attributes.
    assert not re.search(r"<script(?![^>]*\ssrc=)", page)
    assert "<style" not in page and not re.search(r"\sstyle=", page) and not re.search(r"\son[a-z]+=", page)


def test_demo_page_turns_query_options_into_escaped_widget_attributes(client):
    page = client.get("/demo", params={"key": "wk_123", "lang": "de", "title": '"><script>alert(1)</script>', "onload": "x"}).text
    tag = re.search(r"<script src=\"/widget.js\"[^>]*></script>", page)
    assert tag, page
    assert 'data-key="wk_123"' in tag.group(0) and 'data-lang="de"' in tag.group(0)
    assert 'data-title="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in tag.group(0)
    assert "onload" not in page and "<script>alert" not in page
    assert 'data-contact="support@northwind.example"' in client.get("/demo").text  # the default contact
    # Each rendering has its own ETag.
    assert client.get("/demo").headers["etag"] != client.get("/demo?lang=de").headers["etag"]


def test_static_files_are_listed_and_nothing_else_is_served(client):
    for name, kind in [("admin.js", "text/javascript"), ("admin.css", "text/css"), ("demo.css", "text/css")]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
        assert response.headers["etag"]
    for name in ["widget.py", "demo.html", "..%2Fapp.py", "nope.js"]:
        response = client.get(f"/static/{name}")
        assert response.status_code == 404
        assert response.json()["error"] in {"NotFoundError", "NotFound"}


def test_front_ends_never_build_html_from_strings():
    for name in ["widget.js", "admin.js"]:
        source = (STATIC / name).read_text(encoding="utf-8")
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            'setAttribute("on',
        ]:
            assert sink not in source, (name, sink)


def test_static_files_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["serve"]
    files = [p.relative_to(ROOT / "serve").as_posix() for p in STATIC.iterdir() if p.is_file()]
    assert files
    for name in files:
        assert any(fnmatch(name, pattern) for pattern in patterns), name
