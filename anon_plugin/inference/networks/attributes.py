"""CelebA-40 attribute classifier (a judge): how many attributes an anonymized face keeps.

A compact ResNet (basic blocks, widths 24-48-96-192, two blocks per stage)
trained from scratch by :mod:`anon_plugin.training.attributes` on CelebA train
identities. It reads the engine's canonical aligned crops, RGB uint8
(N, 256, 256, 3), downscaled inside with ``cv2.INTER_AREA`` to the input size
stored with the weights. Output: 40 logits, one per attribute, > 0 = present.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors import safe_open
from torch import Tensor, nn

from ...errors import ModelError

# CelebA's order, as in list_attr_celeba.txt and labels.csv.
ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)
WIDTHS = (24, 48, 96, 192)
BLOCKS_PER_STAGE = 2
DEFAULT_SIZE = 64
BATCH = 64


def downscale(crops: np.ndarray, size: int) -> np.ndarray:
    """Canonical crops (N, 256, 256, 3) uint8 -> (N, size, size, 3) uint8, area-averaged."""
    if crops.ndim != 4 or crops.shape[3] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, 3) uint8 crops, got {crops.shape} {crops.dtype}")
    if crops.shape[1:3] == (size, size):
        return crops
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])


def normalize(x: Tensor) -> Tensor:
    """(N, 3, s, s) RGB in [0, 1] -> the network's input, roughly zero-mean unit-scale."""
    return (x - 0.5) / 0.25


def to_tensor(crops: np.ndarray) -> Tensor:
    """(N, s, s, 3) uint8 RGB -> (N, 3, s, s) float32 network input."""
    return normalize(torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 strided) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class AttributeNet(nn.Module):
    """[N, 3, s, s] normalized RGB -> [N, 40] logits. Stride 2 stem, then stages at s/2 .. s/16."""

    input_size: Tensor  # buffers: saved with the weights, so a checkpoint states its own shape
    widths: Tensor

    def __init__(self, size: int = DEFAULT_SIZE, widths: tuple[int, ...] = WIDTHS, dropout: float = 0.0):
        super().__init__()
        self.register_buffer("input_size", torch.tensor(size))
        self.register_buffer("widths", torch.tensor(widths))
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        layers, cin = [], widths[0]
        for i, cout in enumerate(widths):
            for j in range(BLOCKS_PER_STAGE):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, len(ATTRIBUTES))

    @property
    def size(self) -> int:
        return int(self.input_size)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x)).mean((2, 3))
        return self.head(self.dropout(x))


def load(path: Path) -> AttributeNet:
    """The classifier from its safetensors file, in eval mode with frozen parameters."""
    try:
        with safe_open(str(path), "pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # a truncated or foreign file
        raise ModelError(f"attributes: cannot read {Path(path).name}: {e}") from None
    if "input_size" not in state or "widths" not in state:
        raise ModelError(f"attributes: {Path(path).name} has no input_size / widths")
    model = AttributeNet(int(state["input_size"]), tuple(state["widths"].tolist()))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    model.requires_grad_(False)
    return model


@torch.no_grad()
def logits(crops: np.ndarray, model: AttributeNet | None = None) -> np.ndarray:
    """Canonical crops (N, 256, 256, 3) uint8 RGB -> (N, 40) float32 logits."""
    if model is None:
        from ..registry import load as load_model

        model = load_model("attributes")
    out = [
        model(to_tensor(downscale(crops[i:i + BATCH], model.size))).numpy()
        for i in range(0, len(crops), BATCH)
    ]
    return np.concatenate(out) if out else np.zeros((0, len(ATTRIBUTES)), np.float32)


def predict(crops: np.ndarray, model: AttributeNet | None = None) -> np.ndarray:
    """Canonical crops (N, 256, 256, 3) uint8 RGB -> (N, 40) bool, True = attribute present.

    Columns follow ``ATTRIBUTES``. ``model`` defaults to the shipped weights.
    """
    return logits(crops, model) > 0
