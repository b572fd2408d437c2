"""Peak memory of one `fit` epoch: the hand-written torch loop against Kestrel (eager and jit).

Every (workload, batch size, variant, repeat) runs in its own fresh process, which imports
torch (and Kestrel only for the Kestrel variants), creates the data, builds the model, records
the baseline RSS, makes one untimed warm-up epoch, then measures one more epoch. Besides the
benchmarks' idiomatic torch loop (which copies the whole dataset in shuffled order each epoch,
`x[perm]`), a second hand loop gathers each shuffled batch (`x[perm[i:i + bs]]`), as Kestrel does,
and a third is the idiomatic loop over `torch.compile(model)`, the reference for Kestrel's jit.

Peak method: the kernel's resident-set high-water mark (`VmHWM` in `/proc/self/status`) is
reset to the current RSS just before the measured epoch (writing `5` to
`/proc/self/clear_refs`, Linux >= 4.0) and read right after it, so the warm-up's own peak does
not hide the epoch's. It counts every resident page (torch's CPU allocator, NumPy, the Python
heap) at any instant, however short. A thread sampling `/proc/self/statm` every 1 ms runs
alongside as a cross-check (it can miss peaks shorter than its period); it is the fallback
where `clear_refs` cannot be written.

Run: `python benchmarks/memory.py [--threads N] [--quick]`; `main(argv)` returns the table.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = ("torch", "torch_gather", "torch_compile", "kestrel", "kestrel_jit")
LABELS = {"torch": "torch loop", "torch_gather": "torch loop, per-batch gather",
          "torch_compile": "torch loop, torch.compile(model)", "kestrel": "Kestrel",
          "kestrel_jit": "Kestrel jit"}
LOSSES = {"mlp": "cross_entropy", "cnn": "cross_entropy", "lstm": "mse_loss"}
WORKLOADS = ("mlp", "cnn", "lstm")
MIB = 1 << 20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="small data, 1 repeat: a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="processes per variant (3)")
    parser.add_argument("--only", default=None, help="comma-separated variants to run")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated workloads (mlp, cnn, lstm)")
    parser.add_argument("--json", default=None, help="also write the raw results to this file")
    parser.add_argument("--variant", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workload", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    return args


# ---------------------------------------------------------------------- inside the child
def _rss() -> int:
    """Resident set size in bytes, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM missing from /proc/self/status")


class Sampler(threading.Thread):
    """Reads the RSS every `interval` seconds and keeps the largest value."""

    def __init__(self, interval: float = 1e-3):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            while not self._stop_event.is_set():
                rss = int(os.pread(fd, 128, 0).split()[1]) * self._page
                self.peak = max(self.peak, rss)
                self.samples += 1
                time.sleep(self.interval)
        finally:
            os.close(fd)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _gather_epoch(loop, batch_size: int, loss_name: str) -> None:
    """The hand loop's epoch, gathering each shuffled batch instead of copying the data whole."""
    import torch
    import torch.nn.functional as F

    loss_fn = getattr(F, loss_name)
    loop.model.train()
    perm = torch.randperm(len(loop.x))
    for start in range(0, len(loop.x), batch_size):
        rows = perm[start:start + batch_size]
        xb, yb = loop.x[rows], loop.y[rows]
        loop.optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(loop.model(xb), yb)
        loss.backward()
        loop.optimizer.step()


def _epoch_function(variant: str, workload, n: int, batch_size: int):
    """Data and model for `variant`; returns a function running one fit epoch."""
    if variant.startswith("torch"):
        import torch

        torch.manual_seed(0)
        x, y = workload.make_data(n)
        loop = workload.make_hand(x, y)
        if variant == "torch_compile":
            loop.model = torch.compile(loop.model)
        if variant == "torch_gather":
            return lambda: _gather_epoch(loop, batch_size, LOSSES[workload.name])
        return lambda: loop.fit_epoch(batch_size)
    import kestrel

    kestrel.utils.set_random_seed(0)
    x, y = workload.make_data(n)
    model = workload.build(kestrel, variant == "kestrel_jit")
    return lambda: model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)


