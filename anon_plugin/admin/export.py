"""Provenance records as files: JSON (the record as ``provenance.record`` gives it) and CSV
(one row per face of each output, or one per output without faces, or one per photo without output)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

COLUMNS = ("photo_id", "album", "original", "sha256", "state", "reason", "output_id", "status", "created_at",
           "public_path", "public_sha256", "policy_version", "method", "strength", "threshold_setting",
           "device", "engine_version", "seconds", "removed_tags", "notes", "face", "box", "score",
           "threshold", "mask_area", "steps", "similarity", "quality", "covered", "error")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: text that starts like a formula is quoted with '.
    (File names come from whoever adds photos to an album.)"""
    if value is None:
        return ""
    if isinstance(value, dict):
        value = ";".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, list | tuple):
        value = ";".join(map(str, value))
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def rows(record: dict[str, Any]) -> Iterable[dict[str, Any]]:
    photo = {"photo_id": record["photo_id"], "album": record["album"], "original": record["original"],
             "sha256": record["sha256"], "state": record["state"], "reason": record["reason"]}
    if not record["outputs"]:
        yield photo
    for output in record["outputs"]:
        policy = output["policy"]
        made = {**photo, "output_id": output["id"], "status": output["status"], "created_at": output["created_at"],
                "public_path": output["public_path"], "public_sha256": output["public_sha256"],
                "policy_version": policy["version"], "method": policy.get("method"),
                "strength": policy.get("strength"), "threshold_setting": policy.get("threshold"),
                "device": output["device"], "engine_version": output["engine_version"],
                "seconds": output["seconds"], "removed_tags": output["removed_tags"], "notes": output["notes"]}
        if not output["faces"]:
            yield made
        for face in output["faces"]:
            yield {**made, "face": face["index"], "box": face["box"], "score": face["score"],
                   "threshold": face["threshold"], "mask_area": face["mask_area"], "steps": face.get("steps"),
                   "similarity": face.get("similarity"), "quality": face.get("quality"), "covered": face["covered"],
                   "error": face["error"]}


def to_csv(records: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for record in records:
        for row in rows(record):
            writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})
    return buffer.getvalue()


def to_json(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, indent=2)
