"""A non-editable ``pip install .`` finds and verifies the weights and the migrations on its own.

The package is built from a copy of the working tree into a fresh venv;
its dependencies (torch, dlib, ...) come from the test's own environment
through a .pth line, so nothing is downloaded. Every command runs outside
the checkout, so only the installed copy can answer.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\n")
    return [f for f in listed if f and (REPO / f).is_file() and not f.startswith("docs/img/")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding anon-plugin installed from a built copy; returns its bin folder."""
    root = tmp_path_factory.mktemp("install")
    archive = root / "src.tar"
    with tarfile.open(archive, "w") as tar:
        for name in _tracked_files():
            tar.add(REPO / name, arcname=name)
    with tarfile.open(archive) as tar:
        tar.extractall(root / "src", filter="data")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", str(root / "src")], check=True, cwd=root)
    return venv / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_installed_copy_finds_and_verifies_the_weights_and_migrations(installed, tmp_path):
    code = ("import anon_plugin; from anon_plugin.inference import registry; from anon_plugin.store import migrate; "
            "print(anon_plugin.__file__); print(registry.weights_dir());"
            "print(*[registry.verified_path(n) for n in registry.LOADERS], sep='\\n');"
            "print(migrate.script_location())")
    done = _run(installed, "python", "-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    site = str(installed.parent / "lib")
    assert all(line.startswith(site) or "site-packages" in line for line in lines), lines
    assert lines[1].endswith("site-packages/anon_plugin/models") and lines[1].startswith(site)
    assert lines[-1].startswith(site) and lines[-1].endswith("anon_plugin/migrations")


def test_installed_command_anonymizes_the_example_and_makes_a_database(installed, tmp_path):
    done = _run(installed, "anon-plugin", "anonymize", str(REPO / "examples" / "astronaut.png"), "-o", "out",
                "--method", "generate", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "astronaut.png").is_file()
    done = subprocess.run([str(installed / "anon-plugin"), "db", "upgrade"], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "ANON_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "anon_plugin.db").is_file()


def test_installed_weights_that_differ_from_the_manifest_are_refused(installed, tmp_path):
    site = next(installed.parent.glob("lib/python*/site-packages"))
    weights = site / "anon_plugin" / "models" / "generator.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        done = _run(installed, "anon-plugin", "anonymize", str(REPO / "examples" / "astronaut.png"), "-o", "out",
                    "--method", "generate", cwd=tmp_path)
    finally:
        weights.write_bytes(original)
    # Fail closed: the weights are refused, so the face is covered, never left as it was.
    assert done.returncode == 1
    assert "model 'generator'" in done.stderr and "the manifest says" in done.stderr
    assert "pixelated instead" in done.stderr
