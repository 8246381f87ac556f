"""Stage 4: the ID attention map, Grad-CAM on a face recognizer.

Two adaptations, both measured:
- The recognizers embed faces rather than classify them, so the class score
  becomes the projection of the face's embedding onto its own embedding, held
  fixed, taken before any L2 normalisation. (Cosine to a detached copy of
  itself has zero gradient: it sits at its maximum. So does the projection
  of an already normalised embedding: FaceNet's maps were rounding noise,
  around 1e-9, until it used ``raw_embedding``.)
- SFace has no global pooling: its last layer weighs every 7x7 position
  separately, so Grad-CAM's channel-averaged gradients smear the map. We
  weigh activations by their gradients position by position (HiResCAM),
  which equals Grad-CAM under global pooling and stays faithful without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np
import torch

from . import registry
from .align import CROP_SIZE, invert, template_matrix
from .recognition import RECOGNIZERS, recognizer_input


class CamModel(Protocol):
    """A recognizer Grad-CAM can read: its last spatial layer and its embedding before normalization."""

    @property
    def cam_layer(self) -> torch.nn.Module: ...

    def raw_embedding(self, x: torch.Tensor) -> torch.Tensor: ...


class GradCAM:
    """Grad-CAM (HiResCAM form) at ``model.cam_layer``; a context manager that removes its hook on exit.

    >>> with GradCAM(model) as cam:
    ...     maps = cam(x, target)  # (N, h, w), non-negative
    """

    def __init__(self, model: CamModel):
        self.model = model
        self.activations: torch.Tensor | None = None

    def _hook(self, module, inputs, output):
        # Re-rooting the graph here makes backward stop at this layer: the
        # frozen layers below never need gradients.
        self.activations = output.detach().requires_grad_(True)
        return self.activations

    def __enter__(self) -> GradCAM:
        self._handle = self.model.cam_layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self.activations = None

    def __call__(self, x: torch.Tensor, target: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Maps (N, h, w) for input x (N, 3, H, W); ``target`` maps outputs (N, D) to scores (N,)."""
        with torch.enable_grad():
            score = target(self.model.raw_embedding(x)).sum()
            activations = self.activations
            assert activations is not None, "the forward pass ran the hook at cam_layer"
            (grads,) = torch.autograd.grad(score, activations)
        return torch.relu((grads * activations).sum(1)).detach()


def own_identity(embedding: torch.Tensor) -> torch.Tensor:
    """Score (N,): each embedding projected onto its own direction, held fixed."""
    return (embedding * torch.nn.functional.normalize(embedding.detach(), dim=1)).sum(1)


def _recognizer_map(crops: np.ndarray, name: str, device: str) -> np.ndarray:
    with GradCAM(registry.load(name, device)) as cam:
        maps = cam(recognizer_input(crops, name).to(device), own_identity).cpu().numpy()
    r = RECOGNIZERS[name]
    back = invert(template_matrix(r.template))
    out = np.empty((len(crops), CROP_SIZE, CROP_SIZE), np.float32)
    for i, m in enumerate(maps):
        m = cv2.resize(m, (r.size, r.size), interpolation=cv2.INTER_LINEAR)
        out[i] = cv2.warpAffine(m, back, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        peak = out[i].max()
        out[i] = out[i] / peak if peak > 0 else out[i]
    return out


def attention_map(crops: np.ndarray, recognizer: str = "sface", device: str = "cpu") -> np.ndarray:
    """ID attention maps (N, CROP_SIZE, CROP_SIZE) float32 in [0, 1] for canonical crops (N, S, S, 3).

    ``recognizer`` is "sface", "facenet" or "ensemble" (the mean of both maps).
    All N crops go through the network in one pass on ``device``.
    """
    if recognizer == "ensemble":
        return (_recognizer_map(crops, "sface", device) + _recognizer_map(crops, "facenet", device)) / 2
    if recognizer not in RECOGNIZERS:
        raise ValueError(f"unknown recognizer {recognizer!r}; choose from sface, facenet, ensemble")
    return _recognizer_map(crops, recognizer, device)
