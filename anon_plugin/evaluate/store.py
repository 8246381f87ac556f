"""The evaluation cache in OUT_DIR: one small .npz per (image, method, strength, seed).

Layout: ``OUT_DIR/cache/<dataset>-<hash>/<recognizer>-seed<seed>/<method>/<strength>/<image>.npz``
(``original/-/`` for the untouched photo). An item holds what every metric
needs: the embeddings and FID features at the reference face, the HOG
detection, SSIM, PSNR and changed area, the attribute predictions (with the
classifier's checksum), the seconds and failure of the pipeline, and the
anonymized photo itself, stored losslessly as the PNG of the window that
differs from the original (the rest of the photo is the original, bit for bit).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

VERSION = 1
ORIGINAL = "original"


def root(out_dir: Path, data_dir: Path, recognizer: str, seed: int) -> Path:
    data = Path(data_dir).resolve()
    digest = hashlib.sha1(str(data).encode()).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", data.name) or "data"
    return Path(out_dir) / "cache" / f"{name}-{digest}" / f"{recognizer}-seed{seed}"


def item_path(cache_root: Path, image: str, method: str, strength: str | None) -> Path:
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", image.replace("/", "__").replace("\\", "__"))
    return cache_root / method / (strength if strength is not None else "-") / f"{key}.npz"


def save(path: Path, item: dict[str, Any]) -> None:
    """Write ``item`` (arrays, numbers, strings, bools; None values are left out) atomically."""
    arrays = {k: np.asarray(v) for k, v in item.items() if v is not None}
    arrays["version"] = np.asarray(VERSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            # allow_pickle is numpy's default, named so that its stub does not match **arrays to it
            np.savez_compressed(f, allow_pickle=True, **arrays)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any] | None:
    """The item at ``path``; None when it is missing, unreadable or of another cache version."""
    try:
        with np.load(path, allow_pickle=False) as z:
            item = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError):
        return None
    if item.pop("version", None) != VERSION:
        return None
    return {k: v.item() if v.ndim == 0 else v for k, v in item.items()}


def patch(original: np.ndarray, output: np.ndarray) -> dict[str, np.ndarray] | None:
    """The window of ``output`` that differs from ``original`` as lossless PNG bytes and its corner."""
    changed = (original != output).any(axis=2)
    if not changed.any():
        return None
    ys, xs = np.nonzero(changed)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    ok, png = cv2.imencode(".png", np.ascontiguousarray(output[y0:y1, x0:x1, ::-1]))
    if not ok:
        raise RuntimeError("cannot encode the patch as PNG")
    return {"patch_png": png.reshape(-1), "patch_origin": np.array([y0, x0])}


def output_image(original: np.ndarray, item: dict[str, Any]) -> np.ndarray:
    """The anonymized photo of a cached item, rebuilt from the original and the stored patch."""
    if "patch_png" not in item:
        return original
    decoded = cv2.imdecode(np.asarray(item["patch_png"], np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise RuntimeError("cannot decode the stored patch as PNG")
    window = decoded[..., ::-1]
    y0, x0 = (int(v) for v in item["patch_origin"])
    out = original.copy()
    out[y0:y0 + window.shape[0], x0:x0 + window.shape[1]] = window
    return out


def pack_mask(mask: np.ndarray) -> np.ndarray:
    return np.packbits(mask.astype(bool), axis=None)


def unpack_mask(packed: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(packed, count=shape[0] * shape[1]).reshape(shape).astype(bool)
