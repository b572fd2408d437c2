"""Every example script runs end to end with --quick and prints its result line."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kestrel

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "keras3"

# script, a regex its output must match (a captured number must be below 1e-5), and what
# it needs beyond the core API
EXAMPLES = [
    ("cnn_digits.py", r"test accuracy: 0\.\d{4}", None),
    ("lstm_text.py", r"test accuracy: [01]\.\d{4}", "LSTM"),
    ("functional_multi_input.py", r"test .*\bloss: \d+\.\d{4} - priority_loss", None),
    ("subclassed_model.py", r"reloaded weights give the same predictions: True", None),
    ("load_keras_file.py", r"max \|kestrel - keras\| = (\S+) over", "load_model"),
]


def _missing(need) -> str | None:
    if need == "LSTM" and not hasattr(kestrel.layers, "LSTM"):
        return "kestrel.layers.LSTM is not available yet"
    if need == "load_model":
        if not hasattr(kestrel.models, "load_model"):
            return "kestrel.models.load_model is not available yet"
        if not (FIXTURES / "seq_mlp.keras").exists():
            return f"Keras fixtures not found at {FIXTURES}"
    return None


@pytest.mark.parametrize("script, expected, need", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_example_runs_quick(script, expected, need):
    reason = _missing(need)
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    # load_keras_file.py reads the project's own Keras 3 fixture
    extra = ["--path", str(FIXTURES / "seq_mlp.keras")] if need == "load_model" else []
    result = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--quick", *extra],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    match = re.search(expected, output)
    assert match, output[-3000:]
    if match.groups():
        assert float(match.group(1)) < 1e-5, match.group(0)


def test_every_example_is_covered_and_takes_the_common_flags():
    scripts = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
    assert sorted(e[0] for e in EXAMPLES) == [s for s in scripts if s != "digits_mlp.py"]
    for script in scripts:
        if script != "digits_mlp.py":
            source = (ROOT / "examples" / script).read_text()
            assert '"--epochs"' in source and '"--quick"' in source, script
