"""Keras 2 training names (removed from Keras 3), kept with a DeprecationWarning: the
`*_generator` methods, `model.reset_states()`, Sequential's `predict_classes` /
`predict_proba` (Keras 2.5 behaviour) and `Model(input=..., output=...)`."""
import warnings

import numpy as np
import pytest
import torch

import kestrel
from kestrel import layers
from kestrel.utils import set_random_seed

RNG = np.random.default_rng(0)
X = RNG.standard_normal((24, 4)).astype("float32")
Y = (np.arange(24) % 3).astype("int64")


def _model(units=3, activation="softmax"):
    set_random_seed(0)
    model = kestrel.Sequential([kestrel.Input((4,)), layers.Dense(8, activation="relu"),
                                layers.Dense(units, activation=activation)])
    model.compile("sgd", "sparse_categorical_crossentropy" if units > 1 else "mse")
    return model


def _endless(x, y, batch_size=6):
    while True:
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]


class Batches(kestrel.utils.Sequence):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return X[index * 6:(index + 1) * 6], Y[index * 6:(index + 1) * 6]


def test_fit_generator_warns_and_trains_as_fit():
    """The validation generator cycles through `validation_steps` batches, so that Keras 2
    (which goes on with it every epoch) and Keras 3's `fit` (which replays the batches it
    read ahead) validate on the same ones."""
    options = {"steps_per_epoch": 4, "epochs": 3, "initial_epoch": 1, "validation_steps": 2,
               "class_weight": {0: 1.0, 1: 2.0, 2: 0.5}}
    model = _model()
    with pytest.warns(DeprecationWarning, match=r"fit_generator.*Model\.fit"):
        history = model.fit_generator(_endless(X, Y), validation_data=_endless(X, Y, 12),
                                      verbose=0, workers=4, use_multiprocessing=True,
                                      max_queue_size=3, **options)
    reference = _model()
    expected = reference.fit(_endless(X, Y), validation_data=_endless(X, Y, 12), verbose=0,
                             **options)
    assert history.epoch == [1, 2]
    assert history.history == expected.history
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_fit_generator_takes_a_sequence():
    model = _model()
    with pytest.warns(DeprecationWarning):
        history = model.fit_generator(Batches(), epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2


def test_evaluate_and_predict_generator_equal_evaluate_and_predict():
    model = _model()
    with pytest.warns(DeprecationWarning, match=r"evaluate_generator.*Model\.evaluate"):
        loss = model.evaluate_generator(Batches(), workers=2)
    assert loss == pytest.approx(model.evaluate(X, Y, batch_size=6, verbose=0), rel=1e-6)
    with pytest.warns(DeprecationWarning, match=r"predict_generator.*Model\.predict"):
        out = model.predict_generator((X[i:i + 6] for i in range(0, 24, 6)), steps=4)
    np.testing.assert_allclose(out, model.predict(X, verbose=0), rtol=1e-6)


def test_predict_classes_and_proba_as_keras_2_5():
    model = _model()
    with pytest.warns(DeprecationWarning, match=r"predict_classes.*np\.argmax"):
        classes = model.predict_classes(X)
    np.testing.assert_array_equal(classes, np.argmax(model.predict(X, verbose=0), axis=-1))
    with pytest.warns(DeprecationWarning, match=r"predict_proba.*model\.predict\(\)"):
        proba = model.predict_proba(X, batch_size=5)
    np.testing.assert_allclose(proba, model.predict(X, verbose=0), rtol=1e-6)

    binary = _model(1, "sigmoid")
    with pytest.warns(DeprecationWarning):
        classes = binary.predict_classes(X)
    assert classes.shape == (24, 1) and classes.dtype == np.int32
    np.testing.assert_array_equal(classes, (binary.predict(X, verbose=0) > 0.5).astype("int32"))


def test_predict_proba_warns_on_values_outside_0_1():
    model = _model(3, None)
    with pytest.warns(UserWarning, match="invalid probability values"):
        model.predict_proba(X * 100)


def test_model_reset_states_resets_stateful_layers_nested_too():
    set_random_seed(0)
    inner = kestrel.Sequential([kestrel.Input((5, 2), batch_size=3),
                                layers.LSTM(4, stateful=True, return_sequences=True)])
    model = kestrel.Sequential([kestrel.Input((5, 2), batch_size=3), inner,
                                layers.GRU(3, stateful=True), layers.Dense(2)])
    x = RNG.standard_normal((3, 5, 2)).astype("float32")
    first = model.predict(x, verbose=0)
    assert not np.allclose(model.predict(x, verbose=0), first)  # the states carried over
    model.reset_states()
    np.testing.assert_array_equal(model.predict(x, verbose=0), first)
    model.layers[1].reset_states()  # the layer-level name works too
    assert not torch.count_nonzero(model.layers[1].states[0])


def test_model_with_keras_2_keywords_is_functional():
    inputs = kestrel.Input((4,))
    outputs = layers.Dense(2)(inputs)
    with pytest.warns(DeprecationWarning, match=r"input=.*`inputs=` and `outputs=`"):
        model = kestrel.Model(input=inputs, output=outputs, name="old")
    assert type(model) is type(kestrel.Model(inputs, outputs))
    assert model.name == "old" and model.output_shape == (None, 2)
    np.testing.assert_array_equal(model.predict(X, verbose=0),
                                  kestrel.Model(inputs=inputs, outputs=outputs)
                                  .predict(X, verbose=0))
    with pytest.raises(TypeError, match="both `input` and `inputs`"):
        kestrel.Model(input=inputs, inputs=inputs, outputs=outputs)


def test_keras_3_names_do_not_warn():
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        model.fit(X, Y, epochs=1, verbose=0)
        inputs = kestrel.Input((4,))
        kestrel.Model(inputs=inputs, outputs=layers.Dense(1)(inputs))


class _ActivityMean(layers.Layer):
    """Keras 2 style: logs the mean of its input with `add_metric` inside `call`."""

    def call(self, x):
        self.add_metric(kestrel.ops.mean(x), name="mean_act", aggregation="mean")
        return x


def test_add_metric_is_logged_as_an_epoch_mean_with_the_compiled_metrics():
    set_random_seed(0)
    inputs = kestrel.Input((4,))
    hidden = layers.Dense(3, name="hidden")(inputs)
    model = kestrel.Model(inputs, layers.Dense(1)(_ActivityMean()(hidden)))
    model.compile("sgd", "mse", metrics=["mae"])
    y = np.zeros((24, 1), "float32")
    history = model.fit(X, y, batch_size=8, epochs=1, verbose=0, validation_data=(X, y))
    assert list(history.history) == ["loss", "mae", "mean_act", "val_loss", "val_mae",
                                     "val_mean_act"]
    logs = model.evaluate(X, y, batch_size=8, verbose=0, return_dict=True)
    expected = kestrel.Model(inputs, hidden).predict(X, verbose=0).mean()  # equal batches
    assert logs["mean_act"] == pytest.approx(float(expected), rel=1e-5)
    assert model.evaluate(X, y, batch_size=8, verbose=0, return_dict=True) == logs  # reset


def test_add_metric_errors_name_the_layer():
    layer = _ActivityMean(name="stat")
    with pytest.raises(ValueError, match="'stat': add_metric needs a name"):
        layer.add_metric(torch.ones(2))
    with pytest.raises(ValueError, match="aggregation='mean' or None, got 'sum'"):
        layer.add_metric(torch.ones(2), name="s", aggregation="sum")
    with pytest.raises(NotImplementedError, match="symbolic tensor"):
        layer.add_metric(kestrel.Input((2,)), name="s")
