"""fit / evaluate / predict refuse bad counts, empty data, bad class weights and out-of-range
sparse labels with ValueErrors that name the argument; Keras 3 is the reference where it has one."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402

X = np.random.default_rng(0).random((12, 4), dtype=np.float32)
Y = np.arange(12) % 3


def _model(lib=kestrel):
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("kwargs, name", [
    ({"batch_size": -1}, "batch_size"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 2.5}, "batch_size"), ({"epochs": -1}, "epochs"),
    ({"epochs": None}, "epochs"), ({"steps_per_epoch": 0}, "steps_per_epoch"),
    ({"initial_epoch": -2}, "initial_epoch"), ({"validation_batch_size": 0},
                                               "validation_batch_size"),
])
def test_fit_refuses_bad_counts(kwargs, name):
    value = next(iter(kwargs.values()))
    with pytest.raises(ValueError, match=rf"fit\(\): `{name}` .*Received: {name}={value}"):
        _model().fit(X, Y, verbose=0, **kwargs)


@pytest.mark.parametrize("fn", ["evaluate", "predict"])
@pytest.mark.parametrize("kwargs, name", [
    ({"batch_size": -1}, "batch_size"), ({"batch_size": 0}, "batch_size"),
    ({"steps": 0}, "steps"), ({"steps": -1}, "steps"),
])
def test_evaluate_and_predict_refuse_bad_counts(fn, kwargs, name):
    model = _model()
    args = (X, Y) if fn == "evaluate" else (X,)
    with pytest.raises(ValueError, match=rf"{fn}\(\): `{name}` must be an integer >= 1"):
        getattr(model, fn)(*args, verbose=0, **kwargs)


def test_keras_also_refuses_a_negative_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        _model(keras).fit(X, Y, batch_size=-1, verbose=0)


def test_epochs_zero_trains_nothing_as_in_keras():
    model = _model()
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(X, Y, epochs=0, verbose=0)
    reference = _model(keras).fit(X, Y, epochs=0, verbose=0)
    assert history.history == reference.history == {}
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("fn", ["fit", "evaluate", "predict"])
def test_empty_x_is_refused(fn):
    model = _model()
    args = (X[:0], Y[:0]) if fn != "predict" else (X[:0],)
    with pytest.raises(ValueError, match=rf"{fn}\(\): `x` is empty.*Received: x with 0 samples"):
        getattr(model, fn)(*args, verbose=0)
    with pytest.raises(ValueError):  # Keras: ValueError (fit), [] (evaluate), a crash (predict)
        _model(keras).fit(X[:0], Y[:0], verbose=0)


def test_empty_validation_data_is_refused():
    with pytest.raises(ValueError, match="`validation_data` is empty"):
        _model().fit(X, Y, validation_data=(X[:0], Y[:0]), verbose=0)


def test_class_weight_missing_a_class_names_it():
    with pytest.raises(ValueError, match=r"class_weight.*classes \[2\] are missing.*"
                                         r"keys=\[0, 1\], classes in y=\[0, 1, 2\]"):
        _model().fit(X, Y, class_weight={0: 1.0, 1: 2.0}, verbose=0)


def test_class_weight_missing_a_class_in_a_generator_batch_names_it():
    batches = [(X[:6], Y[:6])]
    with pytest.raises(ValueError, match=r"classes \[2\] are missing"):
        _model().fit(iter(batches), class_weight={0: 1.0, 1: 2.0}, verbose=0)


def test_class_weight_with_a_non_integer_key_names_it():
    with pytest.raises(ValueError, match=r"class_weight` keys must be class indices.*'a'"):
        _model().fit(X, Y, class_weight={"a": 1.0, 0: 1.0, 1: 1.0, 2: 1.0}, verbose=0)


def test_class_weight_accepts_numpy_and_digit_keys_and_weights_like_keras():
    cw = {np.int64(0): 1.0, "1": 2.0, 2: 0.5}
    model = _model()
    reference = _model(keras)
    reference.set_weights(model.get_weights())
    model.fit(X, Y, class_weight=cw, batch_size=12, shuffle=False, verbose=0)
    reference.fit(X, Y, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, batch_size=12, shuffle=False,
                  verbose=0)
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("label", [10, -1])
@pytest.mark.parametrize("from_logits", [False, True])
def test_out_of_range_sparse_label_is_named(label, from_logits):
    y = Y.copy()
    y[5] = label
    with pytest.raises(ValueError, match=rf"label {label} is out of range for 3 classes: "
                                         r"labels must be in \[0, 2\]"):
        kestrel.losses.sparse_categorical_crossentropy(
            torch.tensor(y), torch.rand(12, 3), from_logits=from_logits)
    model = _model()
    with pytest.raises(ValueError, match=rf"Received: label={label}"):
        model.fit(X, y, verbose=0)
    with pytest.raises(IndexError):  # Keras 3 (torch) lets torch's error through
        _model(keras).fit(X, y, verbose=0)


def test_ignore_class_labels_stay_legal():
    y = torch.tensor([0, 1, -1, 2])
    loss = kestrel.losses.sparse_categorical_crossentropy(y, torch.rand(4, 3), ignore_class=-1)
    assert loss[2] == 0
