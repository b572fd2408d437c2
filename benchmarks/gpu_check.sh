#!/usr/bin/env bash
# One prepared check for a GPU machine lent for a few minutes (at most 7.5 minutes of parts, plus 1 for a venv).
#
# Python: $KESTREL_PYTHON, else the repository's .venv (carried along or built by `make test`),
# else a new .venv-gpu that sees the system's packages (a CUDA torch there is kept) and gets
# requirements-dev.txt without torch; where pip cannot reach a registry, whatever is importable
# is used. Kestrel is imported from the checkout (PYTHONPATH), so no install is needed.
# Parts: environment, CUDA tests, fit/evaluate/predict vs a CUDA hand loop, mixed precision,
# jit_compile on CUDA, applications at small size. Each runs under its own time limit and a
# failure is recorded without stopping the rest. Without CUDA the parts say so and pass.
# Results: $OUT if set, else benchmarks/results/; one log per part and summary.md.
# Run: `bash benchmarks/gpu_check.sh`.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RESULTS="${OUT:-$ROOT/benchmarks/results}/gpu_check"
mkdir -p "$RESULTS"
SUMMARY="$RESULTS/summary.md"
cd "$ROOT"

pick_python() {
    if [ -n "${KESTREL_PYTHON:-}" ]; then echo "$KESTREL_PYTHON"; return; fi
    if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then
        echo "$ROOT/.venv/bin/python"; return
    fi
    if [ ! -x .venv-gpu/bin/python ]; then
        python3 -m venv --system-site-packages .venv-gpu >&2
        grep -v '^torch==' requirements-dev.txt > .venv-gpu/requirements.txt
        .venv-gpu/bin/python -c "import torch" 2>/dev/null \
            || echo "torch" >> .venv-gpu/requirements.txt
        timeout 60 .venv-gpu/bin/python -m pip install -q -r .venv-gpu/requirements.txt >&2 \
            || echo "pip install failed (no registry?): using what is importable" >&2
    fi
    echo "$ROOT/.venv-gpu/bin/python"
}

PY="$(pick_python)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
printf '# gpu_check (%s)\n\npython: %s\n\n| part | status | seconds |\n|---|---|---|\n' \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$PY" > "$SUMMARY"

# part NAME LIMIT_S COMMAND...: runs COMMAND with a time limit, logs it, records the outcome
part() {
    local name="$1" limit="$2" start status
    shift 2
    start=$(date +%s)
    echo "== $name" >&2
    timeout "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    status=$?
    case $status in 0) status=ok ;; 124) status="timed out after ${limit}s" ;;
                    *) status="failed (exit $status)" ;; esac
    printf '| %s | %s | %s |\n' "$name" "$status" "$(( $(date +%s) - start ))" >> "$SUMMARY"
    tail -n 25 "$RESULTS/$name.log" >&2
}

CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
part environment 30 bash -c "nvidia-smi || echo 'no nvidia-smi'; \"$PY\" -c \"import torch, \
platform; print(platform.python_version(), torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.is_available())\""

if [ "$CUDA" != 1 ]; then
    echo "CUDA is not available: the CUDA tests are skipped; the benchmarks say so" >&2
fi
# The CUDA tests skip themselves without CUDA (skipif on torch.cuda.is_available()); they are
# the test functions with "cuda" in their names, in the files that mention CUDA.
CUDA_FILES=$(grep -l "cuda" tests/test_*.py | tr '\n' ' ')
part cuda_tests 90 "$PY" -m pytest -q -rs -p no:cacheprovider -k cuda $CUDA_FILES

cd "$ROOT/benchmarks"
part fit_vs_hand_loop 90 "$PY" gpu_bench.py --part fit --quick
part mixed_precision 60 "$PY" gpu_bench.py --part amp --quick
part jit_compile 100 "$PY" gpu_bench.py --part jit --quick
part applications 80 "$PY" gpu_bench.py --part apps --repeats 3

for name in fit_vs_hand_loop mixed_precision jit_compile applications; do
    { echo; grep -v '^note:' "$RESULTS/$name.log" | tail -n 30; } >> "$SUMMARY"
done
echo "results in $RESULTS" >&2
cat "$SUMMARY"
