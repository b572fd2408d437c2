"""Keras 3 user-code idioms run with Kestrel and with real Keras (torch backend), compared."""
import json
import os

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402

BOTH = pytest.mark.parametrize("k", [kestrel, keras], ids=["kestrel", "keras"])


def _dtype(x) -> str:
    return str(x.dtype).replace("torch.", "")


SCALAR_CASES = [  # a dimensioned operand with a 0-d array or tensor (not a Python number)
    (np.ones(2, "float16"), np.float32(2)),
    (np.ones(2, "float16"), np.array(2.0, "float32")),
    (np.ones(2, "int8"), np.int64(3)),
    (np.ones(2, "uint8"), np.int8(-1)),
    (np.ones(2, "int32"), np.array(2)),
    (torch.ones(2, dtype=torch.float16), torch.tensor(2.0)),
    (torch.tensor(2.0), torch.ones(2, dtype=torch.bfloat16)),
]


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "power", "equal", "divide",
                                  "mod", "where"])
def test_zero_dim_operand_keeps_dtype_as_torch_does(name):
    def run(ops, a, b):
        if name == "where":
            return ops.where(np.array([True, False]), a, b)
        return getattr(ops, name)(a, b)

    for a, b in SCALAR_CASES:
        ours, theirs = run(kestrel.ops, a, b), run(keras.ops, a, b)
        assert _dtype(ours) == _dtype(theirs), (name, a.dtype, b)
        np.testing.assert_allclose(np.asarray(ours.float()), np.asarray(theirs.float()))


def test_float16_loss_times_scalar_tensor_stays_float16():
    for k in (kestrel, keras):
        y = k.ops.ones((3,), dtype="float16")
        assert _dtype(y * k.ops.mean(k.ops.ones((2,)))) == "float16"
        assert _dtype(k.ops.multiply(y, k.ops.mean(k.ops.ones((2,))))) == "float16"


@BOTH
def test_fit_before_compile_is_a_value_error(k):
    model = k.Sequential([k.Input((3,)), k.layers.Dense(1)])
    with pytest.raises(ValueError, match=r"You must call `compile\(\)` before using the model"):
        model.fit(np.ones((2, 3)), np.ones((2, 1)), verbose=0)


def _two_output_model(k):
    a = k.Input((3,), name="a")
    reg = k.layers.Dense(1, name="reg", kernel_initializer="ones")(a)
    cls = k.layers.Dense(3, activation="softmax", name="cls", kernel_initializer="ones")(a)
    return k.Model(a, [reg, cls])


def test_evaluate_list_and_weighted_names_match_keras():
    x = np.arange(18, dtype="float32").reshape(6, 3) / 10
    ys = [np.ones((6, 1)), np.arange(6) % 3]
    weights = [np.ones(6), np.linspace(0, 1, 6)]
    results = []
    for k in (kestrel, keras):
        model = _two_output_model(k)
        model.compile("adam", loss=["mse", "sparse_categorical_crossentropy"],
                      metrics=[["mae"], ["accuracy"]], weighted_metrics=[[], ["accuracy"]])
        listed = model.evaluate(x, ys, sample_weight=weights, verbose=0)
        logs = model.evaluate(x, ys, sample_weight=weights, verbose=0, return_dict=True)
        results.append((listed, logs))
    (ours, our_logs), (theirs, their_logs) = results
    assert sorted(our_logs) == sorted(their_logs)  # "cls_weighted_accuracy", as Keras
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_evaluate_list_repeats_a_weighted_twin_as_keras():
    rng = np.random.RandomState(0)
    x = rng.rand(20, 3).astype("float32")
    y = (x.sum(1) > 1.5).astype("int32")
    weights = np.linspace(0, 1, 20).astype("float32")
    results = []
    for k in (kestrel, keras):
        model = k.Sequential([k.Input((3,)), k.layers.Dense(2, activation="softmax",
                                                             kernel_initializer="ones")])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"],
                      weighted_metrics=["accuracy"])
        results.append(model.evaluate(x, y, sample_weight=weights, verbose=0))
    assert len(results[0]) == len(results[1]) == 4
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


@pytest.mark.parametrize("writer, reader", [(kestrel, keras), (keras, kestrel),
                                            (kestrel, kestrel)])
