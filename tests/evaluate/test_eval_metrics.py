"""Known answers for the evaluation's metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anon_plugin.evaluate import metrics


def _fid_reference(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook formula with D x D matrix square roots."""
    mu = x.mean(0) - y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    w, v = np.linalg.eigh(sx)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sy @ root), 0, None)).sum()
    return float(mu @ mu + np.trace(sx) + np.trace(sy) - 2 * cross)


def test_fid_of_identical_sets_is_zero():
    x = np.random.default_rng(0).normal(size=(300, 64))
    assert metrics.fid(x, x) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("n, m, d", [(200, 150, 16), (40, 50, 120), (900, 900, 1792)])
def test_fid_matches_the_textbook_formula(n, m, d):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(n, d)), 1.5 * rng.normal(size=(m, d)) + 0.3
    assert metrics.fid(x, y) == pytest.approx(_fid_reference(x, y), rel=1e-6)


def test_fid_of_shifted_gaussians_is_the_squared_shift():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20000, 4))
    shift = np.array([1.0, 0.0, 2.0, 0.0])
    assert metrics.fid(x, x + shift) == pytest.approx(5.0, rel=1e-6)  # same covariance: only the means differ


def test_kid_is_zero_for_one_set_and_grows_with_the_gap():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 32))
    assert metrics.kid(x, x) == (0.0, 0.0)
    same, _ = metrics.kid(x, rng.normal(size=(400, 32)), subsets=20, subset_size=200)
    near, _ = metrics.kid(x, rng.normal(size=(400, 32)) + 0.3, subsets=20, subset_size=200)
    far, _ = metrics.kid(x, rng.normal(size=(400, 32)) + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 0.01 < near < far


def test_mmd_is_the_unbiased_estimator():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(6, 3))

    def k(a, b):
        return (a @ b / 3 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(6) for j in range(6) if i != j) / 30
    xy = sum(k(a, b) for a in x for b in y) / 30
    assert metrics.mmd2_polynomial(x, y) == pytest.approx(xx + yy - 2 * xy)


def test_ssim_psnr_and_changed_area():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.psnr(a, a) == math.inf and metrics.changed_area(a, a) == 0.0
    b = a.astype(int)
    b[..., 0] = np.where(b[..., 0] < 255, b[..., 0] + 1, 254)  # every red value off by exactly one
    b = b.astype(np.uint8)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 3))  # MSE = 1/3
    assert metrics.changed_area(a, b) == 1.0
    c = a.copy()
    c[:30] = 0
    assert metrics.changed_area(a, c) == pytest.approx(np.mean((a[:30] != 0).any(axis=2)) * 30 / 60)
    noisy = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert 0 < metrics.ssim(a, noisy) < metrics.ssim(a, b) < 1.0
    flat = np.full((40, 40, 3), 100, np.uint8)
    assert metrics.ssim(flat, flat + 20) < 1.0  # luminance term: a brighter copy is not the same picture


def test_threshold_at_far_and_pair_scores():
    impostor = np.arange(1000) / 1000.0  # 0.000 .. 0.999
    t = metrics.threshold_at_far(impostor, 0.001)
    assert t == 0.998 and np.mean(impostor > t) == 0.001
    assert metrics.threshold_at_far(impostor, 0.01) == 0.989
    e = np.eye(3)[[0, 0, 1, 2]]
    genuine, impostors = metrics.pair_scores(e, ["a", "a", "b", "c"])
    assert genuine.tolist() == [1.0] and sorted(impostors.tolist()) == [0.0] * 5


def test_top1():
    gallery = np.eye(3)
    probes = np.array([[0.1, 0.9, 0.0], [0.0, 0.2, 0.8]])
    assert metrics.top1(probes, gallery, "cosine").tolist() == [1, 2]
    assert metrics.top1(probes, gallery, "l2").tolist() == [1, 2]
    with pytest.raises(ValueError):
        metrics.top1(probes, gallery, "manhattan")
