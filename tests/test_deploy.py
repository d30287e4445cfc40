"""docker-compose.yml (the bundled model), docker-compose.ollama.yml (a tuned model through Ollama) and
the Dockerfile, checked without a Docker engine: Docker Compose itself (Debian's `docker-compose`,
whose `config` needs no engine; `scripts/compose-deps.sh` installs it) validates, interpolates and
merges the files; every service is health-checked or a one-shot the API waits for, the environment
is valid ragtune settings that point at the services, every variable and file the files need is
documented or in the repository, the default path does what the README's first command does, and
the Chroma health probe (bash only: the image has no curl) is run against a real Chroma server."""

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


def compose_override(env: dict[str, str]) -> dict:
    return interpolate(yaml.safe_load((ROOT / "docker-compose.ollama.yml").read_text()), env)


ENV = {
    "POSTGRES_PASSWORD": "pg-Zq3v8Kp1Lr7Tn2Wx",
    "RAGTUNE_ADMIN_KEY": "Hc4Md6Fg0JsZq3v8Kp1Lr7Tn2Wx5Yb9",
    "RAGTUNE_WIDGET_KEY": "Wx5Yb9Hc4Md6Fg0JsZq3v8Kp1Lr7Tn2",
    "RAGTUNE_WIDGET_ORIGIN": "https://shop.example",
}
ONE_SHOTS = {"ingest", "ollama-create"}
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.ollama.yml")
MISSING_COMPOSE = (
    "docker-compose is needed to validate the compose files: run `bash scripts/compose-deps.sh` (installs Debian's "
    "docker-compose, which runs `config` without a Docker engine), or point RAGTUNE_TEST_COMPOSE at a compose binary"
)


