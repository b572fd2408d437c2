"""CUDA timings for `gpu_check.sh`: fit/evaluate/predict, mixed precision, jit, applications.

Each part prints a small Markdown table (wall time with `torch.cuda.synchronize`, median of
`--repeats` interleaved rounds). Without CUDA a part prints why and exits 0.
Run: `python benchmarks/gpu_bench.py --part fit|amp|jit|apps [--repeats 3] [--quick]`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import kestrel
from mlp import MLPLoop, make_data

SAMPLES = (16384, 4096)  # full, quick


def _mlp(jit: bool = False, policy: str = "float32", k: int = 1):
    kestrel.utils.set_random_seed(0)
    kestrel.mixed_precision.set_global_policy(policy)
    try:
        K = kestrel
        model = K.Sequential([K.Input(shape=(784,)), K.layers.Dense(1024, activation="relu"),
                              K.layers.Dense(1024, activation="relu"),
                              K.layers.Dense(10, activation="softmax", dtype="float32")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
                      jit_compile=jit, steps_per_execution=k)
    finally:
        kestrel.mixed_precision.set_global_policy("float32")
    return model


DEVICE = "cuda"


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def _timed(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def compare(fns: dict, repeats: int) -> dict:
    """Median ms per variant after one untimed call each, in a rotating order."""
    for fn in fns.values():
        fn()
    keys, times = list(fns), {key: [] for key in fns}
    for r in range(repeats):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            times[key].append(_timed(fns[key]))
    return {key: statistics.median(v) * 1e3 for key, v in times.items()}


def _print(title: str, rows: list[tuple]) -> None:
    print(f"\n### {title}\n\n| measurement | " + " | ".join(rows[0][1]) + " |")
    print("|---|" + "---|" * len(rows[0][1]))
    for name, result in rows:
        print(f"| {name} | " + " | ".join(f"{v:.1f} ms" for v in result.values()) + " |")


def part_fit(args, x, y) -> None:
    """Kestrel fit/evaluate/predict against a CUDA hand loop on the benchmark MLP."""
    loop = MLPLoop(x, y)
    loop.model.to(DEVICE)
    loop.x, loop.y = loop.x.to(DEVICE), loop.y.to(DEVICE)
    loop.optimizer = torch.optim.Adam(loop.model.parameters(), lr=1e-3)
    model = kestrel.Sequential([kestrel.Input(shape=(784,)),
                                kestrel.layers.Dense(256, activation="relu"),
                                kestrel.layers.Dense(256, activation="relu"),
                                kestrel.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    rows = []
    for kind, batch in (("fit", 32), ("fit", 512), ("evaluate", 512), ("predict", 512)):
        hand = {"fit": loop.fit_epoch, "evaluate": loop.evaluate, "predict": loop.predict}[kind]
        call = {"fit": lambda b: model.fit(x, y, batch_size=b, epochs=1, verbose=0),
                "evaluate": lambda b: model.evaluate(x, y, batch_size=b, verbose=0),
                "predict": lambda b: model.predict(x, batch_size=b, verbose=0)}[kind]
        result = compare({"CUDA hand loop": lambda: hand(batch),
                          "Kestrel": lambda: call(batch)}, args.repeats)
        rows.append((f"{kind} b{batch}", result))
    _print("fit / evaluate / predict vs a CUDA hand loop (MLP 784-256-256-10)", rows)


def part_amp(args, x, y) -> None:
    """float32 against mixed_float16 and mixed_bfloat16 fits of a wider MLP."""
    models = {p: _mlp(policy=p) for p in ("float32", "mixed_float16", "mixed_bfloat16")}
    result = compare({p: (lambda m=m: m.fit(x, y, batch_size=256, epochs=1, verbose=0))
                      for p, m in models.items()}, args.repeats)
    _print("mixed precision (MLP 784-1024-1024-10, fit b256)", [("fit epoch", result)])


def part_jit(args, x, y) -> None:
    """Eager against jit_compile=True (and steps_per_execution=8) on CUDA."""
    models = {"eager": _mlp(), "jit": _mlp(jit=True), "jit k=8": _mlp(jit=True, k=8)}
    for batch in (32, 512):
        result = compare({name: (lambda m=m: m.fit(x, y, batch_size=batch, epochs=1, verbose=0))
                          for name, m in models.items()}, args.repeats)
        _print(f"jit_compile on CUDA (MLP 784-1024-1024-10, fit b{batch})",
               [("fit epoch", result)])


def part_apps(args, x, y) -> None:
    """Kestrel applications against torchvision on CUDA, batch 8 at 96x96."""
    import applications

    models = applications.torchvision_models()
    size, batch = 96, 8
    images = (torch.rand(batch, size, size, 3) * 2 - 1).to(DEVICE)
    labels = torch.randint(0, 1000, (batch,)).to(DEVICE)
    rows = []
    for name, tv_name, kwargs in applications.NETWORKS:
        pair = applications.kestrel_pair(name, size, kwargs)
        with torch.device(DEVICE):  # torchvision's weights are created on the GPU
            reference = applications.torchvision_pair(getattr(models, tv_name))
        for step, index in (("predict", 0), ("train step", 1)):
            result = compare({"Kestrel": lambda p=pair[index]: p(images, labels),
                              "torchvision": lambda p=reference[index]: p(images, labels)},
                             args.repeats)
            rows.append((f"{name} {step}", result))
    _print(f"applications on CUDA (batch {batch}, {size}x{size})", rows)


PARTS = {"fit": part_fit, "amp": part_amp, "jit": part_jit, "apps": part_apps}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(PARTS), required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--device", default="cuda", help="cpu: a smoke run of the code paths")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        print(f"gpu_bench {args.part}: skipped, CUDA is not available (torch {torch.__version__})")
        return
    kestrel.config.set_device(DEVICE)
    x, y = make_data(SAMPLES[1 if args.quick else 0] // (8 if DEVICE == "cpu" else 1))
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else DEVICE
    print(f"gpu_bench {args.part} on {name}, torch {torch.__version__}")
    PARTS[args.part](args, x, y)


if __name__ == "__main__":
    sys.exit(main())