def test_to_json_carries_compile_config_and_model_from_json_compiles(writer, reader):
    model = writer.Sequential([writer.Input((3,)), writer.layers.Dense(2)])
    assert json.loads(model.to_json())["compile_config"] == {}
    model.compile(writer.optimizers.SGD(0.05, momentum=0.5), "mse", metrics=["mae"])
    rebuilt = reader.models.model_from_json(model.to_json())
    assert rebuilt.compiled and rebuilt.optimizer.get_config()["momentum"] == 0.5
    history = rebuilt.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    assert sorted(history.history) == ["loss", "mae"]


@pytest.mark.parametrize("loss_order", [["cls", "reg"], ["reg", "cls"]])
def test_dict_outputs_evaluate_lists_losses_in_loss_dict_order(loss_order):
    x = np.arange(18, dtype="float32").reshape(6, 3) / 10
    y = {"reg": np.ones((6, 1)), "cls": np.arange(6) % 3}
    losses = {"reg": "mse", "cls": "sparse_categorical_crossentropy"}
    results = []
    for k in (kestrel, keras):
        a = k.Input((3,), name="a")
        reg = k.layers.Dense(1, name="reg", kernel_initializer="ones")(a)
        cls = k.layers.Dense(3, activation="softmax", name="cls", kernel_initializer="ones")(a)
        model = k.Model(a, {"reg": reg, "cls": cls})
        model.compile("adam", loss={name: losses[name] for name in loss_order})
        results.append(model.evaluate(x, y, verbose=0))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5)


@pytest.mark.parametrize("var_keyword", ["kwargs", "kw"])
def test_automatic_config_keeps_name_as_keras(var_keyword):
    configs = []
    for k in (kestrel, keras):
        namespace = {"base": k.layers.Layer}
        exec(f"class NoConfig(base):\n"
             f"    def __init__(self, units, **{var_keyword}):\n"
             f"        super().__init__(**{var_keyword})\n"
             f"        self.units = units\n"
             f"    def call(self, x):\n"
             f"        return x\n", namespace)
        configs.append(namespace["NoConfig"](2, name="nc").get_config())
    assert configs[0] == configs[1]


def _validation_with_generator(k):
    """Which generator items each pass reads, and the val_loss they give (weights fixed)."""
    seen = []

    def counting():
        i = 0
        while True:
            seen.append(i)
            yield np.full((1, 1), i, "float32"), np.zeros((1, 1), "float32")
            i += 1

    def zeros():
        while True:
            yield np.zeros((1, 1), "float32"), np.zeros((1, 1), "float32")

    model = k.Sequential([k.Input((1,)),
                          k.layers.Dense(1, kernel_initializer="ones", use_bias=False)])
    model.compile(k.optimizers.SGD(0.0), "mae")
    history = model.fit(zeros(), steps_per_epoch=3, epochs=3, validation_data=counting(),
                        validation_steps=3, verbose=0)
    stream = counting()
    evaluated = [model.evaluate(stream, steps=3, verbose=0) for _ in range(2)]
    return seen, history.history["val_loss"], evaluated


def test_generator_passes_replay_the_batches_read_ahead_as_keras():
    ours, theirs = _validation_with_generator(kestrel), _validation_with_generator(keras)
    assert ours[0] == theirs[0]
    np.testing.assert_allclose(ours[1] + ours[2], theirs[1] + theirs[2], rtol=1e-6)


def _fit_on_reshuffling_py_dataset(k):
    """A PyDataset that reshuffles in on_epoch_end: its order depends on how often it is called."""
    rng = np.random.RandomState(0)
    x = rng.rand(12, 3).astype("float32")
    y = x.sum(1, keepdims=True)

    class Shuffled(k.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order, self.rng, self.calls = np.arange(12), np.random.RandomState(1), 0

        def __len__(self):
            return 3

        def __getitem__(self, i):
            rows = self.order[i * 4:(i + 1) * 4]
            return x[rows], y[rows]

        def on_epoch_end(self):
            self.calls += 1
            self.order = self.rng.permutation(12)

    model = k.Sequential([k.Input((3,)), k.layers.Dense(1, kernel_initializer="ones")])
    model.compile(k.optimizers.SGD(0.1), "mse")
    train, val = Shuffled(), Shuffled()
    first = model.fit(train, epochs=2, shuffle=False, verbose=0).history["loss"]
    second = model.fit(train, epochs=2, shuffle=False, verbose=0, validation_data=val).history
    model.evaluate(val, verbose=0)
    return first + second["loss"] + second["val_loss"], (train.calls, val.calls)


def test_py_dataset_epoch_ends_as_keras():
    ours, theirs = _fit_on_reshuffling_py_dataset(kestrel), _fit_on_reshuffling_py_dataset(keras)
    assert ours[1] == theirs[1]
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5)
