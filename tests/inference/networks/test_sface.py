"""SFace rebuilt in torch: equal to onnxruntime, differentiable at cam_layer, cached safely."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from anon_plugin.inference import registry
from anon_plugin.inference.networks import sface
from anon_plugin.inference.registry import model_path
from anon_plugin.hashing import sha256

# CelebA aligned photos are 178x218 with the eyes near y=112; this square
# roughly matches the ArcFace 112x112 template (no landmark alignment needed).
CROP_Y, CROP_X, CROP = 56, 28, 121


def face_crop(path: Path) -> np.ndarray:
    """RGB uint8 [112, 112, 3]."""
    bgr = cv2.imread(str(path))
    assert bgr is not None, path
    bgr = bgr[CROP_Y : CROP_Y + CROP, CROP_X : CROP_X + CROP]
    return cv2.cvtColor(cv2.resize(bgr, (112, 112), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def batch(eval_pairs: list[tuple[str, Path, Path]]) -> np.ndarray:
    """Float32 [4, 3, 112, 112] RGB 0..255: identity A twice, then identity B twice."""
    paths = [p for _, a, b in eval_pairs[:2] for p in (a, b)]
    return np.stack([face_crop(p) for p in paths]).transpose(0, 3, 1, 2).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> sface.SFace:
    """Built without the on-disk cache, so the tests never touch the user's cache."""
    net = sface.SFace()
    net.load_state_dict(sface.build_state_dict(model_path("sface")), strict=True)
    return net.eval().requires_grad_(False)


def ort_session(path: Path):
    """onnxruntime on the shipped file, repaired in memory.

    The file lists the pre-quantization weight names (conv_1_conv2d_weight, ...)
    as graph inputs although no node reads them any more (nodes read the
    *_quantized initializers), so onnxruntime demands them as feeds: keep only
    the inputs that some node consumes. The batch dimension is fixed at 1;
    make it symbolic.
    """
    ort = pytest.importorskip("onnxruntime")
    proto = onnx.load(str(path))
    graph = proto.graph
    consumed = {name for node in graph.node for name in node.input}
    inputs = [i for i in graph.input if i.name in consumed]
    del graph.input[:]
    graph.input.extend(inputs)
    for value in (graph.input[0], graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    options = ort.SessionOptions()
    options.log_severity_level = 3  # silence "initializer appears in graph inputs"
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_matches_onnxruntime_and_separates_identities(model: sface.SFace, batch: np.ndarray) -> None:
    with torch.no_grad():
        ours = model(torch.from_numpy(batch)).numpy()
    theirs = ort_session(model_path("sface")).run(None, {"data": batch})[0]
    assert ours.shape == theirs.shape == (4, 128)
    diff = float(np.abs(ours - theirs).max())
    assert diff <= 1e-4, f"max |torch - onnxruntime| = {diff:.3g}"

    unit = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    cos = unit @ unit.T
    same = [cos[0, 1], cos[2, 3]]
    different = [cos[0, 2], cos[0, 3], cos[1, 2], cos[1, 3]]
    assert min(same) > max(different) + 0.2, f"same identity {same}, different {different}"


def test_gradients_reach_cam_layer(model: sface.SFace, batch: np.ndarray) -> None:
    x = torch.from_numpy(batch).requires_grad_(True)
    with torch.no_grad():
        reference = torch.nn.functional.normalize(model(x[1:2]), dim=1)[0]  # fixed direction

    captured: list[torch.Tensor] = []

    def keep(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
        output.retain_grad()
        captured.append(output)

    handle = model.cam_layer.register_forward_hook(keep)
    try:
        (model(x) @ reference).sum().backward()
    finally:
        handle.remove()

    (features,) = captured
    assert features.shape == (4, 1024, 7, 7)
    grad = features.grad
    assert grad is not None and grad.shape == features.shape
    assert torch.isfinite(grad).all()
    assert (grad.abs().flatten(1).sum(1) > 0).all(), "a sample got zero gradient"
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_cache_is_written_verified_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANON_CACHE", str(tmp_path))
    builds = 0
    real_build = sface.build_state_dict

    def counting_build(path: Path) -> dict[str, torch.Tensor]:
        nonlocal builds
        builds += 1
        return real_build(path)

    monkeypatch.setattr(sface, "build_state_dict", counting_build)
    path = model_path("sface")

    first = sface.load(path)
    (weights,) = tmp_path.glob("sface-*.safetensors")
    (checksum,) = tmp_path.glob("sface-*.sha256")
    assert weights.stem == checksum.stem and builds == 1
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    size = weights.stat().st_size
    assert checksum.read_text().strip() == sha256(weights)

    sface.load(path)
    assert builds == 1, "an intact cache was rebuilt"

    with open(weights, "r+b") as f:  # same size, damaged tensor data
        f.seek(size // 2)
        f.write(b"\0" * 4096)
    rebuilt = sface.load(path)
    assert builds == 2, "a corrupted cache was not rebuilt"
    # Compared by checksum, not bytes: safetensors orders its metadata map arbitrarily.
    assert checksum.read_text().strip() == sha256(weights)
    x = torch.full((1, 3, 112, 112), 128.0)
    assert torch.equal(rebuilt(x), first(x))

    # The registry entry resolves to this loader (bypassing its per-process cache).
    assert isinstance(registry.build("sface"), sface.SFace)
