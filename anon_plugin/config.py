"""Settings, read once at start from a TOML file and ``ANON_*`` environment variables.

One typed, frozen object (style rule 14): the daemon, the admin panel and the
CLI see the same validated values, and nothing else in the package reads the
environment for settings. Every mistake is found here, at start, with a
one-line ``SettingsError`` naming the key and where it came from (the file or
the variable), instead of minutes later deep inside a worker.

The keys, their rules, their defaults and their environment variables are
all derived from the dataclasses below (a field's ``metadata["rule"]``, a
``rules.Rule`` as each policy field's is), so a new setting is added in one
place. docs/settings.md lists them for users.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platformdirs import user_data_dir

from .errors import SettingsError
from .inference.device import resolve
from .rules import BAD, Invalid, Rule, boolean, choice, integer, seconds
from .store.db import default_url, safe_url

APP_NAME = "anon-plugin"
ENV_PREFIX = "ANON_"
# ANON_* variables that are not settings: the settings file itself (read by the
# CLI), the derived-weight cache (networks/cache.py) and the tests' face data.
NOT_SETTINGS = frozenset({"ANON_CONFIG", "ANON_CACHE", "ANON_TEST_DATA"})
DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def _device() -> Rule:
    def clean(value: object, base: Path) -> object:
        ok = isinstance(value, str) and re.fullmatch(r"auto|cpu|cuda(:(0|[1-9]\d*))?", value)
        return value if ok else BAD

    return Rule(f"one of {', '.join(DEVICES)}", clean)


def _path() -> Rule:
    def clean(value: object, base: Path) -> object:
        if not isinstance(value, str) or not value.strip():
            return BAD
        return (base / Path(value).expanduser()).resolve()

    return Rule("a path (a non-empty string)", clean)


def _paths() -> Rule:
    def clean(value: object, base: Path) -> object:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            return BAD
        return tuple((base / Path(v).expanduser()).resolve() for v in value)

    return Rule("a list of paths", clean, _path_list)


def _patterns() -> Rule:
    def clean(value: object, base: Path) -> object:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return BAD
        return tuple(value)

    return Rule("a list of glob patterns", clean, _path_list)


def _path_list(text: str) -> list[str]:
    return [p for p in text.split(os.pathsep) if p]


def _database_url() -> Rule:
    def clean(value: object, base: Path) -> object:
        if not isinstance(value, str) or not re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
            return BAD
        # A relative SQLite file, like every relative path, starts from the file's folder.
        sqlite = re.match(r"(sqlite(\+\w+)?:///)(?!/)([^?]+)(.*)", value)
        if sqlite and sqlite[3] != ":memory:":
            return f"{sqlite[1]}{(base / sqlite[3]).resolve()}{sqlite[4]}"
        return value

    return Rule("a database URL such as sqlite:////var/lib/anon-plugin/anon_plugin.db", clean)


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")


def parse_bind(text: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``"[::1]:8470"``) -> ``(host, port)``; ValueError when malformed."""
    found = re.fullmatch(r"\[([^\]]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", text)
    if not found:
        raise ValueError(text)
    host, port = (found[1], int(found[2])) if found[1] else (found[3], int(found[4]))
    if found[1]:
        ipaddress.IPv6Address(host)
    elif re.fullmatch(r"[\d.]+", host):
        ipaddress.IPv4Address(host)
    elif not _HOSTNAME.fullmatch(host):
        raise ValueError(text)
    if not 1 <= port <= 65535:
        raise ValueError(text)
    return host, port


def _bind() -> Rule:
    def clean(value: object, base: Path) -> object:
        if not isinstance(value, str):
            return BAD
        try:
            parse_bind(value)
        except ValueError:
            return BAD
        return value

    return Rule("host:port with a port from 1 to 65535 (IPv6 as [::1]:8470)", clean)


def _http_url() -> Rule:
    def clean(value: object, base: Path) -> object:
        if not isinstance(value, str) or not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", value):
            return BAD
        return value.rstrip("/")

    return Rule("an http:// or https:// URL such as http://immich:2283", clean)


