"""Augmentation throughput: Kestrel's batched layers against a per-image Python loop.

Each row times one augmentation in training mode on a batch of 64 x 224 x 224 x 3 float images
in [0, 255]: "batched" is one layer call on the batch; "per-image loop" calls the same layer on
one image at a time (what a Dataset-side transform does); "torchvision v2" is the closest
batched `torchvision.transforms.v2` transform on the channels-first batch (skipped with a note
when torchvision is not installed; note that v2 draws one set of parameters per batch, Kestrel
one per image); "Keras 3 (torch)" runs Keras' own layer on the batch (optional, `--keras`).
Run: `python benchmarks/augmentation.py [--device cuda] [--repeats 5] [--batch 64] [--keras]`.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kestrel.layers import image_preprocessing as ip  # noqa: E402

# name -> (Kestrel/Keras layer arguments, torchvision v2 transform builder or None)
CASES = {
    "RandomFlip": ({"mode": "horizontal"},
                   lambda v2: v2.RandomHorizontalFlip()),
    "RandomRotation": ({"factor": 0.1},
                       lambda v2: v2.RandomRotation(36.0)),
    "RandomColorJitter": ({"brightness_factor": 0.2, "contrast_factor": 0.2,
                           "saturation_factor": 0.5, "hue_factor": 0.1},
                          lambda v2: v2.ColorJitter(0.2, 0.2, 0.5, 0.05)),
    "RandAugment": ({}, lambda v2: v2.RandAugment()),
}


def layer_runner(layer):
    def run(images):
        return layer(images, training=True)
    return run


def per_image(run):
    def loop(images):
        return torch.cat([run(images[i:i + 1]) for i in range(images.shape[0])])
    return loop


def torchvision_runner(build):
    try:
        from torchvision.transforms import v2
    except ImportError:
        return None
    transform = build(v2)

    def run(images):  # v2 wants channels-first uint8 for the colour ops
        batch = images.permute(0, 3, 1, 2).to(torch.uint8)
        return transform(batch)
    return run


def keras_runner(name, kwargs):
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    return layer_runner(getattr(keras.layers, name)(**kwargs))


def timed(run, images, repeats: int, device: torch.device) -> float:
    run(images)  # warm-up (allocations, kernels)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--keras", action="store_true", help="also time Keras 3's layers")
    parser.add_argument("--only", nargs="*", default=None, help="layer names to time")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images = torch.rand(args.batch, args.size, args.size, 3, device=device) * 255
    print(f"batch {args.batch}x{args.size}x{args.size}x3 on {device}, median of "
          f"{args.repeats}, torch threads {torch.get_num_threads()}; ms per batch")
    columns = ["batched", "per-image loop", "loop/batched", "torchvision v2"]
    columns += ["Keras 3 (torch)"] if args.keras else []
    print(f"{'layer':<20}" + "".join(f"{c:>17}" for c in columns))
    missing_tv = False
    for name, (kwargs, build_tv) in CASES.items():
        if args.only and name not in args.only:
            continue
        batched = timed(layer_runner(getattr(ip, name)(seed=1, **kwargs)), images,
                        args.repeats, device)
        loop = timed(per_image(layer_runner(getattr(ip, name)(seed=1, **kwargs))), images,
                     args.repeats, device)
        tv_run = torchvision_runner(build_tv)
        missing_tv |= tv_run is None
        cells = [f"{batched * 1e3:.1f}", f"{loop * 1e3:.1f}", f"{loop / batched:.1f}x",
                 "n/a" if tv_run is None else f"{timed(tv_run, images, args.repeats, device) * 1e3:.1f}"]
        if args.keras:
            cells.append(f"{timed(keras_runner(name, kwargs), images, args.repeats, device) * 1e3:.1f}")
        print(f"{name:<20}" + "".join(f"{c:>17}" for c in cells))
    if missing_tv:
        print("torchvision v2: n/a (torchvision is not installed)")


if __name__ == "__main__":
    main()
