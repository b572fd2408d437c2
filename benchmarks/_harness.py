"""Shared machinery of the benchmark scripts: flags, interleaved timing, Keras subprocesses.

A workload script describes one model five ways (Kestrel eager, Kestrel `jit_compile=True`, a
hand-written torch loop, Keras 3 on its torch backend, Keras 3 on JAX with XLA) and calls
`main(workload)`. Every variant builds its model once per measurement, makes one untimed first
call (which includes `torch.compile` for the jit variant and is reported as "first call"), then
the repeats take turns: in each round every variant runs once, in a rotating order. Keras runs
in a fresh subprocess for each round, because its backend is fixed when it is imported; with
one thread, XLA is held to one thread too. `--steps-per-execution K` applies to the Kestrel jit
and the Keras-on-JAX variants (Keras' torch backend refuses K > 1).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

VARIANTS = ("torch", "kestrel", "kestrel_jit", "keras", "keras_jax")
LABELS = {"torch": "torch loop", "kestrel": "Kestrel", "kestrel_jit": "Kestrel jit",
          "keras": "Keras 3 (torch)", "keras_jax": "Keras 3 (JAX)"}
BACKENDS = {"keras": "torch", "keras_jax": "jax"}  # the Keras variants, run in subprocesses
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


@dataclass(frozen=True)
class Measurement:
    """One timed call: a fit epoch, an evaluate pass or a predict pass at `batch_size`."""

    name: str
    kind: str
    batch_size: int


@dataclass
class Workload:
    """A model described for every variant.

    Args:
        name: short name, e.g. `"mlp"`.
        measurements: what to time.
        samples: samples per call `(full, quick)`; a multiple of every batch size.
        make_data: `n -> (x, y)` NumPy structures in Keras layout (fixed seed).
        build: `(K, jit_compile) -> compiled model` where K is `kestrel` or `keras`.
        make_hand: `(x, y) -> HandLoop` over torch tensors, built with `torch.nn`.
    """

    name: str
    measurements: list[Measurement]
    samples: tuple[int, int]
    make_data: Callable
    build: Callable
    make_hand: Callable


class HandLoop:
    """The idiomatic torch loop: subclasses implement `fit_epoch`, `evaluate`, `predict`."""

    def run(self, m: Measurement):
        return getattr(self, {"fit": "fit_epoch"}.get(m.kind, m.kind))(m.batch_size)


class ClassifierLoop(HandLoop):
    """Shuffle, slice, `cross_entropy` on logits, default Adam: the hand loop of the classifiers."""

    def __init__(self, x, y, model):
        import torch

        self.x, self.y, self.model = x, y, model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def fit_epoch(self, batch_size: int):
        import torch
        import torch.nn.functional as F

        model, optimizer = self.model, self.optimizer
        model.train()
        perm = torch.randperm(len(self.x))
        x, y = self.x[perm], self.y[perm]
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == yb).sum()
        return float(loss_sum) / -(-len(x) // batch_size), int(correct) / len(x)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="small data, 2 repeats: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 5, quick 2)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="process CPU time (robust on a shared machine) or wall time")
    parser.add_argument("--no-keras", action="store_true", help="skip both Keras 3 variants")
    parser.add_argument("--no-jax", action="store_true", help="skip the Keras 3 on JAX variant")
    parser.add_argument("--steps-per-execution", type=int, default=1,
                        help="compile(steps_per_execution=) of Kestrel jit and Keras on JAX")
    parser.add_argument("--only", default=None, help="comma-separated variants to run")
    parser.add_argument("--measure", default=None,
                        help="comma-separated measurement kinds to run (fit, evaluate, predict)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--keras-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    return args


def _clock(kind: str) -> Callable[[], float]:
    return time.process_time if kind == "cpu" else time.perf_counter


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


# ---------------------------------------------------------------------- Keras-API variants
class ApiSession:
    """A Kestrel or Keras model run through `fit` / `evaluate` / `predict`."""

    def __init__(self, module, workload: Workload, m: Measurement, n: int, jit: bool,
                 steps_per_execution: int = 1):
        module.utils.set_random_seed(0)
        self.x, self.y = workload.make_data(n)
        self.model = workload.build(module, jit)
        self.model.steps_per_execution = steps_per_execution  # read by the first fit
        self.m = m

    def run(self) -> None:
        m, model = self.m, self.model
        if m.kind == "fit":
            model.fit(self.x, self.y, batch_size=m.batch_size, epochs=1, verbose=0, shuffle=True)
        elif m.kind == "evaluate":
            model.evaluate(self.x, self.y, batch_size=m.batch_size, verbose=0)
        else:
            model.predict(self.x, batch_size=m.batch_size, verbose=0)


class HandSession:
    def __init__(self, workload: Workload, m: Measurement, n: int):
        import torch

        torch.manual_seed(0)
        x, y = workload.make_data(n)
        self.loop = workload.make_hand(x, y)
        self.m = m

    def run(self) -> None:
        self.loop.run(self.m)


def _timed(fn: Callable[[], None], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


def keras_available(backend: str = "torch") -> bool:
    import importlib.util

    return importlib.util.find_spec("keras") is not None and \
        (backend != "jax" or importlib.util.find_spec("jax") is not None)


def keras_child(workload: Workload, args: argparse.Namespace) -> None:
    """Run inside a fresh process with KERAS_BACKEND set: first call, then one timed call.

    On torch, Keras runs `jit_compile=False` (what "auto" means there); on JAX, XLA-compiled
    steps (what "auto" means there) with `--steps-per-execution`."""
    import keras

    jax = args.backend == "jax"
    if not jax:
        set_threads(args.threads)
    m = next(m for m in workload.measurements if m.name == args.keras_child)
    n = workload.samples[1 if args.quick else 0]
    session = ApiSession(keras, workload, m, n, jit=jax,
                         steps_per_execution=args.steps_per_execution if jax else 1)
    clock = _clock(args.clock)
    first = _timed(session.run, time.perf_counter)
    seconds = _timed(session.run, clock)
    version = keras.__version__
    if jax:
        import jax as jax_module

        version += f", jax {jax_module.__version__}"
    print(json.dumps({"first_s": first, "seconds": seconds, "version": version}))


def _keras_round(script: str, m: Measurement, args: argparse.Namespace,
                 variant: str = "keras") -> dict:
    backend = BACKENDS[variant]
    command = [sys.executable, script, "--keras-child", m.name, "--threads", str(args.threads),
               "--clock", args.clock, "--backend", backend,
               "--steps-per-execution", str(args.steps_per_execution)]
    command += ["--quick"] if args.quick else []
    env = dict(os.environ, KERAS_BACKEND=backend)
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        if args.threads == 1:
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA}".strip()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"Keras subprocess failed for {m.name}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- the driver
def run(workload: Workload, args: argparse.Namespace, script: str) -> dict:
    """Time every variant on every measurement; returns JSON-able results."""
    import torch

    import kestrel

    set_threads(args.threads)
    clock = _clock(args.clock)
    n = workload.samples[1 if args.quick else 0]
    variants = [v for v in VARIANTS if args.only is None or v in args.only.split(",")]
    for v, backend in BACKENDS.items():
        skip = args.no_keras or (v == "keras_jax" and args.no_jax)
        if v in variants and (skip or not keras_available(backend)):
            variants.remove(v)
    results: dict = {"workload": workload.name, "samples": n, "threads": args.threads,
                     "clock": args.clock, "repeats": args.repeats,
                     "steps_per_execution": args.steps_per_execution,
                     "torch": torch.__version__, "kestrel": kestrel.__version__,
                     "measurements": {}}
    for m in workload.measurements:
        if args.measure and m.kind not in args.measure.split(","):
            continue
        sessions: dict = {}
        entry = {v: {"seconds": [], "first_s": None} for v in variants}
        for v in variants:  # build and make the first (untimed) call
            if v in BACKENDS:
                continue
            start = time.perf_counter()
            jit = v == "kestrel_jit"
            sessions[v] = HandSession(workload, m, n) if v == "torch" else ApiSession(
                kestrel, workload, m, n, jit=jit,
                steps_per_execution=args.steps_per_execution if jit else 1)
            sessions[v].run()
            entry[v]["first_s"] = time.perf_counter() - start
        for round_index in range(args.repeats):
            shift = round_index % len(variants)
            for v in variants[shift:] + variants[:shift]:
                if v in BACKENDS:
                    child = _keras_round(script, m, args, v)
                    entry[v]["seconds"].append(child["seconds"])
                    entry[v]["first_s"] = child["first_s"]
                    results[v] = child["version"]
                else:
                    entry[v]["seconds"].append(_timed(sessions[v].run, clock))
        for v in variants:
            entry[v]["median_s"] = statistics.median(entry[v]["seconds"])
        results["measurements"][m.name] = entry
        print(f"  {workload.name} {m.name}: " + ", ".join(
            f"{v} {entry[v]['median_s'] * 1e3:.1f} ms" for v in variants), file=sys.stderr)
    return results


def ratio(entry: dict, variant: str) -> float | None:
    if variant not in entry or "torch" not in entry:
        return None
    return entry[variant]["median_s"] / entry["torch"]["median_s"]


def table(all_results: list[dict]) -> str:
    """A Markdown table: ms per call (median) and the ratio to the hand-written torch loop."""
    head = ("| workload | measurement | torch loop ms | Kestrel ms (×) | Kestrel jit ms (×) "
            "| jit first call s | Keras 3 torch ms (×) | Keras 3 JAX ms (×) |")
    lines = [head, "|" + "---|" * 8]
    for res in all_results:
        for name, entry in res["measurements"].items():
            def cell(v):
                if v not in entry:
                    return "n/a"
                return f"{entry[v]['median_s'] * 1e3:.1f} ({ratio(entry, v):.2f}×)"
            first = entry.get("kestrel_jit", {}).get("first_s")
            lines.append(
                f"| {res['workload']} | {name} | {entry['torch']['median_s'] * 1e3:.1f} | "
                f"{cell('kestrel')} | {cell('kestrel_jit')} | "
                f"{'n/a' if first is None else f'{first:.1f}'} | {cell('keras')} | "
                f"{cell('keras_jax')} |")
    return "\n".join(lines)


def main(workload: Workload, argv=None) -> dict | None:
    args = parse_args(argv)
    script = os.path.abspath(sys.argv[0])
    if args.keras_child:
        keras_child(workload, args)
        return None
    np.random.seed(0)
    results = run(workload, args, script)
    print(table([results]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results
