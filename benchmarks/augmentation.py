"""Augmentation throughput: one batched pipeline against a per-image Python loop.

The pipeline is RandomFlip + RandomRotation(0.1) + RandomZoom(0.2) in training mode on a batch
of 64 x 224 x 224 x 3 float images. "per-image loop" calls the same layers on one image at a
time (what a torchvision-style Dataset transform does); "Keras 3 (torch)" runs Keras' own
layers on the batch (optional, `--keras`).
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

from kestrel.layers.image_preprocessing import RandomFlip, RandomRotation, RandomZoom  # noqa: E402


def kestrel_pipeline():
    layers = [RandomFlip(seed=1), RandomRotation(0.1, seed=2), RandomZoom(0.2, seed=3)]

    def run(images):
        for layer in layers:
            images = layer(images, training=True)
        return images
    return run


def per_image(pipeline):
    def run(images):
        return torch.cat([pipeline(images[i:i + 1]) for i in range(images.shape[0])])
    return run


def keras_pipeline():
    os.environ["KERAS_BACKEND"] = "torch"
    import keras

    layers = [keras.layers.RandomFlip(seed=1), keras.layers.RandomRotation(0.1, seed=2),
              keras.layers.RandomZoom(0.2, seed=3)]

    def run(images):
        for layer in layers:
            images = layer(images, training=True)
        return images
    return run


def timed(run, images, repeats: int, device: torch.device) -> list[float]:
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
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--keras", action="store_true", help="also time Keras 3's layers")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images = torch.rand(args.batch, args.size, args.size, 3, device=device) * 255
    variants = {"Kestrel batched": kestrel_pipeline(),
                "per-image loop": per_image(kestrel_pipeline())}
    if args.keras:
        variants["Keras 3 (torch)"] = keras_pipeline()
    results = {name: statistics.median(timed(run, images, args.repeats, device))
               for name, run in variants.items()}
    base = results["Kestrel batched"]
    print(f"batch {args.batch}x{args.size}x{args.size}x3 on {device}, "
          f"median of {args.repeats}, torch threads {torch.get_num_threads()}")
    print(f"{'variant':<18}{'ms/batch':>10}{'images/s':>11}{'vs batched':>12}")
    for name, seconds in results.items():
        print(f"{name:<18}{seconds * 1e3:>10.1f}{args.batch / seconds:>11.0f}"
              f"{seconds / base:>11.2f}x")


if __name__ == "__main__":
    main()
