"""The keras-core guides, end to end: what they print (summaries, shapes, losses) against real Keras 3."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (real Keras 3: the reference)

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402


def _summary_lines(lib, model, **kwargs) -> list[str]:
    printed = []
    model.summary(print_fn=printed.append, **kwargs)
    return "\n".join(printed).rstrip("\n").splitlines()


def _frozen_base_on_top(lib):
    """transfer_learning: a frozen nested base model under a rescaling input and a new head."""
    base = lib.Sequential([lib.Input((6,)), lib.layers.Dense(4, name="base_dense"),
                           lib.layers.Dropout(0.1, name="base_dropout")], name="base_model")
    base.trainable = False
    inputs = lib.Input((6,), name="image")
    x = lib.layers.Rescaling(scale=1 / 127.5, offset=-1, name="rescaling")(inputs)
    x = base(x, training=False)
    x = lib.layers.Concatenate(name="concatenate")([x, inputs])
    outputs = lib.layers.Dense(1, name="a_rather_long_classification_head_name")(x)
    return lib.Model(inputs, outputs, name="fine_tuned"), base


@pytest.mark.parametrize("kwargs", [
    {"show_trainable": True},
    {"show_trainable": True, "expand_nested": True},
    {"expand_nested": True, "positions": [0.4, 0.6, 0.8, 1.0]},
    {"line_length": 70, "show_trainable": True},
    {},
])
def test_transfer_learning_summaries_print_as_keras(monkeypatch, kwargs):
    monkeypatch.setenv("COLUMNS", "200")  # Keras narrows its table to the terminal
    ours, _ = _frozen_base_on_top(fresh(kestrel))
    theirs, _ = _frozen_base_on_top(fresh(keras))
    assert _summary_lines(kestrel, ours, **kwargs) == _summary_lines(keras, theirs, **kwargs)


def test_unfrozen_base_shows_trainable_flags_as_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    ours, our_base = _frozen_base_on_top(fresh(kestrel))
    theirs, their_base = _frozen_base_on_top(fresh(keras))
    our_base.trainable = their_base.trainable = True
    our_base.layers[0].trainable = their_base.layers[0].trainable = False
    ours_text = _summary_lines(kestrel, ours, show_trainable=True, expand_nested=True)
    assert ours_text == _summary_lines(keras, theirs, show_trainable=True, expand_nested=True)
    assert any("└ base_dense (Dense)" in line and " N " in line for line in ours_text)


def test_sequential_guide_summary_of_a_convnet_as_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")

    def convnet(lib):
        model = lib.Sequential(name="convnet")
        model.add(lib.Input(shape=(50, 50, 3)))
        model.add(lib.layers.Conv2D(8, 5, strides=2, activation="relu"))
        model.add(lib.layers.MaxPooling2D(3))
        model.add(lib.layers.GlobalMaxPooling2D())
        model.add(lib.layers.Dense(10))
        return model

    for kwargs in ({}, {"show_trainable": True}):
        assert _summary_lines(kestrel, convnet(fresh(kestrel)), **kwargs) == \
            _summary_lines(keras, convnet(fresh(keras)), **kwargs)


def test_transfer_learning_weight_counts_follow_trainable_as_keras():
    counts = []
    for lib in (kestrel, keras):
        model, base = _frozen_base_on_top(fresh(lib))
        frozen = (len(model.trainable_weights), len(model.non_trainable_weights))
        base.trainable = True
        counts.append((frozen, len(model.trainable_weights), model.count_params()))
    assert counts[0] == counts[1]


def test_sequential_built_by_its_first_call_keeps_that_batch_size_as_keras(monkeypatch):
    """sequential_model: `model(ops.ones((1, 4)))` builds the model; the summary shows (1, n)."""
    monkeypatch.setenv("COLUMNS", "200")
    shapes, texts = [], []
    for lib in (kestrel, keras):
        model = fresh(lib).Sequential([lib.layers.Dense(2, activation="relu"),
                                       lib.layers.Dense(3, activation="relu"), lib.layers.Dense(4)])
        model(lib.ops.ones((1, 4)))
        wider = model(lib.ops.ones((5, 4)))
        fitted = lib.Sequential([lib.layers.Dense(2)])
        fitted.compile(loss="mse")
        fitted.fit(np.ones((8, 4)), np.ones((8, 2)), batch_size=3, verbose=0)
        shapes.append((tuple(model.inputs[0].shape), tuple(wider.shape),
                       tuple(fitted.inputs[0].shape), len(model.weights)))
        texts.append(_summary_lines(lib, model))
    assert shapes[0] == shapes[1] == ((1, 4), (5, 4), (3, 4), 6)
    assert texts[0] == texts[1]


def test_masking_guide_prints_symbolic_tensors_as_keras():
    """understanding_masking_and_padding prints KerasTensors; Input tensors carry the same name."""
    reprs = []
    for lib in (kestrel, keras):
        inputs = fresh(lib).Input(shape=(None,), dtype="int32", name="tokens")
        reprs.append((repr(inputs), str(lib.Input(shape=(3,), name="a"))))
    assert reprs[0] == reprs[1]


def test_recompiling_without_a_loss_keeps_the_compiled_loss_as_keras():
    import keras as real
    import kestrel

    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.ones((8, 1), "float32")
    losses = []
    for lib in (real, kestrel):
        inputs = lib.Input((3,))
        model = lib.Model(inputs, lib.layers.Dense(1, kernel_initializer="ones")(inputs))
        model.compile(optimizer="sgd", loss="mse")
        model.compile(optimizer="adam")           # the guide's second compile
        losses.append(model.evaluate(x, y, verbose=0))
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)
    assert losses[1] > 0
