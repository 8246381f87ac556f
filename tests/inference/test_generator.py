import itertools
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.nn import functional as F

from anon_plugin import Anonymizer
from anon_plugin.inference import registry
from anon_plugin.inference import fill
from anon_plugin.inference.networks.generator import Generator, GeneratorConfig, identity_codes, load
from anon_plugin.inference.recognition import RECOGNIZERS, embed, recognizer_input
from anon_plugin.training.generator import _sface_theta, train_command
from anon_plugin.training.generator_data import pack


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


def test_fine_tuning_starts_from_given_weights(tiny_pack, tmp_path):
    config = {"generator": {"width": 8, "blocks": 2, "bottleneck": 16}, "batch": 2, "steps": 1,
              "disc_width": 8, "log_every": 1}
    runs = []
    for name, extra in (("a", {}), ("b", {"steps": 0})):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config | extra | ({"init": str(runs[0])} if runs else {})))
        out = tmp_path / f"{name}.safetensors"
        result = CliRunner().invoke(train_command, ["--config", str(path), "--data", str(tiny_pack), "--out", str(out)])
        assert result.exit_code == 0, result.output
        runs.append(out)
    a, b = (load(p).state_dict() for p in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)  # no step taken: the EMA is the starting point
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(config | {"init": str(runs[0]), "generator": {"width": 16}}))
    result = CliRunner().invoke(train_command,
                                ["--config", str(path), "--data", str(tiny_pack), "--out", str(tmp_path / "c")])
    assert result.exit_code != 0 and "config asks for" in result.output


def test_training_sees_faces_as_sface_does(wild_photos):
    """The differentiable resampling used in training matches the pipeline's SFace input."""
    crop = Anonymizer().anonymize(wild_photos[0]).faces[0].crop
    import cv2

    small = torch.from_numpy(cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA)).permute(2, 0, 1)[None]
    grid = F.affine_grid(torch.from_numpy(_sface_theta(128))[None], (1, 3, 112, 112), align_corners=False)
    x = F.grid_sample(small.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    sface = registry.load("sface")
    a, b = (F.normalize(sface(t), dim=1) for t in (x, recognizer_input(crop[None], "sface")))
    assert float((a * b).sum()) > 0.97


def _codes(bank, seed, source=None, n=3):
    return list(itertools.islice(identity_codes(bank, seed, source), n))


def test_identity_codes_follow_the_seed_and_avoid_the_source():
    bank = F.normalize(torch.randn(50, 128), dim=1)
    a, b = _codes(bank, 3), _codes(bank, 3)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert abs(np.linalg.norm(a[0]) - 1) < 1e-5
    assert not np.allclose(a[0], a[1]) and not np.allclose(a[0], _codes(bank, 4)[0])
    source = a[0].copy()
    assert all(float(code @ source) < 0.1 for code in _codes(bank, 3, source, 10))


def test_a_bank_of_one_look_alike_still_yields_codes():
    bank = F.normalize(torch.ones(4, 128) + 0.01 * torch.randn(4, 128), dim=1)
    source = bank[0].numpy()
    assert len(_codes(bank, 0, source, 2)) == 2  # never loops forever


@pytest.fixture(scope="module")
def eval_faces(eval_pairs):
    anonymizer = Anonymizer(strength="medium")
    return [anonymizer.render(anonymizer.analyze(a)).faces[0] for _, a, _ in eval_pairs[:12]]


def test_generated_faces_no_longer_match_their_source(eval_faces):
    """The shipped generator with verification: SFace no longer calls the result the same person."""
    crops = [f.crop for f in eval_faces]
    filled = [fill.generate(f.crop, f.hole_mask, 0) for f in eval_faces]
    source, result = (embed(np.stack(c), "sface") for c in (crops, filled))
    cosine = (source * result).sum(1)
    assert (cosine < RECOGNIZERS["sface"].threshold).all(), cosine


def test_verification_redraws_until_the_face_is_new(eval_faces, monkeypatch):
    face = eval_faces[0]
    calls = []  # one per generator run
    model = registry.load("generator")
    monkeypatch.setattr(model, "forward", lambda *a, _f=model.forward: calls.append(1) or _f(*a))
    monkeypatch.setattr(fill, "VERIFY_COSINE", 1.0)  # the first candidate always passes
    first = fill.generate(face.crop, face.hole_mask, 0)
    assert len(calls) == 1
    monkeypatch.setattr(fill, "VERIFY_COSINE", -1.0)  # none passes: all are tried, the least similar kept
    best = fill.generate(face.crop, face.hole_mask, 0)
    assert len(calls) == 1 + fill.VERIFY_CANDIDATES
    source, a, b = embed(np.stack([face.crop, first, best]), "sface")
    assert float(b @ source) <= float(a @ source)


def test_generator_size_budget():
    model = Generator(GeneratorConfig())
    params = sum(p.numel() for p in model.parameters())
    assert params * 2 <= 20 * 2**20  # fp16 weights within 20 MB
