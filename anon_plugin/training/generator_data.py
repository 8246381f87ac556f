"""Pack the generator's training set: aligned crops, attention maps and regions, in one file.

Masks are not stored: training thresholds the stored attention maps at random
thresholds inside the stored eyebrow-to-chin regions, as the pipeline does.
The pack has to travel to a GPU machine with the repository (64 MiB in all),
so crops are WebP at 128x128 and maps 32x32.
"""

from __future__ import annotations

import csv
from pathlib import Path

import click

SIZE = 128  # generator resolution
MAP_SIZE = 32  # stored attention-map resolution (the SFace map is 7x7 underneath)


def _aligned(path: Path):
    """(crop 256, region 256) of the main face of a photo, or None when there is none."""
    import numpy as np

    from ..inference import align, landmarks, mask
    from ..imageio import read_picture

    rgb = read_picture(path).rgb
    found = landmarks.locate(rgb)
    if found is None:
        return None
    _, points, alignment = found
    crop = align.warp(rgb, alignment.matrix, alignment.size)
    region = mask.region_of_interest(align.transform(alignment.matrix, points), alignment.size)
    return np.ascontiguousarray(crop), region


def pack(data: Path, split: str, out: Path, limit: int | None = None, per_identity: int | None = None,
         batch: int = 32) -> int:
    """Write the pack for ``split`` of a labels.csv data set; returns the number of faces.

    ``per_identity`` keeps only the first K photos of each person, ``limit`` the first N photos.
    """
    import cv2
    import numpy as np

    from ..inference.recognition import embed
    from ..inference.saliency import attention_map

    with open(data / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("split", split) == split]
    if per_identity:
        taken: dict[str, int] = {}
        kept = []
        for row in rows:
            taken[row["identity"]] = taken.get(row["identity"], 0) + 1
            if taken[row["identity"]] <= per_identity:
                kept.append(row)
        rows = kept
    rows = rows[:limit]
    blobs, maps, regions, identities, embeddings = [], [], [], [], []
    pending: list[tuple] = []

    def flush() -> None:
        crops = np.stack([p[0] for p in pending])
        att = attention_map(crops, "sface")
        embeddings.append(embed(crops, "sface").astype(np.float16))
        for (crop, region, identity), a in zip(pending, att, strict=True):
            small = cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            ok, blob = cv2.imencode(".webp", small[:, :, ::-1], [cv2.IMWRITE_WEBP_QUALITY, 85])
            blobs.append(blob.ravel())
            maps.append(np.round(cv2.resize(a, (MAP_SIZE, MAP_SIZE), interpolation=cv2.INTER_AREA) * 255))
            roi = cv2.resize(region.astype(np.uint8), (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
            regions.append(np.packbits(roi.astype(bool)))
            identities.append(int(identity))
        pending.clear()

    with click.progressbar(rows, label=f"packing {split}", file=None) as bar:
        for row in bar:
            found = _aligned(data / row["path"])
            if found is not None:
                pending.append((*found, row["identity"]))
            if len(pending) == batch:
                flush()
    if pending:
        flush()
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, webp=np.concatenate(blobs), offsets=offsets, attention=np.stack(maps).astype(np.uint8),
             region=np.stack(regions), identity=np.array(identities, np.int32),
             embedding=np.concatenate(embeddings), size=np.array(SIZE))
    return len(identities)


@click.command("pack-generator-data")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=Path("../shared/data/celeba"),
              show_default=True, help="A data set with labels.csv (path, identity, split).")
@click.option("--split", default="train", show_default=True, help="Only photos of this split are packed.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("pack/train.npz"),
              show_default=True, help="The pack file (keep it out of git: pack/ is ignored).")
@click.option("--limit", type=int, default=None, help="Pack only the first N photos (for quick tests).")
@click.option("--per-identity", type=int, default=None, help="Pack at most K photos of each person.")
def pack_command(data: Path, split: str, out: Path, limit: int | None, per_identity: int | None) -> None:
    """Pack aligned crops, attention maps and regions for training the generator."""
    n = pack(data, split, out, limit, per_identity)
    click.echo(f"{n} faces packed into {out} ({out.stat().st_size / 2**20:.1f} MiB)", err=True)
