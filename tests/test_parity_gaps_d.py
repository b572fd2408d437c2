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


# ---------------------------------------------------------------- learning-rate schedules
SCHEDULES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 4, "decay_rate": 0.9,
                          "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [3, 15], "values": [1.0, 0.5, 0.1]}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 20}),
    ("PolynomialDecay", {"initial_learning_rate": 0.1, "decay_steps": 6, "power": 2.0,
                         "end_learning_rate": 0.01, "cycle": True}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 5, "decay_rate": 0.5}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 20, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 20, "warmup_target": 0.2,
                     "warmup_steps": 10}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 5}),
    ("CosineDecayRestarts", {"initial_learning_rate": 0.1, "first_decay_steps": 5,
                             "t_mul": 1.0, "m_mul": 0.5, "alpha": 0.1}),
]
STEPS = [0, 3, 3.5, 10, 27, torch.tensor(7), torch.tensor(12.0), torch.tensor(12.5)]


@pytest.mark.parametrize("name,config", SCHEDULES, ids=[n for n, _ in SCHEDULES])
def test_schedule_call_returns_a_float32_scalar_tensor_as_keras(name, config):
    ours = getattr(kestrel.optimizers.schedules, name)(**config)
    theirs = getattr(keras.optimizers.schedules, name)(**config)
    for step in STEPS:
        got, expected = ours(step), theirs(step)
        assert type(got) is type(expected) is torch.Tensor
        assert (got.dtype, tuple(got.shape)) == (expected.dtype, tuple(expected.shape))
        np.testing.assert_allclose(got.item(), expected.item(), rtol=1e-6, atol=1e-8)


def _fit_with_ops_schedule(k):
    """A keras.io-style schedule subclass written with `keras.ops`, trained through `fit`."""
    class Decay(k.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = k.ops.cast(step, "float32")
            return 0.1 * k.ops.exp(-0.1 * step) + k.ops.minimum(step, 3.0) * 0.001

    model = k.Sequential([k.Input((3,)), k.layers.Dense(2, kernel_initializer="ones")])
    model.compile(optimizer=k.optimizers.SGD(Decay(), momentum=0.5), loss="mse")
    x = np.arange(24, dtype="float32").reshape(8, 3) / 10
    model.fit(x, np.ones((8, 2), "float32"), batch_size=2, epochs=2, shuffle=False, verbose=0)
    return [np.asarray(w) for w in model.get_weights()], float(model.optimizer.learning_rate)


def test_a_schedule_subclass_using_ops_trains_as_in_keras():
    (ours, our_rate), (theirs, their_rate) = (_fit_with_ops_schedule(kestrel),
                                              _fit_with_ops_schedule(keras))
    assert our_rate == pytest.approx(their_rate, rel=1e-6)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-6)


# ---------------------------------------------------------------- LoRA on ReversibleEmbedding
def _lora_reversible(k, tie_weights):
    layer = k.layers.ReversibleEmbedding(7, 4, tie_weights=tie_weights, name="emb")
    layer.build((None, 3))
    layer.enable_lora(2, lora_alpha=3)
    return layer


@pytest.mark.parametrize("tie_weights", [True, False])
def test_lora_reversible_embedding_matches_keras_both_ways(tie_weights):
    ours, theirs = _lora_reversible(kestrel, tie_weights), _lora_reversible(keras, tie_weights)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert [w.name for w in ours.trainable_weights] == [w.name for w in theirs.trainable_weights]
    rng = np.random.default_rng(0)
    for weight in theirs.weights:  # nonzero adapters, so the merged table differs from the base
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    ours.set_weights(theirs.get_weights())
    tokens = np.array([[1, 2, 6], [0, 3, 5]])
    hidden = rng.normal(size=(2, 3, 4)).astype("float32")
    for inputs, reverse in ((tokens, False), (hidden, True)):
        np.testing.assert_allclose(ours(inputs, reverse=reverse).detach().numpy(),
                                   theirs(inputs, reverse=reverse).detach().cpu().numpy(),
                                   atol=1e-6)


def _tied_lm(k, lora_rank=None):
    tokens = k.Input((3,), dtype="int32")
    embedding = k.layers.ReversibleEmbedding(7, 4, name="emb", lora_rank=lora_rank)
    return k.Model(tokens, embedding(embedding(tokens), reverse=True))


def test_lora_reversible_embedding_in_a_model_saves_merged_weights_keras_loads(tmp_path):
    ours = _tied_lm(kestrel, lora_rank=2)
    with torch.no_grad():
        ours.get_layer("emb").lora_embeddings_b.normal_()
    tokens = np.array([[1, 2, 6]])
    ours.save_weights(tmp_path / "lm.weights.h5")
    theirs = _tied_lm(keras)
    theirs.load_weights(tmp_path / "lm.weights.h5")
    np.testing.assert_allclose(ours.predict(tokens, verbose=0), theirs.predict(tokens, verbose=0),
                               atol=1e-5)
