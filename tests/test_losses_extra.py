"""Focal/generalized cross-entropy, Dice, Tversky, Circle and CTC against real Keras 3."""
import os

import numpy as np
import pytest
import torch

from kestrel import losses

os.environ["KERAS_BACKEND"] = "torch"
import keras  # noqa: E402  (the trusted reference)

RNG = np.random.default_rng(3)


def _probs(*shape):
    x = RNG.random(shape).astype("float32") + 0.05
    return x / x.sum(-1, keepdims=True)


def _one_hot(batch, classes):
    return np.eye(classes, dtype="float32")[RNG.integers(0, classes, batch)]


def _unit_rows(batch, dim):
    x = RNG.normal(size=(batch, dim)).astype("float32")
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _masks(shape):
    return (RNG.random(shape) > 0.5).astype("float32"), RNG.random(shape).astype("float32")


def _ctc_labels():
    labels = RNG.integers(1, 6, size=(3, 5))
    labels[0, 3:] = 0
    labels[2, 4:] = 0
    return labels.astype("int32")


# name, constructor kwargs, y_true, y_pred
CASES = [
    ("CategoricalFocalCrossentropy", {}, _one_hot(8, 4), _probs(8, 4)),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "gamma": 1.5, "label_smoothing": 0.1},
     _one_hot(8, 4), RNG.normal(size=(8, 4)).astype("float32")),
    ("CategoricalFocalCrossentropy", {"alpha": [0.1, 0.2, 0.3, 0.4]},
     _one_hot(8, 4), _probs(8, 4)),
    ("Dice", {}, *_masks((4, 5, 5, 1))),
    ("Dice", {"axis": (1, 2, 3)}, *_masks((4, 5, 5, 1))),
    ("Tversky", {"alpha": 0.3, "beta": 0.7, "axis": (1, 2)}, *_masks((4, 6, 2))),
    ("Tversky", {}, *_masks((4, 6))),
    ("Circle", {}, RNG.integers(0, 3, 8).astype("int32"), _unit_rows(8, 6)),
    ("Circle", {"gamma": 10.0, "margin": 0.25, "remove_diagonal": False},
     RNG.integers(0, 3, (8, 1)).astype("int32"), _unit_rows(8, 6)),
    ("CategoricalGeneralizedCrossEntropy", {"q": 0.7},
     RNG.integers(0, 4, 8).astype("int32"), _probs(8, 4)),
    ("CTC", {}, _ctc_labels(), RNG.normal(size=(3, 10, 6)).astype("float32")),
]
IDS = [f"{name}-{i}" for i, (name, *_) in enumerate(CASES)]


def _keras_loss(name, kwargs, **extra):
    return getattr(keras.losses, name)(**kwargs, **extra)


@pytest.mark.parametrize("name, kwargs, y_true, y_pred", CASES, ids=IDS)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
def test_class_matches_keras(name, kwargs, y_true, y_pred, reduction):
    ours = getattr(losses, name)(**kwargs, reduction=reduction)
    theirs = _keras_loss(name, kwargs, reduction=reduction)
    weights = RNG.random(y_true.shape[0]).astype("float32")
    for sample_weight in (None, weights):
        got = ours(torch.as_tensor(y_true), torch.as_tensor(y_pred), sample_weight=sample_weight)
        want = theirs(y_true, y_pred, sample_weight=sample_weight)
        np.testing.assert_allclose(got.numpy(), keras.ops.convert_to_numpy(want),
                                   rtol=1e-5, atol=1e-5)


FUNCTIONS = {"CategoricalFocalCrossentropy": "categorical_focal_crossentropy",
             "Dice": "dice", "Tversky": "tversky", "Circle": "circle", "CTC": "ctc",
             "CategoricalGeneralizedCrossEntropy": "categorical_generalized_cross_entropy"}


@pytest.mark.parametrize("name, kwargs, y_true, y_pred", CASES, ids=IDS)
def test_function_matches_keras(name, kwargs, y_true, y_pred):
    function = FUNCTIONS[name]
    if name == "Circle" and y_true.ndim == 2:
        pytest.skip("the function form takes labels of shape (batch,)")
    if name == "CategoricalGeneralizedCrossEntropy":
        kwargs = {"q": kwargs.get("q", 0.5)}
    y_true, y_pred = torch.as_tensor(y_true), torch.as_tensor(y_pred)
    got = getattr(losses, function)(y_true, y_pred, **kwargs)
    want = getattr(keras.losses, function)(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(got.numpy(), keras.ops.convert_to_numpy(want),
                               rtol=1e-5, atol=1e-5)


def test_generalized_cross_entropy_takes_column_labels():
    y_pred = _probs(6, 3)
    labels = RNG.integers(0, 3, 6)
    column = losses.CategoricalGeneralizedCrossEntropy(reduction="none")(labels[:, None], y_pred)
    flat = losses.CategoricalGeneralizedCrossEntropy(reduction="none")(labels, y_pred)
    torch.testing.assert_close(column, flat)
    assert column.shape == (6,)


def test_circle_masks_rows_without_pairs_and_has_finite_gradients():
    embeddings = torch.as_tensor(_unit_rows(4, 5), dtype=torch.float32).requires_grad_()
    labels = torch.tensor([0, 0, 1, 2])  # rows 2 and 3 have no positive pair
    values = losses.circle(labels, embeddings)
    assert values._keras_mask.tolist() == [True, True, False, False]
    loss = losses.Circle()(labels, embeddings)
    np.testing.assert_allclose(float(loss.detach()), float(values[:2].mean().detach()), rtol=1e-6)
    loss.backward()
    assert torch.isfinite(embeddings.grad).all()


@pytest.mark.parametrize("name, kwargs", [(c[0], c[1]) for c in CASES], ids=IDS)
def test_config_matches_keras_and_round_trips(name, kwargs):
    ours = getattr(losses, name)(**kwargs)
    config = ours.get_config()
    keras_config = _keras_loss(name, kwargs).get_config()
    assert config == keras_config
    assert list(config) == list(keras_config)
    rebuilt = losses.deserialize(losses.serialize(ours))
    assert type(rebuilt) is type(ours) and rebuilt.get_config() == config


@pytest.mark.parametrize("string", ["dice", "tversky", "circle", "ctc",
                                    "categorical_focal_crossentropy", "Dice", "CTC"])
def test_strings_resolve_like_keras(string):
    ours, theirs = losses.get(string), keras.losses.get(string)
    assert getattr(ours, "__name__", type(ours).__name__) == getattr(
        theirs, "__name__", type(theirs).__name__)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="Received: q=1.5"):
        losses.CategoricalGeneralizedCrossEntropy(q=1.5)
    with pytest.raises(ValueError, match="y_true.shape"):
        losses.ctc(np.zeros((2, 3, 1)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="y_pred.shape"):
        losses.ctc(np.zeros((2, 3)), np.zeros((2, 4)))
