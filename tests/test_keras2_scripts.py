"""More classic Keras 2 scripts (`examples/` and common tutorials), with `keras` renamed to
`kestrel`: what each relies on that tests/test_keras2_examples.py does not already cover.

Keras 2 semantics are the reference here, where they differ from Keras 3 (noted per test).
"""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import backend as K
from kestrel.layers import (Activation, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                            Input, LeakyReLU, MaxPooling2D, Reshape, UpSampling2D)
from kestrel.models import Model, Sequential
from kestrel.optimizers import SGD, Adam

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _seed():
    kestrel.utils.clear_session()
    kestrel.utils.set_random_seed(0)


def _values(weights):
    return [np.array(kestrel.ops.convert_to_numpy(w)) for w in weights]


def _changed(before, weights):
    return [not np.array_equal(a, b) for a, b in zip(before, _values(weights))]


def test_gan_frozen_discriminator_in_combined_model_with_one_shared_optimizer():
    """Keras-GAN / mnist_acgan: `discriminator.trainable = False` between the two compiles.

    As in Keras 2 (and Keras' documented compile contract), the discriminator's own
    `train_on_batch` still trains it; the combined model trains only the generator; both
    share one Adam instance. (Keras 3 trains nothing in the discriminator here, and refuses
    the shared optimizer.)"""
    latent_dim = 4
    optimizer = Adam(0.01, 0.5)
    discriminator = Sequential([Conv2D(4, 3, strides=2, padding="same", input_shape=(4, 4, 1)),
                                LeakyReLU(alpha=0.2), Flatten(), Dense(1, activation="sigmoid")])
    discriminator.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    generator = Sequential([Dense(8, activation="relu", input_dim=latent_dim),
                            Reshape((2, 2, 2)), UpSampling2D(), BatchNormalization(momentum=0.8),
                            Conv2D(1, 3, padding="same", activation="tanh")])
    z = Input(shape=(latent_dim,))
    discriminator.trainable = False
    combined = Model(z, discriminator(generator(z)))
    combined.compile(loss="binary_crossentropy", optimizer=optimizer)
    assert len(combined.trainable_weights) == 6 and not discriminator.trainable_weights

    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (8, 4, 4, 1)).astype("float32")
    ones, zeros = np.ones((8, 1)), np.zeros((8, 1))
    for _ in range(2):
        noise = rng.normal(size=(8, latent_dim)).astype("float32")
        fake = generator.predict(noise, verbose=0)
        before = _values(discriminator.weights)
        d_loss = 0.5 * np.add(discriminator.train_on_batch(real, ones),
                              discriminator.train_on_batch(fake, zeros))
        assert all(_changed(before, discriminator.weights)), "the discriminator must train"
        assert d_loss.shape == (2,) and np.isfinite(d_loss).all()

        d_before, g_before = _values(discriminator.weights), _values(generator.trainable_weights)
        g_loss = combined.train_on_batch(noise, ones)
        assert np.isfinite(g_loss)
        assert not any(_changed(d_before, discriminator.weights)), "frozen in the combined model"
        assert all(_changed(g_before, generator.trainable_weights)), "the generator must train"
    assert discriminator.trainable is False  # the user's flag is left as set
    assert optimizer.iterations == 6


def _filter_loss_and_normalized_grads(model, layer_name, filter_index, image):
    """The reference of conv_filter_visualization's step, written with torch autograd."""
    x = torch.tensor(image, dtype=torch.float32, requires_grad=True)
    layer = model.get_layer(layer_name)
    feature_model = Model(model.input, layer.output)
    loss = feature_model(x)[..., filter_index].mean()
    (grads,) = torch.autograd.grad(loss, x)
    return loss.item(), (grads / (grads.square().mean().sqrt() + 1e-7)).numpy()


