"""MobileStyleGAN (arXiv 2104.04767), a 1024 px StyleGAN2-FFHQ distillation, as plain torch modules.

The networks ship inside the PyPI wheel ``random-face`` (installed without its
declared dependencies) as OpenVINO IR files: ``MappingNetwork`` (z, 512 ->
w, 512) and ``SynthesisNetwork`` (w -> RGB image in [-1, 1], 3 x 1024 x 1024).
Both graphs run through ``openvino_ir``; their constants are cached as
safetensors (``cache.derived_weights``), together with the mean w of 10,000
fixed latents, the centre of truncation.

Terms: code Apache-2.0; the weights derive from NVIDIA's StyleGAN2-FFHQ
(NVIDIA Source Code License-NC) and FFHQ (CC BY-NC-SA 4.0): non-commercial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ...errors import ModelError
from .cache import derived_weights
from .openvino_ir import IRGraph, read_constants

VERSION = "1"
STYLE_DIM = 512
SIZE = 1024
MEAN_SAMPLES = 10_000
MAPPING = "MappingNetwork"
EDIT_RIDGE = 0.05  # regularizes the joint edit (in trait units squared)


def latents(seed: int, count: int = 1) -> np.ndarray:
    """``count`` z vectors (count, 512) float32, fixed by ``seed``."""
    return np.random.default_rng(seed).standard_normal((count, STYLE_DIM)).astype(np.float32)


class FacePrior(nn.Module):
    """z -> w -> a photo of nobody. ``truncate`` pulls w towards the mean (psi 1: none)."""

    def __init__(self, mapping: IRGraph, synthesis: IRGraph, w_mean: Tensor):
        super().__init__()
        self.mapping = mapping
        self.synthesis = synthesis
        self.register_buffer("w_mean", w_mean.reshape(1, STYLE_DIM))

    @property
    def device(self) -> torch.device:
        return self.w_mean.device

    def style(self, z: Tensor) -> Tensor:
        return self.mapping(z.to(self.device))

    def truncate(self, w: Tensor, psi: float) -> Tensor:
        return self.w_mean + psi * (w - self.w_mean)

    def forward(self, w: Tensor) -> Tensor:
        """(N, 512) w -> (N, 3, 1024, 1024) RGB in [-1, 1] (unclipped)."""
        return self.synthesis(w.to(self.device))

    def images(self, w: Tensor) -> np.ndarray:
        """(N, 512) w -> (N, 1024, 1024, 3) RGB uint8."""
        with torch.inference_mode():
            x = self(w)
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _graphs(path: Path) -> tuple[Path, Path, Path, Path]:
    """The synthesis bin (``path``), then its XML and the mapping network's XML and bin beside it."""
    folder = path.parent
    return path, path.with_suffix(".xml"), folder / f"{MAPPING}.xml", folder / f"{MAPPING}.bin"


def build_weights(path: Path) -> dict[str, Tensor]:
    synthesis_bin, synthesis_xml, mapping_xml, mapping_bin = _graphs(path)
    mapping = read_constants(mapping_xml, mapping_bin)
    graph = IRGraph(mapping_xml, mapping).eval()
    with torch.inference_mode():
        w_mean = graph(torch.from_numpy(latents(0, MEAN_SAMPLES))).mean(0)
    tensors = {f"mapping.{k}": v for k, v in mapping.items()}
    tensors.update({f"synthesis.{k}": v for k, v in read_constants(synthesis_xml, synthesis_bin).items()})
    tensors["w_mean"] = w_mean
    return tensors


def load(path: Path) -> FacePrior:
    """The face prior from the verified synthesis weights ``path`` (the registry checks every file)."""
    synthesis_bin, synthesis_xml, mapping_xml, _ = _graphs(path)
    tensors = derived_weights("stylegan", synthesis_bin, build_weights, VERSION)

    def part(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    prior = FacePrior(IRGraph(mapping_xml, part("mapping.")), IRGraph(synthesis_xml, part("synthesis.")),
                      tensors["w_mean"])
    return prior.eval().requires_grad_(False)


@dataclass(frozen=True)
class Directions:
    """Linear trait model of the face prior's W space, learned on a bank of measured samples:
    traits ~= matrix @ w + intercept."""

    names: tuple[str, ...]
    matrix: np.ndarray  # (K, 512)
    intercept: np.ndarray  # (K,)
    low: np.ndarray  # (K,) the 2nd and 98th percentiles of the bank: targets are clipped to them
    high: np.ndarray
    weight: np.ndarray  # (K,) how much each trait's edit counts (its fit on held-out samples)

    def edit(self, w: np.ndarray, target: np.ndarray) -> np.ndarray:
        """w (512,) moved by the least-norm step that brings every trait to ``target`` (K,)."""
        goal = np.clip(target, self.low, self.high)
        gap = self.weight * (goal - (self.matrix @ w + self.intercept))
        d = self.matrix
        step = d.T @ np.linalg.solve(d @ d.T + EDIT_RIDGE * np.eye(len(d)), gap)
        return (w + step).astype(np.float32)


def load_directions(path: Path) -> Directions:
    from safetensors.numpy import load_file

    try:
        t = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            names = tuple((f.metadata() or {})["traits"].split(","))
    except Exception as exc:
        raise ModelError(f"cannot read the face prior's directions {path.name}: {exc}") from None
    return Directions(names, t["matrix"], t["intercept"], t["low"], t["high"], t["weight"])


def load_bank(path: Path) -> dict[str, np.ndarray]:
    """The measured bank the directions were fitted on (``training.face_bank``): w, traits, landmarks, found."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise ModelError(f"cannot read the face prior's bank {path.name}: {exc}") from None
