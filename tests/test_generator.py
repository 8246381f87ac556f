import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.nn import functional as F

from faceveil import Anonymizer, models
from faceveil.models.generator import Generator, GeneratorConfig, identity_code, load
from faceveil.recognition import recognizer_input
from faceveil.training.generator import _sface_theta, train_command
from faceveil.training.generator_data import pack


@pytest.fixture(scope="module")
def tiny_pack(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("pack") / "train.npz"
    assert pack(data_root / "celeba", "train", out, limit=8, per_identity=2) >= 6
    return out


def test_pack_holds_aligned_faces_maps_and_regions(tiny_pack):
    data = np.load(tiny_pack)
    n = len(data["identity"])
    assert data["attention"].shape == (n, 32, 32) and data["attention"].max() > 128
    assert data["region"].shape == (n, 128 * 128 // 8) and data["embedding"].shape == (n, 128)
    assert len(data["offsets"]) == n + 1 and len(set(data["identity"])) >= 3


def test_tiny_training_run_writes_loadable_weights(tiny_pack, tmp_path, monkeypatch):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"generator": {"width": 8, "blocks": 2, "bottleneck": 16}, "batch": 2,
                                  "steps": 2, "disc_width": 8, "log_every": 1, "warmup": 0.25}))
    out = tmp_path / "g.safetensors"
    result = CliRunner().invoke(train_command, ["--config", str(config), "--data", str(tiny_pack), "--out", str(out)])
    assert result.exit_code == 0, result.output
    model = load(out)
    assert model.config.width == 8 and model.identity_bank.shape[1] == 128
    y = model(torch.zeros(1, 3, 128, 128), torch.ones(1, 1, 128, 128), torch.ones(1, 128) / 128**0.5)
    assert y.shape == (1, 3, 128, 128) and y.abs().max() <= 1
    for suffix in (".log.jsonl", ".losses.png", ".samples.png"):
        assert out.with_suffix(suffix).is_file()
    assert len(out.with_suffix(".log.jsonl").read_text().splitlines()) == 2


def test_training_sees_faces_as_sface_does(wild_photos):
    """The differentiable resampling used in training matches the pipeline's SFace input."""
    crop = Anonymizer().anonymize(wild_photos[0]).faces[0].crop
    import cv2

    small = torch.from_numpy(cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
    grid = F.affine_grid(torch.from_numpy(_sface_theta(128))[None], (1, 3, 112, 112), align_corners=False)
    x = F.grid_sample(small.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    sface = models.load("sface")
    a, b = (F.normalize(sface(t), dim=1) for t in (x, recognizer_input(crop[None], "sface")))
    assert float((a * b).sum()) > 0.97


def test_identity_codes_follow_the_seed_and_avoid_the_source():
    bank = F.normalize(torch.randn(50, 128), dim=1)
    a, b = identity_code(bank, 3), identity_code(bank, 3)
    np.testing.assert_array_equal(a, b)
    assert abs(np.linalg.norm(a) - 1) < 1e-5
    assert not np.allclose(a, identity_code(bank, 4))
    source = a.copy()
    assert float(identity_code(bank, 3, source) @ source) < 0.1


def test_generator_size_budget():
    model = Generator(GeneratorConfig())
    params = sum(p.numel() for p in model.parameters())
    assert params * 2 <= 20 * 2**20  # fp16 weights within 20 MB
