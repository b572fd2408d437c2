"""Run every benchmark workload and the import-time check; print and save a Markdown report.

Each workload runs in its own process with an empty inductor cache, so the jit "first call"
includes a cold `torch.compile`; the report goes to stdout and to `benchmarks/results/latest.md`.
Run: `python benchmarks/run_all.py [--threads N] [--quick] [--no-keras] [--no-jax] [--repeats R]
[--steps-per-execution K]`.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = ("mlp", "cnn", "lstm", "multi_output")
sys.path.insert(0, str(HERE))

from _harness import keras_available, table  # noqa: E402


def import_seconds(statement: str, repeats: int, env: dict | None = None) -> float:
    """Median wall time of `python -c statement` in fresh processes, minus a bare interpreter."""
    def once(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env,
                       capture_output=True)
        return time.perf_counter() - start
    samples = []
    for _ in range(repeats):
        samples.append(once(statement) - once("pass"))
    return statistics.median(samples)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_workload(name: str, args) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        command = [sys.executable, str(HERE / f"{name}.py"), "--threads", str(args.threads),
                   "--repeats", str(args.repeats), "--json", str(out), "--clock", args.clock]
        command += ["--quick"] if args.quick else []
        command += ["--no-keras"] if args.no_keras else []
        command += ["--no-jax"] if args.no_jax else []
        command += ["--steps-per-execution", str(args.steps_per_execution)]
        print(f"running {name} ...", file=sys.stderr)
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(Path(tmp) / "inductor"))
        done = subprocess.run(command, text=True, stdout=subprocess.DEVNULL, env=env,
                              stderr=subprocess.PIPE, check=False)
        if done.returncode != 0:
            print(f"{name} failed:\n{done.stderr[-1500:]}", file=sys.stderr)
            return {"workload": name, "error": done.stderr.strip().splitlines()[-1]}
        return json.loads(out.read_text())


def report(results: list[dict], imports: dict, args) -> str:
    import torch

    import kestrel

    ok = [r for r in results if "error" not in r]
    keras_version = next((r["keras"] for r in ok if "keras" in r), None)
    jax_version = next((r["keras_jax"] for r in ok if "keras_jax" in r), None)
    lines = [
        f"# Kestrel benchmarks ({datetime.date.today().isoformat()})", "",
        f"Machine: {cpu_name()}, {os.cpu_count()} CPU cores, {args.threads} torch thread(s); "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"Kestrel {kestrel.__version__}"
        + (f", Keras {keras_version} (KERAS_BACKEND=torch)" if keras_version else "")
        + (f", Keras {jax_version} (KERAS_BACKEND=jax, XLA)" if jax_version else "")
        + f"; steps_per_execution={args.steps_per_execution} for Kestrel jit and Keras on JAX.",
        f"Clock: {'process CPU time' if args.clock == 'cpu' else 'wall time'}; median of "
        f"{args.repeats} interleaved rounds{' (quick run)' if args.quick else ''}. "
        "Times are ms per call (one fit epoch, evaluate or predict pass); (×) is the ratio "
        "to the hand-written torch loop, lower is faster. \"jit first call\" is the first "
        "`jit_compile=True` call: one eager batch plus a cold `torch.compile`.", "",
        table(ok), "",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"- {r['workload']}: not run ({r['error']})")
    samples = ", ".join(f"{r['workload']} {r['samples']}" for r in ok)
    lines += [f"Samples per call: {samples}.", "", "Import time (fresh process, median, "
              "interpreter start-up subtracted):", ""]
    lines += [f"- `{k}`: {v * 1e3:.0f} ms" for k, v in imports.items()]
    extra = imports["import kestrel"] - imports["import torch"]
    lines += ["", f"`import kestrel` imports torch; Kestrel itself adds {extra * 1e3:.0f} ms."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--no-keras", action="store_true")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 5
    results = [run_workload(name, args) for name in args.workloads.split(",")]
    repeats = 3 if args.quick else 7
    imports = {"import torch": import_seconds("import torch", repeats),
               "import kestrel": import_seconds("import kestrel", repeats)}
    if keras_available() and not args.no_keras:
        imports["import keras (torch backend)"] = import_seconds(
            "import keras", repeats, env=dict(os.environ, KERAS_BACKEND="torch"))
    text = report(results, imports, args)
    import memory  # benchmarks/ is on sys.path: peak memory, one fresh process per variant

    text += "\n## Peak memory\n\n" + memory.main(
        ["--threads", str(args.threads)] + ["--quick"] * args.quick)
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(text)


if __name__ == "__main__":
    main()
