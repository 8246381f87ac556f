"""SFace face recognizer (OpenCV Zoo, 2021dec, int8 block-quantized) as a torch module.

The ONNX file is a MobileNetV1-style stack (MXNet "fmobilenet" export): a 3x3
conv stem, thirteen depthwise-separable blocks, then BN -> FC -> BN giving a
128-d embedding. Every conv is followed by BatchNorm and PReLU. Resolution:
112 -> 56 (conv_3) -> 28 (conv_5) -> 14 (conv_7) -> 7 (conv_13).

Conventions: input is RGB float32 in 0..255, shape [N, 3, 112, 112], ArcFace
5-point aligned (what OpenCV's FaceRecognizerSF feeds); the output is the raw,
unnormalized embedding [N, 128], exactly what the ONNX graph outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import Tensor, nn

from ...errors import ModelError
from .cache import derived_weights

VERSION = "1"

# The graph computes (x - 127.5) * 0.0078125 first; build_state_dict checks it.
INPUT_MEAN = 127.5
INPUT_SCALE = 1 / 128

# (out_channels, stride) of ONNX blocks conv_2 .. conv_14, each a depthwise
# 3x3 (stride on the depthwise conv) followed by a pointwise 1x1.
BLOCKS: list[tuple[int, int]] = [
    (64, 1),  # conv_2   112x112
    (128, 2),  # conv_3  56x56
    (128, 1),  # conv_4
    (256, 2),  # conv_5  28x28
    (256, 1),  # conv_6
    (512, 2),  # conv_7  14x14
    (512, 1),  # conv_8
    (512, 1),  # conv_9
    (512, 1),  # conv_10
    (512, 1),  # conv_11
    (512, 1),  # conv_12  last 14x14 map
    (1024, 2),  # conv_13 7x7
    (1024, 1),  # conv_14  last spatial map (7x7): cam_layer
]
STEM_CHANNELS = 32
CAM_BLOCK = 12  # index into BLOCKS of conv_14
EMBEDDING = 128
CONV_BN_EPS = 1e-3
HEAD_BN_EPS = 2e-5


class ConvBNPReLU(nn.Sequential):
    """Bias-free conv -> BatchNorm -> per-channel PReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=CONV_BN_EPS)
        self.act = nn.PReLU(cout)


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 (carries the stride) then pointwise 1x1, each ConvBNPReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = ConvBNPReLU(cin, cin, 3, stride, groups=cin)
        self.pw = ConvBNPReLU(cin, cout, 1)


class SFace(nn.Module):
    """SFace embedding network: [N, 3, 112, 112] RGB 0..255 -> [N, 128] raw embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBNPReLU(3, STEM_CHANNELS, 3)
        blocks, cin = [], STEM_CHANNELS
        for cout, stride in BLOCKS:
            blocks.append(DepthwiseSeparable(cin, cout, stride))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin, eps=HEAD_BN_EPS)
        # The graph's Dropout(0.4) sits here; it is the identity at inference.
        self.fc = nn.Linear(cin * 7 * 7, EMBEDDING)
        self.bn_out = nn.BatchNorm1d(EMBEDDING, eps=HEAD_BN_EPS)

    @property
    def cam_layer(self) -> nn.Module:
        """Block conv_14 (``blocks[12]``): the last spatial map, [N, 1024, 7, 7].

        Its maps follow eyes, nose and mouth; the 14x14 maps of conv_12 are
        speckled (looked at on CelebA and wild photos).

        A property, not a second registration, so state_dict keys stay unique.
        """
        return self.blocks[CAM_BLOCK]

    def forward(self, x: Tensor) -> Tensor:
        x = (x - INPUT_MEAN) * INPUT_SCALE
        x = self.bn(self.blocks(self.stem(x)))
        return self.bn_out(self.fc(x.flatten(1)))

    def raw_embedding(self, x: Tensor) -> Tensor:
        """For Grad-CAM: SFace's output is not normalised inside the network, so it is ``forward``."""
        return self(x)


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    """Blocked DequantizeLinear (opset 21): ``block`` consecutive entries along
    ``axis`` share one scale / zero point."""
    n = q.shape[axis]
    scale = np.repeat(scale, block, axis=axis).take(range(n), axis=axis)
    zero = np.repeat(zero, block, axis=axis).take(range(n), axis=axis)
    return ((q.astype(np.int32) - zero.astype(np.int32)).astype(np.float32) * scale).astype(np.float32)


def _onnx_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every initializer by name, quantized weights replaced by ``<name>`` in float32."""
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = dict(arrays)
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        qname, sname, zname = node.input
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        base = qname.removesuffix("_quantized")
        w = _dequantize(arrays[qname], arrays[sname], arrays[zname], attrs.get("axis", 1), attrs["block_size"])
        shape = arrays.get(f"{base}_shape")
        out[base] = w.reshape(shape) if shape is not None else w
    return out


def build_state_dict(onnx_path: Path) -> dict[str, torch.Tensor]:
    """Read the ONNX initializers, dequantize the int8 blocks, and name them for ``SFace``."""
    try:
        w = _onnx_weights(onnx.load(str(onnx_path)))
    except Exception as e:  # a truncated or foreign file
        raise ModelError(f"sface: cannot read {onnx_path.name}: {e}") from None
    if not (np.allclose(w["scalar_op1"], INPUT_MEAN) and np.allclose(w["scalar_op2"], INPUT_SCALE)):
        raise ModelError("sface: unexpected input normalization in the ONNX graph")

    def t(name: str) -> torch.Tensor:
        if name not in w:
            raise ModelError(f"sface: {onnx_path.name} has no weight {name!r}")
        return torch.from_numpy(np.ascontiguousarray(w[name], dtype=np.float32))

    def bn(prefix: str, onnx_name: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.weight": t(f"{onnx_name}_gamma"),
            f"{prefix}.bias": t(f"{onnx_name}_beta"),
            f"{prefix}.running_mean": t(f"{onnx_name}_moving_mean"),
            f"{prefix}.running_var": t(f"{onnx_name}_moving_var"),
            f"{prefix}.num_batches_tracked": torch.tensor(0, dtype=torch.long),
        }

    def unit(prefix: str, onnx_name: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.conv.weight": t(f"{onnx_name}_conv2d_weight"),
            **bn(f"{prefix}.bn", f"{onnx_name}_batchnorm"),
            f"{prefix}.act.weight": t(f"{onnx_name}_relu_gamma").reshape(-1),  # stored as [C, 1, 1]
        }

    state = unit("stem", "conv_1")
    for i in range(len(BLOCKS)):
        state |= unit(f"blocks.{i}.dw", f"conv_{i + 2}_dw")
        state |= unit(f"blocks.{i}.pw", f"conv_{i + 2}")
    state |= bn("bn", "bn1") | bn("bn_out", "fc1")
    state |= {"fc.weight": t("pre_fc1_weight"), "fc.bias": t("pre_fc1_bias")}
    return state


def load(path: Path) -> SFace:
    """The recognizer in eval mode with frozen parameters (weights cached as safetensors)."""
    state = derived_weights("sface", path, build_state_dict, VERSION)
    model = SFace()
    model.load_state_dict(state, strict=True)
    model.eval()
    model.requires_grad_(False)
    return model
