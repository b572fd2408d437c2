"""The keras.io guides (functional API, saving, ...): what they print and return, against real Keras 3."""
import json
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (real Keras 3: the reference)

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402


def _as_json(config):
    """Tuples and lists alike, as a saved file holds them."""
    return json.loads(json.dumps(config))


def _dict_io_model(lib):
    """functional_api: inputs and outputs given as dicts in unsorted key order."""
    b, a = lib.Input((3,), name="b"), lib.Input((3,), name="a")
    z = lib.layers.Dense(1, name="z")(a)
    y = lib.layers.Dense(2, name="y")(b)
    return lib.Model({"b": b, "a": a}, {"z": z, "y": y})


def test_dict_inputs_and_outputs_flatten_in_sorted_key_order_as_keras():
    ours, theirs = _dict_io_model(fresh(kestrel)), _dict_io_model(fresh(keras))
    assert [t.name for t in ours.inputs] == [t.name for t in theirs.inputs] == ["a", "b"]
    assert [t.shape for t in ours.outputs] == [t.shape for t in theirs.outputs]
    assert ours.output_names == theirs.output_names == ["y", "z"]
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    x = {"a": np.ones((2, 3), "float32"), "b": np.ones((2, 3), "float32")}
    assert list(ours(x)) == list(theirs(x)) == ["y", "z"]
    assert list(ours.predict(x, verbose=0)) == list(theirs.predict(x, verbose=0))
    assert _as_json(ours.get_config()) == _as_json(theirs.get_config())


def _single_io_model(lib):
    inputs = lib.Input((4,))
    return lib.Model(inputs, lib.layers.Dense(2)(inputs))


def test_single_input_and_output_config_is_one_reference_as_keras():
    ours, theirs = _single_io_model(fresh(kestrel)), _single_io_model(fresh(keras))
    config = ours.get_config()
    assert config["input_layers"] == list(theirs.get_config()["input_layers"]) == \
        ["input_layer", 0, 0]
    assert config["output_layers"] == list(theirs.get_config()["output_layers"])
    rebuilt = kestrel.Model.from_config(config)
    assert rebuilt.inputs[0].shape == (None, 4) and not isinstance(rebuilt.output, list)


def _sequential(lib):
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(3)])


def test_sequential_config_carries_build_input_shape_as_keras():
    ours, theirs = _sequential(fresh(kestrel)), _sequential(fresh(keras))
    assert _as_json(ours.get_config())["build_input_shape"] == [None, 4]
    assert _as_json(ours.get_config()) == _as_json(theirs.get_config())
    rebuilt = kestrel.Sequential.from_config(ours.get_config())
    assert rebuilt.count_params() == 15


def _stack_on_a_base(lib):
    """sequential_model: a built functional base model first, with no `Input`."""
    inputs = lib.Input((5,))
    base = lib.Model(inputs, lib.layers.Dense(3)(inputs), name="base")
    base.trainable = False
    return lib.Sequential([base, lib.layers.Dense(2)])


def test_sequential_starting_with_a_built_model_is_built_as_keras():
    ours, theirs = _stack_on_a_base(fresh(kestrel)), _stack_on_a_base(fresh(keras))
    assert ours.built and theirs.built
    assert ours.output_shape == theirs.output_shape == (None, 2)
    assert ours.count_params() == theirs.count_params() == 26
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 2


def _shuffled_losses_after_a_recompile_without_loss(lib):
    """making_new_layers: a model recompiled with only an optimizer trains on, and a later
    shuffled fit draws its batch order as Keras' (no build batch is read again)."""
    inputs = lib.Input((3,))
    model = lib.Model(inputs, lib.layers.Dense(1)(inputs))
    x = np.arange(24, dtype="float32").reshape(8, 3) / 24
    y = x.sum(axis=1, keepdims=True)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=2, verbose=0)
    model.compile(optimizer="sgd")
    model.fit(x, y, batch_size=2, verbose=0)
    model.compile(optimizer="sgd", loss="mse")
    return model.fit(x, y, batch_size=2, epochs=2, verbose=0).history["loss"]


