"""summary() against the text real Keras 3 printed for the fixture models."""
import json
from pathlib import Path

import pytest

import kestrel as keras
from kestrel.layers import Dense, Input
from kestrel.models import Model, model_from_json

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
NAMES = [m["name"] for m in MANIFEST["models"]]


def _summary(model) -> list[str]:
    printed = []
    model.summary(print_fn=printed.append)
    assert len(printed) == 1  # as Keras 3: one call with the whole text
    return printed[0].splitlines()


@pytest.mark.parametrize("name", NAMES)
def test_summary_matches_keras_fixture(name, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the fixtures' terminal: the table narrows to it
    model = model_from_json((FIXTURES / f"{name}.json").read_text())
    expected = (FIXTURES / f"{name}.summary.txt").read_text().splitlines()
    # Keras printed these after training, so its totals include the optimizer's variables.
    expected = [line for line in expected if not line.startswith(" Optimizer params")]
    trainable = sum(w.numel() for w in model.trainable_weights)
    frozen = sum(w.numel() for w in model.non_trainable_weights)
    got = _summary(model)
    assert got[:-3] == expected[:-3]
    assert got[-2:] == expected[-2:]
    assert got[-3].startswith(f" Total params: {trainable + frozen:,} ")
    entry = next(m for m in MANIFEST["models"] if m["name"] == name)
    assert model.count_params() == trainable + frozen
    assert trainable == entry["n_params"] or trainable + frozen == entry["n_params"]


def test_summary_arguments(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for line_length=120 (else cropped)
    a = Input(shape=(3,), name="x")
    model = Model(a, Dense(2, name="d")(a), name="tiny")
    lines = _summary(model)
    assert lines[0] == 'Model: "tiny"'
    assert any("d (Dense)" in line and "8" in line for line in lines)
    wide = []
    model.summary(print_fn=wide.append, line_length=120, show_trainable=True)
    wide = wide[0].splitlines()
    assert len(wide[1]) == 120 and "Trainable" in wide[2]
    printed = []
    keras.utils.print_summary(model, print_fn=printed.append)
    assert printed[0].splitlines() == lines
