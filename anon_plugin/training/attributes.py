"""Training the CelebA-40 attribute classifier (:mod:`anon_plugin.inference.networks.attributes`).

Photos go through the pipeline's own detect -> landmarks -> align, so the
classifier learns on exactly the canonical crops it will judge. Crops are
cached (a .npz under the user cache dir, never in the repository); photos
with no detected face are skipped.

Only CelebA ``train`` identities are used; a seeded subset of them is held out
for validation. ``eval`` identities are for measuring only.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

if TYPE_CHECKING:
    import torch

    from ..inference.networks.attributes import AttributeNet

CROPS_VERSION = "1"


@dataclass(frozen=True)
class Crops:
    """Aligned faces of one split. Rows with no detected face are left out."""

    images: np.ndarray  # (N, 256, 256, 3) uint8 RGB canonical crops
    labels: np.ndarray  # (N, 40) bool, columns in ATTRIBUTES order
    identities: np.ndarray  # (N,) int64
    paths: tuple[str, ...]  # relative to the celeba folder


def read_labels(celeba: Path, split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Paths, (N, 40) bool labels and (N,) identities of one split of ``celeba/labels.csv``."""
    from ..inference.networks.attributes import ATTRIBUTES

    with open(celeba / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split]
    if not rows:
        raise click.ClickException(f"no {split!r} rows in {celeba / 'labels.csv'}")
    missing = set(ATTRIBUTES) - set(rows[0])
    if missing:
        raise click.ClickException(f"labels.csv lacks {sorted(missing)}")
    labels = np.array([[r[a] == "1" for a in ATTRIBUTES] for r in rows], dtype=bool)
    identities = np.array([int(r["identity"]) for r in rows], dtype=np.int64)
    return [r["path"] for r in rows], labels, identities


def align_photo(path: Path) -> np.ndarray | None:
    """The canonical crop (256, 256, 3) uint8 of the most confident face, or None."""
    from ..inference import align, landmarks
    from ..imageio import load_rgb

    rgb = load_rgb(path)
    found = landmarks.locate(rgb)
    return None if found is None else align.warp(rgb, found[2].matrix, align.CROP_SIZE)


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def extract_crops(celeba: Path, split: str, limit: int | None = None, workers: int | None = None) -> Crops:
    """Canonical crops of the first ``limit`` photos (all when None) of a split, cached."""
    from concurrent.futures import ProcessPoolExecutor

    from ..inference.networks.cache import cache_dir

    paths, labels, identities = read_labels(celeba, split)
    if limit is not None:
        paths, labels, identities = paths[:limit], labels[:limit], identities[:limit]
    key = hashlib.sha256(f"{CROPS_VERSION}:{celeba.resolve()}:{chr(10).join(paths)}".encode()).hexdigest()[:12]
    target = cache_dir() / "attributes" / f"crops-{split}-{len(paths)}-{key}.npz"
    if target.is_file():
        with np.load(target) as z:
            keep = z["keep"]
            return Crops(z["images"], labels[keep], identities[keep], tuple(np.array(paths)[keep]))
    workers = workers or min(os.cpu_count() or 1, 4)
    files = [celeba / p for p in paths]
    if workers > 1 and len(files) > 200:
        with ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
            found = list(pool.map(align_photo, files, chunksize=64))
    else:
        found = [align_photo(f) for f in files]
    keep = np.array([c is not None for c in found], dtype=bool)
    if not keep.any():
        raise click.ClickException(f"no face found in any of the {len(files)} {split} photos")
    images = np.stack([c for c in found if c is not None])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part.npz")
    np.savez(partial, images=images, keep=keep)
    partial.replace(target)
    return Crops(images, labels[keep], identities[keep], tuple(np.array(paths)[keep]))