def _setting(rule: Rule, **default: Any) -> Any:
    """A dataclass field that is a setting: its rule rides in the metadata."""
    return field(metadata={"rule": rule}, **default)


def _section(cls: type, optional: bool = False) -> Any:
    """A table of settings; an ``optional`` one is None unless one of its keys is given."""
    metadata = {"section": cls, "optional": optional}
    return field(default=None, metadata=metadata) if optional else field(metadata=metadata)


def default_data_dir() -> Path:
    return Path(user_data_dir(APP_NAME)).resolve()


@dataclass(frozen=True, kw_only=True)
class WatchSettings:
    """How new photos are noticed. ``polling`` is for NFS/SMB/CIFS, where native events never come."""

    mode: str = _setting(choice("native", "polling"), default="native")
    stability_delay: float = _setting(seconds(), default=5.0)  # no event for this long: the file is finished
    rescan_interval: float = _setting(seconds(), default=3600.0)  # catches events the watcher dropped
    ignore: tuple[str, ...] = _setting(_patterns(), default=())  # added to the built-in ignore rules


def cpu_cores() -> int:
    """The machine's CPU cores (at least 1)."""
    return os.cpu_count() or 1


@dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """Where and how wide the engine runs.

    ``workers`` are threads of the daemon's one process: they share its models and take turns at
    inference (``inference.batch.anonymize_batch`` runs one batch at a time), so a second worker only
    reads, encodes and publishes while another's batch runs. ``threads`` is torch's for the whole
    process, every CPU core by default: the one batch running uses them all.
    """

    device: str = _setting(_device(), default="auto")
    max_batch: int = _setting(integer(1), default=8)
    workers: int = _setting(integer(1), default=1)
    threads: int = _setting(integer(1), default_factory=cpu_cores)


@dataclass(frozen=True, kw_only=True)
class AdminSettings:
    """The admin panel. Loopback by default: exposing it is a decision the admin makes."""

    bind: str = _setting(_bind(), default="127.0.0.1:8470")
    secure_cookies: bool = _setting(boolean(), default=False)  # true behind TLS

    @property
    def host(self) -> str:
        return parse_bind(self.bind)[0]

    @property
    def port(self) -> int:
        return parse_bind(self.bind)[1]


@dataclass(frozen=True, kw_only=True)
class ImmichSettings:
    """An Immich server: albums of its owner's key are sources, a public user's key publishes the copies.

    The keys themselves stay in their files (mode 0600 or 0400, checked at start), never in the settings.
    """

    url: str | None = _setting(_http_url(), default=None)  # required when the section is given
    source_key_file: Path | None = _setting(_path(), default=None)  # album.read, asset.read, asset.download
    public_key_file: Path | None = _setting(_path(), default=None)  # asset.upload, asset.delete, album.create, ...
    poll_interval: float = _setting(seconds(), default=60.0)  # seconds between looks at the albums


def _broker_url() -> Rule:
    def clean(value: object, base: Path) -> object:
        if not isinstance(value, str) or not re.fullmatch(r"rediss?://\S+", value):
            return BAD
        return value

    return Rule("a Redis URL such as redis://:PASSWORD@redis:6379/0", clean)


