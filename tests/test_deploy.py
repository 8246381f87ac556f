"""The deploy files agree with the code they run, and promise what they say.

Fast and offline: no Docker engine, no network, no GPU. What is checked:
the commands the Dockerfile, entrypoint, systemd unit and docs run are real
``anon-plugin`` commands with real options; every ``ANON_*`` variable they
set is a setting config.py knows, with a value it accepts; the entrypoint and
the health check behave; the unit keeps its hardening and its read-only
library; the compose files mount the originals read only; the celery stack
(compose.scale.yaml) has Redis with a password and an append-only file,
PostgreSQL, and workers on GPUs that restart, drain and see the daemon's
paths, its passwords coming from .env only; .dockerignore keeps what the
build needs; ``systemd-analyze verify`` passes where it exists.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import click
import pytest
import yaml
from click.testing import CliRunner

from anon_plugin import config
from anon_plugin.cli import main

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
UNIT = DEPLOY / "anon-plugin.service"
COMPOSE = {"immich": (DEPLOY / "compose.immich.yaml", "immich-server"),
           "photoprism": (DEPLOY / "compose.photoprism.yaml", "photoprism")}
SCALE = DEPLOY / "compose.scale.yaml"  # the celery backend: Redis, PostgreSQL, the daemon, workers
COMPOSE_FILES = (*(path for path, _ in COMPOSE.values()), SCALE)
EXAMPLE_SETTINGS = DEPLOY / "anon-plugin.toml"
DOCS = (DEPLOY / "README.md", REPO / "docs" / "integrations.md", REPO / "docs" / "scaling.md")

# ---------------------------------------------------------------- reading the files

def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (current + line).strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def dockerfile_one(keyword: str) -> str:
    found = [rest for kw, rest in dockerfile_instructions() if kw == keyword]
    assert len(found) == 1, f"expected one {keyword} in the Dockerfile, found {found}"
    return found[0]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(rest))
    return env


def unit_entries(path: Path = UNIT) -> dict[str, list[str]]:
    """``Section.Key`` -> its values in order (systemd keys may repeat)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line!r}"
        entries.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return entries


def service(key: str) -> str:
    """The value that wins for a [Service] key (the last one)."""
    values = unit_entries().get(f"Service.{key}")
    assert values, f"{UNIT.name}: [Service] {key}= is missing"
    return values[-1]


def unit_paths(key: str) -> list[PurePosixPath]:
    return [PurePosixPath(p.lstrip("-+")) for v in unit_entries().get(f"Service.{key}", []) for p in v.split()]


def example_settings() -> dict:
    with open(EXAMPLE_SETTINGS, "rb") as f:
        return tomllib.load(f)


def inside(path: PurePosixPath, folder: PurePosixPath) -> bool:
    return path == folder or folder in path.parents


# What .env holds beside compose.scale.yaml in the tests: two made-up passwords, as `openssl rand -hex` gives.
DOT_ENV = {"REDIS_PASSWORD": "9f1c2e7a40b3d58e", "POSTGRES_PASSWORD": "3b6d0a91c7e2f458"}
_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


class Unset(KeyError):
    """A ${NAME:?message} whose NAME is not set: compose refuses to start."""


def interpolate(value: object, env: dict[str, str]) -> object:
    """Compose's variable substitution, on every string of a parsed file: ${X}, $X, ${X:-default},
    ${X-default}, ${X:?error}, ${X?error}, and $$ for a literal $."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(found: re.Match[str]) -> str:
        if found[0] == "$$":
            return "$"
        name, op, arg = found[1] or found[4], found[2] or "", found[3] or ""
        present = name in env and (env[name] != "" or not op.startswith(":"))
        if present:
            return env[name]
        if op.endswith("?"):
            raise Unset(f"{name}: {arg}")
        return arg if op.endswith("-") else ""

    return _INTERPOLATION.sub(one, value)


def scale_doc(env: dict[str, str] | None = None) -> dict:
    """compose.scale.yaml as compose sees it with `env` as its .env (YAML anchors and merge keys resolved)."""
    doc = interpolate(yaml.safe_load(SCALE.read_text()), DOT_ENV if env is None else env)
    assert isinstance(doc, dict)
    return doc


def scale_services(env: dict[str, str] | None = None) -> dict[str, dict]:
    return scale_doc(env)["services"]


def scale_workers() -> dict[str, dict]:
    """The services that run `anon-plugin worker`."""
    return {name: spec for name, spec in scale_services().items() if spec.get("command", [""])[0] == "worker"}


def mounts(service: dict) -> dict[str, tuple[str, str]]:
    """A compose service's volumes: container path -> (host path or volume name, mode)."""
    found = {}
    for volume in service.get("volumes", []):
        host, container, *mode = volume.split(":")
        found[container] = (host, mode[0] if mode else "rw")
    return found


