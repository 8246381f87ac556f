"""Derived weights (torch modules rebuilt from ONNX / GraphDef files) cached on disk.

The cache file is named after the checksum of its source file and the
converter version, and carries its own checksum beside it: a partial or
tampered file is rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ...hashing import sha256


def cache_dir() -> Path:
    """The user cache directory (``ANON_CACHE`` overrides it)."""
    env = os.environ.get("ANON_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("anon-plugin"))


def derived_weights(
    name: str,
    source: Path,
    build: Callable[[Path], dict[str, torch.Tensor]],
    version: str,
) -> dict[str, torch.Tensor]:
    """Return ``build(source)``, from the cache when a verified copy exists."""
    key = hashlib.sha256(f"{sha256(source)}:{version}".encode()).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.safetensors"
    checksum = target.with_suffix(".sha256")
    if target.exists() and checksum.exists() and checksum.read_text().strip() == sha256(target):
        return load_file(target)
    tensors = {k: v.contiguous() for k, v in build(source).items()}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"source": source.name, "version": version})
        Path(tmp).replace(target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    checksum.write_text(sha256(target) + "\n")
    return tensors
