"""The evaluation's metrics as pure numpy functions (no model in here)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..inference.recognition import DLIB_THRESHOLD, RECOGNIZERS  # noqa: F401 (DLIB_THRESHOLD: re-exported)

SFACE_THRESHOLD = RECOGNIZERS["sface"].threshold  # cosine, same person at or above (OpenCV's FaceRecognizerSF)
# DLIB_THRESHOLD: L2 distance, same person below (dlib). One definition of each, in recognition.py.
KID_SUBSET_SIZE = 1000
KID_SUBSETS = 100
SSIM_SIGMA = 1.5
SSIM_WINDOW = 11


# --- identity ------------------------------------------------------------------------------

def top1(probes: np.ndarray, gallery: np.ndarray, similarity: str) -> np.ndarray:
    """Index (N,) of each probe's nearest gallery row; ``similarity`` "cosine" (unit vectors) or "l2"."""
    if similarity == "cosine":
        return np.argmax(probes @ gallery.T, axis=1)
    if similarity == "l2":
        d = (probes**2).sum(1)[:, None] - 2 * probes @ gallery.T + (gallery**2).sum(1)[None]
        return np.argmin(d, axis=1)
    raise ValueError(f"unknown similarity {similarity!r}")


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of unit vectors (N, D) x (N, D) -> (N,)."""
    return (a * b).sum(1)


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """A cosine threshold t such that at most ``far`` of the impostor scores are > t.

    The scores are sorted in descending order and t is the (floor(far * n) + 1)-th
    largest: "same person" means cosine > t.
    """
    scores = np.sort(np.asarray(impostor, np.float64))[::-1]
    if not len(scores):
        raise ValueError("no impostor scores")
    return float(scores[min(int(math.floor(far * len(scores))), len(scores) - 1)])


def pair_scores(embeddings: np.ndarray, identities: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of every pair of unit embeddings (N, D): (genuine, impostor) by identity."""
    sims = embeddings @ embeddings.T
    ids = np.asarray(identities)
    upper = np.triu(np.ones(sims.shape, bool), 1)
    same = ids[:, None] == ids[None]
    return sims[upper & same], sims[upper & ~same]


# --- distributions: FID and KID -------------------------------------------------------------

def fid(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets x (N, D) and y (M, D).

    ||mu_x - mu_y||^2 + tr(S_x) + tr(S_y) - 2 tr((S_x^1/2 S_y S_x^1/2)^1/2), with S the
    sample covariances (ddof 1). With fewer samples than dimensions (900 probes, 1792
    features) the last trace is computed as the nuclear norm of Xc Yc^T divided by
    sqrt((N - 1)(M - 1)) (Xc, Yc the centred features), an exact identity that needs
    the singular values of an N x M matrix instead of D x D square roots; otherwise
    from the eigenvalues of S_x^1/2 S_y S_x^1/2 (symmetric: no complex square root).
    Zero for identical sets (up to rounding).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    n, m, d = len(x), len(y), x.shape[1]
    mu = x.mean(0) - y.mean(0)
    if min(n, m) < d:
        cross = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((n - 1) * (m - 1))
    else:
        values, vectors = np.linalg.eigh(xc.T @ xc / (n - 1))
        root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ (yc.T @ yc / (m - 1)) @ root), 0, None)).sum()
    return float(max(mu @ mu + (xc**2).sum() / (n - 1) + (yc**2).sum() / (m - 1) - 2 * cross, 0.0))


def mmd2_polynomial(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel k(a, b) = (a.b / D + 1)^3."""
    d = x.shape[1]
    kxx, kyy, kxy = ((u @ v.T / d + 1) ** 3 for u, v in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(x: np.ndarray, y: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance on features x (N, D), y (M, D): mean and std of the unbiased
    polynomial-kernel MMD^2 over ``subsets`` random subsets of min(subset_size, N, M) rows each,
    drawn without replacement (a single estimate on everything when that is all the rows).
    0 when x and y are the same array.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape == y.shape and np.array_equal(x, y):
        # One set against itself: the distributions are the same. (The unbiased estimator assumes
        # independent samples and would go negative here.)
        return 0.0, 0.0
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError("KID needs at least 2 samples per set")
    if size == len(x) == len(y):
        return mmd2_polynomial(x, y), 0.0
    rng = np.random.default_rng(seed)
    values = [mmd2_polynomial(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


# --- pixels: SSIM, PSNR, changed area -----------------------------------------------------------

def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 image (H, W, 3) as float64, unrounded."""
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) of two RGB uint8 photos of one size, on their luma.

    Gaussian window 11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255; the mean
    is taken over the valid region (5 px from the border left out), as in the
    reference implementation.
    """
    if a.shape != b.shape:
        raise ValueError(f"SSIM of different shapes {a.shape} vs {b.shape}")
    x, y = luma(a), luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    r = SSIM_WINDOW // 2
    return float(s[r:-r, r:-r].mean()) if min(s.shape) > 2 * r else float(s.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over every pixel and channel of two uint8 images (inf when they are equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else float(10 * math.log10(255.0**2 / mse))


def changed_area(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels (H, W) where any channel differs."""
    return float((a != b).any(axis=2).mean())


def mean_or_none(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None
