"""The CelebA-40 attribute judge: shipped weights, a known answer on real eval photos, the training command."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from anon_plugin.inference import registry
from anon_plugin.inference.networks.attributes import ATTRIBUTES, AttributeNet, load, predict
from anon_plugin.training.attributes import align_photo, train_attributes

EVAL_IDENTITIES = 30  # x 2 photos each


def test_shipped_weights_load_and_predict_the_right_shape():
    model = registry.load("attributes")
    assert isinstance(model, AttributeNet) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert registry.model_path("attributes").stat().st_size <= 10_000_000
    rng = np.random.default_rng(0)
    out = predict(rng.integers(0, 256, (3, 256, 256, 3), dtype=np.uint8))
    assert out.shape == (3, len(ATTRIBUTES)) and out.dtype == bool
    assert predict(np.zeros((0, 256, 256, 3), np.uint8)).shape == (0, 40)


def test_attribute_names_match_the_labels(data_root: Path):
    with open(data_root / "celeba" / "labels.csv", newline="") as f:
        assert tuple(next(csv.reader(f))[3:]) == ATTRIBUTES


@pytest.fixture(scope="module")
def eval_photos(data_root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Canonical crops (60, 256, 256, 3) of the first 30 eval identities x 2 photos,
    their (60, 40) bool labels, and the (40,) bool majority value of each attribute in train."""
    celeba = data_root / "celeba"
    with open(celeba / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    train = np.array([[r[a] == "1" for a in ATTRIBUTES] for r in rows if r["split"] == "train"])
    by_id: dict[int, list[dict]] = {}
    for r in rows:
        if r["split"] == "eval":
            by_id.setdefault(int(r["identity"]), []).append(r)
    chosen = [r for i in sorted(by_id)[:EVAL_IDENTITIES] for r in sorted(by_id[i], key=lambda r: r["path"])[:2]]
    crops, labels = [], []
    for r in chosen:
        crop = align_photo(celeba / r["path"])
        if crop is not None:
            crops.append(crop)
            labels.append([r[a] == "1" for a in ATTRIBUTES])
    assert len(crops) >= 55
    return np.stack(crops), np.array(labels), train.mean(0) > 0.5


def test_known_answer_on_eval_photos_beats_the_majority_baseline(eval_photos):
    crops, labels, majority = eval_photos
    accuracy = (predict(crops) == labels).mean()
    baseline = (majority[None] == labels).mean()
    assert accuracy >= 0.83, (accuracy, baseline)
    assert accuracy > baseline + 0.03, (accuracy, baseline)


def test_a_flipped_face_keeps_most_attributes(eval_photos):
    crops = eval_photos[0][:16]
    assert (predict(crops) == predict(crops[:, :, ::-1].copy())).mean() > 0.9


def test_training_command_runs_end_to_end(data_root: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ANON_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "attributes.safetensors"
    result = CliRunner().invoke(train_attributes, [
        "--data", str(data_root / "celeba"), "--out", str(out),
        "--limit", "64", "--epochs", "1", "--size", "32", "--batch-size", "16",
    ])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "cache" / "attributes").glob("crops-train-64-*.npz"))
    model = load(out)
    assert model.size == 32
    from safetensors import safe_open

    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["epochs"] == "1" and meta["input_size"] == "32" and "train_accuracy" in meta
    out_crops = predict(np.zeros((2, 256, 256, 3), np.uint8), model)
    assert out_crops.shape == (2, 40) and out_crops.dtype == bool


def test_the_sidecar_describes_the_shipped_weights():
    import json

    from anon_plugin.hashing import sha256

    path = registry.model_path("attributes")
    if not path.with_suffix(".json").is_file():
        pytest.skip("attributes.json is not installed (package data lists only *.safetensors)")
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["weights_sha256"] == sha256(path)
    assert list(sidecar["eval_accuracy"]) == list(ATTRIBUTES)
    assert sidecar["eval_mean_accuracy"] >= 0.85 > sidecar["majority_baseline"]
