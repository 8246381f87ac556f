"""FaceNet's "same person" threshold: the cosine at 0.1% false accepts on the train split.

SFace (0.363) and dlib (0.6) come with standard thresholds; FaceNet
20180408 has none for our crops. We measure it on identities the evaluation
never sees: the first two photos (sorted by path) of every train identity,
embedded at the pipeline's own face location, all impostor pairs. 500
CelebA train identities give ~500k impostor pairs, so 0.1% is ~500 pairs
above the threshold: a stable quantile.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from . import metrics, protocol
from .jobs import TRAIN, EvalPhoto, EvalPhotoResult

FAR = 0.001
SPLIT = "train"
IMAGES_PER_IDENTITY = 2
VERSION = 1
# Measured as above on ../shared/data/celeba (train split); used only for a
# data set without a train split, and said so in results.json.
CELEBA_TRAIN_THRESHOLD = 0.5592


def jobs(data_dir: Path, labels: protocol.Labels) -> list[EvalPhoto]:
    """One job per calibration photo; [] when the data set has no train split."""
    if labels.splits is None or SPLIT not in labels.splits:
        return []
    subjects = protocol.subjects_of(protocol.group(labels, SPLIT), None, IMAGES_PER_IDENTITY - 1)
    return [EvalPhoto(image.path, Path(data_dir) / image.path, TRAIN)
            for s in subjects for image in (s.gallery, *s.probes)]


def cache_path(cache_dir: Path, calibration: list[EvalPhoto]) -> Path:
    digest = hashlib.sha1("\n".join([str(VERSION), *(j.image for j in calibration)]).encode()).hexdigest()[:12]
    return cache_dir / f"facenet-threshold-{digest}.json"


def load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def measure(calibration: list[EvalPhoto], results: dict[str, EvalPhotoResult],
            labels: protocol.Labels) -> dict[str, Any]:
    """The threshold at FAR on the calibration photos' impostor pairs, with what it rests on."""
    identity = {row.path: row.identity for row in labels.rows}
    found = [j.image for j in calibration if results[j.image].items]
    ids = [identity[p] for p in found]
    facenet = np.stack([results[p].items[("original", None)]["facenet"] for p in found])
    sface = np.stack([results[p].items[("original", None)]["sface"] for p in found])
    genuine, impostor = metrics.pair_scores(facenet, ids)
    threshold = metrics.threshold_at_far(impostor, FAR)
    s_genuine, s_impostor = metrics.pair_scores(sface, ids)
    return {
        "threshold": round(threshold, 4),
        "rule": "same person if FaceNet cosine > threshold",
        "far": FAR,
        "split": SPLIT,
        "identities": len(set(ids)),
        "photos": len(found),
        "photos_without_face": len(calibration) - len(found),
        "impostor_pairs": int(len(impostor)),
        "genuine_pairs": int(len(genuine)),
        "measured_far": float(np.mean(impostor > threshold)),
        "true_accept_rate": float(np.mean(genuine > threshold)) if len(genuine) else None,
        "enough_pairs": bool(len(impostor) * FAR >= 100),
        "sface_at_0.363": {"far": float(np.mean(s_impostor >= metrics.SFACE_THRESHOLD)),
                           "true_accept_rate": float(np.mean(s_genuine >= metrics.SFACE_THRESHOLD))
                           if len(s_genuine) else None},
    }


def fallback() -> dict[str, Any]:
    return {"threshold": CELEBA_TRAIN_THRESHOLD, "rule": "same person if FaceNet cosine > threshold", "far": FAR,
            "split": None, "source": "no train split in this data set: the value measured on CelebA train"}
