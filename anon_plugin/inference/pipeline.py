"""The whole photo pipeline: detect -> landmarks -> align -> saliency -> mask -> fill -> blend.

``Anonymizer`` runs one photo under one config; it is ``batch`` with a batch
of one, so the one-photo path and the batched path are the same code.
"""

from __future__ import annotations

from . import batch, mask
from .records import Analysis, AnonymizerConfig, FaceRecord, Result

__all__ = ["Analysis", "Anonymizer", "AnonymizerConfig", "FaceRecord", "Result"]


class Anonymizer:
    """Anonymize every face of a photo. Models load on first use and are reused.

    >>> result = Anonymizer(method="inpaint", strength="medium").anonymize("photo.jpg")
    >>> result.image, [f.mask_area for f in result.faces]
    """

    def __init__(self, config: AnonymizerConfig | None = None, *, device: str = "cpu", **options):
        self.config = config or AnonymizerConfig(**options)
        self.device = device  # "cpu" or "cuda:N" (see device.resolve)
        self.threshold = mask.threshold_for(self.config.strength, self.config.threshold)

    def anonymize(self, image: batch.Image) -> Result:
        """``image``: a path, a PIL image or an RGB uint8 (H, W, 3) array."""
        return self.render(self.analyze(image))

    def analyze(self, image: batch.Image) -> Analysis:
        """Detect every face, then landmarks, alignment, attention map and region per face.

        These stages depend on neither method, strength nor seed: one analysis
        can be rendered many ways (the evaluation does).
        """
        return batch.analyze_batch([image], [self.config], self.device)[0]

    def render(self, analysis: Analysis) -> Result:
        """Mask, fill and blend every analysed face with this anonymizer's method, strength and seed."""
        return batch.render_batch([analysis], [self.config], self.device)[0]