def test_conv_filter_visualization_k_gradients_and_k_function():
    """`K.gradients(loss, model.input)` on a symbolic loss, normalised symbolically, fed to
    `K.function([input_img], [loss, grads])`: gradient ascent on the input image."""
    model = Sequential([Conv2D(4, 3, padding="same", input_shape=(8, 8, 3), name="block1_conv1"),
                        Activation("relu"), Conv2D(6, 3, padding="same", name="block1_conv2")])
    layer_dict = dict([(layer.name, layer) for layer in model.layers[1:]])
    input_img = model.input
    layer_output = layer_dict["block1_conv2"].output
    loss = K.mean(layer_output[:, :, :, 2])
    grads = K.gradients(loss, input_img)[0]
    assert K.int_shape(grads) == (None, 8, 8, 3)
    grads /= (K.sqrt(K.mean(K.square(grads))) + K.epsilon())
    iterate = K.function([input_img], [loss, grads])

    image = np.random.default_rng(0).random((1, 8, 8, 3)).astype("float32")
    loss_value, grads_value = iterate([image])
    expected_loss, expected_grads = _filter_loss_and_normalized_grads(model, "block1_conv2", 2,
                                                                      image)
    np.testing.assert_allclose(loss_value, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(grads_value, expected_grads, rtol=1e-4, atol=1e-6)
    losses = []
    for _ in range(3):  # gradient ascent raises the filter's mean activation
        loss_value, grads_value = iterate([image])
        image += grads_value * 0.5
        losses.append(float(loss_value))
    assert losses[0] < losses[1] < losses[2]


def test_neural_style_transfer_variables_placeholder_and_symbolic_loss():
    """neural_style_transfer: `K.variable` images and a `K.placeholder` joined by
    `K.concatenate` feed the network; `loss = K.variable(0.)` then `loss = loss + ...` (a
    Variable on the left of a symbolic tensor); gradients with respect to the placeholder."""
    rng = np.random.default_rng(1)
    base = K.variable(rng.random((1, 6, 6, 3)).astype("float32"))
    style = K.variable(rng.random((1, 6, 6, 3)).astype("float32"))
    combination = K.placeholder((1, 6, 6, 3))
    assert K.is_keras_tensor(combination) and K.int_shape(combination) == (1, 6, 6, 3)
    input_tensor = K.concatenate([base, style, combination], axis=0)
    features_layer = Conv2D(4, 3, padding="same", name="block1_conv1")
    features = features_layer(input_tensor)

    def gram_matrix(x):
        flat = K.batch_flatten(K.permute_dimensions(x, (2, 0, 1)))
        return K.dot(flat, K.transpose(flat))

    loss = K.variable(0.0)
    loss = loss + 0.025 * K.sum(K.square(features[2, :, :, :] - features[0, :, :, :]))
    loss = loss + K.sum(K.square(gram_matrix(features[1]) - gram_matrix(features[2]))) / 36.0
    tv = K.square(combination[:, :5, :5, :] - combination[:, 1:, :5, :])
    loss = loss + K.sum(K.pow(tv + 1e-3, 1.25))
    grads = K.gradients(loss, combination)
    f_outputs = K.function([combination], [loss] + grads)

    image = rng.random((1, 6, 6, 3)).astype("float32")
    loss_value, grad_value = f_outputs([image])

    x = torch.tensor(image, requires_grad=True)
    feats = features_layer(torch.cat([base, style, x], dim=0))

    def gram(f):
        flat = f.permute(2, 0, 1).reshape(f.shape[2], -1)
        return flat @ flat.T

    expected = (0.025 * (feats[2] - feats[0]).square().sum()
                + (gram(feats[1]) - gram(feats[2])).square().sum() / 36.0
                + ((x[:, :5, :5] - x[:, 1:, :5]).square() + 1e-3).pow(1.25).sum())
    (expected_grad,) = torch.autograd.grad(expected, x)
    np.testing.assert_allclose(loss_value, expected.item(), rtol=1e-5)
    np.testing.assert_allclose(grad_value, expected_grad.numpy(), rtol=1e-4, atol=1e-5)


def test_deep_dream_loss_scaled_by_symbolic_k_shape():
    """deep_dream: `K.prod(K.cast(K.shape(x), "float32"))` on layer outputs of unknown size
    (a symbolic shape tensor, as Keras 2), and images of several sizes through one function."""
    inp = Input(shape=(None, None, 3))
    x = Conv2D(4, 3, padding="same", name="mixed2")(inp)
    x = Activation("relu", name="mixed3")(x)
    model = Model(inp, x)
    dream = model.input
    layer_dict = dict([(layer.name, layer) for layer in model.layers])
    loss = K.variable(0.0)
    for layer_name, coeff in {"mixed2": 0.2, "mixed3": 0.5}.items():
        out = layer_dict[layer_name].output
        shape = K.shape(out)
        assert K.is_keras_tensor(shape) and K.int_shape(shape) == (4,)
        scaling = K.prod(K.cast(shape, "float32"))
        loss = loss + coeff * K.sum(K.square(out[:, 2:-2, 2:-2, :])) / scaling
    grads = K.gradients(loss, dream)[0]
    grads /= K.maximum(K.mean(K.abs(grads)), K.epsilon())
    fetch_loss_and_grads = K.function([dream], [loss, grads])

    for size in ((9, 9), (10, 13)):
        image = np.random.default_rng(2).random((1, *size, 3)).astype("float32")
        loss_value, grad_values = fetch_loss_and_grads([image])
        t = torch.tensor(image)
        first = model.get_layer("mixed2")(t)
        expected = sum(c * o[:, 2:-2, 2:-2].square().sum() / o.numel()
                       for c, o in ((0.2, first), (0.5, torch.relu(first))))
        np.testing.assert_allclose(loss_value, expected.item(), rtol=1e-5)
        assert grad_values.shape == image.shape
        np.testing.assert_allclose(np.abs(grad_values).mean(), 1.0, rtol=1e-4)


def test_k_function_with_learning_phase_input():
    """`K.function([model.input, K.learning_phase()], [output])`: 1 runs dropout, 0 does not."""
    model = Sequential([Dense(16, input_shape=(4,)), Dropout(0.5), Dense(2)])
    f = K.function([model.layers[0].input, K.learning_phase()], [model.layers[-1].output])
    data = np.ones((3, 4), "float32")
    test_a, test_b = f([data, 0])[0], f([data, 0])[0]
    np.testing.assert_array_equal(test_a, test_b)
    np.testing.assert_allclose(test_a, model.predict(data, verbose=0), rtol=1e-6)
    assert not np.allclose(f([data, 1])[0], test_a)
    with pytest.raises(ValueError, match="takes 2 input values"):
        f([data])


def test_h5_round_trip_of_a_model_with_a_custom_metric_function(tmp_path):
    """`load_model("m.h5", custom_objects={"f1": f1})` compiles with the user's function: it
    is resolved while custom_objects apply, so evaluate/fit work afterwards (as Keras)."""
    def f1(y_true, y_pred):
        return K.mean(K.round(K.clip(y_pred, 0, 1)) * y_true)

    model = Sequential([Dense(4, input_dim=3, activation="relu"), Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["acc", f1])
    rng = np.random.default_rng(3)
    x = rng.random((16, 3)).astype("float32")
    y = (x[:, 0] > 0.5).astype("float32")
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0, class_weight={0: 1.0, 1: 3.0})
    assert sorted(history.history) == ["acc", "f1", "loss"]
    path = str(tmp_path / "m.h5")
    model.save(path)
    again = kestrel.models.load_model(path, custom_objects={"f1": f1})
    np.testing.assert_allclose(again.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0),
                               rtol=1e-6)
    assert sorted(again.fit(x, y, epochs=1, verbose=0).history) == ["acc", "f1", "loss"]


