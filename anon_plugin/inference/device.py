"""Where the networks run, chosen once per process.

``auto`` is CUDA when torch sees a GPU, else the CPU. Detection (OpenCV) and
landmarks (dlib) always run on the CPU; the recognizers and the generator
follow the device.
"""

from __future__ import annotations

import re

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve(device: str) -> str:
    """``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` -> a concrete torch device name, ``cpu`` or ``cuda:N``.

    Raises ValueError when a GPU is asked for and torch sees none (or fewer).
    """
    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    found = _CUDA.match(device)
    if found is None:
        raise ValueError(f"unknown device {device!r}; choose from auto, cpu, cuda, cuda:N")
    index = int(found.group(1) or 0)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index >= count:
        raise ValueError(f"{device!r} asked for, but torch sees {count} CUDA device(s)")
    return f"cuda:{index}"


def faces_per_pass(device: str, max_batch: int) -> int:
    """How many faces one network pass takes.

    On the CPU, one: a batch is no faster there (measured on 2 cores: SFace
    Grad-CAM 32 ms/face alone vs 34 in a batch of 8, the generator 57 vs 57),
    and float sums taken in another order would let a mask pixel at the
    threshold flip with the batch size. On CUDA, ``max_batch``.
    """
    return 1 if device == "cpu" else max(1, max_batch)
