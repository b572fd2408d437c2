"""keras.io NLP and generative examples, part c (FNet text generation, LSTM seq2seq, active
learning, character-level LSTM, ...): the same miniature code runs with Kestrel and with real
Keras (torch backend) and agrees.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _numpy(k, x):
    return None if x is None else np.asarray(k.ops.convert_to_numpy(x))


def _mask_arguments(k):
    """What `mask` / `<name>_mask` a layer's call receives, by how it is called."""
    seen = []

    class Probe(k.layers.Layer):
        def call(self, inputs, context=None, mask=None, context_mask=None):
            seen.append((None if mask is None else _numpy(k, mask).tolist(),
                         None if context_mask is None else _numpy(k, context_mask).tolist()))
            return inputs

    embed = k.layers.Embedding(10, 4, mask_zero=True)
    x, c = embed(np.array([[1, 2, 0]])), embed(np.array([[3, 0, 0]]))
    Probe()(x)
    Probe()(x, c)
    Probe()(x, context=c)
    Probe()(x, c, mask=np.array([[True, False, True]]))
    return seen


def test_mask_argument_comes_only_from_a_lone_tensor_argument_as_keras():
    """text_generation_fnet's decoder `call(inputs, encoder_outputs, mask=None)`: with two
    tensor arguments Keras passes no `mask`, but fills `<name>_mask` arguments."""
    found = {k: _mask_arguments(_fresh(k)) for k in (keras, kestrel)}
    assert found[kestrel] == found[keras]
    assert found[keras][1] == (None, [[True, False, False]])


def test_lstm_given_initial_state_ignores_the_input_mask_as_keras():
    """lstm_seq2seq with a masked decoder input: Keras' RNN gets no mask beside initial_state."""
    found = {}
    for k in (keras, kestrel):
        _fresh(k)
        embed, lstm = k.layers.Embedding(10, 3, mask_zero=True), k.layers.LSTM(2)
        tokens, state = np.array([[1, 2, 0, 0]]), np.full((1, 2), 0.5, "float32")
        inputs, h = k.Input((None,), dtype="int32"), k.Input((2,))
        model = k.Model([inputs, h], lstm(embed(inputs), initial_state=[h, h]))
        found[k] = [_numpy(k, t) for t in (
            lstm(embed(tokens)), lstm(embed(tokens), initial_state=[state, state]),
            model([tokens, state]))]
    for a, b in zip(found[keras], found[kestrel]):
        np.testing.assert_allclose(b, a, atol=1e-6)
    assert not np.allclose(found[keras][0], found[keras][1])


def test_attention_called_with_keywords_gives_its_output_the_query_mask_as_keras():
    """A decoder block's `attention(query=x, value=x, key=x)`: the output carries x's mask."""
    found = {}
    for k in (keras, kestrel):
        _fresh(k)
        embed = k.layers.Embedding(10, 4, mask_zero=True)
        attention = k.layers.MultiHeadAttention(num_heads=2, key_dim=2)
        x = embed(np.array([[1, 2, 0]]))
        out = attention(query=x, value=x, key=x)
        inputs = k.Input((None,), dtype="int32")
        y = embed(inputs)
        symbolic = attention(query=y, value=y)
        found[k] = (_numpy(k, getattr(out, "_keras_mask", None)).tolist(),
                    getattr(symbolic, "_keras_mask", None) is not None)
    assert found[kestrel] == found[keras] == ([[True, True, False]], True)


def _binary_losses(k):
    """molecule_generation's `binary_crossentropy(qed (B,), prediction (B, 1))` and friends."""
    y_true, y_pred = np.array([0.0, 1.0, 1.0]), np.array([[0.2], [0.7], [0.9]], "float32")
    found = []
    for fn in (k.losses.binary_crossentropy, k.losses.binary_focal_crossentropy,
               k.metrics.binary_crossentropy, k.ops.binary_crossentropy):
        try:
            found.append(_numpy(k, fn(y_true, y_pred)).round(5).tolist())
        except ValueError as error:
            found.append(str(error).split(". Received")[0])
    for loss in (k.losses.BinaryCrossentropy(), k.losses.BinaryFocalCrossentropy(), "bce"):
        found.append(round(float(k.losses.get(loss)(y_true[:, None], y_pred)[0]
                                 if loss == "bce" else loss(y_true, y_pred)), 5))
    return found


def test_binary_crossentropy_functions_refuse_other_shapes_as_keras():
    """The functions need equal shapes (the loss classes align a trailing 1); "bce" names it."""
    found = {k: _binary_losses(k) for k in (keras, kestrel)}
    assert found[kestrel] == found[keras]
    assert found[keras][0] == "Arguments `target` and `output` must have the same shape"


def test_loss_called_on_lists_of_tensors_converts_each_as_keras():
    """gaugan's FeatureMatchingLoss: `loss(real_features, fake_features)` on lists of outputs."""
    rng = np.random.RandomState(0)
    real = [rng.rand(2, 4, 4, 3).astype("float32"), rng.rand(2, 2, 5), rng.rand(2, 1)]
    fake = tuple(x + 0.5 * rng.rand(*x.shape).astype("float32") for x in real)
    found = {}
    for k in (keras, kestrel):
        seen = []

        class FeatureMatchingLoss(k.losses.Loss):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.mae = k.losses.MeanAbsoluteError()

            def call(self, y_true, y_pred):
                seen.append((type(y_true).__name__, type(y_pred).__name__,
                             [str(t.dtype) for t in y_true]))
                loss = 0
                for i in range(len(y_true) - 1):
                    loss += self.mae(y_true[i], y_pred[i])
                return loss

        found[k] = (round(float(FeatureMatchingLoss()(real, fake)), 6), seen)
    assert found[kestrel] == found[keras]
    assert found[keras][1] == [("list", "tuple", ["torch.float32"] * 3)]