class _KConvPool(kestrel.layers.Layer):
    """A Keras 2 custom layer written with K.conv2d, K.bias_add, K.pool2d and K.relu."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(3, 3, input_shape[-1], self.filters),
                                      initializer="glorot_uniform", trainable=True)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="ones",
                                    trainable=True)
        super().build(input_shape)

    def call(self, x):
        out = K.bias_add(K.conv2d(x, self.kernel, strides=(1, 1), padding="same"), self.bias)
        return K.relu(K.pool2d(out, (2, 2), strides=(2, 2), pool_mode="avg"))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] // 2, input_shape[2] // 2, self.filters)


def test_custom_layer_from_k_conv2d_bias_add_pool2d_matches_keras_layers():
    inp = Input((8, 8, 3))
    custom = _KConvPool(4)
    model = Model(inp, Dense(1)(Flatten()(custom(inp))))
    assert custom.output_shape == (None, 4, 4, 4)
    x = np.random.default_rng(4).random((16, 8, 8, 3)).astype("float32")
    model.compile("adam", "mse")
    losses = model.fit(x, x.mean(axis=(1, 2, 3))[:, None], epochs=3, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    reference = Sequential([Conv2D(4, 3, padding="same", input_shape=(8, 8, 3)),
                            kestrel.layers.AveragePooling2D(2), Activation("relu")])
    reference.layers[0].set_weights(custom.get_weights())
    np.testing.assert_allclose(K.eval(custom(torch.from_numpy(x))), reference.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_k_nn_functions_match_the_keras_layers_and_numpy():
    rng = np.random.default_rng(5)
    seq = rng.random((2, 7, 3)).astype("float32")
    img = rng.random((2, 5, 6, 3)).astype("float32")
    conv1d = kestrel.layers.Conv1D(4, 3, padding="causal", dilation_rate=2, use_bias=False)
    expected = conv1d(torch.from_numpy(seq))
    got = K.conv1d(seq, conv1d.get_weights()[0], padding="causal", dilation_rate=2)
    np.testing.assert_allclose(K.eval(got), K.eval(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(K.eval(K.pool2d(img, (2, 2), strides=(2, 2))),
                               K.eval(MaxPooling2D()(torch.from_numpy(img))))
    np.testing.assert_array_equal(K.eval(K.spatial_2d_padding(img, ((1, 2), (0, 1)))),
                                  np.pad(img, ((0, 0), (1, 2), (0, 1), (0, 0))))
    np.testing.assert_array_equal(K.eval(K.temporal_padding(seq, (2, 0))),
                                  np.pad(seq, ((0, 0), (2, 0), (0, 0))))
    np.testing.assert_array_equal(K.eval(K.resize_images(img, 2, 3, "channels_last")),
                                  img.repeat(2, axis=1).repeat(3, axis=2))
    np.testing.assert_array_equal(K.eval(K.reverse(seq, axes=[1, 2])), seq[:, ::-1, ::-1])
    np.testing.assert_array_equal(K.eval(K.arange(5)), np.arange(5, dtype="int32"))
    assert K.dtype(K.arange(2, 8, 2)) == "int32"
    np.testing.assert_allclose(K.eval(K.logsumexp(seq, axis=1)),
                               np.log(np.exp(seq).sum(axis=1)), rtol=1e-6)
    normed, mean, var = K.normalize_batch_in_training(seq, None, None, [0, 1], epsilon=1e-3)
    np.testing.assert_allclose(K.eval(mean), seq.mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(K.eval(normed), (seq - seq.mean((0, 1))) /
                               np.sqrt(seq.var((0, 1)) + 1e-3), rtol=1e-5, atol=1e-6)
    assert K.eval(K.in_train_phase(lambda: K.ones((1,)), K.zeros((1,)), training=1))[0] == 1.0
    assert K.eval(K.in_test_phase(K.ones((1,)), K.zeros((1,)), training=0))[0] == 1.0


def test_k_rnn_with_a_mask_keeps_the_previous_output_and_state():
    """`K.rnn(step, inputs, initial_states, mask=...)`: a running sum that skips masked steps."""
    inputs = np.arange(1, 9, dtype="float32").reshape(2, 4, 1)
    mask = np.array([[1, 1, 0, 1], [1, 0, 0, 0]], dtype=bool)

    def step(x_t, states):
        total = states[0] + x_t
        return total, [total]

    last, outputs, states = K.rnn(step, inputs, [K.zeros((2, 1))], mask=mask)
    np.testing.assert_array_equal(K.eval(outputs)[..., 0], [[1, 3, 3, 7], [5, 5, 5, 5]])
    np.testing.assert_array_equal(K.eval(last), [[7], [5]])
    np.testing.assert_array_equal(K.eval(states[0]), [[7], [5]])
    _, backwards, _ = K.rnn(step, inputs, [K.zeros((2, 1))], go_backwards=True)
    np.testing.assert_array_equal(K.eval(backwards)[0, :, 0], [4, 7, 9, 10])


def test_image_ocr_ctc_batch_cost_in_a_lambda_and_ctc_decode():
    """image_ocr: CTC loss of softmax outputs (blank = last class) through a Lambda whose
    output is the loss, `loss={"ctc": lambda y_true, y_pred: y_pred}`; greedy decoding."""
    time_steps, classes, max_label = 6, 4, 2

    def ctc_lambda_func(args):
        y_pred, labels, input_length, label_length = args
        return K.ctc_batch_cost(labels, y_pred, input_length, label_length)

    features = Input(shape=(time_steps, 5), name="the_input")
    y_pred = Dense(classes, activation="softmax", name="softmax")(features)
    labels = Input(name="the_labels", shape=[max_label], dtype="float32")
    input_length = Input(name="input_length", shape=[1], dtype="int64")
    label_length = Input(name="label_length", shape=[1], dtype="int64")
    loss_out = kestrel.layers.Lambda(ctc_lambda_func, output_shape=(1,), name="ctc")(
        [y_pred, labels, input_length, label_length])
    model = Model(inputs=[features, labels, input_length, label_length], outputs=loss_out)
    model.compile(loss={"ctc": lambda y_true, y_pred: y_pred}, optimizer=SGD(lr=0.05))

    rng = np.random.default_rng(6)
    x = rng.random((8, time_steps, 5)).astype("float32")
    lab = rng.integers(0, classes - 1, size=(8, max_label)).astype("float32")
    inputs = {"the_input": x, "the_labels": lab,
              "input_length": np.full((8, 1), time_steps), "label_length": np.full((8, 1), 2)}
    losses = model.fit(inputs, {"ctc": np.zeros(8)}, batch_size=4, epochs=3,
                       verbose=0).history["loss"]
    assert losses[-1] < losses[0]

    probs = Model(features, y_pred).predict(x, verbose=0)
    per_sample = K.eval(K.ctc_batch_cost(lab, probs, np.full((8, 1), time_steps),
                                         np.full((8, 1), 2)))
    log_probs = torch.log_softmax(torch.log(torch.from_numpy(probs) + 1e-7), -1)
    expected = torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1), torch.from_numpy(lab).long(), torch.full((8,), time_steps),
        torch.full((8,), 2), blank=classes - 1, reduction="none")
    assert per_sample.shape == (8, 1)
    np.testing.assert_allclose(per_sample[:, 0], expected.numpy(), rtol=1e-4)

    # greedy decoding: repeats merged, blanks (the last class) dropped, padded with -1
    path = np.eye(classes, dtype="float32")[[[0, 0, 3, 1, 1, 2], [2, 3, 3, 3, 3, 3]]] * 0.9 + 0.025
    decoded, log_prob = K.ctc_decode(path, input_length=np.ones(2) * time_steps, greedy=True)
    np.testing.assert_array_equal(K.get_value(decoded[0]), [[0, 1, 2, -1, -1, -1],
                                                            [2, -1, -1, -1, -1, -1]])
    assert K.int_shape(log_prob) == (2, 1)


def test_keras2_import_spellings_of_tutorial_code():
    """`from keras.utils.data_utils import get_file, Sequence`, `from keras.layers.convolutional
    import UpSampling2D, ZeroPadding2D` (DCGAN tutorials), `from keras.constraints import
    maxnorm`, `keras.initializers.normal`, `from keras.engine.topology import
    get_source_inputs`, `loss="cosine_proximity"`."""
    from kestrel.constraints import maxnorm, nonneg, unitnorm
    from kestrel.engine.topology import get_source_inputs
    from kestrel.initializers import normal, one, uniform, zero
    from kestrel.layers.convolutional import Conv2D as Conv, Cropping2D, UpSampling2D as Up
    from kestrel.layers.convolutional import ZeroPadding1D
    from kestrel.utils.data_utils import Sequence, get_file, pad_sequences

    assert (Conv, Up, Cropping2D, ZeroPadding1D) == (
        Conv2D, UpSampling2D, kestrel.layers.Cropping2D, kestrel.layers.ZeroPadding1D)
    assert get_file is kestrel.utils.get_file and Sequence is kestrel.utils.Sequence
    assert pad_sequences is kestrel.utils.pad_sequences
    assert (maxnorm, nonneg, unitnorm) == (kestrel.constraints.MaxNorm, kestrel.constraints.NonNeg,
                                           kestrel.constraints.UnitNorm)
    assert (zero, one, normal, uniform) == (kestrel.initializers.Zeros, kestrel.initializers.Ones,
                                            kestrel.initializers.RandomNormal,
                                            kestrel.initializers.RandomUniform)
    inp = Input((3,))
    assert get_source_inputs(Dense(2)(inp)) == [inp]
    with pytest.raises(AttributeError, match="Bogus"):
        kestrel.layers.convolutional.Bogus

    model = Sequential([Dense(3, input_shape=(3,), kernel_constraint=maxnorm(2.0))])
    model.compile("sgd", loss="cosine_proximity", metrics=["cosine_proximity"])
    x = np.random.default_rng(7).random((8, 3)).astype("float32")
    history = model.fit(x, x, verbose=0).history
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    prediction = model.predict(x, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, x, verbose=0)[0],
                               -(unit(x) * unit(prediction)).sum(-1).mean(), rtol=1e-5)
    np.testing.assert_allclose(history["cosine_proximity"], history["loss"], rtol=1e-6)


def test_keras2_scikit_learn_wrappers_in_cross_validation_and_grid_search():
    """`from keras.wrappers.scikit_learn import KerasClassifier` tutorials: `build_fn` plus
    sk_params routed by name, string labels, cross_val_score and GridSearchCV (clone)."""
    from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

    from kestrel.wrappers.scikit_learn import KerasClassifier, KerasRegressor

    rng = np.random.default_rng(8)
    x = rng.random((30, 4)).astype("float32")
    labels = np.where(x[:, 0] > 0.5, "yes", "no")
    built = []

    def create_model(optimizer="adam", units=4):
        built.append(units)
        model = Sequential([Dense(units, input_dim=4, activation="relu"),
                            Dense(1, activation="sigmoid")])
        model.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
        return model

    estimator = KerasClassifier(build_fn=create_model, epochs=2, batch_size=10, verbose=0)
    scores = cross_val_score(estimator, x, labels, cv=KFold(n_splits=2))
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    grid = GridSearchCV(KerasClassifier(build_fn=create_model, epochs=1, verbose=0),
                        param_grid={"units": [2, 3]}, cv=2).fit(x, labels)
    assert grid.best_params_["units"] in (2, 3) and {2, 3} <= set(built)
    best = grid.best_estimator_
    assert set(best.predict(x)) <= {"yes", "no"} and best.predict_proba(x[:3]).shape == (3, 2)
    np.testing.assert_allclose(best.predict_proba(x[:3]).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="bogus is not a legal parameter"):
        KerasClassifier(build_fn=create_model, bogus=1)

    def create_regressor():
        model = Sequential([Dense(4, input_dim=4, activation="relu"), Dense(1)])
        model.compile(loss="mean_squared_error", optimizer="adam")
        return model

    regressor = KerasRegressor(build_fn=create_regressor, epochs=1, batch_size=10, verbose=0)
    regressor.fit(x, x.sum(axis=1))
    assert regressor.predict(x).shape == (30,)
    assert regressor.score(x, x.sum(axis=1)) == pytest.approx(
        -regressor.model.evaluate(x, x.sum(axis=1), verbose=0), rel=1e-6)


def test_acgan_combined_model_reports_each_output_of_a_nested_model():
    """mnist_acgan: `fake, aux = discriminator(image)` then `Model(..., [fake, aux])`. Both
    outputs come from one layer (the nested model); their names are made unique as Keras 2
    does, so the two per-output losses are each reported (Keras 3 shows one of them twice)."""
    image = Input((4,))
    features = Dense(4)(image)
    discriminator = Model(image, [Dense(1, activation="sigmoid", name="generation")(features),
                                  Dense(3, activation="softmax", name="auxiliary")(features)],
                          name="discriminator")
    latent = Input((4,))
    fake, aux = discriminator(latent)
    combined = Model(latent, [fake, aux])
    assert combined.output_names == ["discriminator", "discriminator_1"]
    combined.compile(optimizer=Adam(lr=0.001, beta_1=0.5),
                     loss=["binary_crossentropy", "sparse_categorical_crossentropy"])
    rng = np.random.default_rng(9)
    x = rng.random((8, 4)).astype("float32")
    trick, labels = np.full(8, 0.95), rng.integers(0, 3, 8)
    weights = [np.ones(8), np.concatenate([np.full(4, 2.0), np.zeros(4)])]
    total, generation, auxiliary = combined.test_on_batch(x, [trick, labels],
                                                          sample_weight=weights)
    assert combined.metrics_names == ["loss", "discriminator_loss", "discriminator_1_loss"]
    prob, probs = combined.predict(x, verbose=0)
    bce = -(0.95 * np.log(prob[:, 0]) + 0.05 * np.log(1 - prob[:, 0])).mean()
    sce = (-np.log(probs[np.arange(8), labels]) * weights[1]).mean()
    np.testing.assert_allclose([generation, auxiliary], [bce, sce], rtol=1e-4)
    np.testing.assert_allclose(total, bce + sce, rtol=1e-4)
    assert len(combined.train_on_batch(x, [trick, labels], sample_weight=weights)) == 3


def test_k_variable_of_a_caffe_preprocessed_image():
    """`K.variable(preprocess_input(img))`: "caffe" preprocessing flips RGB to BGR with
    `x[..., ::-1]`, a NumPy view with a negative stride."""
    from kestrel.applications import vgg19

    image = np.random.default_rng(10).uniform(0, 255, (1, 4, 4, 3)).astype("float32")
    flipped = vgg19.preprocess_input(image.copy())
    variable = K.variable(flipped)
    np.testing.assert_array_equal(K.get_value(variable), flipped)
    np.testing.assert_array_equal(kestrel.Variable(image[..., ::-1]).numpy(), image[..., ::-1])


def test_image_dim_ordering_legacy_getter_and_setter():
    assert K.image_dim_ordering() == "tf"
    K.set_image_dim_ordering("th")
    try:
        assert K.image_data_format() == "channels_first" and K.image_dim_ordering() == "th"
    finally:
        K.set_image_dim_ordering("tf")
    assert K.image_data_format() == "channels_last"
    with pytest.raises(ValueError, match="dim_ordering='channels_last'"):
        K.set_image_dim_ordering("channels_last")


def test_keras2_callback_arguments_checkpoint_period_hdf5_and_tensorboard(tmp_path):
    """`ModelCheckpoint("weights-improvement-{epoch:02d}-{val_accuracy:.2f}.hdf5", ...)`,
    `ModelCheckpoint(..., save_weights_only=True, period=2)` and TensorBoard's Keras 2
    `batch_size` / `write_grads` (no effect, with a warning)."""
    from kestrel.callbacks import ModelCheckpoint, TensorBoard

    model = Sequential([Dense(2, input_dim=3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(11)
    x = rng.random((16, 3)).astype("float32")
    y = kestrel.utils.to_categorical(rng.integers(0, 2, 16), 2)
    best = ModelCheckpoint(str(tmp_path / "weights-improvement-{epoch:02d}.hdf5"),
                           monitor="val_accuracy", save_best_only=True, mode="max")
    with pytest.warns(DeprecationWarning, match="period"):
        every_two = ModelCheckpoint(str(tmp_path / "w.{epoch:02d}.hdf5"),
                                    save_weights_only=True, period=2)
    with pytest.warns(DeprecationWarning, match="write_grads"):
        board = TensorBoard(log_dir=str(tmp_path / "logs"), histogram_freq=0, batch_size=32,
                            write_graph=True, write_grads=False, write_images=False)
    with pytest.raises(TypeError, match="bogus"):
        TensorBoard(log_dir=str(tmp_path / "logs"), bogus=1)
    model.fit(x, y, epochs=5, verbose=0, validation_data=(x, y),
              callbacks=[best, every_two, board])
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in saved if n.startswith("w.")] == ["w.02.hdf5", "w.04.hdf5"]
    assert "weights-improvement-01.hdf5" in saved
    again = kestrel.models.load_model(str(tmp_path / "weights-improvement-01.hdf5"))
    assert again.output_shape == (None, 2)
    model.load_weights(str(tmp_path / "w.04.hdf5"))


def test_thresholded_relu_layer_of_keras2(tmp_path):
    from kestrel.layers.advanced_activations import ThresholdedReLU

    model = Sequential([Dense(3, input_dim=2), ThresholdedReLU(theta=0.1)])
    assert model.layers[1].name == "thresholded_re_lu"
    x = np.random.default_rng(12).normal(size=(5, 2)).astype("float32")
    hidden = model.layers[0](torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), np.where(hidden > 0.1, hidden, 0.0),
                               rtol=1e-6)
    model.save(str(tmp_path / "t.h5"))
    again = kestrel.models.load_model(str(tmp_path / "t.h5"))
    assert again.layers[1].get_config()["theta"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="theta must be a number >= 0"):
        ThresholdedReLU(theta=-1)


@pytest.mark.parametrize("name, args", [
    ("random_rotation", (30,)), ("random_shift", (0.2, 0.1)), ("random_shear", (20,)),
    ("random_zoom", ((0.8, 1.2),)), ("random_channel_shift", (0.3,)),
])
def test_keras2_random_image_transforms_match_keras(name, args):
    """`from keras.preprocessing.image import random_rotation, ...` (single images, channels
    first by default), against Keras' own legacy implementation with the same NumPy seed."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    from keras.src.legacy.preprocessing import image as keras_image

    from kestrel.preprocessing import image as kestrel_image

    x = np.random.default_rng(13).random((3, 10, 12)).astype("float32")
    np.random.seed(1)
    expected = getattr(keras_image, name)(x, *args)
    np.random.seed(1)
    got = getattr(kestrel_image, name)(x, *args)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_mnist_swwae_where_mask_from_k_gradients_inside_a_lambda():
    """mnist_swwae's `getwhere`: the gradient of the pooled sum with respect to the pooling
    input (a channels-last layer output that the pooling may read through its base)."""
    def getwhere(x):
        y_prepool, y_postpool = x
        return K.gradients(K.sum(y_postpool), y_prepool)

    img_input = Input(shape=(4, 4, 1))
    y_prepool = Activation("relu")(Conv2D(2, 3, padding="same")(img_input))
    y = MaxPooling2D()(y_prepool)
    wheres = kestrel.layers.Lambda(getwhere, output_shape=lambda x: x[0])([y_prepool, y])
    y = kestrel.layers.Multiply()([UpSampling2D()(y), wheres])
    model = Model(img_input, Conv2D(1, 3, padding="same")(y))
    model.compile("adam", "mse")
    x = np.random.default_rng(14).random((4, 4, 4, 1)).astype("float32")
    losses = model.fit(x, x, epochs=3, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]

    prepool = model.layers[2](model.layers[1](torch.from_numpy(x)))
    (where,) = getwhere([prepool, model.layers[3](prepool)])
    pooled = prepool.detach().numpy().reshape(4, 2, 2, 2, 2, 2)
    is_max = pooled == pooled.max(axis=(2, 4), keepdims=True)
    where = K.eval(where).reshape(pooled.shape)
    np.testing.assert_array_equal(where.sum(axis=(2, 4)), 1.0)  # one switch per window
    assert is_max[where == 1].all()


