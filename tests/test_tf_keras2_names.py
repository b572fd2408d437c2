"""tf.keras 2 names of custom-training-loop tutorials: `metric.reset_states()` and
`keras.losses.Reduction.NONE` (Keras 3 has `reset_state()` and reduction strings)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402


def test_metric_reset_states_is_reset_state_with_a_warning():
    train_loss = kestrel.metrics.Mean(name="train_loss")
    accuracy = kestrel.metrics.SparseCategoricalAccuracy(name="train_accuracy")
    train_loss(2.0)
    train_loss.update_state(4.0)
    accuracy.update_state([1, 0], [[0.1, 0.9], [0.2, 0.8]])
    assert float(train_loss.result()) == 3.0 and float(accuracy.result()) == 0.5
    for metric in (train_loss, accuracy):
        with pytest.warns(DeprecationWarning, match="use `reset_state"):
            metric.reset_states()
        assert float(metric.result()) == 0.0


def test_reduction_names_give_keras_reductions():
    y_true = np.array([0, 2, 1])
    y_pred = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.3, 0.3, 0.4]], "float32")
    Reduction = kestrel.losses.Reduction
    assert Reduction.all() == ("auto", "none", "sum", "sum_over_batch_size")
    for ours, theirs in ((Reduction.NONE, None), (Reduction.SUM, "sum"),
                         (Reduction.SUM_OVER_BATCH_SIZE, "sum_over_batch_size"),
                         (Reduction.AUTO, "sum_over_batch_size")):
        got = kestrel.losses.SparseCategoricalCrossentropy(reduction=ours)(y_true, y_pred)
        want = keras.losses.SparseCategoricalCrossentropy(reduction=theirs)(y_true, y_pred)
        np.testing.assert_allclose(kestrel.ops.convert_to_numpy(got),
                                   keras.ops.convert_to_numpy(want), rtol=1e-6)


def test_relu_takes_keras2_alpha_as_negative_slope():
    """Keras 2's `relu(x, alpha=0., max_value=None, threshold=0)`: `alpha` is Keras 3's
    `negative_slope`, on real and symbolic inputs."""
    x = np.array([[-2.0, -0.5, 0.5, 3.0]], "float32")
    want = keras.ops.convert_to_numpy(keras.activations.relu(x, negative_slope=0.1, max_value=2.0))
    got = kestrel.activations.relu(x, alpha=0.1, max_value=2.0)
    np.testing.assert_allclose(kestrel.ops.convert_to_numpy(got), want, rtol=1e-6)
    inputs = kestrel.Input((4,))
    model = kestrel.Model(inputs, kestrel.layers.Lambda(
        lambda t: kestrel.activations.relu(t, alpha=0.1, max_value=2.0))(inputs))
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-6)
    with pytest.raises(TypeError, match="got both `alpha`"):
        kestrel.activations.relu(x, alpha=0.1, negative_slope=0.2)
