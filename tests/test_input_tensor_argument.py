"""`Input(tensor=...)`: a symbolic tensor becomes the input (as Keras 3); a real value feeds
the input wherever a graph reaches it unfed (as Keras 2, e.g. neural_doodle's mask model)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from kestrel import backend as K  # noqa: E402


def test_symbolic_tensor_becomes_the_input_as_keras():
    for lib in (kestrel, keras):
        produced = lib.layers.Dense(2)(lib.Input((3,)))
        given = lib.Input(tensor=produced)
        assert given is produced and given.shape == (None, 2)
        model = lib.Model(given, lib.layers.Dense(1, name="head")(given))
        assert [layer.name for layer in model.layers][1:] == ["head"]
        assert type(model.layers[0]).__name__ == "InputLayer"
        with pytest.raises(ValueError, match="incompatible `shape` argument"):
            lib.Input(tensor=lib.Input((3,)), shape=(4,))


def test_real_value_feeds_the_graph_where_it_is_not_fed():
    ones = np.ones((2, 4, 4, 1), "float32")
    value = K.concatenate([K.variable(ones), K.variable(2 * ones)], axis=-1)
    masks = kestrel.Input(tensor=value, shape=(None, None, None), name="mask_input")
    assert masks.shape == (2, 4, 4, 2) and masks.dtype == "float32"
    pooled = kestrel.layers.AveragePooling2D(2)(masks)
    model = kestrel.Model(masks, pooled)
    (unfed,) = K.function([], [pooled])([])
    np.testing.assert_allclose(unfed[..., 1], 2.0)
    fed = model.predict(np.zeros((2, 4, 4, 2), "float32"), verbose=0)  # a fed input wins
    np.testing.assert_allclose(fed, 0.0)

    image = K.placeholder((2, 2, 2, 2))
    loss = K.sum(image * pooled)
    value_of, grad = K.function([image], [loss] + K.gradients(loss, image))(
        [np.full((2, 2, 2, 2), 3.0, "float32")])
    assert value_of == pytest.approx(3.0 * 3 * 8)
    np.testing.assert_allclose(grad[..., 0], 1.0)
    np.testing.assert_allclose(grad[..., 1], 2.0)
    with pytest.raises(ValueError, match=r"shape \(None, 5\)"):
        kestrel.Input(tensor=np.ones((2, 3)), shape=(5,))


def test_a_variable_is_read_when_the_graph_runs():
    variable = K.variable(np.ones((1, 3), "float32"))
    source = kestrel.Input(tensor=variable)
    doubled = kestrel.layers.Lambda(lambda x: 2 * x)(source)
    run = K.function([], [doubled])
    np.testing.assert_allclose(run([])[0], 2.0)
    K.set_value(variable, np.full((1, 3), 5.0, "float32"))
    np.testing.assert_allclose(run([])[0], 10.0)


def test_application_on_a_real_input_tensor_reads_it():
    """Keras 2 took a real tensor as an application's `input_tensor` (Keras 3 refuses it)."""
    image = np.random.default_rng(0).random((1, 32, 32, 3)).astype("float32")
    model = kestrel.applications.MobileNet(alpha=0.25, include_top=False, weights=None,
                                           input_tensor=K.variable(image))
    (features,) = K.function([], [model.output])([])
    np.testing.assert_allclose(features, model.predict(image, verbose=0), rtol=1e-5, atol=1e-6)
