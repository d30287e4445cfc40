"""A batch upload killed while its files are being renamed into place (issue 18.5): the next
`ragtune serve` completes the batch, so it is all or nothing across a crash, and a re-send of the
batch is not refused for files that half a batch left behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx

from tests.serve.admin_kb import (
    ADMIN_HEADERS,
    ROOT,
    admin_environ,
    folder_state,
    free_port,
    start_server,
    subprocess_env,
    write_kb,
)

FILES = {
    f"batch/note-{i:02d}.md": f"# Note {i}\n\nBatch note number {i} says the Zephyr desk lamp has {i} modes.\n" for i in range(45)
}

# A real process writes the batch the way the admin API does and is killed (SIGKILL, nothing runs
# after it) on the ninth rename.
WRITER = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from serve.admin.files import KnowledgeFolder
    files = {k: v.encode() for k, v in json.loads(sys.argv[2]).items()}
    real_replace, count = os.replace, [0]
    def replace(src, dst):
        count[0] += 1
        if count[0] == 9:
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst)
    os.replace = replace
    KnowledgeFolder(Path(sys.argv[1])).write_all(files)
    """
)


def test_a_batch_killed_mid_rename_is_completed_at_the_next_start(tmp_path):
    import json

    kb = write_kb(tmp_path / "kb")
    killed = subprocess.run(
        [sys.executable, "-c", WRITER, str(kb), json.dumps(FILES)], cwd=ROOT, env=subprocess_env({}), check=False
    )
    assert killed.returncode == -9
    half = folder_state(kb)
    assert 0 < sum(1 for name in half if name.startswith("batch/note-")) < len(FILES)  # killed half way

    environ = admin_environ(tmp_path / "data", kb)
    port = free_port()
    server = start_server(environ, port, tmp_path / "server.log")
    try:
        after = folder_state(kb)
        assert {name: after[name].decode() for name in FILES} == FILES  # every file of the batch, whole
        assert not [name for name in after if "/." in f"/{name}"]  # no temporary, no journal left
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=ADMIN_HEADERS) as client:
            listed = {d["doc_id"] for d in client.get("/v1/admin/documents").json()["documents"]}
            assert set(FILES) <= listed
    finally:
        server.kill()
        server.wait()


def test_a_batch_killed_before_its_journal_leaves_nothing(tmp_path):
    """Killed while the files were still being written: nothing of the batch appears."""
    import json

    kb = write_kb(tmp_path / "kb")
    before = folder_state(kb)
    writer = WRITER.replace("real_replace, count = os.replace, [0]", "real_open, count = open, [0]").replace(
        "os.replace = replace", ""
    )
    writer = writer.replace(
        "KnowledgeFolder(Path(sys.argv[1])).write_all(files)",
        "import builtins\n"
        "def opener(*a, **k):\n"
        "    count[0] += 1\n"
        "    if count[0] == 20:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real_open(*a, **k)\n"
        "builtins.open = opener\n"
        "KnowledgeFolder(Path(sys.argv[1])).write_all(files)",
    )
    killed = subprocess.run(
        [sys.executable, "-c", writer, str(kb), json.dumps(FILES)], cwd=ROOT, env=subprocess_env({}), check=False
    )
    assert killed.returncode == -9
    port = free_port()
    server = start_server(admin_environ(tmp_path / "data", kb), port, tmp_path / "server.log")
    try:
        assert folder_state(kb) == before  # the temporaries were swept, nothing was placed
    finally:
        server.kill()
        server.wait()