def test_grad_cam_gradients_of_a_class_score_wrt_a_conv_output():
    """Grad-CAM (Deep Learning with Python, Keras 2): `K.gradients(model.output[:, idx],
    last_conv_layer.output)`, pooled, fetched with the conv output by one K.function."""
    model = Sequential([Conv2D(4, 3, padding="same", activation="relu", input_shape=(6, 6, 3),
                               name="block5_conv3"), MaxPooling2D(), Flatten(),
                        Dense(3, activation="softmax")])
    x = np.random.default_rng(15).random((1, 6, 6, 3)).astype("float32")
    idx = int(np.argmax(model.predict(x, verbose=0)[0]))
    last_conv_layer = model.get_layer("block5_conv3")
    grads = K.gradients(model.output[:, idx], last_conv_layer.output)[0]
    pooled_grads = K.mean(grads, axis=(0, 1, 2))
    iterate = K.function([model.input], [pooled_grads, last_conv_layer.output[0]])
    pooled_value, conv_value = iterate([x])

    conv = last_conv_layer(torch.from_numpy(x))
    conv.retain_grad()
    head = model.layers[3](model.layers[2](model.layers[1](conv)))
    head[:, idx].sum().backward()
    np.testing.assert_allclose(pooled_value, conv.grad.mean(dim=(0, 1, 2)).numpy(), rtol=1e-5,
                               atol=1e-8)
    np.testing.assert_allclose(conv_value, conv[0].detach().numpy(), rtol=1e-6)
