"""Learn the face prior's trait directions in W from a measured bank (``training.face_bank``).

    python -m anon_plugin.training.face_directions BANK.safetensors OUT.safetensors

Per trait, a ridge regression trait ~= d . w + b on the samples whose face was
found (InterFaceGAN's linear model of a latent space, fitted as a regression
rather than a separating plane so that one step size serves every trait). The
ridge is chosen per trait by 5-fold cross-validation; the held-out R^2 is kept
as the trait's ``weight``: an edit moves a trait only as far as the model can be
trusted on it. Deterministic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

RIDGES = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
FOLDS = 5


def _fit(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    mean_x, mean_y = x.mean(0), y.mean()
    xc = x - mean_x
    d = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y - mean_y))
    return d, float(mean_y - mean_x @ d)


def _held_out_r2(x: np.ndarray, y: np.ndarray, ridge: float) -> float:
    folds = np.arange(len(x)) % FOLDS
    errors = []
    for k in range(FOLDS):
        d, b = _fit(x[folds != k], y[folds != k], ridge)
        errors.append((x[folds == k] @ d + b - y[folds == k]) ** 2)
    return float(1 - np.concatenate(errors).mean() / y.var())


def fit(bank: dict[str, np.ndarray], names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict]:
    """The directions of ``names`` (the bank's traits, in its order) and a report of their fit."""
    found = bank["found"].astype(bool)
    x, ys = bank["w"][found].astype(np.float64), bank["traits"][found].astype(np.float64)
    rows, intercepts, weights, report = [], [], [], {}
    for j, name in enumerate(names):
        scores = {r: _held_out_r2(x, ys[:, j], r) for r in RIDGES}
        ridge = max(scores, key=scores.__getitem__)
        d, b = _fit(x, ys[:, j], ridge)
        rows.append(d)
        intercepts.append(b)
        weights.append(min(max(scores[ridge], 0.0), 1.0))
        report[name] = {"ridge": ridge, "held_out_r2": round(scores[ridge], 4)}
    tensors = {
        "matrix": np.array(rows, np.float32), "intercept": np.array(intercepts, np.float32),
        "low": np.percentile(ys, 2, axis=0).astype(np.float32),
        "high": np.percentile(ys, 98, axis=0).astype(np.float32),
        "weight": np.array(weights, np.float32), "spread": ys.std(0).astype(np.float32),
    }
    return tensors, {"samples": int(found.sum()), "of": int(len(found)), "traits": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bank", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    from safetensors import safe_open

    with safe_open(str(args.bank), "np") as f:
        meta = f.metadata() or {}
    names = tuple(meta["traits"].split(","))
    tensors, report = fit(load_file(str(args.bank)), names)
    save_file(tensors, str(args.out), metadata={"traits": ",".join(names), "psi": meta["psi"],
                                                "report": json.dumps(report)})
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
