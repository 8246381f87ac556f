"""The identity-aware generator: fills the hole of a 128x128 face crop as a new person.

A U-Net over the masked crop and its mask. Its bottleneck (16x16) is a stack
of dilated residual blocks, so every hole pixel sees the whole face; the
target identity (a unit 128-d SFace-space code) modulates the bottleneck and
decoder by FiLM. Different codes give different people; one code, one person.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

ID_DIM = 128


@dataclass(frozen=True)
class GeneratorConfig:
    size: int = 128
    width: int = 24  # channels at full resolution; x2 per downsampling (3 times)
    blocks: int = 6  # dilated residual blocks at size/8
    bottleneck: int = 192

    def dilations(self) -> list[int]:
        return [(1, 2, 4, 8)[i % 4] for i in range(self.blocks)]


class FiLM(nn.Module):
    """Per-channel scale and shift from the identity code (zero-initialised: starts as identity)."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Linear(ID_DIM, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        gamma, beta = self.proj(code)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + gamma) + beta


class ResBlock(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = FiLM(channels)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        h = F.silu(self.film(self.conv1(x), code))
        return x + 0.5 * self.conv2(h)


class Up(nn.Module):
    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin + skip, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.film = FiLM(cout)

    def forward(self, x: Tensor, skip: Tensor, code: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.silu(self.film(self.conv1(torch.cat([x, skip], 1)), code))
        return F.silu(self.conv2(x))


class Generator(nn.Module):
    """``forward(image, hole, code) -> image``.

    image: (N, 3, S, S) in [-1, 1] (hole pixels are ignored: zeroed inside);
    hole: (N, 1, S, S), 1 = regenerate; code: (N, 128) unit identity code.
    Returns (N, 3, S, S) in [-1, 1]; only its hole pixels are meant to be used.
    """

    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.config = config
        w, b = config.width, config.bottleneck
        self.stem = nn.Conv2d(4, w, 5, padding=2)
        self.down1 = nn.Conv2d(w, 2 * w, 4, stride=2, padding=1)
        self.down2 = nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1)
        self.down3 = nn.Conv2d(4 * w, b, 4, stride=2, padding=1)
        self.blocks = nn.ModuleList(ResBlock(b, d) for d in config.dilations())
        self.up3 = Up(b, 4 * w, 4 * w)
        self.up2 = Up(4 * w, 2 * w, 2 * w)
        self.up1 = Up(2 * w, w, w)
        self.head = nn.Conv2d(w, 3, 3, padding=1)
        # A bank of real identities (unit SFace embeddings of training people) to draw codes from.
        self.register_buffer("identity_bank", torch.zeros(0, ID_DIM))

    def forward(self, image: Tensor, hole: Tensor, code: Tensor) -> Tensor:
        x = torch.cat([image * (1 - hole), hole], 1)
        s0 = F.silu(self.stem(x))
        s1 = F.silu(self.down1(s0))
        s2 = F.silu(self.down2(s1))
        h = F.silu(self.down3(s2))
        for block in self.blocks:
            h = block(h, code)
        h = self.up3(h, s2, code)
        h = self.up2(h, s1, code)
        h = self.up1(h, s0, code)
        return torch.tanh(self.head(h))


def identity_codes(bank: Tensor, seed: int, source: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Unit identity codes for ``seed``, endlessly: random mixes of two people from ``bank`` (K, 128).

    Deterministic in ``seed``. Codes too close to ``source`` (the face's own
    SFace embedding) are skipped, so the new person is never the old one; after
    32 skips in a row the next code is taken anyway (a bank too small to avoid it).
    """
    people = bank.float().numpy()
    rng = np.random.default_rng(seed)
    skipped = 0
    while True:
        a, b = rng.choice(len(people), 2, replace=False)
        w = rng.uniform(0.5, 1.0)
        code = w * people[a] + (1 - w) * people[b]
        code = (code / np.linalg.norm(code)).astype(np.float32)
        if source is None or float(code @ source) < 0.1 or skipped == 32:
            skipped = 0
            yield code
        else:
            skipped += 1


def config_dict(config: GeneratorConfig) -> dict[str, str]:
    return {k: str(v) for k, v in asdict(config).items()}


def load(path: Path) -> Generator:
    """The shipped generator (weights in safetensors, config in its metadata)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k).float() for k in f.keys()}
    fields = GeneratorConfig.__dataclass_fields__
    config = GeneratorConfig(**{k: int(v) for k, v in meta.items() if k in fields})
    model = Generator(config)
    model.identity_bank = torch.zeros_like(state["identity_bank"])
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)