def test_variable_of_python_ints_is_int32_as_keras():
    """stylegan's `keras.Variable(0, trainable=False)` step counter: int32 as in Keras; NumPy
    integers keep their dtype and values beyond int32 stay int64."""
    values = (0, [1, 2], [[3]], np.int64(3), np.array([1, 2]), 2**40, True, 1.5)
    found = {k: [str(k.ops.convert_to_numpy(k.Variable(v, trainable=False).value).dtype)
                 for v in values] for k in (keras, kestrel)}
    assert found[kestrel] == found[keras]
    assert found[keras][:4] == ["int32", "int32", "int32", "int64"]


def test_random_fourier_features_of_keras2_quasi_svm():
    """keras.io quasi_svm (tf.keras): `layers.experimental.RandomFourierFeatures` computes
    `cos(x @ unscaled_kernel / kernel_scale + bias)`; only `kernel_scale` can train."""
    from kestrel.layers.experimental import RandomFourierFeatures
    from kestrel.layers.experimental.preprocessing import Rescaling

    assert Rescaling is kestrel.layers.Rescaling
    _fresh(kestrel)
    layer = RandomFourierFeatures(output_dim=16, kernel_initializer="gaussian", trainable=True)
    model = kestrel.Sequential([kestrel.Input(shape=(8,)), layer, kestrel.layers.Dense(3)])
    model.compile(optimizer="adam", loss=kestrel.losses.hinge)
    x = np.random.RandomState(0).rand(6, 8).astype("float32")
    model.fit(x, np.eye(3)[[0, 1, 2, 0, 1, 2]], epochs=1, verbose=0)
    weights = {w.name: w.numpy() for w in layer.weights}
    kernel, bias, scale = (weights[n] for n in ("unscaled_kernel", "bias", "kernel_scale"))
    assert kernel.shape == (8, 16) and 0 <= bias.min() and bias.max() <= 2 * np.pi
    assert scale[0] != 2.0  # sqrt(input_dim / 2) at first, then trained
    np.testing.assert_allclose(_numpy(kestrel, layer(x)), np.cos(x @ (kernel / scale) + bias),
                               atol=1e-5)
    assert [w.name for w in layer.trainable_weights] == ["kernel_scale"]
    config = layer.get_config()
    assert (config["output_dim"], config["kernel_initializer"]) == (16, "gaussian")
    assert RandomFourierFeatures.from_config(config).scale == config["scale"]
    frozen = RandomFourierFeatures(4, kernel_initializer="laplacian")
    frozen.build((None, 8))
    assert frozen.scale == 1.0 and frozen.trainable_weights == []


def test_dropout_after_pooling_draws_keras_masks_in_fit():
    """mnist_cnn / reproducibility_recipes: Conv2D -> MaxPooling2D -> Dropout trains with the
    losses Keras gives under the same seed (Keras' pooled tensors lie channels-first in
    memory, and an unseeded Dropout draws its mask in memory order)."""
    rng = np.random.RandomState(0)
    x, y = rng.rand(16, 8, 8, 1).astype("float32"), rng.randint(0, 3, 16)
    found = {}
    for k in (keras, kestrel):
        _fresh(k)
        layers = k.layers
        model = k.Sequential([
            k.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
            layers.Dropout(0.3), layers.Reshape((9, 4)),
            layers.AveragePooling1D(3), layers.Dropout(0.3), layers.Flatten(), layers.Dense(3)])
        model.compile("adam", k.losses.SparseCategoricalCrossentropy(from_logits=True))
        found[k] = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history["loss"]
    np.testing.assert_allclose(found[kestrel], found[keras], rtol=1e-5)


def test_keras2_compiled_loss_in_a_custom_train_step_logs_as_keras_fit():
    """debugging_tips (Keras 2): `self.compiled_loss(y, y_pred)` and
    `self.compiled_metrics.update_state(y, y_pred)` in a train_step log the loss and metrics
    that real Keras' own fit logs for the same model."""
    import torch

    rng = np.random.RandomState(0)
    x, y = rng.rand(20, 6).astype("float32"), rng.randint(0, 3, 20)
    found = {}
    for k in (keras, kestrel):
        _fresh(k)

        class Keras2Step(kestrel.Model):
            def train_step(self, data):
                inputs, targets = data
                self.zero_grad()
                preds = self(inputs, training=True)
                self.compiled_loss(targets, preds).backward()
                weights = self.trainable_variables
                with torch.no_grad():
                    self.optimizer.apply([w.value.grad for w in weights], weights)
                self.compiled_metrics.update_state(targets, preds)
                return {m.name: m.result() for m in self.metrics}

        inputs = k.Input((6,))
        outputs = k.layers.Dense(3, activation="softmax")(k.layers.Dense(4)(inputs))
        model = (Keras2Step if k is kestrel else k.Model)(inputs, outputs)
        model.compile(k.optimizers.SGD(0.1), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        found[k] = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(found[kestrel][key], found[keras][key], rtol=1e-5)
