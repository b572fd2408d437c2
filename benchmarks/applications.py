"""Kestrel's applications against torchvision's same networks: predict and one training step.

Both get the same channels-last batch: Kestrel as is (NHWC), torchvision through one
`permute(0, 3, 1, 2)` (an NCHW tensor in channels_last memory). Forward runs in inference
mode without gradients; the training step is forward, cross-entropy on logits, backward and
an SGD update. Variants take turns each round; the table shows medians in ms, the ratio
Kestrel / torchvision of the medians (goal: at most 1.05 on CPU eager) and the paired ratio:
the median over rounds of the two calls' ratio within a round (steadier on a shared machine,
where the speed drifts over minutes and single calls move by 10-20%). `--torchvision-input` picks how
torchvision is fed: `permute` (default, channels_last memory as Kestrel's), `contiguous` (a
plain NCHW copy, in the timing) or `channels_last` (the permuted batch and the model's weights
in channels_last); at batch 8, 128x128, 1 thread they agree within ~10%. `--allocator` picks
how freed memory is handled for the whole process, so for both sides alike: `kept` (default:
what Kestrel's loops do on glibc, `kestrel.trainers.cpu_memory`) or `glibc` (glibc's own
handling, `kestrel.config.disable_cpu_memory_reuse()`), where each step faults its ~2 GB of
buffers in again and the timings follow the kernel's speed at that. `--fold-batch-norm` times
Kestrel with `kestrel.config.enable_batch_norm_folding()` (each convolution and its
BatchNormalization as one convolution in predict; the training step is unchanged).

torchvision is a benchmark-only extra: `pip install torchvision==0.28.0` (the release pinned
to torch 2.13.0). When its compiled ops do not match the installed torch (a CUDA wheel beside
a CPU torch), only its pure-Python model definitions are loaded.
Run: `python benchmarks/applications.py [--batch 32] [--size 224] [--repeats 5] [--threads N]
[--networks MobileNetV2,EfficientNetB0] [--allocator kept|glibc] [--fold-batch-norm]`.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types

import torch
import torch.nn.functional as F

# Kestrel application, torchvision builder, keyword arguments for Kestrel
NETWORKS = [("ResNet50", "resnet50", {}), ("MobileNetV2", "mobilenet_v2", {}),
            ("EfficientNetB0", "efficientnet_b0", {})]


def torchvision_models():
    """`torchvision.models`, without its compiled ops if they cannot load."""
    try:
        import torchvision.models as models
        return models
    except (ImportError, RuntimeError, OSError) as error:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        spec = importlib.util.find_spec("torchvision")
        if spec is None:
            raise SystemExit("torchvision is not installed: pip install torchvision==0.28.0")
        print(f"note: torchvision's compiled ops do not load ({type(error).__name__}); "
              "using its pure-Python model definitions only", file=sys.stderr)
        package = types.ModuleType("torchvision")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["torchvision"] = package
        import torchvision.models as models
        return models


def kestrel_pair(name: str, size: int, kwargs: dict):
    """(predict function, train-step function) for Kestrel's model, or None if missing."""
    import kestrel
    from kestrel import applications

    try:
        build = getattr(applications, name)
    except (AttributeError, ImportError):
        return None
    model = build(weights=None, input_shape=(size, size, 3), classifier_activation=None,
                  **kwargs)
    model.compile(optimizer=kestrel.optimizers.SGD(0.01),
                  loss=kestrel.losses.SparseCategoricalCrossentropy(from_logits=True))

    def predict(x, y):
        with torch.inference_mode():
            model(x, training=False)

    def train(x, y):
        model.train_on_batch(x, y)
    return predict, train


def torchvision_pair(builder, feed: str = "permute"):
    model = builder()
    if feed == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def nchw(x):
        x = x.permute(0, 3, 1, 2)
        return x.contiguous() if feed == "contiguous" else x

    def predict(x, y):
        model.eval()
        with torch.inference_mode():
            model(nchw(x))

    def train(x, y):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(nchw(x)), y).backward()
        optimizer.step()
    return predict, train


def set_allocator(choice: str) -> None:
    """Freed memory kept in the process (Kestrel's loops' default) or glibc's own handling,
    from now on, for every variant."""
    import kestrel
    from kestrel.trainers import cpu_memory

    if choice == "kept":
        cpu_memory.keep_freed(torch.device("cpu"))
    else:
        kestrel.config.disable_cpu_memory_reuse()


def measure(fns: dict, x, y, repeats: int) -> dict:
    """Seconds per call of each variant, `repeats` of them; one untimed warm-up call each,
    rotating order per round."""
    for fn in fns.values():
        fn(x, y)
    times = {key: [] for key in fns}
    keys = list(fns)
    for r in range(repeats):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            start = time.perf_counter()
            fns[key](x, y)
            times[key].append(time.perf_counter() - start)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--networks", default=",".join(n for n, _, _ in NETWORKS),
                        help="comma-separated subset of the networks")
    parser.add_argument("--torchvision-input", default="permute",
                        choices=("permute", "contiguous", "channels_last"))
    parser.add_argument("--allocator", default="kept", choices=("kept", "glibc"))
    parser.add_argument("--fold-batch-norm", action="store_true")
    args = parser.parse_args(argv)
    set_allocator(args.allocator)
    if args.fold_batch_norm:
        import kestrel
        kestrel.config.enable_batch_norm_folding()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = torchvision_models()
    x = torch.rand(args.batch, args.size, args.size, 3) * 2 - 1
    y = torch.randint(0, 1000, (args.batch,))
    rows = []
    wanted = args.networks.split(",")
    for name, tv_name, kwargs in [n for n in NETWORKS if n[0] in wanted]:
        pair = kestrel_pair(name, args.size, kwargs)
        if pair is None:
            print(f"note: kestrel.applications.{name} does not exist yet; skipped",
                  file=sys.stderr)
            continue
        reference = torchvision_pair(getattr(models, tv_name), args.torchvision_input)
        for step, index in (("predict", 0), ("train step", 1)):
            times = measure({"kestrel": pair[index], "torchvision": reference[index]}, x, y,
                            args.repeats)
            k, t = (statistics.median(times[key]) * 1e3 for key in ("kestrel", "torchvision"))
            paired = statistics.median(a / b for a, b in zip(times["kestrel"],
                                                             times["torchvision"]))
            rows.append((name, step, k, t, k / t, paired))
            print(f"{name} {step}: {k:.1f} ms vs {t:.1f} ms", file=sys.stderr)
    print(f"\nbatch {args.batch}, {args.size}x{args.size}, CPU eager, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}, "
          f"torchvision input: {args.torchvision_input}, allocator: {args.allocator}"
          f"{', batch norm folded' if args.fold_batch_norm else ''}\n")
    print("| network | step | Kestrel ms | torchvision ms | ratio | paired ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, step, k, t, ratio, paired in rows:
        print(f"| {name} | {step} | {k:.1f} | {t:.1f} | {ratio:.2f}x | {paired:.2f}x |")


if __name__ == "__main__":
    main()
