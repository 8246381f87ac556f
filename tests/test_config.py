"""Settings: the TOML file, ANON_* overrides, every error rule, on real temporary folders."""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

import pytest
import torch

from anon_plugin.config import (KEYS, NOT_SETTINGS, AdminSettings, ImmichSettings, InferenceSettings, QueueSettings,
                                WatchSettings, load_settings, settings_summary)
from anon_plugin.errors import SettingsError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "deploy" / "anon-plugin.toml"
SETTINGS_DOC = REPO / "docs" / "settings.md"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A library with one album, beside an empty place for the public root and the data folder."""
    (tmp_path / "library" / "Family").mkdir(parents=True)
    return tmp_path


def write(folder: Path, text: str, name: str = "settings.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def minimal(site: Path, extra: str = "") -> Path:
    """A valid file with relative paths; ``extra`` is appended."""
    return write(site, 'data_dir = "data"\nlibrary_roots = ["library"]\npublic_root = "public"\n' + extra)


def error(path: Path | None = None, **environ: str) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ=environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_every_setting_has_the_expected_variable():
    assert [k.env for k in KEYS] == [
        "ANON_DATA_DIR", "ANON_LIBRARY_ROOTS", "ANON_PUBLIC_ROOT", "ANON_DATABASE_URL", "ANON_SHARE_NEW_ALBUMS",
        "ANON_WATCH_MODE", "ANON_WATCH_STABILITY_DELAY", "ANON_WATCH_RESCAN_INTERVAL", "ANON_WATCH_IGNORE",
        "ANON_INFERENCE_DEVICE", "ANON_INFERENCE_MAX_BATCH", "ANON_INFERENCE_WORKERS", "ANON_INFERENCE_THREADS",
        "ANON_ADMIN_BIND", "ANON_ADMIN_SECURE_COOKIES",
        "ANON_IMMICH_URL", "ANON_IMMICH_SOURCE_KEY_FILE", "ANON_IMMICH_PUBLIC_KEY_FILE", "ANON_IMMICH_POLL_INTERVAL",
        "ANON_QUEUE_BACKEND", "ANON_QUEUE_BROKER_URL", "ANON_QUEUE_LEASE", "ANON_QUEUE_MAX_ATTEMPTS",
        "ANON_QUEUE_TIME_LIMIT", "ANON_QUEUE_VISIBILITY_TIMEOUT", "ANON_QUEUE_RESEND_AFTER",
    ]


def test_defaults(site: Path):
    settings = load_settings(minimal(site), environ={})
    assert settings.data_dir == (site / "data").resolve()
    assert settings.library_roots == ((site / "library").resolve(),)
    assert settings.public_root == (site / "public").resolve()
    assert settings.database_url == f"sqlite:///{(site / 'data' / 'anon_plugin.db').resolve()}"
    assert settings.share_new_albums is False
    assert (settings.watch.mode, settings.watch.stability_delay, settings.watch.rescan_interval,
            settings.watch.ignore) == ("native", 5.0, 3600.0, ())
    assert (settings.inference.device, settings.inference.max_batch, settings.inference.workers) == ("auto", 8, 1)
    assert settings.inference.threads == max(1, os.cpu_count() or 1)
    assert (settings.admin.bind, settings.admin.host, settings.admin.port) == ("127.0.0.1:8470", "127.0.0.1", 8470)
    assert settings.admin.secure_cookies is False
    assert settings.source == site / "settings.toml"


def test_no_file_and_no_library_is_enough_for_the_engine_commands(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    settings = load_settings(environ={})
    assert settings.data_dir == (tmp_path / "xdg" / "anon-plugin").resolve()
    assert settings.data_dir.is_dir()
    assert settings.library_roots == () and settings.public_root is None and settings.source is None


def test_folders_are_created_data_dir_private(site: Path):
    settings = load_settings(minimal(site), environ={})
    assert settings.public_root.is_dir()
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700


def test_threads_default_to_every_core_whatever_the_workers(site: Path):
    """Workers are threads of one process taking turns at inference: the batch running uses every core."""
    settings = load_settings(minimal(site, "[inference]\nworkers = 64\n"), environ={})
    assert settings.inference.threads == max(1, os.cpu_count() or 1)
    settings = load_settings(minimal(site, "[inference]\nworkers = 2\nthreads = 3\n"), environ={})
    assert (settings.inference.workers, settings.inference.threads) == (2, 3)


def test_every_key_from_the_file(site: Path):
    path = minimal(site, 'database_url = "sqlite:///db/x.db"\nshare_new_albums = true\n'
                         '[watch]\nmode = "polling"\nstability_delay = 2\nrescan_interval = 60.5\nignore = ["*.tmp"]\n'
                         '[inference]\ndevice = "cpu"\nmax_batch = 16\nworkers = 2\nthreads = 4\n'
                         '[admin]\nbind = "[::1]:9000"\nsecure_cookies = true\n')
    settings = load_settings(path, environ={})
    assert settings.database_url == f"sqlite:///{(site / 'db' / 'x.db').resolve()}"
    assert settings.share_new_albums is True
    assert settings.watch.mode == "polling" and settings.watch.stability_delay == 2.0
    assert settings.watch.rescan_interval == 60.5 and settings.watch.ignore == ("*.tmp",)
    assert (settings.inference.device, settings.inference.max_batch, settings.inference.threads) == ("cpu", 16, 4)
    assert (settings.admin.host, settings.admin.port, settings.admin.secure_cookies) == ("::1", 9000, True)
    assert settings.resolved_device() == "cpu"


def test_environment_overrides_the_file(site: Path):
    other = site / "other"
    (other / "Club").mkdir(parents=True)
    settings = load_settings(minimal(site, '[watch]\nmode = "native"\n'), environ={
        "ANON_LIBRARY_ROOTS": os.pathsep.join([str(site / "library"), str(other)]),
        "ANON_WATCH_MODE": "polling", "ANON_WATCH_STABILITY_DELAY": "0.5", "ANON_INFERENCE_MAX_BATCH": "4",
        "ANON_SHARE_NEW_ALBUMS": "yes", "ANON_ADMIN_SECURE_COOKIES": "off", "ANON_WATCH_IGNORE": "*.part",
        "ANON_DATABASE_URL": "postgresql://anon:secret@db/anon", "ANON_ADMIN_BIND": "0.0.0.0:80",
        "ANON_INFERENCE_DEVICE": "cpu", "PATH": "/usr/bin",
    })
    assert settings.library_roots == ((site / "library").resolve(), other.resolve())
    assert (settings.watch.mode, settings.watch.stability_delay, settings.watch.ignore) == ("polling", 0.5, ("*.part",))
    assert settings.inference.max_batch == 4 and settings.share_new_albums is True
    assert settings.admin.secure_cookies is False and settings.admin.port == 80
    assert settings.database_url == "postgresql://anon:secret@db/anon"
    assert settings_summary(settings)["database_url"] == "postgresql://anon:***@db/anon"


def test_environment_alone(site: Path):
    settings = load_settings(environ={"ANON_DATA_DIR": str(site / "data"), "ANON_LIBRARY_ROOTS": str(site / "library"),
                                      "ANON_PUBLIC_ROOT": str(site / "public")})
    assert settings.public_root == (site / "public").resolve() and settings.source is None


def test_variables_that_are_not_settings_are_left_alone(site: Path):
    environ = {name: "/somewhere" for name in NOT_SETTINGS}
    assert {"ANON_CONFIG", "ANON_CACHE", "ANON_TEST_DATA"} <= NOT_SETTINGS
    load_settings(minimal(site), environ=environ)


def test_unknown_variable_is_named(site: Path):
    message = error(minimal(site), ANON_WATCH_MOD="polling")
    assert message.startswith("ANON_WATCH_MOD: unknown setting (did you mean 'ANON_WATCH_MODE'?); "
                              "known: ANON_DATA_DIR,")


def test_relative_paths_start_from_the_file_folder(site: Path, monkeypatch):
    monkeypatch.chdir(site / "library")
    nested = site / "etc"
    nested.mkdir()
    path = write(nested, 'data_dir = "../data"\nlibrary_roots = ["../library"]\npublic_root = "~/../public"\n')
    monkeypatch.setenv("HOME", str(site / "home"))
    settings = load_settings(path, environ={})
    assert settings.data_dir == (site / "data").resolve()
    assert settings.library_roots == ((site / "library").resolve(),)
    assert settings.public_root == (site / "public").resolve()


def test_summary_is_shaped_like_the_file(site: Path):
    summary = settings_summary(load_settings(minimal(site), environ={}))
    assert summary["library_roots"] == [str((site / "library").resolve())]
    assert summary["watch"]["mode"] == "native" and summary["admin"]["bind"] == "127.0.0.1:8470"
    assert summary["source"] == str(site / "settings.toml")


# ---- errors: each one line, naming the key and the file or the variable ----

def test_file_not_found(tmp_path: Path):
    path = tmp_path / "nope.toml"
    assert error(path) == f"{path}: settings file not found"


def test_file_is_a_folder(tmp_path: Path):
    assert error(tmp_path) == f"{tmp_path}: is a folder, not a settings file"


def test_not_valid_toml_gives_the_line(site: Path):
    path = write(site, 'data_dir = "data"\n\nlibrary_roots = [\n  "library"\npublic_root = \n')
    assert re.fullmatch(rf"{re.escape(str(path))}: not valid TOML: .*\(at line 5, column \d+\)", error(path))


def test_unknown_top_level_key_lists_the_known(site: Path):
    path = minimal(site, "data_dri = 1\n")
    assert error(path) == (f"{path}: unknown key 'data_dri' (did you mean 'data_dir'?); known: data_dir, "
                           "library_roots, public_root, database_url, share_new_albums, [watch], [inference], [admin], "
                           "[immich], [queue]")


def test_section_key_at_the_top_level_says_where_it_belongs(site: Path):
    path = minimal(site, 'mode = "polling"\n')
    assert error(path).startswith(f"{path}: unknown key 'mode' (it belongs in [watch]); known: data_dir,")


def test_unknown_key_in_a_section_lists_the_known(site: Path):
    path = minimal(site, "[inference]\nbatch = 4\n")
    assert error(path) == (f"{path}: [inference] unknown key 'batch' (did you mean 'max_batch'?); "
                           "known: device, max_batch, workers, threads")


def test_section_must_be_a_table(site: Path):
    path = minimal(site, 'watch = "polling"\n')
    assert error(path) == f"{path}: [watch]: must be a table, got 'polling'"


@pytest.mark.parametrize("extra, message", [
    ("[inference]\nmax_batch = 0\n", "[inference] max_batch: must be an integer >= 1, got 0"),
    ('[inference]\nmax_batch = "8"\n', "[inference] max_batch: must be an integer >= 1, got '8'"),
    ("[inference]\nworkers = true\n", "[inference] workers: must be an integer >= 1, got True"),
    ("[inference]\nthreads = 1.5\n", "[inference] threads: must be an integer >= 1, got 1.5"),
    ('[inference]\ndevice = "gpu"\n', "[inference] device: must be one of auto, cpu, cuda, cuda:N, got 'gpu'"),
    ('[inference]\ndevice = "cuda:x"\n', "[inference] device: must be one of auto, cpu, cuda, cuda:N, got 'cuda:x'"),
    ('[watch]\nmode = "inotify"\n', "[watch] mode: must be one of native, polling, got 'inotify'"),
    ("[watch]\nstability_delay = 0\n", "[watch] stability_delay: must be a number of seconds > 0, got 0"),
    ("[watch]\nrescan_interval = -1\n", "[watch] rescan_interval: must be a number of seconds > 0, got -1"),
    ("[watch]\nrescan_interval = inf\n", "[watch] rescan_interval: must be a number of seconds > 0, got inf"),
    ('[watch]\nignore = "*.tmp"\n', "[watch] ignore: must be a list of glob patterns, got '*.tmp'"),
    ("[admin]\nsecure_cookies = 1\n", "[admin] secure_cookies: must be true or false, got 1"),
    ('share_new_albums = "yes"\n', "share_new_albums: must be true or false, got 'yes'"),
    ('database_url = "anon.db"\n', "database_url: must be a database URL such as "
                                   "sqlite:////var/lib/anon-plugin/anon_plugin.db, got 'anon.db'"),
])
def test_wrong_type_or_value_in_the_file(site: Path, extra: str, message: str):
    path = minimal(site, extra)
    assert error(path) == f"{path}: {message}"


def test_wrong_path_types_in_the_file(site: Path):
    path = write(site, 'library_roots = "library"\n')
    assert error(path) == f"{path}: library_roots: must be a list of paths, got 'library'"
    path = write(site, "data_dir = 7\n")
    assert error(path) == f"{path}: data_dir: must be a path (a non-empty string), got 7"


@pytest.mark.parametrize("name, value, message", [
    ("ANON_WATCH_MODE", "inotify", "must be one of native, polling, got 'inotify'"),
    ("ANON_INFERENCE_MAX_BATCH", "eight", "must be an integer >= 1, got 'eight'"),
    ("ANON_INFERENCE_WORKERS", "0", "must be an integer >= 1, got 0"),
    ("ANON_WATCH_STABILITY_DELAY", "soon", "must be a number of seconds > 0, got 'soon'"),
    ("ANON_SHARE_NEW_ALBUMS", "maybe", "must be true or false, got 'maybe'"),
    ("ANON_ADMIN_BIND", "localhost", "must be host:port with a port from 1 to 65535 (IPv6 as [::1]:8470), "
                                     "got 'localhost'"),
    ("ANON_PUBLIC_ROOT", "", "must be a path (a non-empty string), got ''"),
])
def test_wrong_value_in_the_environment(site: Path, name: str, value: str, message: str):
    assert error(minimal(site), **{name: value}) == f"{name}: {message}"


@pytest.mark.parametrize("bind", ["localhost", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:8470",
                                  "[::1]", "[nothere]:80", "300.1.1.1:80", ":8470", "bad_host:80", "[::1]:"])
def test_bad_bind(site: Path, bind: str):
    path = minimal(site, f'[admin]\nbind = "{bind}"\n')
    assert error(path) == (f"{path}: [admin] bind: must be host:port with a port from 1 to 65535 "
                           f"(IPv6 as [::1]:8470), got {bind!r}")


@pytest.mark.parametrize("bind, host, port", [("0.0.0.0:8470", "0.0.0.0", 8470), ("[::]:1", "::", 1),
                                              ("gallery.lan:65535", "gallery.lan", 65535)])
def test_good_bind(site: Path, bind: str, host: str, port: int):
    settings = load_settings(minimal(site), environ={"ANON_ADMIN_BIND": bind})
    assert (settings.admin.host, settings.admin.port) == (host, port)


def test_missing_library_root(site: Path):
    path = write(site, 'data_dir = "data"\nlibrary_roots = ["library", "gone"]\npublic_root = "public"\n')
    assert error(path) == f"{path}: library_roots: {(site / 'gone').resolve()} does not exist"


def test_library_root_that_is_a_file(site: Path):
    (site / "photo.jpg").write_bytes(b"")
    path = write(site, 'data_dir = "data"\nlibrary_roots = ["photo.jpg"]\npublic_root = "public"\n')
    assert error(path) == f"{path}: library_roots: {(site / 'photo.jpg').resolve()} is not a folder"


def test_missing_library_root_from_the_environment(site: Path):
    gone = site / "gone"
    assert error(minimal(site), ANON_LIBRARY_ROOTS=str(gone)) == f"ANON_LIBRARY_ROOTS: {gone.resolve()} does not exist"


def test_public_root_required_with_a_library(site: Path):
    path = write(site, 'data_dir = "data"\nlibrary_roots = ["library"]\n')
    assert error(path) == f"{path}: public_root: must be set when library_roots is not empty"


def test_public_root_inside_a_library_root(site: Path):
    path = write(site, 'data_dir = "data"\nlibrary_roots = ["library"]\npublic_root = "library/public"\n')
    library = (site / "library").resolve()
    assert error(path) == (f"{path}: public_root: {library / 'public'} is inside library root {library} "
                           "(a feedback loop: public copies would be anonymized again)")
    assert not (library / "public").exists()


def test_library_root_inside_the_public_root(site: Path):
    (site / "public").mkdir()
    path = write(site, 'data_dir = "data"\nlibrary_roots = ["library"]\npublic_root = "."\n')
    assert error(path).startswith(f"{path}: public_root: {site.resolve()} contains library root ")


def test_public_root_equal_to_a_library_root(site: Path):
    path = write(site, 'data_dir = "data"\nlibrary_roots = ["library"]\npublic_root = "library/Family/.."\n')
    assert "public_root: " in error(path) and " is library root " in error(path)


def test_feedback_loop_through_a_symlink_compares_resolved_paths(site: Path):
    (site / "shortcut").symlink_to(site / "library", target_is_directory=True)
    path = write(site, 'data_dir = "data"\nlibrary_roots = ["library"]\npublic_root = "shortcut/public"\n')
    assert "is inside library root" in error(path)


def test_overlapping_library_roots(site: Path):
    path = write(site, 'data_dir = "data"\nlibrary_roots = ["library", "library/Family"]\npublic_root = "public"\n')
    assert "library_roots: library roots " in error(path) and "overlap" in error(path)


def test_data_dir_inside_a_library_or_the_public_root(site: Path):
    path = write(site, 'data_dir = "library/.anon"\nlibrary_roots = ["library"]\npublic_root = "public"\n')
    assert error(path).startswith(f"{path}: data_dir: {(site / 'library' / '.anon').resolve()} is inside library root")
    path = write(site, 'data_dir = "public/data"\nlibrary_roots = ["library"]\npublic_root = "public"\n')
    assert "data_dir: " in error(path) and "would be published" in error(path)


def test_public_root_whose_parent_is_missing(site: Path):
    path = write(site, 'data_dir = "data"\nlibrary_roots = ["library"]\npublic_root = "no/such/public"\n')
    assert error(path) == (f"{path}: public_root: {(site / 'no/such/public').resolve()} does not exist "
                           "and neither does its parent folder")


def test_public_root_and_data_dir_that_are_files(site: Path):
    path = site / "settings.toml"
    (site / "public").write_text("")
    assert error(minimal(site)) == f"{path}: public_root: {(site / 'public').resolve()} is not a folder"
    (site / "public").unlink()
    (site / "data").write_text("")
    assert error(minimal(site)) == f"{path}: data_dir: {(site / 'data').resolve()} is not a folder"


def test_cuda_asked_for_where_torch_sees_none(site: Path):
    # No GPU here: "cuda" must be refused. With one, a device number past the last is refused the same way.
    device = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    path = minimal(site, f'[inference]\ndevice = "{device}"\n')
    assert error(path).startswith(f"{path}: [inference] device: {device!r} asked for, but torch sees ")
    assert error(minimal(site), ANON_INFERENCE_DEVICE="cuda:7").startswith("ANON_INFERENCE_DEVICE: 'cuda:7' asked for")


def test_auto_resolves_to_what_torch_sees(site: Path):
    settings = load_settings(minimal(site), environ={})
    assert settings.resolved_device() == ("cuda:0" if torch.cuda.is_available() else "cpu")


def test_nothing_is_created_when_a_check_fails(site: Path):
    path = minimal(site, "[inference]\nmax_batch = 0\n")
    error(path)
    assert not (site / "data").exists() and not (site / "public").exists()


# ---- the example file and the docs stay in step with the keys ----

def test_example_file_has_every_key_at_its_default():
    text = EXAMPLE.read_text()
    document = tomllib.loads(text)
    sections = {"watch": WatchSettings(), "inference": InferenceSettings(threads=1), "admin": AdminSettings(),
                "queue": QueueSettings()}
    optional = {"immich"}  # shown commented out, with example values
    assert set(sections) | optional == {k.section for k in KEYS} - {None}
    for key in KEYS:
        if key.section in optional:
            assert re.search(rf"^# \[{key.section}\]$", text, re.M) and re.search(rf"^# {key.name} = ", text, re.M)
            continue
        if key.label == "[inference] threads":  # its default depends on the machine: shown commented out
            assert re.search(r"^# threads = ", text, re.M)
            continue
        table = document if key.section is None else document[key.section]
        assert key.name in table, f"{key.label} missing from {EXAMPLE.name}"
        if key.section is not None:
            default = getattr(sections[key.section], key.name)
            assert table[key.name] == (list(default) if isinstance(default, tuple) else default), key.label
    assert document["share_new_albums"] is False
    assert document["database_url"] == "sqlite:////var/lib/anon-plugin/anon_plugin.db"


def test_example_file_loads_once_its_paths_exist(tmp_path: Path):
    text = EXAMPLE.read_text().replace("/srv/photos", str(tmp_path / "photos")).replace(
        "/var/lib/anon-plugin", str(tmp_path / "var"))
    (tmp_path / "photos" / "library").mkdir(parents=True)
    settings = load_settings(write(tmp_path, text), environ={})
    assert settings.public_root == (tmp_path / "photos" / "public").resolve()
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'var' / 'anon_plugin.db'}"


def test_docs_name_every_setting_and_variable():
    text = SETTINGS_DOC.read_text()
    for key in KEYS:
        assert f"`{key.env}`" in text and f"`{key.name}`" in text, key.label


# ---- [immich]: optional ----

def key_file(folder: Path, name: str, mode: int = 0o600) -> Path:
    path = folder / name
    path.write_text("an-api-key\n")
    path.chmod(mode)
    return path


def immich(site: Path, **keys: str) -> str:
    given = {"url": "http://immich:2283/", "source_key_file": "source.key", "public_key_file": "public.key", **keys}
    return "[immich]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in given.items() if v)


def test_without_an_immich_section_there_is_no_immich(site: Path):
    settings = load_settings(minimal(site), environ={})
    assert settings.immich is None and settings_summary(settings)["immich"] is None


def test_an_immich_section(site: Path):
    key_file(site, "source.key"), key_file(site, "public.key", 0o400)
    settings = load_settings(minimal(site, immich(site)), environ={})
    assert settings.immich == ImmichSettings(url="http://immich:2283", source_key_file=(site / "source.key").resolve(),
                                             public_key_file=(site / "public.key").resolve(), poll_interval=60.0)
    assert "an-api-key" not in str(settings_summary(settings))
    environ = {"ANON_IMMICH_URL": "https://photos.example.org", "ANON_IMMICH_POLL_INTERVAL": "5"}
    settings = load_settings(minimal(site, immich(site)), environ=environ)
    assert settings.immich is not None and settings.immich.url == "https://photos.example.org"
    assert settings.immich.poll_interval == 5.0


def test_an_immich_section_needs_its_url_and_both_key_files(site: Path):
    key_file(site, "source.key"), key_file(site, "public.key")
    path = minimal(site, immich(site, url=""))
    assert error(path) == f"{path}: [immich] url: must be set when the [immich] section is given"
    path = minimal(site, immich(site, public_key_file=""))
    assert error(path) == f"{path}: [immich] public_key_file: must be set when the [immich] section is given"
    assert error(None, ANON_IMMICH_POLL_INTERVAL="30") == (
        "ANON_IMMICH_URL: must be set when the [immich] section is given")
    path = minimal(site, immich(site, url="immich:2283"))
    assert error(path) == (f"{path}: [immich] url: must be an http:// or https:// URL such as http://immich:2283, "
                           "got 'immich:2283'")


def test_an_immich_key_file_readable_by_others_is_refused(site: Path):
    key_file(site, "source.key", 0o644), key_file(site, "public.key")
    path = minimal(site, immich(site))
    assert error(path) == (f"{path}: [immich] source_key_file: {(site / 'source.key').resolve()}: mode 0644, "
                           f"readable by others than its owner; run chmod 600 {(site / 'source.key').resolve()}")
    assert "an-api-key" not in error(path)
    (site / "source.key").chmod(0o600)
    assert "public_key_file: " in error(minimal(site, immich(site, public_key_file="missing.key")))


# ---- [queue]: local (default) or celery ----

PG = "postgresql+psycopg://anon@db.lan/anon"


def test_queue_defaults(site: Path):
    from anon_plugin.config import QueueSettings

    settings = load_settings(minimal(site), environ={})
    assert settings.queue == QueueSettings(backend="local", broker_url="redis://localhost:6379/0", lease=120.0,
                                           max_attempts=5, time_limit=1800.0, visibility_timeout=3600.0,
                                           resend_after=600.0)
    assert settings_summary(settings)["queue"] == {
        "backend": "local", "broker_url": "redis://localhost:6379/0", "lease": 120.0, "max_attempts": 5,
        "time_limit": 1800.0, "visibility_timeout": 3600.0, "resend_after": 600.0}


def test_a_celery_queue_on_postgresql(site: Path):
    path = minimal(site, f'database_url = "{PG}"\n[queue]\nbackend = "celery"\n'
                         'broker_url = "redis://:hunter2@redis:6379/0"\ntime_limit = 600\nmax_attempts = 3\n')
    settings = load_settings(path, environ={"ANON_QUEUE_VISIBILITY_TIMEOUT": "900"})
    assert (settings.queue.backend, settings.queue.broker_url) == ("celery", "redis://:hunter2@redis:6379/0")
    assert (settings.queue.time_limit, settings.queue.visibility_timeout, settings.queue.max_attempts) == (
        600.0, 900.0, 3)
    summary = settings_summary(settings)
    assert summary["queue"]["broker_url"] == "redis://:***@redis:6379/0" and "hunter2" not in str(summary)


def test_the_celery_backend_needs_postgresql(site: Path):
    path = minimal(site, '[queue]\nbackend = "celery"\n')
    message = error(path)
    assert message.startswith(f"{path}: [queue] backend: the celery backend needs database_url on PostgreSQL")
    message = error(minimal(site), ANON_QUEUE_BACKEND="celery", ANON_DATABASE_URL="sqlite:////tmp/x.db")
    assert message.startswith("ANON_QUEUE_BACKEND: the celery backend needs database_url on PostgreSQL")
    assert not (site / "public").exists()  # refused before anything was created


def test_a_time_limit_must_be_below_the_visibility_timeout(site: Path):
    path = minimal(site, f'database_url = "{PG}"\n[queue]\nbackend = "celery"\ntime_limit = 3600\n')
    assert error(path) == (f"{path}: [queue] time_limit: 3600 s must be below visibility_timeout (3600 s), or Redis "
                           "hands a batch still running to a second worker")
    assert error(path, ANON_QUEUE_TIME_LIMIT="4000").startswith(
        "ANON_QUEUE_TIME_LIMIT: 4000 s must be below visibility_timeout (3600 s)")
    assert load_settings(path, environ={"ANON_QUEUE_VISIBILITY_TIMEOUT": "3601"}).queue.time_limit == 3600.0


@pytest.mark.parametrize("url", ["http://redis:6379/0", "redis:6379", "", "redis:// spaced", "amqp://guest@rabbit//"])
def test_a_broker_url_that_is_not_redis_is_refused(site: Path, url: str):
    path = minimal(site, f'[queue]\nbroker_url = "{url}"\n')
    assert error(path) == (f"{path}: [queue] broker_url: must be a Redis URL such as "
                           f"redis://:PASSWORD@redis:6379/0, got {url!r}")
    assert error(minimal(site), ANON_QUEUE_BROKER_URL=url) == (
        f"ANON_QUEUE_BROKER_URL: must be a Redis URL such as redis://:PASSWORD@redis:6379/0, got {url!r}")


@pytest.mark.parametrize("extra, message", [
    ('[queue]\nbackend = "rq"\n', "[queue] backend: must be one of local, celery, got 'rq'"),
    ("[queue]\nmax_attempts = 0\n", "[queue] max_attempts: must be an integer >= 1, got 0"),
    ("[queue]\nlease = 0\n", "[queue] lease: must be a number of seconds > 0, got 0"),
])
def test_wrong_queue_values(site: Path, extra: str, message: str):
    path = minimal(site, extra)
    assert error(path) == f"{path}: {message}"