def test_recompile_without_loss_reads_no_build_batch_as_keras():
    ours = _shuffled_losses_after_a_recompile_without_loss(fresh(kestrel))
    theirs = _shuffled_losses_after_a_recompile_without_loss(fresh(keras))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def _batch_logs(lib):
    """training_with_built_in_methods: a callback keeping each batch's loss."""
    class LossHistory(lib.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seen = []

        def on_batch_end(self, batch, logs=None):
            self.seen.append(logs)

        def on_test_batch_end(self, batch, logs=None):
            self.seen.append(logs)

    inputs = lib.Input((3,))
    model = lib.Model(inputs, lib.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    history = LossHistory()
    x = np.linspace(0, 1, 12, dtype="float32").reshape(4, 3)
    model.fit(x, x[:, :1], batch_size=2, validation_data=(x, x[:, :1]), callbacks=[history],
              verbose=0)
    return history.seen


def test_batch_end_logs_are_python_floats_sorted_as_keras():
    ours, theirs = _batch_logs(fresh(kestrel)), _batch_logs(fresh(keras))
    assert [list(logs) for logs in ours] == [list(logs) for logs in theirs]
    assert all(type(v) is float for logs in ours for v in logs.values())
    np.testing.assert_allclose([list(l.values()) for l in ours],
                               [list(l.values()) for l in theirs], rtol=1e-5)


def _dataloader_run(lib):
    """training_with_built_in_methods: fit/evaluate on shuffled torch DataLoaders, PyDatasets
    and generators, which Keras' torch backend wraps in DataLoaders that draw seeds."""
    import torch

    x = np.arange(40, dtype="float32").reshape(10, 4) / 40
    pairs = list(zip(x, x.sum(axis=1, keepdims=True)))
    train = torch.utils.data.DataLoader(pairs, batch_size=4, shuffle=True)
    inputs = lib.Input((4,))
    model = lib.Model(inputs, lib.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    losses = model.fit(train, epochs=2, verbose=0).history["loss"]
    losses += model.fit(train, epochs=1, validation_data=train, verbose=0).history["val_loss"]

    class Batches(lib.utils.PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return x[index * 5:index * 5 + 5], x[index * 5:index * 5 + 5, :1]

    losses += model.fit(Batches(), epochs=2, validation_data=Batches(), verbose=0).history["loss"]
    model.predict(Batches(), verbose=0)
    losses += model.fit((b for b in [Batches()[0]]), verbose=0).history["loss"]
    return losses + [model.evaluate(train, verbose=0), float(torch.rand(()))]


def test_dataloaders_pydatasets_and_generators_draw_as_keras(recwarn):
    ours, theirs = _dataloader_run(fresh(kestrel)), _dataloader_run(fresh(keras))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def _warnings_of_an_output_without_loss(lib):
    """training_with_built_in_methods: `loss=[None, ...]` leaves one head without gradients."""
    import warnings

    inputs = lib.Input((3,))
    score = lib.layers.Dense(1, name="score_output")(inputs)
    klass = lib.layers.Dense(2, name="class_output")(inputs)
    model = lib.Model(inputs, [score, klass])
    model.compile(optimizer="rmsprop", loss=[None, "mse"])
    x = np.ones((4, 3), "float32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, [x[:, :1], x[:, :2]], batch_size=4, verbose=0)
    return [str(w.message) for w in caught if "Gradients" in str(w.message)]


def test_missing_gradients_warn_as_keras():
    ours = _warnings_of_an_output_without_loss(fresh(kestrel))
    theirs = _warnings_of_an_output_without_loss(fresh(keras))
    assert ours == theirs and "['score_output/kernel', 'score_output/bias']" in ours[0]


def _steps_per_epoch_run(lib):
    """writing_your_own_callbacks: `steps_per_epoch=2` over arrays of 3 batches per pass."""
    import warnings

    seen = []

    class Batches(lib.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, logs["loss"]))

    inputs = lib.Input((4,))
    model = lib.Model(inputs, lib.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x = np.linspace(0, 1, 40, dtype="float32").reshape(10, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, x[:, :1], batch_size=4, steps_per_epoch=2, epochs=3, callbacks=[Batches()],
                  verbose=0)
    return seen, sum("ran out of data" in str(w.message) for w in caught)


def test_steps_per_epoch_reads_one_pass_across_epochs_as_keras():
    (ours, our_warnings), (theirs, their_warnings) = \
        _steps_per_epoch_run(fresh(kestrel)), _steps_per_epoch_run(fresh(keras))
    assert [b for b, _ in ours] == [b for b, _ in theirs] == [0, 1, 0, 0, 1]
    np.testing.assert_allclose([v for _, v in ours], [v for _, v in theirs], rtol=1e-5)
    assert our_warnings == their_warnings == 1


def _custom_compile_roundtrip(lib, path):
    """customizing_saving_and_serialization: a model's own get/compile_from_config."""
    class WithCustomCompile(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = lib.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

        def compile(self, optimizer, loss_fn):
            super().compile(optimizer)
            self.model_optimizer, self.loss_fn = optimizer, loss_fn

        def get_compile_config(self):
            return {"model_optimizer": self.model_optimizer, "loss_fn": self.loss_fn}

        def compile_from_config(self, config):
            self.compile(lib.utils.deserialize_keras_object(config["model_optimizer"]),
                         lib.utils.deserialize_keras_object(config["loss_fn"]))

    model = WithCustomCompile()
    model.compile(optimizer="SGD", loss_fn="mean_squared_error")
    model(np.ones((2, 3), "float32"))
    model.save(path)
    restored = lib.models.load_model(path, custom_objects={"WithCustomCompile": WithCustomCompile})
    return restored.model_optimizer, restored.loss_fn, type(restored.optimizer).__name__


def test_a_models_own_compile_config_is_saved_and_used_as_keras(tmp_path):
    ours = _custom_compile_roundtrip(fresh(kestrel), str(tmp_path / "ours.keras"))
    theirs = _custom_compile_roundtrip(fresh(keras), str(tmp_path / "theirs.keras"))
    assert ours == theirs == ("SGD", "mean_squared_error", "SGD")