def duration(text: str) -> float:
    """A compose duration ("10m", "1m30s", "90s") in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a compose duration: {text!r}"
    unit = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * unit[u] for n, u in parts)


# ---------------------------------------------------------------- anon-plugin invocations

@dataclass(frozen=True)
class Invocation:
    where: str  # file:line
    args: tuple[str, ...]  # after "anon-plugin"

    def __str__(self) -> str:
        return f"{self.where}: anon-plugin {' '.join(self.args)}"


_WORD = re.compile(r"[a-z][a-z0-9-]*\Z")
_SHELL_STOP = {";", ";;", "&&", "||", "|", ")", "<", ">"}


def _takes_value(command: click.Command) -> set[str]:
    return {opt for p in command.params if isinstance(p, click.Option) and not p.is_flag and not p.count
            for opt in p.opts}


def _names_a_container(before: list[str]) -> bool:
    """True when the next token is the SERVICE/CONTAINER of `docker [compose] exec [-opts]`."""
    j = len(before) - 1
    while j >= 0 and before[j].startswith("-"):
        j -= 1
    return j >= 1 and before[j] == "exec" and before[j - 1] in ("docker", "compose")


def _invocations_in(tokens: list[str], where: str) -> Iterator[Invocation]:
    """Every `anon-plugin [GLOBAL OPTIONS] COMMAND ...` in a command line's tokens."""
    global_values = _takes_value(main)
    global_options = {o for p in main.params for o in (*p.opts, *p.secondary_opts)}
    for i, token in enumerate(tokens):
        if token != "anon-plugin" and not token.endswith("/bin/anon-plugin"):
            continue
        if _names_a_container(tokens[:i]):
            continue  # `docker compose exec -T anon-plugin ...`: the service, not the command
        rest = tokens[i + 1:]
        while rest and rest[0].split("=", 1)[0] in global_options:  # --config FILE, --debug
            rest = rest[2:] if rest[0] in global_values else rest[1:]
        if not rest or rest[0] == "anon-plugin" or not _WORD.match(rest[0]):
            continue  # a user or service named anon-plugin, a path, the end of a line
        cut = next((j for j, t in enumerate(rest) if t in _SHELL_STOP or t[0] in "<>"), len(rest))
        yield Invocation(where, tuple(rest[:cut]))


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, line) with backslash-newline continuations joined."""
    number, current = 0, ""
    for n, line in enumerate(text.splitlines(), 1):
        number = number or n
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        yield number, current + line
        number, current = 0, ""


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:
        return line.split()


def _command_example(line: str) -> str | None:
    """A command shown in a comment: "#   command" (indented by two spaces or more); prose is "# text"."""
    found = re.match(r"\s*#(\s{2,}\S.*)", line)
    return found[1] if found else None


def deploy_invocations() -> list[Invocation]:
    found: list[Invocation] = []

    def rel(path: Path) -> Path:
        return path.relative_to(REPO)

    cmd = json.loads(dockerfile_one("CMD"))
    script = ENTRYPOINT.read_text().replace('"$@"', shlex.join(cmd))  # what the container runs by default
    for n, line in _logical_lines(script):
        found += _invocations_in(_split(line), f"{rel(ENTRYPOINT)}:{n} (CMD {cmd})")
        if (example := _command_example(line)) is not None:
            found += _invocations_in(_split(example), f"{rel(ENTRYPOINT)}:{n}")

    for keyword, rest in dockerfile_instructions():
        if keyword == "RUN":
            found += _invocations_in(_split(rest), f"{rel(DOCKERFILE)} RUN")
    for n, line in _logical_lines(DOCKERFILE.read_text()):
        if (example := _command_example(line)) is not None:
            found += _invocations_in(_split(example), f"{rel(DOCKERFILE)}:{n}")

    for path in (UNIT, *COMPOSE_FILES):
        for n, line in _logical_lines(path.read_text()):
            if re.match(r"Exec\w*=", line):
                found += _invocations_in(_split(line.partition("=")[2]), f"{rel(path)}:{n}")
            elif (example := _command_example(line)) is not None:
                found += _invocations_in(_split(example), f"{rel(path)}:{n}")

    for name, spec in scale_services().items():  # what compose runs: the image's entrypoint + command
        if str(spec.get("image", "")).startswith("anon-plugin:"):
            found.append(Invocation(f"{rel(SCALE)} services.{name}.command", tuple(spec.get("command", cmd))))

    for path in DOCS:  # the ```sh blocks
        in_sh = False
        for n, line in _logical_lines(path.read_text()):
            if line.strip().startswith("```"):
                in_sh = line.strip() in ("```sh", "```bash", "```shell")
            elif in_sh:
                found += _invocations_in(_split(line), f"{rel(path)}:{n}")
    return found


INVOCATIONS = deploy_invocations()


def test_the_deploy_files_run_anon_plugin_where_expected():
    """The scan above finds what it must; otherwise the next test would check nothing."""
    shown = {" ".join(inv.args[:2]) for inv in INVOCATIONS}
    assert {"db upgrade", "serve", "worker --device"} <= shown
    where = {inv.where.split(":")[0].split(" ")[0] for inv in INVOCATIONS}
    assert {"deploy/entrypoint.sh", "deploy/anon-plugin.service", "docs/integrations.md", "deploy/compose.scale.yaml",
            "docs/scaling.md"} <= where


@pytest.mark.parametrize("invocation", INVOCATIONS, ids=str)
def test_every_anon_plugin_command_the_deploy_files_run_exists(invocation: Invocation):
    ctx = click.Context(main)
    command: click.Command = main
    path: list[str] = []
    args = list(invocation.args)
    while isinstance(command, click.Group) and args and _WORD.match(args[0]):
        name = args.pop(0)
        sub = command.get_command(ctx, name)
        if sub is None:
            pytest.fail(f"{invocation}: `anon-plugin {' '.join([*path, name])}` is not a command")
        command, path = sub, [*path, name]
    assert not isinstance(command, click.Group), f"{invocation}: `{' '.join(path)}` needs a subcommand"
    # The real CLI answers for that command path...
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, f"{invocation}: {result.output}"
    # ...and knows every long option the file passes it.
    options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("--"):
            assert arg.split("=", 1)[0] in options, f"{invocation}: `{' '.join(path)}` has no option {arg}"


# ---------------------------------------------------------------- the Dockerfile

def test_dockerfile_builds_both_torch_variants_from_one_slim_base():
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text
    froms = [rest for kw, rest in dockerfile_instructions() if kw == "FROM"]
    assert froms and all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms), froms
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", text, re.M)
    runs = " ".join(rest for kw, rest in dockerfile_instructions() if kw == "RUN")
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in runs
    assert re.search(r"cuda\)\s+pip install torch==2\.13\.0 ;;", runs)
    # The version the image installs is the one the package pins.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "torch==2.13.0" in pyproject["project"]["dependencies"]
    # Not editable: the source stays in the build stage. With the celery extra, checked at build time: one
    # image runs the daemon and the workers of the celery backend, on PostgreSQL.
    assert re.search(r"pip install \"\.\[celery\]\"(\s|$)", runs)
    assert not re.search(r"pip install (-e|--editable)", runs)
    assert 'python -c "import celery, redis, psycopg"' in runs
    extra = " ".join(pyproject["project"]["optional-dependencies"]["celery"])
    assert "celery[redis]" in extra and "psycopg" in extra


def test_dockerfile_runs_unprivileged_with_the_volumes_and_the_port():
    env = dockerfile_env()
    assert {k: env.get(k) for k in ("ANON_DATA_DIR", "ANON_LIBRARY_ROOTS", "ANON_PUBLIC_ROOT", "ANON_ADMIN_BIND")} == {
        "ANON_DATA_DIR": "/data", "ANON_LIBRARY_ROOTS": "/library", "ANON_PUBLIC_ROOT": "/public",
        "ANON_ADMIN_BIND": "0.0.0.0:8470"}
    assert json.loads(dockerfile_one("VOLUME")) == ["/data", "/library", "/public"]
    assert dockerfile_one("EXPOSE") == "8470"
    user = dockerfile_one("USER").split(":")[0]
    assert user not in ("root", "0") and user in ("anon", "10001")
    assert "--uid 10001" in DOCKERFILE.read_text()
    assert json.loads(dockerfile_one("ENTRYPOINT")) == ["anon-plugin-entrypoint"]
    copies = [rest for kw, rest in dockerfile_instructions() if kw == "COPY"]
    assert any(c.split()[-2:] == ["deploy/entrypoint.sh", "/usr/local/bin/anon-plugin-entrypoint"] for c in copies)
    assert json.loads(dockerfile_one("CMD")) == ["serve"]


def _healthcheck_code() -> str:
    check = json.loads(dockerfile_one("HEALTHCHECK").split("CMD", 1)[1])
    assert check[:2] == ["python", "-c"], check
    return check[2]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # http.server's name for it
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_healthcheck_asks_health_on_the_bound_port(status, healthy):
    code = _healthcheck_code()
    assert "urllib" in code and "curl" not in code  # no curl needed for the check
    handler = type("Handler", (_Health,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "ANON_ADMIN_BIND": f"0.0.0.0:{server.server_port}"}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    assert (done.returncode == 0) == healthy, done.stderr


def test_healthcheck_fails_when_nothing_listens():
    with http.server.HTTPServer(("127.0.0.1", 0), _Health) as server:
        port = server.server_port  # closed again below: nothing listens there any more
    env = {**os.environ, "ANON_ADMIN_BIND": f"0.0.0.0:{port}"}
    done = subprocess.run([sys.executable, "-c", _healthcheck_code()], env=env, capture_output=True, timeout=30)
    assert done.returncode != 0


# ---------------------------------------------------------------- the entrypoint

@pytest.fixture
def fake_cli(tmp_path: Path) -> tuple[Path, Path]:
    """An `anon-plugin` on PATH that only logs its arguments; returns (bin folder, log)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    fake = bin_dir / "anon-plugin"
    fake.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n')
    fake.chmod(0o755)
    return bin_dir, log