def docker_compose(env: dict[str, str], *files: str) -> subprocess.CompletedProcess:
    """`docker-compose -f ... config` as Compose itself validates, interpolates and merges the files."""
    binary = os.environ.get("RAGTUNE_TEST_COMPOSE") or shutil.which("docker-compose")
    if not binary:
        raise RuntimeError(MISSING_COMPOSE)
    command = [binary, "--project-directory", str(ROOT)]
    for name in files:
        command += ["-f", str(ROOT / name)]
    environ = {k: v for k, v in os.environ.items() if k not in ENV and not k.startswith(("RAGTUNE_", "COMPOSE_"))}
    return subprocess.run(command + ["config"], env=environ | env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def composed(*files: str) -> dict:
    result = docker_compose(ENV, *files)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def mounts(service: dict) -> dict[str, tuple[str, str]]:
    """target -> (source, "ro" | "rw") of a service in `docker-compose config` output (v1 writes
    "source:target:mode" strings, v2 mappings)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            found[target] = (source, mode[0] if mode else "rw")
        else:
            found[volume["target"]] = (volume["source"], "ro" if volume.get("read_only") else "rw")
    return found


def conditions(service: dict) -> dict[str, str]:
    return {name: wait["condition"] for name, wait in service.get("depends_on", {}).items()}


def published(service: dict) -> list[tuple[int, int]]:
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            host, _, inside = port.rpartition(":")
            ports.append((int(host), int(inside)))
        else:
            ports.append((int(port["published"]), int(port["target"])))
    return ports


@pytest.mark.parametrize("missing", sorted(ENV))
def test_secrets_are_required(missing):
    with pytest.raises(KeyError, match=missing):
        compose({k: v for k, v in ENV.items() if k != missing})


@pytest.mark.parametrize("files", [COMPOSE_FILES[:1], COMPOSE_FILES], ids=["bundled-model", "ollama"])
def test_compose_itself_accepts_the_files_and_names_each_missing_secret(files):
    """Docker Compose validates the files (schema, interpolation, the override's merge) without an engine."""
    assert docker_compose(ENV, *files).returncode == 0
    for missing in ENV:
        result = docker_compose({k: v for k, v in ENV.items() if k != missing}, *files)
        assert result.returncode != 0 and f"set {missing}" in result.stderr, (missing, result.stderr)


def test_every_service_is_health_checked_or_a_one_shot_the_api_waits_for():
    for files in (COMPOSE_FILES[:1], COMPOSE_FILES):
        services = composed(*files)["services"]
        for name, service in services.items():
            if service.get("restart") == "no":
                assert name in ONE_SHOTS, f"{name} runs once but is not a known one-shot"
                assert "healthcheck" not in service
            else:
                test = service["healthcheck"]["test"]
                assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
                assert service["restart"] == "unless-stopped", name
        waits = conditions(services["api"])
        assert set(waits) == set(services) - {"api"}, "the API waits for every other service"
        for name, condition in waits.items():
            assert condition == ("service_completed_successfully" if name in ONE_SHOTS else "service_healthy"), name
        # The one-shots wait for what they use.
        assert conditions(services["ingest"]) == {"chroma": "service_healthy"}
        if "ollama-create" in services:
            assert conditions(services["ollama-create"]) == {"ollama": "service_healthy"}


def test_state_lives_in_declared_volumes_and_admin_uploads_persist():
    spec = composed(*COMPOSE_FILES)
    services, declared = spec["services"], set(spec["volumes"])

    def named(service: str) -> dict[str, str]:
        return {target: source for target, (source, _) in mounts(services[service]).items() if not source.startswith("/")}

    assert named("ollama") == {"/root/.ollama": "ollama-models"}
    assert named("chroma") == {"/data": "chroma-data"} and services["chroma"]["environment"]["PERSIST_DIRECTORY"] == "/data"
    assert named("postgres") == {"/var/lib/postgresql/data": "postgres-data"}
    # The index versions ingest writes are the ones the API reads.
    assert named("api")["/data"] == named("ingest")["/data"] == "ragtune-data"
    used = {source for s in services for source in named(s).values()}
    assert used == declared
    # The documents: one folder outside the containers, indexed by `ingest` and written by the admin
    # API (uploads, deletions), so they survive a `docker compose up --force-recreate` (issue 19).
    api = load_settings(environ={k: str(v) for k, v in services["api"]["environment"].items()}, cwd=ROOT)
    folder = str(api.ingest.source_dir)
    assert mounts(services["api"])[folder] == (str(ROOT / "knowledge"), "rw")
    assert mounts(services["ingest"])[folder] == (str(ROOT / "knowledge"), "ro")
    elsewhere = composed_with({"RAGTUNE_KNOWLEDGE_DIR": "/srv/support-docs"})["services"]
    assert mounts(elsewhere["api"])[folder] == ("/srv/support-docs", "rw")
    assert mounts(elsewhere["ingest"])[folder] == ("/srv/support-docs", "ro")


def composed_with(extra: dict[str, str], *files: str) -> dict:
    result = docker_compose(ENV | extra, *(files or COMPOSE_FILES[:1]))
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _settings_of(service: dict):
    env = {k: str(v) for k, v in service["environment"].items()}
    unknown = [k for k in env if k.startswith("RAGTUNE_") and k[8:].lower().split("__")[0] not in Settings.model_fields]
    assert not unknown, f"no such setting for {unknown}"
    return load_settings(environ=env, cwd=ROOT)


def test_the_environment_is_valid_settings_pointing_at_the_services():
    for files in (COMPOSE_FILES[:1], COMPOSE_FILES):
        services = composed(*files)["services"]
        for name in ("api", "ingest"):
            settings = _settings_of(services[name])
            chroma = urlparse(settings.chroma.url)
            assert (chroma.hostname, chroma.port) == ("chroma", 8000)
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
        api = _settings_of(services["api"])
        assert published(services["api"]) == [(api.server.port, api.server.port)]
        assert api.server.host == "0.0.0.0"
        assert f":{api.server.port}/readyz" in " ".join(services["api"]["healthcheck"]["test"])
        if "ollama" in services:
            assert urlparse(api.ollama.host).hostname == "ollama" and api.llm.engine == "ollama" and api.ollama.model == "ragtune"


def test_the_default_compose_path_answers_like_the_readmes_first_command():
    """`bash scripts/setup.sh && .venv/bin/ragtune ingest && .venv/bin/ragtune serve` and `docker compose up`
    do the same: ingest knowledge/, serve it on port 8000 with the bundled model (no file a training run makes)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```bash\n(.*?)\n```", readme, re.S).group(1)
    assert first == "bash scripts/setup.sh && .venv/bin/ragtune ingest && .venv/bin/ragtune serve"
    services = composed("docker-compose.yml")["services"]
    assert services["ingest"]["command"] == ["ragtune", "ingest"] and services["api"]["command"] == ["ragtune", "serve"]
    defaults, api = load_settings(environ={}, cwd=ROOT), _settings_of(services["api"])
    # The same answer model: engine and model settings untouched, so the bundled SmolLM2 (or a deployed version).
    assert api.llm == defaults.llm and api.ollama == defaults.ollama and api.openai_engine == defaults.openai_engine
    assert api.chat == defaults.chat and api.retrieval == defaults.retrieval and api.embedding == defaults.embedding
    # The same documents (the bundled knowledge/) and the port the README's curl asks.
    assert mounts(services["ingest"])[str(api.ingest.source_dir)][0] == str(ROOT / defaults.ingest.source_dir)
    assert api.server.port == defaults.server.port and f"localhost:{defaults.server.port}/v1/chat" in readme
    assert {"ollama", "ollama-create"}.isdisjoint(services)
    for service in services.values():  # every file the default path mounts is in the repository
        for source, _ in mounts(service).values():
            assert not source.startswith("/") or Path(source).exists(), source


def test_every_variable_and_file_the_compose_files_need_is_documented_or_present():
    """The README once set only POSTGRES_PASSWORD while the file needed three more (issue 19)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in COMPOSE_FILES:
        text = (ROOT / name).read_text(encoding="utf-8")
        for var, op in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?", text):
            if op and op.endswith("-"):  # has a default: documented, not required
                assert var in readme or var in deploy, f"{name}: {var} is not described in README.md or docs/deploy.md"
                continue
            for doc, where in ((readme, "README.md"), (deploy, "docs/deploy.md")):
                assert re.search(rf"^export {var}=\S", doc, re.M), f"{where} does not export {var}, which {name} requires"
        for source in re.findall(r"^\s+- (\./[^:]+):", text, re.M):  # files and folders mounted from the repository
            if not (ROOT / source).exists():
                assert source == "./models", f"{name} mounts {source}, which is not in the repository"
    # The repository's Modelfile is the shipped adapter over its base (in the repository, mounted);
    # the one thing not in it: a training run's own GGUF, documented.
    modelfile = (ROOT / "Modelfile").read_text()
    assert re.search(r"^FROM smollm2:135m$", modelfile, re.M)
    adapter = re.search(r"^ADAPTER \./(\S+)$", modelfile, re.M).group(1)
    assert (ROOT / adapter).is_file()
    for doc in (deploy, (ROOT / "docker-compose.ollama.yml").read_text()):
        assert "models/ragtune.gguf" in doc and "ragtune train export" in doc
    for doc in (readme, deploy):
        assert "docker compose -f docker-compose.yml -f docker-compose.ollama.yml up -d" in doc


def test_ollama_create_finds_the_modelfile_and_the_gguf_it_names():
    service = compose_override(ENV)["services"]["ollama-create"]
    mounted = {target: source for source, target, *_ in (v.split(":") for v in service["volumes"])}
    command = service["entrypoint"] + service["command"]
    assert command[:3] == ["ollama", "create", "ragtune"]  # the model name the API asks for
    modelfile = command[command.index("-f") + 1]
    assert mounted[modelfile] == "./Modelfile" and (ROOT / "Modelfile").is_file()
    text = (ROOT / "Modelfile").read_text()
    assert re.search(r"^FROM smollm2:135m$", text, re.M)  # a base Ollama pulls from its library
    source = re.search(r"^ADAPTER (\S+)$", text, re.M).group(1)
    inside = os.path.normpath(os.path.join(os.path.dirname(modelfile), source))  # ADAPTER is relative to the Modelfile
    folder = next(t for t in mounted if inside.startswith(t + "/"))
    assert (ROOT / mounted[folder] / os.path.relpath(inside, folder)).is_file()
    # A training run's Modelfile (`--modelfile`) names models/ragtune.gguf, which is mounted too.
    assert mounted["/build/models"] == "./models"
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
