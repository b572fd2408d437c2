"""Keras 3 parity: summary's print_fn, learning-rate schedule return values, LoRA on
ReversibleEmbedding. Each check builds the same thing in Kestrel and in real Keras."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402


# ---------------------------------------------------------------- summary(print_fn=...)
def _sequential(k):
    inner = k.Sequential([k.Input((3,)), k.layers.Dense(4, name="inner_dense")], name="inner")
    return k.Sequential([k.Input((3,)), inner, k.layers.Dense(2, name="d2"),
                         k.layers.Dense(2, name="d3", trainable=False)], name="seq")


def _functional(k):
    a, b = k.Input((3,), name="a"), k.Input((3,), name="b")
    joined = k.layers.Concatenate(name="joined")([k.layers.Dense(4, name="d1")(a), b])
    return k.Model([a, b], k.layers.Dense(2, name="d2")(joined), name="fn")


def _subclassed(k):
    class Tower(k.Model):
        def __init__(self):
            super().__init__(name="tower")
            self.hidden = k.layers.Dense(4, name="hidden")
            self.head = k.layers.Dense(1, name="head")

        def call(self, x):
            return self.head(self.hidden(x))

    model = Tower()
    model(np.ones((2, 3), "float32"))
    return model


def _summary_calls(model, **kwargs):
    calls = []
    model.summary(print_fn=lambda *args, **kw: calls.append((args, kw)), **kwargs)
    return calls


@pytest.mark.parametrize("build,kwargs", [
    (_sequential, {}), (_sequential, {"line_length": 70, "positions": [0.3, 0.7, 1.0]}),
    (_sequential, {"expand_nested": True, "show_trainable": True}),
    (_sequential, {"layer_range": ["inner", "d2"]}), (_sequential, {"line_length": 120}),
    (_functional, {}), (_functional, {"show_trainable": True, "line_length": 90}),
    (_functional, {"positions": [0.2, 0.4, 0.7, 1.0]}), (_subclassed, {}),
], ids=lambda v: getattr(v, "__name__", None) or ",".join(v) or "defaults")
def test_print_fn_gets_the_whole_summary_once(build, kwargs, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # the console width both crop the lines to
    ours, theirs = _summary_calls(build(kestrel), **kwargs), _summary_calls(build(keras), **kwargs)
    assert len(theirs) == 1 and theirs[0][1] == {} and theirs[0][0][0].endswith("\n")
    assert ours == theirs