@pytest.mark.skipif(not Path("/bin/sh").exists(), reason="needs /bin/sh")
@pytest.mark.parametrize("args, calls", [
    ([], ["db upgrade", "serve"]),
    (["serve"], ["db upgrade", "serve"]),
    (["watch"], ["db upgrade", "watch"]),
    (["users", "add", "admin", "--password-stdin"], ["db upgrade", "users add admin --password-stdin"]),
    (["db", "current"], ["db current"]),
    (["--version"], ["--version"]),
    (["worker", "--device", "cuda:0"], ["worker --device cuda:0"]),  # the daemon's container upgrades the store
])
def test_entrypoint_upgrades_the_database_then_execs_the_command(fake_cli, args, calls):
    bin_dir, log = fake_cli
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(["/bin/sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == calls


def test_entrypoint_stops_when_the_upgrade_fails(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "anon-plugin").write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/calls.log"\n[ "$1" != db ]\n')
    (bin_dir / "anon-plugin").chmod(0o755)
    done = subprocess.run(["/bin/sh", str(ENTRYPOINT)], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, timeout=30)
    assert done.returncode != 0
    assert (tmp_path / "calls.log").read_text().splitlines() == ["db upgrade"]  # serve never started


# ---------------------------------------------------------------- ANON_* variables

def _anon_names(text: str) -> set[str]:
    return set(re.findall(r"\bANON_[A-Z0-9_]+\b", text))


def _set_values() -> list[tuple[str, str, str]]:
    """(where, name, value) for every ANON_* variable the deploy files set."""
    found = [("Dockerfile ENV", k, v) for k, v in dockerfile_env().items()]
    for value in unit_entries().get("Service.Environment", []):
        for item in shlex.split(value):
            name, _, val = item.partition("=")
            found.append((UNIT.name, name, val))
    for path, _ in COMPOSE.values():  # `NAME: value` lines under environment:
        for name, val in re.findall(r"^\s+(ANON_[A-Z0-9_]+):\s*(\S+)", path.read_text(), re.M):
            found.append((path.name, name, val.strip("\"'")))
    for service, spec in scale_services().items():  # parsed: anchors merged, .env substituted
        found += [(f"{SCALE.name} {service}", name, str(val)) for name, val in spec.get("environment", {}).items()]
    return [f for f in found if f[1].startswith("ANON_")]


def test_every_anon_variable_named_in_the_deploy_files_is_known():
    known = {key.env for key in config.KEYS} | config.NOT_SETTINGS
    files = [DOCKERFILE, ENTRYPOINT, UNIT, *COMPOSE_FILES, *DOCS]
    named = {name: path.relative_to(REPO) for path in files for name in _anon_names(path.read_text())}
    unknown = {name: str(where) for name, where in named.items() if name not in known}
    assert not unknown, f"not settings (config.KEYS) nor known non-settings: {unknown}"


def test_every_anon_value_the_deploy_files_set_is_valid():
    by_env = {key.env: key for key in config.KEYS}
    values = _set_values()
    assert {name for _, name, _ in values} >= {"ANON_DATA_DIR", "ANON_ADMIN_BIND", "ANON_WATCH_MODE",
                                               "ANON_QUEUE_BACKEND", "ANON_QUEUE_BROKER_URL", "ANON_DATABASE_URL"}
    for where, name, value in values:
        if name in config.NOT_SETTINGS:
            continue
        key = by_env[name]
        try:
            key.rule.check(key.rule.from_text(value), Path("/"))
        except ValueError as exc:
            pytest.fail(f"{where}: {name}={value!r}: {exc}")


def test_the_container_settings_load(tmp_path):
    """The image's and compose files' variables pass every check of load_settings, overlap rules included."""
    env = {k: v for k, v in dockerfile_env().items() if k.startswith("ANON_")}
    for path, _ in COMPOSE.values():
        env.update({n: v.strip("\"'") for n, v in re.findall(r"^\s+(ANON_[A-Z0-9_]+):\s*(\S+)", path.read_text(),
                                                              re.M)})
    # The container's absolute paths, re-rooted here; the image creates /library, so do we.
    paths = {"ANON_DATA_DIR", "ANON_LIBRARY_ROOTS", "ANON_PUBLIC_ROOT", "ANON_CACHE"}
    env.update({k: str(tmp_path / env[k].lstrip("/")) for k in paths if k in env})
    (tmp_path / "library").mkdir()
    settings = config.load_settings(None, environ=env)
    root = tmp_path.resolve()
    assert settings.data_dir == root / "data" and settings.public_root == root / "public"
    assert settings.library_roots == (root / "library",)
    assert settings.admin.host == "0.0.0.0" and settings.admin.port == 8470


# ---------------------------------------------------------------- the systemd unit

HARDENING = {
    "User": "anon-plugin", "Group": "anon-plugin",
    "StateDirectory": "anon-plugin",
    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes",
    "UMask": "0027", "Restart": "on-failure", "TimeoutStopSec": "120", "KillSignal": "SIGTERM",
    # torch's JIT / oneDNN need writable+executable pages: the setting stays off, on purpose.
    "MemoryDenyWriteExecute": "no",
    # The GPU stays reachable (PrivateDevices=yes would hide it), fenced by the device cgroup.
    "PrivateDevices": "no", "DevicePolicy": "closed",
}


@pytest.mark.parametrize("key, value", HARDENING.items())
def test_unit_keeps_its_hardening(key, value):
    assert service(key) == value


def test_unit_restricts_sockets_and_system_calls():
    assert set(service("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "@system-service" in unit_entries()["Service.SystemCallFilter"]
    assert any("nvidia" in v for v in unit_entries().get("Service.DeviceAllow", []))


def test_unit_runs_db_upgrade_then_serve_on_the_example_settings():
    pre, start = shlex.split(service("ExecStartPre")), shlex.split(service("ExecStart"))
    settings_file = "/etc/anon-plugin/anon-plugin.toml"
    assert pre == ["/opt/anon-plugin/bin/anon-plugin", "--config", settings_file, "db", "upgrade"]
    assert start == ["/opt/anon-plugin/bin/anon-plugin", "--config", settings_file, "serve"]


def test_unit_paths_cover_the_example_settings():
    """Originals read only, the public root and data_dir writable, and nothing writable inside a library."""
    settings = example_settings()
    read_only, writable = unit_paths("ReadOnlyPaths"), unit_paths("ReadWritePaths")
    state = PurePosixPath("/var/lib") / service("StateDirectory")
    for root in map(PurePosixPath, settings["library_roots"]):
        assert any(inside(root, p) for p in read_only), f"library root {root} is not in ReadOnlyPaths"
        assert not any(inside(p, root) or inside(root, p) for p in writable), f"{root} is writable"
    assert any(inside(PurePosixPath(settings["public_root"]), p) for p in writable)
    data_dir = PurePosixPath(settings["data_dir"])
    assert data_dir == state or any(inside(data_dir, p) for p in writable)


def test_systemd_analyze_verify_passes():
    """Only the missing /opt/anon-plugin install may be reported (it exists once installed)."""
    assert shutil.which("systemd-analyze"), "systemd-analyze is not installed (Debian: systemd; .ci/run installs it)"
    done = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    expected = re.compile(r"anon-plugin\.service: Command /opt/anon-plugin/bin/anon-plugin is not executable: "
                          r"No such file or directory")
    problems = [line for line in (done.stdout + done.stderr).splitlines() if line.strip() and not expected.search(line)]
    assert not problems, "\n".join(problems)
    if done.returncode != 0:
        assert not Path("/opt/anon-plugin/bin/anon-plugin").exists(), done.stderr


# ---------------------------------------------------------------- compose files

@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_mounts_the_originals_read_only(path):
    """Text-level, so it runs without PyYAML: every mount of the library is `:ro`."""
    text = path.read_text()
    library = str(example_settings()["library_roots"][0])
    mounts = [line.split("#")[0].strip().lstrip("- ").strip("\"'") for line in text.splitlines()
              if line.strip().startswith(f"- {library}:")]
    assert f"{library}:/library:ro" in mounts
    assert all(m.endswith(":ro") for m in mounts), mounts


@pytest.mark.parametrize("name", COMPOSE)
def test_compose_file_shape(name):
    path, gallery = COMPOSE[name]
    doc = yaml.safe_load(path.read_text())
    plugin = doc["services"]["anon-plugin"]
    own = mounts(plugin)
    library_host, library_mode = own["/library"]
    public_host, public_mode = own["/public"]
    assert library_mode == "ro" and public_mode == "rw"
    assert own["/data"][0] in doc.get("volumes", {})  # a named volume
    library, public = PurePosixPath(library_host), PurePosixPath(public_host)
    assert not inside(public, library) and not inside(library, public), "feedback loop"
    # The gallery reads the public root, read only, and never sees it writable.
    theirs = [(host, mode) for host, mode in mounts(doc["services"][gallery]).values() if host == public_host]
    assert theirs and all(mode == "ro" for _, mode in theirs), theirs
    # The panel is published on the host's loopback only.
    assert plugin["ports"] and all(str(p).startswith("127.0.0.1:") for p in plugin["ports"])
    assert "deploy" not in plugin  # the GPU block stays commented: the cpu image is the default
    assert "/library" in json.loads(dockerfile_one("VOLUME"))


# ---------------------------------------------------------------- compose.scale.yaml: the celery backend

def _image_runs_anon_plugin(spec: dict) -> bool:
    return str(spec.get("image", "")).startswith("anon-plugin:")


def test_scale_has_the_broker_the_store_the_daemon_and_workers():
    services = scale_services()
    assert {"redis", "postgres", "anon-plugin", "worker"} <= set(services)
    assert str(services["redis"]["image"]).split(":")[1].startswith("7")
    assert str(services["postgres"]["image"]).split(":")[1].startswith("16")
    # The daemon and the panel: `serve` (the entrypoint upgrades the database first), on no GPU of its own.
    daemon = services["anon-plugin"]
    assert daemon.get("command", json.loads(dockerfile_one("CMD"))) == ["serve"]
    assert "deploy" not in daemon and daemon["environment"]["ANON_INFERENCE_DEVICE"] == "cpu"
    assert daemon["ports"] and all(str(p).startswith("127.0.0.1:") for p in daemon["ports"])
    for needed in ("redis", "postgres"):
        assert daemon["depends_on"][needed]["condition"] == "service_healthy"
    # Workers: every service running `anon-plugin worker`, the same image as the daemon (the same version).
    workers = scale_workers()
    assert "worker" in workers
    for name, spec in workers.items():
        assert spec["image"] == daemon["image"], name
        # Started only once the daemon's container has brought the database to its version.
        assert spec["depends_on"]["anon-plugin"]["condition"] == "service_healthy", name


def test_scale_redis_has_a_password_and_an_append_only_file():
    redis = scale_services()["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--requirepass") + 1] == DOT_ENV["REDIS_PASSWORD"]
    assert mounts(redis)["/data"][0] in scale_doc()["volumes"]  # the append-only file on a named volume
    # The health check authenticates (REDISCLI_AUTH: no password on a command line) and wants PONG.
    assert redis["environment"]["REDISCLI_AUTH"] == DOT_ENV["REDIS_PASSWORD"]
    test = redis["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "redis-cli ping" in test[1] and "PONG" in test[1]


def test_scale_postgres_keeps_its_data_and_is_checked():
    postgres = scale_services()["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == DOT_ENV["POSTGRES_PASSWORD"]
    assert mounts(postgres)["/var/lib/postgresql/data"][0] in scale_doc()["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


@pytest.mark.parametrize("missing", sorted(DOT_ENV))
def test_scale_passwords_come_from_dot_env_only(missing):
    """Not one password in the file: without one in .env compose refuses to start (${NAME:?...})."""
    with pytest.raises(Unset, match=missing):
        scale_doc({k: v for k, v in DOT_ENV.items() if k != missing})
    # Every use is required (no ${NAME:-default} that would put a password in the file).
    uses = re.findall(rf"\$\{{{missing}([^}}]*)\}}", SCALE.read_text())
    assert uses and all(use.startswith(":?") for use in uses), uses


def test_scale_daemon_and_workers_share_the_broker_and_the_store():
    """celery, on PostgreSQL, the URLs naming the redis and postgres services with their .env passwords."""
    services = scale_services()
    postgres = services["postgres"]["environment"]
    for name in ("anon-plugin", *scale_workers()):
        env = services[name]["environment"]
        assert env["ANON_QUEUE_BACKEND"] == "celery", name
        broker = urlsplit(env["ANON_QUEUE_BROKER_URL"])
        assert (broker.scheme, broker.hostname, broker.port, broker.password) == (
            "redis", "redis", 6379, DOT_ENV["REDIS_PASSWORD"]), name
        store = urlsplit(env["ANON_DATABASE_URL"])
        assert store.scheme == "postgresql+psycopg", name
        assert (store.hostname, store.port, store.username, store.password, store.path) == (
            "postgres", 5432, postgres["POSTGRES_USER"], DOT_ENV["POSTGRES_PASSWORD"], f"/{postgres['POSTGRES_DB']}")
    queue = {k: v for k, v in services["anon-plugin"]["environment"].items()
             if k.startswith("ANON_QUEUE_") or k == "ANON_DATABASE_URL"}
    for name in scale_workers():
        assert {k: v for k, v in services[name]["environment"].items() if k in queue or k.startswith("ANON_QUEUE_")} \
            == queue, f"{name}: not the daemon's [queue] and database"
    # Another machine's workers name the first machine in .env.
    remote = scale_services({**DOT_ENV, "REDIS_HOST": "10.0.0.1", "POSTGRES_HOST": "10.0.0.1"})
    assert urlsplit(remote["worker"]["environment"]["ANON_QUEUE_BROKER_URL"]).hostname == "10.0.0.1"
    assert urlsplit(remote["worker"]["environment"]["ANON_DATABASE_URL"]).hostname == "10.0.0.1"


@pytest.mark.parametrize("service", ["anon-plugin", "worker"])
def test_scale_settings_load(tmp_path, service):
    """The image's variables and the service's pass every check of load_settings, the celery rules included."""
    env = {k: v for k, v in dockerfile_env().items() if k.startswith("ANON_")}
    env.update({k: str(v) for k, v in scale_services()[service]["environment"].items()})
    paths = {"ANON_DATA_DIR", "ANON_LIBRARY_ROOTS", "ANON_PUBLIC_ROOT", "ANON_CACHE"}
    env.update({k: str(tmp_path / env[k].lstrip("/")) for k in paths if k in env})
    (tmp_path / "library").mkdir()
    settings = config.load_settings(None, environ=env)
    assert settings.queue.backend == "celery" and settings.database_url.startswith("postgresql+psycopg://")
    assert settings.queue.time_limit < settings.queue.visibility_timeout


def test_scale_workers_have_a_gpu_each():
    for name, spec in scale_workers().items():
        command = spec["command"]
        assert command[command.index("--device") + 1] == "cuda:0", f"{name}: the one GPU its container sees"
        devices = spec["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1, name
        gpu = devices[0]
        assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"], name
        # One GPU: `count: 1`, or one device id (compose gives every replica the same one either way).
        assert gpu.get("count") == 1 or len(gpu.get("device_ids", [])) == 1, name
        assert not ("count" in gpu and "device_ids" in gpu), f"{name}: count and device_ids exclude each other"


def test_scale_workers_come_back_and_drain():
    """A worker that ended itself past the time limit (exit 75), was killed or ran out of memory restarts;
    SIGTERM's warm shutdown gets the time a batch takes, far more than docker's default 10 s."""
    daemon = scale_services()["anon-plugin"]
    for name, spec in scale_workers().items():
        assert spec["restart"] in ("always", "unless-stopped"), name  # on-failure would leave an exit 0 down
        assert duration(spec["stop_grace_period"]) >= 5 * 60, name
        assert duration(spec["stop_grace_period"]) >= duration(daemon["stop_grace_period"]), name
        # The image's check asks the panel, which a worker has not: it is switched off, not left failing.
        assert spec["healthcheck"] == {"disable": True}, name
        # A worker's name is hostname:pid and its pid is 1 in every container: the container id must tell them apart.
        assert "hostname" not in spec and "container_name" not in spec, name
        assert spec["security_opt"] == ["no-new-privileges:true"] and spec["cap_drop"] == ["ALL"], name
    assert daemon["restart"] in ("always", "unless-stopped")


def test_scale_workers_see_the_daemons_paths():
    """The library read only and the public root writable, at the same paths as the daemon (the store names photos
    by those paths; a worker checks them at start), and the container paths the image's settings name."""
    services = scale_services()
    env = dockerfile_env()
    daemon = mounts(services["anon-plugin"])
    library, public = env["ANON_LIBRARY_ROOTS"], env["ANON_PUBLIC_ROOT"]
    assert daemon[library][1] == "ro" and daemon[public][1] == "rw"
    host_library, host_public = PurePosixPath(daemon[library][0]), PurePosixPath(daemon[public][0])
    assert not inside(host_public, host_library) and not inside(host_library, host_public), "feedback loop"
    for name in ("anon-plugin", *scale_workers()):
        spec = services[name]
        assert not {"ANON_LIBRARY_ROOTS", "ANON_PUBLIC_ROOT"} & set(spec["environment"]), f"{name}: the image's paths"
        own = mounts(spec)
        assert own[library] == daemon[library] and own[public] == daemon[public], name
        assert own["/data"][0] in scale_doc()["volumes"], name  # a named volume
    worker_data = {mounts(spec)["/data"][0] for spec in scale_workers().values()}
    assert daemon["/data"][0] not in worker_data  # the panel's secret key stays with the daemon


# ---------------------------------------------------------------- .dockerignore

def _go_match(path: str, pattern: str) -> bool:
    """Go's filepath.Match, which Docker uses: `*` stays within one folder."""
    names, globs = path.split("/"), pattern.split("/")
    return len(names) == len(globs) and all(fnmatchcase(n, g) for n, g in zip(names, globs, strict=True))


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, near enough: a pattern excludes a path or a folder above it; `**/` is any depth; `!` keeps."""
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if pattern.startswith("**/"):
            spans = ("/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1))
            hit = any(_go_match(span, pattern[3:]) for span in spans)
        else:
            hit = any(_go_match("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))
        if hit:
            excluded = not negate
    return excluded


def test_dockerignore_keeps_the_build_inputs_and_drops_local_state():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    needed = ["pyproject.toml", "README.md", "anon_plugin/cli.py", "anon_plugin/commands/db.py",
              "migrations/env.py", "models/manifest.toml", "deploy/entrypoint.sh"]
    assert not [p for p in needed if _dockerignored(p, patterns)]
    dropped = [".venv/bin/python", ".git/HEAD", "docs/img/generator-losses.png", ".pytest_cache/v",
               "anon_plugin/__pycache__/cli.cpython-311.pyc", "out/x.jpg"]
    assert all(_dockerignored(p, patterns) for p in dropped), [p for p in dropped if not _dockerignored(p, patterns)]
