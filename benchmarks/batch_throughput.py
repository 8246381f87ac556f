"""Photos and faces per second through the batched inference module, per max_batch.

    python benchmarks/batch_throughput.py [--device auto] [--batches 1,8,32] [--threads 2] [--method generate]

Runs the 80 unaligned photos of ../shared/data/wild through
``inference.batch.anonymize_batch`` under the plugin's default policy
(generate, medium), ``max_batch`` photos per call, the way a worker claims
them. Photos are decoded before timing; models are loaded and warmed up
first. Only the machine otherwise idle gives figures worth reporting.
"""

from __future__ import annotations

import argparse
import time

import torch

from _data import DATA
from anon_plugin.imageio import read_picture
from anon_plugin.inference import batch, device
from anon_plugin.inference.records import AnonymizerConfig
from anon_plugin.policies import DEFAULT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--method", default=DEFAULT.method)
    parser.add_argument("--limit", type=int, default=80)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    where = device.resolve(args.device)
    name = torch.cuda.get_device_name(where) if where.startswith("cuda") else f"CPU, {args.threads} threads"
    photos = sorted((DATA / "wild" / "images").glob("*.jpg"))[: args.limit]
    images = [read_picture(p).rgb for p in photos]
    options = {**DEFAULT.engine_options(), "method": args.method}
    configs = [AnonymizerConfig(**options, seed=i) for i in range(len(images))]
    batch.anonymize_batch(images[:4], configs[:4], where, 4)  # load and warm up every model
    print(f"{len(images)} wild photos, method {args.method}, strength {options['strength']}, on {where} ({name})")
    print("| max_batch | photos/s | faces/s | s/photo | faces covered |")
    print("|---|---|---|---|---|")
    for size in (int(b) for b in args.batches.split(",")):
        faces = covered = 0
        start = time.perf_counter()
        for i in range(0, len(images), size):
            for result in batch.anonymize_batch(images[i:i + size], configs[i:i + size], where, size):
                faces += len(result.faces)
                covered += result.failed_faces
        if where.startswith("cuda"):
            torch.cuda.synchronize()
        took = time.perf_counter() - start
        print(f"| {size} | {len(images) / took:.2f} | {faces / took:.2f} | {took / len(images):.3f} | {covered} |")


if __name__ == "__main__":
    main()
