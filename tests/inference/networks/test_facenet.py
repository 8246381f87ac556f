"""FaceNet port: the torch module against the original frozen graph, run by a numpy interpreter.

The interpreter below reads only the GraphDef (ops, attrs, consts) and knows
nothing of the torch architecture code, so agreement checks the port itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from anon_plugin.inference import registry
from anon_plugin.inference.networks.facenet import InceptionResnetV1
from anon_plugin.inference.networks.graphdef import Node, read_graphdef


# --- a generic NHWC interpreter for the ops of a frozen inference graph -------------------------

def _same_pad(size: int, k: int, s: int) -> tuple[int, int]:
    """TF "SAME": output ceil(size / s); the extra padding goes after."""
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _windows(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], padding: str, fill: float) -> np.ndarray:
    """[N, H', W', C, kh, kw] views of x [N, H, W, C]."""
    if padding == "SAME":
        x = np.pad(x, ((0, 0), _same_pad(x.shape[1], k[0], s[0]), _same_pad(x.shape[2], k[1], s[1]), (0, 0)),
                   constant_values=fill)
    else:
        assert padding == "VALID", padding
    return sliding_window_view(x, k, axis=(1, 2))[:, :: s[0], :: s[1]]


def _conv2d(node: Node, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    a = node.attrs
    assert a["data_format"] == "NHWC" and a["dilations"] == [1, 1, 1, 1], a
    win = _windows(x, w.shape[:2], a["strides"][1:3], a["padding"], 0.0)
    return np.tensordot(win, w, axes=([3, 4, 5], [2, 0, 1]))  # [N, H', W', Cout]


def _pool(node: Node, x: np.ndarray, reduce) -> np.ndarray:
    a = node.attrs
    assert a["data_format"] == "NHWC" and a["ksize"][::3] == a["strides"][::3] == [1, 1], a
    # AvgPool with SAME would average over fewer cells at the border; this graph has none.
    assert reduce is np.max or a["padding"] == "VALID"
    return reduce(_windows(x, a["ksize"][1:3], a["strides"][1:3], a["padding"], -np.inf), axis=(4, 5))


def _batch_norm(node: Node, x, scale, offset, mean, var) -> np.ndarray:
    assert not node.attrs.get("is_training", True) and node.attrs["data_format"] == "NHWC"
    return (x - mean) / np.sqrt(var + node.attrs["epsilon"]) * scale + offset


OPS = {
    "Identity": lambda n, x: x,
    "Conv2D": _conv2d,
    "BiasAdd": lambda n, x, b: x + b,
    "Relu": lambda n, x: np.maximum(x, 0),
    "Add": lambda n, x, y: x + y,
    "AddV2": lambda n, x, y: x + y,
    "Mul": lambda n, x, y: x * y,
    "Maximum": lambda n, x, y: np.maximum(x, y),
    "Square": lambda n, x: x * x,
    "Rsqrt": lambda n, x: 1 / np.sqrt(x),
    "Sum": lambda n, x, axis: x.sum(axis=tuple(np.atleast_1d(axis)), keepdims=n.attrs["keep_dims"]),
    "ConcatV2": lambda n, *xs: np.concatenate(xs[:-1], axis=int(xs[-1])),
    "MaxPool": lambda n, x: _pool(n, x, np.max),
    "AvgPool": lambda n, x: _pool(n, x, np.mean),
    "Reshape": lambda n, x, shape: x.reshape(shape),
    "MatMul": lambda n, a, b: (a.T if n.attrs["transpose_a"] else a) @ (b.T if n.attrs["transpose_b"] else b),
    "FusedBatchNorm": _batch_norm,
}


def _data_inputs(node: Node) -> Iterator[str]:
    """Data inputs by node name; control inputs ("^x") only order execution, and every op here has one output."""
    for name in node.inputs:
        if not name.startswith("^"):
            assert not name.partition(":")[2] or name.endswith(":0"), name
            yield name.partition(":")[0]


def run_graph(nodes: list[Node], feeds: dict[str, np.ndarray], output: str) -> np.ndarray:
    """Evaluate ``output``: each node once, after its inputs (iterative post-order walk)."""
    by_name = {n.name: n for n in nodes}
    values: dict[str, np.ndarray] = dict(feeds)
    stack = [output]
    while stack:
        node = by_name[stack[-1]]
        if node.name in values:
            stack.pop()
            continue
        missing = [i for i in _data_inputs(node) if i not in values]
        if missing:
            stack += missing
            continue
        stack.pop()
        if node.op == "Const":
            values[node.name] = node.attrs["value"]
        else:
            values[node.name] = OPS[node.op](node, *(values[i] for i in _data_inputs(node))).astype(np.float32)
    return values[output]


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> InceptionResnetV1:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANON_CACHE", str(tmp_path_factory.mktemp("cache")))  # keep the user cache clean
        return registry.load("facenet")


@pytest.fixture(scope="module")
def graph() -> list[Node]:
    return read_graphdef(registry.model_path("facenet"))


def face_crop(path: Path) -> np.ndarray:
    """160x160 RGB uint8: a 150x150 square around the face of an aligned 178x218 CelebA photo."""
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return cv2.resize(image[45:195, 14:164], (160, 160), interpolation=cv2.INTER_AREA)


def to_tensor(crops: list[np.ndarray]) -> torch.Tensor:
    """[N, 3, 160, 160] float RGB 0..255."""
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()


# --- tests -----------------------------------------------------------------------------------

def test_graph_io(graph: list[Node]) -> None:
    placeholders = [n for n in graph if n.op == "Placeholder"]
    consumed = {i for n in graph for i in _data_inputs(n)}
    assert [n.name for n in placeholders] == ["input"] and placeholders[0].attrs["shape"] == [1, 160, 160, 3]
    assert [n.name for n in graph if n.name not in consumed and n.op != "Const"] == ["embeddings"]
    assert {n.op for n in graph} - {"Const", "Placeholder"} <= OPS.keys()


def test_matches_graph(model: InceptionResnetV1, graph: list[Node], eval_pairs: list[tuple[str, Path, Path]]) -> None:
    crops = [face_crop(p) for p in eval_pairs[0][1:]]
    with torch.no_grad():
        ours = model(to_tensor(crops)).numpy()
    # The graph has no prewhitening and a batch of 1 baked into its reshapes.
    theirs = np.concatenate([
        run_graph(graph, {"input": (c[None].astype(np.float32) - 127.5) / 128.0}, "embeddings") for c in crops
    ])
    diff = float(np.abs(ours - theirs).max())
    print(f"max |torch - graph| = {diff:.3g}")
    assert ours.shape == (2, 512)
    assert diff <= 1e-4


def test_same_identity_is_closer(model: InceptionResnetV1, eval_pairs: list[tuple[str, Path, Path]]) -> None:
    """24 identities x 2 photos: a photo's mate must beat the other identities' photos.

    Measured with this crop: same 0.60 vs different 0.11 on average, 95% of
    (same, different) comparisons won; a wrong port or input convention drops the gap.
    """
    crops = [face_crop(p) for _, a, b in eval_pairs for p in (a, b)]
    with torch.no_grad():
        emb = model(to_tensor(crops)).reshape(len(eval_pairs), 2, 512)
    cos = emb[:, 0] @ emb[:, 1].T  # unit vectors: dot = cosine; diagonal = same identity
    same, different = cos.diagonal(), cos[~torch.eye(len(cos), dtype=torch.bool)]
    won = (same[:, None] > cos).float().sum() / different.numel()  # diagonal never beats itself
    print(f"cosine same {same.mean():.3f}, different {different.mean():.3f}, won {won:.1%}")
    assert same.mean() > different.mean() + 0.3
    assert won > 0.85


def test_cam_layer_gradients(model: InceptionResnetV1, eval_pairs: list[tuple[str, Path, Path]]) -> None:
    crops = [face_crop(p) for p in eval_pairs[0][1:]]
    feature: list[torch.Tensor] = []

    def keep(_module, _inputs, output: torch.Tensor) -> None:
        output.retain_grad()
        feature.append(output)

    handle = model.cam_layer.register_forward_hook(keep)
    try:
        direction = torch.nn.functional.normalize(torch.randn(512, generator=torch.Generator().manual_seed(0)), dim=0)
        start = time.perf_counter()
        # The weights are frozen, so the graph is recorded only from an input that asks for it.
        (model(to_tensor(crops).requires_grad_()) @ direction).sum().backward()
        print(f"forward + backward, 2 images: {time.perf_counter() - start:.3f} s")
    finally:
        handle.remove()
    (out,) = feature
    assert out.shape == (2, 896, 8, 8)
    assert out.grad is not None and torch.isfinite(out.grad).all()
    assert (out.grad.flatten(1).abs().sum(1) > 0).all()  # each image gets a gradient
    assert not any(p.requires_grad for p in model.parameters())
