"""The JSON report: per image and per face, what was done and how well it hides the person;
per image also the metadata left out and the format notes; and what input folders held besides images."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import __version__
from .files import Outcome, SkippedInput
from ..atomic import write_atomic
from ..inference.pipeline import FaceRecord
from ..inference.recognition import still_matched_by


def _face(face: FaceRecord) -> dict[str, Any]:
    return {
        "box": [round(float(v), 1) for v in face.box],
        "detection_score": round(face.detection_score, 4),
        "landmarks": face.landmark_source,
        "method": face.method,
        "threshold": face.threshold,
        "mask_area": None if face.mask_area is None else round(face.mask_area, 4),
        "steps": list(face.steps),
        "covered": face.covered,
        "error": face.error,
        "similarity": None if face.similarity is None else {k: round(v, 4) for k, v in face.similarity.items()},
        "quality": face.quality_json(),
        "still_matched_by": None if face.similarity is None else still_matched_by(face.similarity),
        "seconds": {k: round(v, 4) for k, v in face.seconds.items()},
    }


def _image(outcome: Outcome) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "input": str(outcome.job.source), "output": str(outcome.job.target),
        "status": "ok" if outcome.ok else ("failed" if outcome.error else "faces covered"),
        "error": outcome.error, "seconds": round(outcome.seconds, 4)}
    if outcome.result is not None:
        h, w = outcome.result.image.shape[:2]
        entry |= {"width": w, "height": h, "faces": [_face(f) for f in outcome.result.faces],
                  "metadata_removed": list(outcome.removed), "notes": list(outcome.notes)}
    return entry


def write_report(path: Path, outcomes: list[Outcome], options: dict, skipped: Iterable[SkippedInput] = (),
                 *, overwrite: bool = False) -> None:
    """Write the report atomically; raises OutputError when it cannot be written (or exists without ``overwrite``).

    Similarity keys: sface_cosine, facenet_cosine (same person above 0.363 for SFace),
    dlib_distance (same person below 0.6); still_matched_by names the recognizers
    past their line. steps: the fill, then the verification ladder's steps that ran
    (docs/verification.md). metadata_removed names what the output left out (anon_plugin.metadata)."""
    report = {"anon_plugin": __version__, "options": options, "images": [_image(o) for o in outcomes],
              "skipped": [{"path": str(s.path), "reason": s.reason} for s in skipped]}
    write_atomic(path, (json.dumps(report, indent=2) + "\n").encode(), overwrite=overwrite)