def split_identities(identities: np.ndarray, n_val: int, seed: int) -> np.ndarray:
    """(N,) bool, True = validation: ``n_val`` whole identities drawn with ``seed``
    (at most a fifth of them, so tiny runs keep most rows for training)."""
    unique = np.unique(identities)
    n_val = min(n_val, len(unique) // 5)
    chosen = np.random.default_rng(seed).choice(unique, n_val, replace=False)
    return np.isin(identities, chosen)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips, small similarity jitter and colour jitter.

    x: (B, 3, s, s) uint8 tensor -> (B, 3, s, s) float32 in [0, 1].
    Every CelebA attribute is mirror-symmetric, so flips keep the labels.
    """
    import math

    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    x = x.float() / 255.0

    def uniform(lo: float, hi: float, *shape: int):
        return torch.rand(b, *shape, generator=generator) * (hi - lo) + lo

    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    angle = uniform(-8, 8) * math.pi / 180
    scale = uniform(0.93, 1.07)
    shift = uniform(-0.05, 0.05, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = gray + (x - gray) * uniform(0.7, 1.3, 1, 1, 1)  # saturation
    mean = gray.mean((2, 3), keepdim=True)
    x = mean + (x - mean) * uniform(0.75, 1.25, 1, 1, 1)  # contrast
    x = x * uniform(0.75, 1.25, 1, 1, 1)  # brightness
    return x.clamp(0, 1)


def accuracy(model: AttributeNet, images: torch.Tensor, labels: np.ndarray, batch: int = 256) -> np.ndarray:
    """Per-attribute accuracy (40,) of ``model`` on (N, 3, s, s) uint8 images with (N, 40) bool labels."""
    import torch

    from ..inference.networks.attributes import normalize

    if len(labels) == 0:
        return np.full(labels.shape[1], np.nan)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(normalize(images[i:i + batch].float() / 255.0))
                         for i in range(0, len(images), batch)])
    model.train(was_training)
    return ((out > 0).numpy() == labels).mean(0)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 18
    size: int = 64
    seed: int = 0
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    dropout: float = 0.2
    pos_weight: bool = False  # weigh positives by neg/pos per attribute (balances recall, costs accuracy)
    val_identities: int = 50
    threads: int = 1  # on a shared 2-core machine one thread ran faster than two


def train(crops: Crops, config: TrainConfig, log=print) -> tuple[AttributeNet, dict[str, str]]:
    """Train on ``crops`` (train identities only); returns the model and its metadata."""
    import torch
    import torch.nn.functional as F

    from ..inference.networks.attributes import AttributeNet, downscale, normalize

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    start = time.perf_counter()

    small = torch.from_numpy(downscale(crops.images, config.size)).permute(0, 3, 1, 2).contiguous()
    is_val = split_identities(crops.identities, config.val_identities, config.seed)
    x_train, y_train = small[~is_val], crops.labels[~is_val]
    x_val, y_val = small[is_val], crops.labels[is_val]
    targets = torch.from_numpy(y_train).float()
    log(f"train {len(x_train)} crops ({len(np.unique(crops.identities[~is_val]))} identities), "
        f"validation {len(x_val)} ({len(np.unique(crops.identities[is_val]))} identities), size {config.size}")

    model = AttributeNet(config.size, dropout=config.dropout)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    steps_per_epoch = max(1, len(x_train) // config.batch_size)
    total = config.epochs * steps_per_epoch
    warmup = min(steps_per_epoch, total // 10 + 1)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    pos_weight = None
    if config.pos_weight:
        pos = targets.mean(0).clamp(1e-3, 1 - 1e-3)
        pos_weight = (1 - pos) / pos

    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(x_train), generator=generator)
        running = 0.0
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size:(step + 1) * config.batch_size]
            x = normalize(augment(x_train[index], generator))
            loss = F.binary_cross_entropy_with_logits(model(x), targets[index], pos_weight=pos_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.item()
        val = accuracy(model, x_val, y_val).mean()
        log(f"epoch {epoch + 1}/{config.epochs}  loss {running / steps_per_epoch:.4f}  "
            f"val {val:.4f}  {time.perf_counter() - start:.0f}s")

    probe = torch.randperm(len(x_train), generator=generator)[:2000]
    train_acc = accuracy(model, x_train[probe], y_train[probe.numpy()]).mean()
    val_acc = accuracy(model, x_val, y_val)
    seconds = time.perf_counter() - start
    log(f"train accuracy {train_acc:.4f}, validation {val_acc.mean():.4f}, {seconds:.0f}s")
    model.eval()
    metadata = {
        "epochs": str(config.epochs), "seed": str(config.seed), "input_size": str(config.size),
        "batch_size": str(config.batch_size), "lr": str(config.lr), "weight_decay": str(config.weight_decay),
        "dropout": str(config.dropout), "pos_weight": str(config.pos_weight),
        "train_images": str(len(x_train)), "val_images": str(len(x_val)),
        "train_accuracy": f"{train_acc:.4f}", "val_accuracy": f"{val_acc.mean():.4f}",
        "val_accuracy_per_attribute": json.dumps([round(float(a), 4) for a in val_acc]),
        "train_seconds": f"{seconds:.0f}", "threads": str(torch.get_num_threads()),
        "data": "CelebA train identities; non-commercial research only",
    }
    return model, metadata


def save(model: AttributeNet, metadata: dict[str, str], out: Path) -> None:
    """Write the weights as fp16 safetensors (integer buffers kept) with ``metadata``."""
    from safetensors.torch import save_file

    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata=metadata)


@click.command("train-attributes")
@click.option("--data", "data", type=click.Path(file_okay=False, path_type=Path),
              default=Path("../shared/data/celeba"), show_default=True,
              help="CelebA folder holding labels.csv and images/.")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("models/attributes.safetensors"), show_default=True,
              help="Where to write the weights (safetensors).")
@click.option("--epochs", type=click.IntRange(1), default=TrainConfig.epochs, show_default=True)
@click.option("--size", type=click.IntRange(16), default=TrainConfig.size, show_default=True,
              help="Input side in pixels (canonical crops are area-downscaled to it).")
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
@click.option("--batch-size", type=click.IntRange(2), default=TrainConfig.batch_size, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=TrainConfig.lr, show_default=True)
@click.option("--pos-weight/--no-pos-weight", default=TrainConfig.pos_weight, show_default=True,
              help="Weigh each attribute's positives by its negative/positive ratio.")
@click.option("--val-identities", type=click.IntRange(0), default=TrainConfig.val_identities, show_default=True,
              help="Train identities held out for validation.")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Use only the first N train photos (quick checks).")
@click.option("--threads", type=click.IntRange(1), default=TrainConfig.threads, show_default=True,
              help="Torch CPU threads.")
def train_attributes(data: Path, out: Path, epochs: int, size: int, seed: int, batch_size: int, lr: float,
                     pos_weight: bool, val_identities: int, limit: int | None, threads: int) -> None:
    """Train the CelebA-40 attribute classifier on CelebA train identities."""
    if not (data / "labels.csv").is_file():
        raise click.ClickException(f"no labels.csv in {data}")
    config = TrainConfig(epochs=epochs, size=size, seed=seed, batch_size=batch_size, lr=lr,
                         pos_weight=pos_weight, val_identities=val_identities, threads=threads)
    start = time.perf_counter()
    crops = extract_crops(data, "train", limit)
    click.echo(f"{len(crops.labels)} train crops in {time.perf_counter() - start:.0f}s")
    import torch

    threads = torch.get_num_threads()
    try:
        model, metadata = train(crops, config, log=click.echo)
    finally:
        torch.set_num_threads(threads)
    save(model, metadata, out)
    click.echo(f"wrote {out}")