@dataclass(frozen=True, kw_only=True)
class QueueSettings:
    """Where publish jobs wait. ``local``: in the store, run by the daemon's own worker threads (one box, no
    other server). ``celery``: sent through a Redis broker to ``anon-plugin worker`` processes on any number
    of machines; the store (PostgreSQL) stays the source of truth, see docs/scaling.md."""

    backend: str = _setting(choice("local", "celery"), default="local")
    broker_url: str = _setting(_broker_url(), default="redis://localhost:6379/0")
    lease: float = _setting(seconds(), default=120.0)  # a job's lease, renewed every quarter while it runs
    max_attempts: int = _setting(integer(1), default=5)  # tries of a photo (its worker dying counts) before failed
    time_limit: float = _setting(seconds(), default=1800.0)  # a batch running longer ends its worker process
    visibility_timeout: float = _setting(seconds(), default=3600.0)  # Redis hands an unacknowledged batch again
    resend_after: float = _setting(seconds(), default=600.0)  # a batch sent this long ago, not taken: sent again


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the plugin is told, validated. Paths are absolute and resolved.

    Built by ``load_settings``; constructing it directly skips every check.
    """

    data_dir: Path = _setting(_path(), default_factory=default_data_dir)
    library_roots: tuple[Path, ...] = _setting(_paths(), default=())
    public_root: Path | None = _setting(_path(), default=None)
    database_url: str = _setting(_database_url())
    share_new_albums: bool = _setting(boolean(), default=False)
    watch: WatchSettings = _section(WatchSettings)
    inference: InferenceSettings = _section(InferenceSettings)
    admin: AdminSettings = _section(AdminSettings)
    immich: ImmichSettings | None = _section(ImmichSettings, optional=True)  # None: no Immich
    queue: QueueSettings = _section(QueueSettings)
    source: Path | None = None  # the settings file read, if any

    def resolved_device(self) -> str:
        return resolve(self.inference.device)


@dataclass(frozen=True)
class Key:
    """One setting: ``section`` is None at the top level."""

    section: str | None
    name: str
    rule: Rule

    @property
    def label(self) -> str:
        return f"[{self.section}] {self.name}" if self.section else self.name

    @property
    def env(self) -> str:
        return ENV_PREFIX + "_".join(filter(None, (self.section, self.name))).upper()


def _settings_fields(cls: type) -> Iterable[dataclasses.Field]:
    return (f for f in dataclasses.fields(cls) if "rule" in f.metadata)


def _sections() -> dict[str, type]:
    return {f.name: f.metadata["section"] for f in dataclasses.fields(Settings) if "section" in f.metadata}


def _keys() -> tuple[Key, ...]:
    top = [Key(None, f.name, f.metadata["rule"]) for f in _settings_fields(Settings)]
    nested = [Key(name, f.name, f.metadata["rule"]) for name, cls in _sections().items() for f in _settings_fields(cls)]
    return (*top, *nested)


KEYS: tuple[Key, ...] = _keys()
SECTIONS: tuple[str, ...] = tuple(_sections())


@dataclass(frozen=True)
class _Given:
    """A value as the file or the environment gave it, with where it came from."""

    value: Any
    where: str  # "settings.toml: [watch] mode" or "ANON_WATCH_MODE"
    base: Path  # relative paths start here


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _read_file(path: Path) -> dict[Key, _Given]:
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except IsADirectoryError:
        raise SettingsError(f"{path}: is a folder, not a settings file") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the settings file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not valid TOML: not UTF-8 text") from None
    base = path.absolute().parent
    by_place = {(k.section, k.name): k for k in KEYS}
    top_known = [k.name for k in KEYS if k.section is None] + [f"[{s}]" for s in SECTIONS]
    given: dict[Key, _Given] = {}
    for name, value in document.items():
        if name in SECTIONS:
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: [{name}]: must be a table, got {value!r}")
            known = [k.name for k in KEYS if k.section == name]
            for sub, sub_value in value.items():
                if (name, sub) not in by_place:
                    raise SettingsError(f"{path}: [{name}] unknown key {sub!r}{_hint(sub, known)}; "
                                        f"known: {', '.join(known)}")
                key = by_place[name, sub]
                given[key] = _Given(sub_value, f"{path}: {key.label}", base)
        elif (None, name) in by_place:
            key = by_place[None, name]
            given[key] = _Given(value, f"{path}: {key.label}", base)
        else:
            home = [k.label for k in KEYS if k.name == name]
            hint = f" (it belongs in {home[0].split()[0]})" if home else _hint(name, top_known)
            raise SettingsError(f"{path}: unknown key {name!r}{hint}; known: {', '.join(top_known)}")
    return given


def _read_environ(environ: Mapping[str, str]) -> dict[Key, _Given]:
    by_env = {k.env: k for k in KEYS}
    cwd = Path.cwd()
    given: dict[Key, _Given] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in NOT_SETTINGS:
            continue
        if name not in by_env:
            raise SettingsError(f"{name}: unknown setting{_hint(name, by_env)}; "
                                f"known: {', '.join(by_env)} "
                                f"(and {', '.join(sorted(NOT_SETTINGS))}, which are not settings)")
        key = by_env[name]
        given[key] = _Given(key.rule.from_text(environ[name]), name, cwd)
    return given


def _clean(given: Mapping[Key, _Given]) -> dict[str | None, dict[str, Any]]:
    values: dict[str | None, dict[str, Any]] = {None: {}, **{s: {} for s in SECTIONS}}
    for key, g in given.items():
        try:
            values[key.section][key.name] = key.rule.check(g.value, g.base)
        except Invalid as exc:
            raise SettingsError(f"{g.where}: {exc}") from None
    return values


def _with_defaults(values: dict[str | None, dict[str, Any]]) -> Settings:
    """Fill what was not given: the fields' own defaults, then those derived from other settings."""
    sections = _sections()
    optional = {f.name for f in dataclasses.fields(Settings) if f.metadata.get("optional")}
    absent = {s for s in optional if not values[s]}
    classes: list[tuple[str | None, type]] = [(None, Settings), *sections.items()]
    for section, cls in classes:
        for f in _settings_fields(cls):
            if f.name in values[section]:
                continue
            if f.default is not dataclasses.MISSING:
                values[section][f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                values[section][f.name] = f.default_factory()
    top = values[None]
    top.setdefault("database_url", default_url(top["data_dir"]))
    tables: dict[str, Any] = {s: None if s in absent else sections[s](**values[s]) for s in SECTIONS}
    return Settings(**top, **tables)


def _inside(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _overlap(settings: Settings, where: Callable[[str], str]) -> None:
    """Refuse folders that feed each other: we must never watch our own output or write into a library."""
    roots = settings.library_roots
    for i, root in enumerate(roots):
        for other in roots[i + 1:]:
            if _inside(root, other) or _inside(other, root):
                raise SettingsError(f"{where('library_roots')}: library roots {root} and {other} overlap "
                                    "(their albums would be seen twice)")
    public = settings.public_root
    for root in roots:
        if public is not None and (_inside(public, root) or _inside(root, public)):
            relation = "is" if public == root else "is inside" if _inside(public, root) else "contains"
            raise SettingsError(f"{where('public_root')}: {public} {relation} library root {root} "
                                "(a feedback loop: public copies would be anonymized again)")
        if _inside(settings.data_dir, root):
            raise SettingsError(f"{where('data_dir')}: {settings.data_dir} is inside library root {root} "
                                "(library roots are read only)")
    if public is not None and _inside(settings.data_dir, public):
        raise SettingsError(f"{where('data_dir')}: {settings.data_dir} is inside the public root {public} "
                            "(the database and secret key would be published)")


def _check_folders(settings: Settings, where: Callable[[str], str]) -> None:
    for root in settings.library_roots:
        if not root.exists():
            raise SettingsError(f"{where('library_roots')}: {root} does not exist")
        if not root.is_dir():
            raise SettingsError(f"{where('library_roots')}: {root} is not a folder")
    public = settings.public_root
    if settings.library_roots and public is None:
        raise SettingsError(f"{where('public_root')}: must be set when library_roots is not empty")
    _overlap(settings, where)
    if public is not None and not public.exists() and not public.parent.is_dir():
        raise SettingsError(f"{where('public_root')}: {public} does not exist and neither does its parent folder")
    for name, folder in (("data_dir", settings.data_dir), ("public_root", public)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise SettingsError(f"{where(name)}: {folder} is not a folder")


def _check_device(device: str, where: str) -> None:
    """A CUDA device asked for must exist here. torch is imported only when one is asked for."""
    if device.startswith("cuda"):
        try:
            resolve(device)
        except ValueError as exc:
            raise SettingsError(f"{where}: {exc}; use auto or cpu") from None


def _check_immich(immich: ImmichSettings, where: Callable[[str, str], str]) -> None:
    """A given [immich] section needs its URL and both key files, each private to its owner."""
    from .connectors.immich.client import read_key  # httpx is imported only when Immich is set up
    from .errors import ImmichKeyError

    for name in ("url", "source_key_file", "public_key_file"):
        if getattr(immich, name) is None:
            raise SettingsError(f"{where(name, 'immich')}: must be set when the [immich] section is given")
    for name in ("source_key_file", "public_key_file"):
        try:
            read_key(getattr(immich, name))
        except ImmichKeyError as exc:
            raise SettingsError(f"{where(name, 'immich')}: {exc}") from None


def _check_queue(settings: Settings, where: Callable[[str, str], str]) -> None:
    """The celery backend shares the store between machines: PostgreSQL only, and a batch must end (or its
    worker) before Redis hands it to another worker."""
    queue = settings.queue
    if queue.backend != "celery":
        return
    if not settings.database_url.startswith("postgresql"):
        raise SettingsError(f"{where('backend', 'queue')}: the celery backend needs database_url on PostgreSQL "
                            "(workers on other machines share the store; SQLite on a network share corrupts)")
    if queue.time_limit >= queue.visibility_timeout:
        raise SettingsError(f"{where('time_limit', 'queue')}: {queue.time_limit:g} s must be below "
                            f"visibility_timeout ({queue.visibility_timeout:g} s), or Redis hands a batch still "
                            "running to a second worker")


def _create_folders(settings: Settings, where: Callable[[str], str]) -> None:
    """data_dir holds the database and the secret key: private (0700) when we create it."""
    try:
        if not settings.data_dir.exists():
            settings.data_dir.mkdir(mode=0o700, parents=True)
            settings.data_dir.chmod(0o700)
    except OSError as exc:
        raise SettingsError(f"{where('data_dir')}: cannot create {settings.data_dir}: {exc.strerror}") from None
    try:
        if settings.public_root is not None and not settings.public_root.exists():
            settings.public_root.mkdir()
    except OSError as exc:
        raise SettingsError(f"{where('public_root')}: cannot create {settings.public_root}: {exc.strerror}") from None


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (TOML; optional), apply ``ANON_*`` overrides from ``environ``, validate, return.

    ``environ`` defaults to ``os.environ``. Relative paths in the file start
    from the file's folder; in the environment, from the current folder.
    Creates ``data_dir`` (mode 0700) and ``public_root`` when missing, only
    after every check passed. Raises ``SettingsError`` (one line: key, where).
    """
    environ = os.environ if environ is None else environ
    file = Path(path) if path is not None else None
    given = _read_file(file) if file is not None else {}
    given.update(_read_environ(environ))
    settings = dataclasses.replace(_with_defaults(_clean(given)), source=file.absolute() if file else None)
    by_name = {k.name: k for k in KEYS if k.section is None}

    def where(name: str, section: str | None = None) -> str:
        key = by_name[name] if section is None else next(k for k in KEYS if (k.section, k.name) == (section, name))
        if key in given:
            return given[key].where
        return f"{file}: {key.label}" if file else key.env

    _check_folders(settings, where)
    _check_device(settings.inference.device, where("device", "inference"))
    if settings.immich is not None:
        _check_immich(settings.immich, where)
    _check_queue(settings, where)
    _create_folders(settings, where)
    return settings


def settings_summary(settings: Settings) -> dict[str, Any]:
    """The settings as a JSON-able dict shaped like the file, for ``anon-plugin`` to print."""

    def plain(value: object) -> object:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    summary: dict[str, Any] = {"source": plain(settings.source)}
    for key in KEYS:
        holder = settings if key.section is None else getattr(settings, key.section)
        if key.section is not None and holder is None:  # an optional section not given
            summary[key.section] = None
            continue
        target = summary if key.section is None else summary.setdefault(key.section, {})
        target[key.name] = plain(getattr(holder, key.name))
    summary["database_url"] = safe_url(settings.database_url)
    summary["queue"]["broker_url"] = safe_url(settings.queue.broker_url)
    return summary
