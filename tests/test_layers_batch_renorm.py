"""BatchNormalization(renorm=True) against real Keras 3: weights, training steps, saving."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402

CASES = [
    ((8, 5), dict(renorm=True)),
    ((4, 3, 3, 6), dict(renorm=True, renorm_clipping={"rmax": 1.5, "rmin": 0.8, "dmax": 0.3},
                        renorm_momentum=0.9, momentum=0.8)),
    ((6, 4), dict(renorm=True, center=False, scale=False, renorm_clipping={"rmax": 1.1})),
]


def _model(k, shape, kwargs):
    inputs = k.Input(shape[1:])
    dense = k.layers.Dense(shape[-1], name="dense")
    outputs = k.layers.BatchNormalization(name="bn", **kwargs)(dense(inputs))
    model = k.Model(inputs, outputs)
    model.compile(optimizer=k.optimizers.SGD(0.1), loss="mse")
    return model


@pytest.mark.parametrize("shape,kwargs", CASES)
def test_training_steps_match_keras(shape, kwargs):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=shape) * 2 + 1).astype("float32")
    y = rng.normal(size=shape).astype("float32")
    theirs, ours = _model(keras, shape, kwargs), _model(kestrel, shape, kwargs)
    ours.set_weights(theirs.get_weights())
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    for _ in range(3):
        theirs.train_on_batch(x, y)
        ours.train_on_batch(x, y)
    for a, b in zip(theirs.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)
    assert ours.layers[-1].get_config() == theirs.layers[-1].get_config()


def test_masked_training_matches_keras():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    kwargs = dict(renorm=True, renorm_clipping={"rmax": 1.2, "dmax": 0.5}, momentum=0.5,
                  renorm_momentum=0.5)
    theirs, ours = keras.layers.BatchNormalization(**kwargs), kestrel.layers.BatchNormalization(
        **kwargs)
    theirs.build(x.shape), ours.build(x.shape)
    for _ in range(2):
        expected = keras.ops.convert_to_numpy(theirs(x, training=True, mask=mask))
        got = ours(x, training=True, mask=mask).detach().numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    for a, b in zip(theirs.get_weights(), ours.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5", ".h5"])
def test_files_move_between_keras_and_kestrel(tmp_path, suffix):
    shape, kwargs = CASES[1]
    x = np.random.default_rng(2).normal(size=shape).astype("float32")
    theirs = _model(keras, shape, kwargs)
    theirs.train_on_batch(x, x)
    path = str(tmp_path / f"m{suffix}")
    if suffix == ".weights.h5":
        theirs.save_weights(path)
        ours = _model(kestrel, shape, kwargs)
        ours.load_weights(path)
    else:
        theirs.save(path)
        ours = kestrel.saving.load_model(path)
    for a, b in zip(theirs.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(b, a)
    back = str(tmp_path / f"back{suffix}")
    (ours.save_weights if suffix == ".weights.h5" else ours.save)(back)
    again = _model(keras, shape, kwargs)
    if suffix == ".weights.h5":
        again.load_weights(back)
    else:
        again = keras.saving.load_model(back)
    for a, b in zip(theirs.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("clipping,message", [
    ({"rmax": 1.0, "foo": 2}, "invalid keys for `renorm_clipping`"),
    ({"rmax": 1.0, "rmin": 2.0}, "rmax should be greater than rmin"),
    ({"dmax": -1.0}, "dmax should be non-negative"),
])
def test_bad_clipping_is_refused_as_keras(clipping, message):
    with pytest.raises(ValueError, match=message):
        keras.layers.BatchNormalization(renorm=True, renorm_clipping=clipping)
    with pytest.raises(ValueError, match=message):
        kestrel.layers.BatchNormalization(renorm=True, renorm_clipping=clipping)


def test_plain_layer_has_no_renorm_weights():
    layer = kestrel.layers.BatchNormalization()
    layer.build((2, 3))
    assert [w.name for w in layer.weights] == ["gamma", "beta", "moving_mean",
                                                 "moving_variance"]
    config = layer.get_config()
    assert (config["renorm"], config["renorm_clipping"], config["renorm_momentum"]) == (
        False, None, 0.99)