def child(args: argparse.Namespace) -> dict:
    """Baseline, warm-up epoch, then the measured epoch's peak; runs in a fresh process."""
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(HERE))
    workload = importlib.import_module(args.workload).WORKLOAD
    n = workload.samples[1 if args.quick else 0]
    epoch = _epoch_function(args.variant, workload, n, args.batch_size)
    gc.collect()
    baseline = _rss()
    epoch()  # warm-up: lazy state (optimizer slots, metrics, torch.compile) is created here
    gc.collect()
    start = _rss()
    sampler = Sampler()
    sampler.start()
    exact = _reset_hwm()
    epoch()
    hwm = _hwm() if exact else None
    sampler.stop()
    return {"baseline": baseline, "start": start, "hwm": hwm, "sampled": sampler.peak,
            "samples": sampler.samples, "samples_n": n,
            "kestrel_imported": "kestrel" in sys.modules}


# ---------------------------------------------------------------------- the driver
def _run_child(workload: str, batch_size: int, variant: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:  # a cold inductor cache for every jit process
        command = [sys.executable, str(Path(__file__).resolve()), "--variant", variant,
                   "--workload", workload, "--batch-size", str(batch_size),
                   "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(Path(tmp) / "inductor"))
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory child {workload} b{batch_size} {variant} failed:\n"
                           f"{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _peak(record: dict) -> int:
    return record["hwm"] if record["hwm"] is not None else record["sampled"]


def run(args: argparse.Namespace) -> list[dict]:
    """Every workload's fit measurements, every variant, `repeats` fresh processes each."""
    sys.path.insert(0, str(HERE))
    variants = [v for v in VARIANTS if args.only is None or v in args.only.split(",")]
    rows = []
    for name in args.workloads.split(","):
        workload = importlib.import_module(name).WORKLOAD
        for m in (m for m in workload.measurements if m.kind == "fit"):
            records: dict = {v: [] for v in variants}
            for repeat in range(args.repeats):
                shift = repeat % len(variants)
                for v in variants[shift:] + variants[:shift]:
                    records[v].append(_run_child(name, m.batch_size, v, args))
            entry = {"workload": name, "measurement": m.name, "variants": {}}
            for v, recs in records.items():
                med = lambda key: statistics.median(key(r) for r in recs)  # noqa: E731
                entry["variants"][v] = {
                    "baseline": med(lambda r: r["baseline"]), "start": med(lambda r: r["start"]),
                    "peak": med(_peak), "sampled": med(lambda r: r["sampled"]),
                    "growth": med(lambda r: _peak(r) - r["baseline"]),
                    "transient": med(lambda r: _peak(r) - r["start"]),
                    "exact": all(r["hwm"] is not None for r in recs), "records": recs}
            rows.append(entry)
            print(f"  memory {name} {m.name}: " + ", ".join(
                f"{v} +{e['growth'] / MIB:.1f} MiB" for v, e in entry["variants"].items()),
                file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: MiB medians; (×) is the ratio to the torch loop's median."""
    lines = ["| workload | measurement | variant | baseline MiB | epoch start MiB | peak MiB (×) "
             "| peak − baseline MiB (×) | peak − epoch start MiB | sampled peak MiB |",
             "|" + "---|" * 9]
    for entry in rows:
        ref = entry["variants"].get("torch")
        for v, e in entry["variants"].items():
            def cell(key):
                value = f"{e[key] / MIB:.1f}"
                return value if ref is None or v == "torch" else \
                    f"{value} ({e[key] / ref[key]:.2f}×)"
            lines.append(
                f"| {entry['workload']} | {entry['measurement']} | {LABELS[v]} | "
                f"{e['baseline'] / MIB:.1f} | {e['start'] / MIB:.1f} | {cell('peak')} | "
                f"{cell('growth')} | {e['transient'] / MIB:.1f} | {e['sampled'] / MIB:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> str:
    """Runs the measurements and returns the Markdown table (in a child: one JSON line)."""
    args = parse_args(argv)
    if args.variant:
        return json.dumps(child(args))
    rows = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    exact = all(e["exact"] for entry in rows for e in entry["variants"].values())
    note = "" if exact else "\nPeaks from the 1 ms RSS sampler (VmHWM reset unavailable).\n"
    return table(rows) + "\n" + note


if __name__ == "__main__":
    print(main())
