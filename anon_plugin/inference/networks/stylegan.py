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

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ...errors import ModelError
from .cache import derived_weights
from .openvino_ir import IRGraph, Window, read_constants

VERSION = "1"
STYLE_DIM = 512
SIZE = 1024
MEAN_SAMPLES = 10_000
MAPPING = "MappingNetwork"
LOOKS_COMPONENTS = 8


def latents(seed: int, count: int = 1) -> np.ndarray:
    """``count`` z vectors (count, 512) float32, fixed by ``seed``."""
    return np.random.default_rng(seed).standard_normal((count, STYLE_DIM)).astype(np.float32)


class FacePrior(nn.Module):
    """z -> w -> a photo of nobody. ``truncate`` pulls w towards the mean (psi 1: none)."""

    w_mean: Tensor  # a buffer: follows .to(device)

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

    def forward(self, w: Tensor, window: Window | None = None) -> Tensor:
        """(N, 512) w -> (N, 3, 1024, 1024) RGB in [-1, 1] (unclipped), or only ``window`` of it."""
        return self.synthesis(w.to(self.device), window)

    def images(self, w: Tensor, window: Window | None = None) -> np.ndarray:
        """(N, 512) w -> (N, 1024, 1024, 3) RGB uint8, or (N, h, w, 3): ``window`` of it (``window_box``)."""
        with torch.inference_mode():
            x = self(w, window)
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# A window's edge differs from the whole picture up to 64 px inside it (4 px of the 64 px grid where
# the synthesis is first cut): measured, beyond that the window equals the whole image exactly.
WINDOW_GRID = 64
WINDOW_MARGIN = 64


def window_around(x0: float, y0: float, x1: float, y1: float) -> Window | None:
    """The smallest window (on the grid, in fractions) whose exact part holds the box (1024 px frame);
    None when that is the whole picture."""
    cell = SIZE // WINDOW_GRID

    def low(v: float) -> int:
        v -= WINDOW_MARGIN
        return 0 if v <= 0 else int(np.floor(v / cell)) * cell

    def high(v: float) -> int:
        v += WINDOW_MARGIN
        return SIZE if v >= SIZE else int(np.ceil(v / cell)) * cell

    top, left, bottom, right = low(y0), low(x0), high(y1), high(x1)
    if (top, left, bottom, right) == (0, 0, SIZE, SIZE):
        return None
    return Window(top / SIZE, left / SIZE, bottom / SIZE, right / SIZE, WINDOW_GRID)


def window_box(window: Window | None) -> tuple[int, int]:
    """Where a window's picture starts in the 1024 px frame: (x, y)."""
    return (0, 0) if window is None else (round(window.left * SIZE), round(window.top * SIZE))


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
    """Linear trait model of the face prior's W space, learned on its measured bank (``training.face_directions``):
    traits ~= matrix @ w + intercept."""

    names: tuple[str, ...]
    matrix: np.ndarray  # (K, 512)
    intercept: np.ndarray  # (K,)
    low: np.ndarray  # (K,) the 2nd and 98th percentiles of the bank: targets are clipped to them
    high: np.ndarray
    weight: np.ndarray  # (K,) how much each trait's edit counts (its fit on held-out samples)
    spread: np.ndarray  # (K,) the bank's standard deviation of each trait: the unit edits are measured in


def _safetensors(path: Path, what: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as exc:
        raise ModelError(f"cannot read the face prior's {what} {path.name}: {exc}") from None


def load_directions(path: Path) -> Directions:
    t, meta = _safetensors(path, "directions")
    try:
        return Directions(tuple(meta["traits"].split(",")), t["matrix"], t["intercept"], t["low"], t["high"],
                          t["weight"], t["spread"])
    except KeyError as exc:
        raise ModelError(f"the face prior's directions {path.name} lack {exc}") from None


@dataclass(frozen=True)
class Bank:
    """Measured samples of the face prior (``training.face_bank``), those whose face was found."""

    names: tuple[str, ...]  # the traits, traits.NAMES when it was made
    w: np.ndarray  # (N, 512)
    traits: np.ndarray  # (N, K)
    tone: np.ndarray  # (N, 3) CIELAB of the skin
    sface: np.ndarray  # (N, 128) unit embeddings of the face
    facenet: np.ndarray  # (N, 512)
    landmarks: np.ndarray  # (N, 68, 2) in the 1024 px frame

    @functools.cached_property
    def trait_spread(self) -> np.ndarray:
        return self.traits.std(0) + 1e-6

    @functools.cached_property
    def tone_spread(self) -> np.ndarray:
        return self.tone.std(0) + 1e-6

    @functools.cached_property
    def _looks_basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, top principal directions and their spread of the samples' joined SFace and FaceNet embeddings."""
        joined = np.concatenate([self.sface, self.facenet], 1).astype(np.float64)
        mean = joined.mean(0)
        _, sigma, vt = np.linalg.svd(joined - mean, full_matrices=False)
        k = LOOKS_COMPONENTS
        return mean, vt[:k], sigma[:k] / np.sqrt(len(joined))

    def looks(self, sface: np.ndarray, facenet: np.ndarray) -> np.ndarray:
        """(..., LOOKS_COMPONENTS): where faces lie along what the recognizers' embeddings vary most over the
        bank: ancestry, gender, age and build more than any one person (in units of the bank's spread)."""
        mean, basis, spread = self._looks_basis
        return (np.concatenate([sface, facenet], -1) - mean) @ basis.T / spread


def load_bank(path: Path) -> Bank:
    t, meta = _safetensors(path, "bank")
    try:
        found = t["found"].astype(bool)
        return Bank(tuple(meta["traits"].split(",")), t["w"][found].astype(np.float32),
                    t["traits"][found].astype(np.float32), t["tone"][found].astype(np.float32),
                    t["sface"][found].astype(np.float32), t["facenet"][found].astype(np.float32),
                    t["landmarks"][found].astype(np.float32))
    except KeyError as exc:
        raise ModelError(f"the face prior's bank {path.name} lacks {exc}") from None


@dataclass(frozen=True)
class PreviewHead:
    """A quarter-size picture of a sample from the synthesis's 128 px features (layer ``tap``), a tenth of the
    cost: a linear map from each feature pixel to the 2 x 2 RGB pixels above it (``training.face_prior_preview``).
    Close enough to the full picture for a recognizer (SFace cosine 0.89 between the two, median), never
    published."""

    tap: str
    weight: Tensor  # (C + 1, 12): features and a bias -> 2 x 2 x RGB in [-1, 1]

    def images(self, prior: FacePrior, w: Tensor, window: Window | None = None) -> np.ndarray:
        """(N, 512) w -> (N, h, w, 3) RGB uint8 at 256 px per 1024 of the full picture (``window`` of it)."""
        with torch.inference_mode():
            features = prior.synthesis(w.to(prior.device), window, until=self.tap)
            n, c, h, wd = features.shape
            weight = self.weight.to(features.device)
            x = torch.einsum("nchw,ck->nhwk", features, weight[:c]) + weight[c]
            x = x.reshape(n, h, wd, 2, 2, 3).permute(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * wd, 3)
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


def load_preview(path: Path) -> PreviewHead:
    t, meta = _safetensors(path, "preview head")
    try:
        return PreviewHead(meta["tap"], torch.from_numpy(t["head"].astype(np.float32)))
    except KeyError as exc:
        raise ModelError(f"the face prior's preview head {path.name} lacks {exc}") from None
