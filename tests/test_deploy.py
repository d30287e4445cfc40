"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the compose file is parsed
and interpolated as Compose does it, every service is health-checked or a one-shot the API waits for,
the environment is valid ragtune settings that point at the services, and the Chroma health probe
(bash only: the image has no curl) is run against a real Chroma server."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import tomllib
import yaml

from ragtune.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$ for a literal $."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op and op.endswith("?") and unset:
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return arg
        return current or ""

    return _VAR.sub(one, value)


def compose(env: dict[str, str]) -> dict:
    return interpolate(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), env)


ENV = {
    "POSTGRES_PASSWORD": "pg-Zq3v8Kp1Lr7Tn2Wx",
    "RAGTUNE_ADMIN_KEY": "Hc4Md6Fg0JsZq3v8Kp1Lr7Tn2Wx5Yb9",
    "RAGTUNE_WIDGET_KEY": "Wx5Yb9Hc4Md6Fg0JsZq3v8Kp1Lr7Tn2",
    "RAGTUNE_WIDGET_ORIGIN": "https://shop.example",
}
ONE_SHOTS = {"ingest", "ollama-create"}


@pytest.mark.parametrize("missing", sorted(ENV))
def test_secrets_are_required(missing):
    with pytest.raises(KeyError, match=missing):
        compose({k: v for k, v in ENV.items() if k != missing})


def test_every_service_is_health_checked_or_a_one_shot_the_api_waits_for():
    services = compose(ENV)["services"]
    for name, service in services.items():
        if service.get("restart") == "no":
            assert name in ONE_SHOTS, f"{name} runs once but is not a known one-shot"
            assert "healthcheck" not in service
        else:
            test = service["healthcheck"]["test"]
            assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
            assert service["restart"] == "unless-stopped", name
    waits = services["api"]["depends_on"]
    assert set(waits) == set(services) - {"api"}, "the API waits for every other service"
    for name, condition in waits.items():
        expected = "service_completed_successfully" if name in ONE_SHOTS else "service_healthy"
        assert condition == {"condition": expected}, name
    # The one-shots wait for what they use.
    assert services["ingest"]["depends_on"] == {"chroma": {"condition": "service_healthy"}}
    assert services["ollama-create"]["depends_on"] == {"ollama": {"condition": "service_healthy"}}


def test_state_lives_in_declared_volumes():
    spec = compose(ENV)
    services, declared = spec["services"], set(spec["volumes"])

    def named(service: str) -> dict[str, str]:
        mounts = [v.split(":") for v in services[service].get("volumes", [])]
        return {target: source for source, target, *_ in mounts if not source.startswith(".")}

    assert named("ollama") == {"/root/.ollama": "ollama-models"}
    assert named("chroma") == {"/data": "chroma-data"} and services["chroma"]["environment"]["PERSIST_DIRECTORY"] == "/data"
    assert named("postgres") == {"/var/lib/postgresql/data": "postgres-data"}
    # The index versions ingest writes are the ones the API reads.
    assert named("api")["/data"] == named("ingest")["/data"] == "ragtune-data"
    used = {source for s in services for source in named(s).values()}
    assert used == declared


def test_the_environment_is_valid_settings_pointing_at_the_services():
    spec = compose(ENV)
    services = spec["services"]
    for name in ("api", "ingest"):
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        unknown = [k for k in env if k.startswith("RAGTUNE_") and k[8:].lower().split("__")[0] not in Settings.model_fields]
        assert not unknown, f"{name}: no such setting for {unknown}"
        settings = load_settings(environ=env, cwd=ROOT)
        chroma = urlparse(settings.chroma.url)
        assert (chroma.hostname, chroma.port) == ("chroma", 8000)
        assert urlparse(settings.ollama.host).hostname == "ollama" and settings.llm.engine == "ollama"
        store = urlparse(settings.store.url)
        pg = services["postgres"]["environment"]
        assert store.scheme == "postgresql" and store.hostname == "postgres"
        assert (store.username, store.password, store.path.lstrip("/")) == (
            pg["POSTGRES_USER"],
            ENV["POSTGRES_PASSWORD"],
            pg["POSTGRES_DB"],
        )
        assert str(settings.data_dir) == "/data"
        # Keys from the environment, taken as keys (long and random enough), and no open fallback.
        assert [k.name for k in settings.auth.admin_keys] == ["ops"]
        assert [(k.name, k.origins) for k in settings.auth.widget_keys] == [("site", ["https://shop.example"])]
        assert settings.auth.allow_unauthenticated_loopback is False
    api = load_settings(environ={k: str(v) for k, v in services["api"]["environment"].items()}, cwd=ROOT)
    assert services["api"]["ports"] == [f"{api.server.port}:{api.server.port}"] and api.server.host == "0.0.0.0"
    assert f":{api.server.port}/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert api.ollama.model == "ragtune"


def test_ollama_create_finds_the_modelfile_and_the_gguf_it_names():
    service = compose(ENV)["services"]["ollama-create"]
    mounts = {target: source for source, target, *_ in (v.split(":") for v in service["volumes"])}
    command = service["entrypoint"] + service["command"]
    assert command[:3] == ["ollama", "create", "ragtune"]  # the model name the API asks for
    modelfile = command[command.index("-f") + 1]
    assert mounts[modelfile] == "./Modelfile" and (ROOT / "Modelfile").is_file()
    source = re.search(r"^FROM (\S+)$", (ROOT / "Modelfile").read_text(), re.M).group(1)
    inside = os.path.normpath(os.path.join(os.path.dirname(modelfile), source))  # FROM is relative to the Modelfile
    folder = next(t for t in mounts if inside.startswith(t + "/"))
    assert mounts[folder] == "./models" and inside == f"{folder}/ragtune.gguf"
    assert service["environment"]["OLLAMA_HOST"] == "http://ollama:11434"


def test_the_image_holds_every_package_and_the_postgres_driver():
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.M))
    assert {p.rstrip("*") for p in packages} <= copied
    assert ".[serve,postgres]" in dockerfile


@pytest.mark.slow
def test_the_chroma_probe_passes_against_a_real_chroma_server(tmp_path):
    """The chromadb package ships the server (`chroma run`) the image runs."""
    chroma = Path(sys.executable).parent / "chroma"
    chroma = chroma if chroma.is_file() else Path(shutil.which("chroma") or "chroma")
    probe = compose(ENV)["services"]["chroma"]["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "/bin/bash", "-c"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = probe[3].replace("127.0.0.1/8000", f"127.0.0.1/{port}")

    def check() -> int:
        return subprocess.run(["bash", "-c", script], capture_output=True, timeout=10, check=False).returncode

    assert check() != 0  # nothing listening yet: unhealthy
    server = subprocess.Popen(
        [str(chroma), "run", "--path", str(tmp_path / "chroma"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while check() != 0:
            assert server.poll() is None, "chroma run exited"
            assert time.monotonic() < deadline, "the probe never passed against a running Chroma"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(10)
