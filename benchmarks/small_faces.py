"""Small faces in large photos: what detection finds and what it costs, before and after the full-resolution pass.

    python benchmarks/small_faces.py [--repeats 3]

Builds group photos from nine CelebA eval faces 17-61 px wide (the detector's
box) on a noisy grey ground: 12 MP (4,000 x 3,000), 48 MP (8,000 x 6,000) and
the 9,000 x 6,000 of issue 11. "Shrunk only" is how detection worked before:
YuNet on the photo shrunk to 2,048 px; "now" is ``detect.detect_faces``: that
pass, plus the full-resolution tiles and the magnified look at small
candidates. Timed on the CPU (OpenCV's own threads), best of the repeats.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import cv2
import numpy as np

from _data import eval_photos
from anon_plugin.imageio import load_rgb
from anon_plugin.inference import detect

WIDTHS = np.round(np.linspace(17, 61, 9)).astype(int)
SIZES = {"12 MP": (4000, 3000), "48 MP": (8000, 6000), "54 MP (9,000 x 6,000)": (9000, 6000)}


def tiles() -> list[np.ndarray]:
    out = []
    for path, width in zip(eval_photos(9), WIDTHS, strict=True):
        rgb = load_rgb(path)
        scale = width / detect.detect_faces(rgb)[0].width
        out.append(cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
                              interpolation=cv2.INTER_AREA))
    return out


def group_photo(faces: list[np.ndarray], w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(120, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    for k, face in enumerate(faces):
        x, y = int((k % 3 + 0.3 + 0.4 * rng.random()) * w / 3), int((k // 3 + 0.3 + 0.4 * rng.random()) * h / 3)
        photo[y:y + face.shape[0], x:x + face.shape[1]] = face
    return photo


def shrunk_only(photo: np.ndarray, max_side: int = 2048) -> list[detect.Detection]:
    scale = min(1.0, max_side / max(photo.shape[:2]))
    small = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    return detect._yunet(small, 0.6, scale)


def best(work, repeats: int) -> tuple[float, list]:
    times, found = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        found = work()
        times.append(time.perf_counter() - start)
    return min(times), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    faces = tiles()
    print(f"nine faces {', '.join(map(str, WIDTHS))} px wide; OpenCV threads {cv2.getNumThreads()}")
    print("| photo | shrunk only: faces | s | now: faces | s |\n|---|---|---|---|---|")
    for name, (w, h) in SIZES.items():
        photo = group_photo(faces, w, h)
        t_old, old = best(partial(shrunk_only, photo), args.repeats)
        t_new, new = best(partial(detect.detect_faces, photo), args.repeats)
        print(f"| {name} | {len(old)} | {t_old:.2f} | {len(new)} | {t_new:.2f} |")


if __name__ == "__main__":
    main()
