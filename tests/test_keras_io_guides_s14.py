"""keras.io guides replayed with Kestrel and with real Keras 3 (torch backend), small synthetic
data: intro_to_keras_for_engineers (keras_core/getting_started_with_keras_core is the same
script), intro_to_keras_for_researchers (its Keras parts, written with `keras.ops` and torch
autograd as the Keras 3 version would), int8_quantization_in_keras, int4_quantization_in_keras,
keras_core/migration_guide_tf_keras_3_0 (its Keras parts), customizing_what_happens_in_fit
(its tf.keras 2 steps, with torch autograd), working_with_rnns, preprocessing_layers,
keras_core/serialization_and_saving and define_custom_kernel (its layers, on a torch kernel)."""
import os
import tempfile

import numpy as np
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (real Keras 3: the reference)

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402
from tests.keras_compare import summary_text  # noqa: E402

RNG = np.random.default_rng(0)
IMAGES = RNG.random((40, 12, 12, 1)).astype("float32")
LABELS = RNG.integers(0, 10, 40)
TEST_IMAGES = RNG.random((8, 12, 12, 1)).astype("float32")
TEST_LABELS = RNG.integers(0, 10, 8)
MLP_X = RNG.random((12, 10)).astype("float32")
MLP_Y = RNG.integers(0, 10, 12)


def _numpy(lib, x):
    return np.asarray(lib.ops.convert_to_numpy(x))


def _assert_histories_close(ours, theirs):
    assert ours.keys() == theirs.keys()
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6)


# --- intro_to_keras_for_engineers -------------------------------------------------------------

def _engineers_convnet(lib):
    """The guide's Sequential MNIST convnet, narrower and on 12x12 images."""
    layers = lib.layers
    return lib.Sequential([
        layers.Input(shape=(12, 12, 1)),
        layers.Conv2D(4, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def _compile_as_engineers(lib, model):
    model.compile(loss=lib.losses.SparseCategoricalCrossentropy(),
                  optimizer=lib.optimizers.Adam(learning_rate=1e-3),
                  metrics=[lib.metrics.SparseCategoricalAccuracy(name="acc")])


def _engineers_first_example(lib, weights):
    lib = fresh(lib)
    model = _engineers_convnet(lib)
    model.set_weights(weights)
    _compile_as_engineers(lib, model)
    folder = tempfile.mkdtemp()
    callbacks = [
        lib.callbacks.ModelCheckpoint(filepath=folder + "/model_at_epoch_{epoch}.keras"),
        lib.callbacks.EarlyStopping(monitor="val_loss", patience=2),
    ]
    history = model.fit(IMAGES, LABELS, batch_size=16, epochs=2, validation_split=0.15,
                        callbacks=callbacks, verbose=0, shuffle=False)
    score = model.evaluate(TEST_IMAGES, TEST_LABELS, verbose=0)
    model.save(folder + "/final_model.keras")
    reloaded = lib.saving.load_model(folder + "/final_model.keras")
    return {"history": history.history, "score": score, "files": sorted(os.listdir(folder)),
            "summary": summary_text(model), "predictions": reloaded.predict(TEST_IMAGES, verbose=0)}


def test_engineers_convnet_trains_checkpoints_and_reloads_as_keras():
    weights = _engineers_convnet(fresh(keras)).get_weights()
    ours, theirs = (_engineers_first_example(lib, weights) for lib in (kestrel, keras))
    _assert_histories_close(ours["history"], theirs["history"])  # Dropout draws alike too
    np.testing.assert_allclose(ours["score"], theirs["score"], rtol=1e-5)
    assert ours["files"] == theirs["files"]  # one checkpoint per epoch, then the final model
    assert ours["summary"] == theirs["summary"]  # optimizer params included
    np.testing.assert_allclose(ours["predictions"], theirs["predictions"], atol=1e-6)


def _engineers_custom_model(lib):
    """MyDense, MyDropout (a SeedGenerator of its own) and MyModel, as in the guide."""

    class MyDense(lib.layers.Layer):
        def __init__(self, units, activation=None, name=None):
            super().__init__(name=name)
            self.units = units
            self.activation = lib.activations.get(activation)

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer=lib.initializers.GlorotNormal(),
                                     name="kernel", trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer=lib.initializers.Zeros(),
                                     name="bias", trainable=True)

        def call(self, inputs):
            return self.activation(lib.ops.matmul(inputs, self.w) + self.b)

    class MyDropout(lib.layers.Layer):
        def __init__(self, rate, name=None):
            super().__init__(name=name)
            self.rate = rate
            self.seed_generator = lib.random.SeedGenerator(1337)

        def call(self, inputs):
            return lib.random.dropout(inputs, self.rate, seed=self.seed_generator)

    class MyModel(lib.Model):
        def __init__(self, num_classes):
            super().__init__()
            self.conv_base = lib.Sequential([
                lib.layers.Conv2D(4, kernel_size=(3, 3), activation="relu"),
                lib.layers.MaxPooling2D(pool_size=(2, 2)),
                lib.layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
                lib.layers.GlobalAveragePooling2D(),
            ])
            self.dp = MyDropout(0.5)
            self.dense = MyDense(num_classes, activation="softmax")

        def call(self, x):
            return self.dense(self.dp(self.conv_base(x)))

    model = MyModel(num_classes=10)
    model(TEST_IMAGES[:1])
    return model


def _data_loader(x, y):
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=False)


def _engineers_custom_fits(lib, weights):
    found = []
    for use_loader in (False, True):
        model = _engineers_custom_model(fresh(lib))
        model.set_weights(weights)
        _compile_as_engineers(lib, model)
        if use_loader:  # the guide's "arbitrary data sources" part, with torch DataLoaders
            history = model.fit(_data_loader(IMAGES, LABELS), epochs=1, verbose=0,
                                validation_data=_data_loader(TEST_IMAGES, TEST_LABELS))
        else:
            history = model.fit(IMAGES, LABELS, batch_size=16, epochs=1, validation_split=0.15,
                                verbose=0, shuffle=False)
        found.append((history.history, [w.path for w in model.weights],
                      model.predict(TEST_IMAGES, verbose=0)))
    return found


def test_engineers_subclassed_model_of_custom_layers_fits_arrays_and_dataloaders_as_keras():
    weights = _engineers_custom_model(fresh(keras)).get_weights()
    for ours, theirs in zip(*(_engineers_custom_fits(lib, weights) for lib in (kestrel, keras))):
        _assert_histories_close(ours[0], theirs[0])  # MyDropout's seeded draws equal Keras'
        assert ours[1] == theirs[1]
        np.testing.assert_allclose(ours[2], theirs[2], atol=1e-6)


# --- int8_quantization_in_keras / int4_quantization_in_keras ----------------------------------

def _quantization_guide(lib, mode, weights):
    """The guides' functional model: quantize in place, compare to float, save and reload."""
    lib = fresh(lib)
    inputs = lib.Input(shape=(10,))
    x = lib.layers.Dense(32, activation="relu")(inputs)
    outputs = lib.layers.Dense(1, name="target")(x)
    model = lib.Model(inputs, outputs)
    model.set_weights(weights)
    x_eval = np.random.default_rng(1).random((32, 10)).astype("float32")
    y_float = model(x_eval)
    model.quantize(mode)
    y_quantized = model(x_eval)
    mse = float(lib.ops.mean(lib.ops.square(y_float - y_quantized)))
    path = os.path.join(tempfile.mkdtemp(), f"{mode}.keras")
    model.save(path)
    reloaded = lib.saving.load_model(path)
    return {
        "mse": mse, "y": _numpy(lib, y_quantized), "y_reloaded": _numpy(lib, reloaded(x_eval)),
        "variables": [(v.path, tuple(v.shape), lib.backend.standardize_dtype(v.dtype), v.trainable)
                      for v in model.weights],
        "reloaded_variables": [(v.path, lib.backend.standardize_dtype(v.dtype))
                               for v in reloaded.weights],
        "values": [_numpy(lib, v) for v in model.weights],
        "config": model.layers[1].get_config(), "params": model.count_params(),
        "policy": reloaded.layers[1].dtype_policy.name,
    }


def test_int8_and_int4_guides_quantize_save_and_reload_as_keras():
    source = fresh(keras)
    inputs = source.Input(shape=(10,))
    hidden = source.layers.Dense(32, activation="relu")(inputs)
    weights = source.Model(inputs, source.layers.Dense(1)(hidden)).get_weights()
    for mode in ("int8", "int4"):
        ours, theirs = (_quantization_guide(lib, mode, weights) for lib in (kestrel, keras))
        np.testing.assert_allclose(ours["mse"], theirs["mse"], rtol=1e-5)
        np.testing.assert_allclose(ours["y"], theirs["y"], atol=1e-6)
        np.testing.assert_array_equal(ours["y_reloaded"], ours["y"])  # quantization survives
        for key in ("variables", "reloaded_variables", "config", "params", "policy"):
            assert ours[key] == theirs[key], key  # int4: packed kernel, scale, zero, g_idx
        for mine, reference in zip(ours["values"], theirs["values"]):
            assert mine.dtype == reference.dtype
            np.testing.assert_allclose(mine, reference, rtol=1e-6)


# --- intro_to_keras_for_researchers -----------------------------------------------------------

def _researchers_layers(lib):
    """Linear (weights made in __init__ and in build), ComputeSum, MLP, ActivityRegularization."""
    ops = lib.ops

    class EagerLinear(lib.layers.Layer):
        def __init__(self, units=32, input_dim=32):
            super().__init__()
            self.w = self.add_weight(shape=(input_dim, units), initializer="random_normal")
            self.b = self.add_weight(shape=(units,), initializer="zeros")

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    class Linear(lib.layers.Layer):
        def __init__(self, units=32):
            super().__init__()
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer="random_normal", trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer="random_normal",
                                     trainable=True)

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    class ComputeSum(lib.layers.Layer):
        def __init__(self, input_dim):
            super().__init__()
            self.total = self.add_weight(shape=(input_dim,), initializer="zeros",
                                         trainable=False)

        def call(self, inputs):
            self.total.assign_add(ops.sum(inputs, axis=0))
            return self.total

    class ActivityRegularization(lib.layers.Layer):
        def __init__(self, rate=1e-2):
            super().__init__()
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * ops.sum(inputs))
            return inputs

    class SparseMLP(lib.layers.Layer):
        def __init__(self):
            super().__init__()
            self.linear_1 = Linear(32)
            self.regularization = ActivityRegularization(1e-2)
            self.linear_3 = Linear(10)

        def call(self, inputs):
            x = ops.relu(self.linear_1(inputs))
            return self.linear_3(self.regularization(x))

    return EagerLinear, Linear, ComputeSum, SparseMLP


def _researchers_tracking(lib):
    lib = fresh(lib)
    EagerLinear, Linear, ComputeSum, SparseMLP = _researchers_layers(lib)
    eager = EagerLinear(units=4, input_dim=2)
    found = {"eager": (tuple(eager(lib.ops.ones((2, 2))).shape),
                       eager.weights == [eager.w, eager.b])}
    my_sum = ComputeSum(2)
    sums = [_numpy(lib, my_sum(lib.ops.ones((2, 2)))).tolist() for _ in range(2)]
    found["sum"] = (sums, my_sum.weights == [my_sum.total],
                    my_sum.non_trainable_weights == [my_sum.total], my_sum.trainable_weights)
    mlp = SparseMLP()
    counts = [len(mlp.losses)]
    for _ in range(2):
        mlp(lib.ops.ones((10, 10)))
        counts.append(len(mlp.losses))  # the last call's losses only
    found["losses"] = (counts, len(mlp.weights), [w.path for w in mlp.weights])
    return found


def test_researchers_layers_track_weights_and_losses_as_keras():
    ours, theirs = (_researchers_tracking(lib) for lib in (kestrel, keras))
    assert ours == theirs
    assert theirs["losses"][0] == [0, 1, 1]


def _torch_training_step(model, optimizer, loss):
    """The guide's GradientTape step, as torch autograd does it for Keras' torch backend."""
    model.zero_grad()
    loss.backward()
    gradients = [v.value.grad for v in model.trainable_weights]
    with torch.no_grad():
        optimizer.apply_gradients(zip(gradients, model.trainable_weights))


def _researchers_sparse_mlp_loop(lib, weights):
    lib = fresh(lib)
    mlp = _researchers_layers(lib)[3]()
    x, y = MLP_X, MLP_Y
    mlp(x[:1])
    mlp.set_weights(weights)
    loss_fn = lib.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = lib.optimizers.SGD(learning_rate=1e-3)
    accuracy = lib.metrics.SparseCategoricalAccuracy()
    losses = []
    for start in (0, 4, 8):
        xb, yb = x[start:start + 4], y[start:start + 4]
        logits = mlp(xb)
        loss = loss_fn(yb, logits) + sum(mlp.losses)
        _torch_training_step(mlp, optimizer, loss)
        accuracy.update_state(yb, logits)
        losses.append(float(loss))
    result = float(accuracy.result())
    accuracy.reset_state()
    return losses, result, float(accuracy.result()), mlp.get_weights()


def test_researchers_training_loop_with_added_losses_as_keras():
    reference = fresh(keras)
    mlp = _researchers_layers(reference)[3]()
    mlp(np.ones((1, 10), "float32"))
    weights = mlp.get_weights()
    ours, theirs = (_researchers_sparse_mlp_loop(lib, weights) for lib in (kestrel, keras))
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5)
    assert ours[1:3] == theirs[1:3]
    for mine, reference_weight in zip(ours[3], theirs[3]):
        np.testing.assert_allclose(mine, reference_weight, rtol=1e-5, atol=1e-7)


def _f1_score_class(lib):
    """The guide's F1Score metric, its tf ops written with `keras.ops`."""
    ops = lib.ops

    class F1Score(lib.metrics.Metric):
        def __init__(self, name="f1_score", dtype="float32", threshold=0.5, **kwargs):
            super().__init__(name=name, dtype=dtype, **kwargs)
            self.threshold = 0.5
            self.true_positives = self.add_weight(name="tp", dtype=dtype, initializer="zeros")
            self.false_positives = self.add_weight(name="fp", dtype=dtype, initializer="zeros")
            self.false_negatives = self.add_weight(name="fn", dtype=dtype, initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = ops.greater_equal(y_pred, self.threshold)
            y_true = ops.cast(y_true, "bool")
            true_positives = ops.cast(ops.logical_and(y_true, y_pred), self.dtype)
            false_positives = ops.cast(ops.logical_and(ops.logical_not(y_true), y_pred),
                                       self.dtype)
            false_negatives = ops.cast(ops.logical_and(y_true, ops.logical_not(y_pred)),
                                       self.dtype)
            if sample_weight is not None:
                sample_weight = ops.cast(sample_weight, self.dtype)
                true_positives = true_positives * sample_weight
                false_positives = false_positives * sample_weight
                false_negatives = false_negatives * sample_weight
            self.true_positives.assign_add(ops.sum(true_positives))
            self.false_positives.assign_add(ops.sum(false_positives))
            self.false_negatives.assign_add(ops.sum(false_negatives))

        def result(self):
            precision = self.true_positives / (self.true_positives + self.false_positives)
            recall = self.true_positives / (self.true_positives + self.false_negatives)
            return precision * recall * 2.0 / (precision + recall)

        def reset_state(self):
            for variable in self.variables:
                variable.assign(0)

    return F1Score


def _f1_scores(lib):
    metric = _f1_score_class(fresh(lib))()
    metric.update_state(np.array([0, 1, 0, 0]), np.array([0.3, 0.5, 0.8, 0.9]))
    found = [float(metric.result())]
    metric.update_state(np.array([1, 1, 1, 1]), np.array([0.1, 0.7, 0.6, 0.0]))
    found.append(float(metric.result()))
    metric.reset_state()
    return found, [v.path for v in metric.variables], metric.get_config()


def test_researchers_f1_score_metric_as_keras():
    ours, theirs = (_f1_scores(lib) for lib in (kestrel, keras))
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    assert ours[1:] == theirs[1:]


def _custom_fit_model(lib):
    """The guide's CustomModel: its own loss, optimizer and metrics, `compile()` bare."""

    class CustomModel(lib.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = lib.metrics.Mean(name="loss")
            self.accuracy = lib.metrics.SparseCategoricalAccuracy()
            self.loss_fn = lib.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.optimizer = lib.optimizers.Adam(learning_rate=1e-3)

        def train_step(self, data):
            x, y = data
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred)
            _torch_training_step(self, self.optimizer, loss)
            self.loss_tracker.update_state(loss)
            self.accuracy.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy.result()}

        @property
        def metrics(self):
            return [self.loss_tracker, self.accuracy]

    inputs = lib.Input(shape=(10,), dtype="float32")
    x = lib.layers.Dense(32, activation="relu")(inputs)
    return CustomModel(inputs, lib.layers.Dense(10)(x))


def _custom_fit(lib, weights):
    model = _custom_fit_model(fresh(lib))
    model.set_weights(weights)
    model.compile()
    history = model.fit(MLP_X, MLP_Y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    optimizer = model.optimizer  # compile()'s default replaced the guide's Adam, as in Keras 3
    return (history.history, (type(optimizer).__name__, int(optimizer.iterations)),
            model.get_weights())


def test_researchers_custom_model_with_its_own_optimizer_fits_as_keras():
    weights = _custom_fit_model(fresh(keras)).get_weights()
    ours, theirs = (_custom_fit(lib, weights) for lib in (kestrel, keras))
    _assert_histories_close(ours[0], theirs[0])
    assert ours[1] == theirs[1] == ("RMSprop", 6)
    for mine, reference in zip(ours[2], theirs[2]):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-6)


def _researchers_vae(lib):
    """Sampling, Encoder, Decoder and VariationalAutoEncoder (a Layer adding a KL loss)."""
    ops, layers = lib.ops, lib.layers

    class Sampling(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = lib.random.SeedGenerator(1337)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            epsilon = lib.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    class Encoder(layers.Layer):
        def __init__(self, latent_dim=32, intermediate_dim=64, **kwargs):
            super().__init__(**kwargs)
            self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
            self.dense_mean = layers.Dense(latent_dim)
            self.dense_log_var = layers.Dense(latent_dim)
            self.sampling = Sampling()

        def call(self, inputs):
            x = self.dense_proj(inputs)
            z_mean, z_log_var = self.dense_mean(x), self.dense_log_var(x)
            return z_mean, z_log_var, self.sampling((z_mean, z_log_var))

    class Decoder(layers.Layer):
        def __init__(self, original_dim, intermediate_dim=64, **kwargs):
            super().__init__(**kwargs)
            self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
            self.dense_output = layers.Dense(original_dim, activation="sigmoid")

        def call(self, inputs):
            return self.dense_output(self.dense_proj(inputs))

    class VariationalAutoEncoder(layers.Layer):
        def __init__(self, original_dim, intermediate_dim=64, latent_dim=32, **kwargs):
            super().__init__(**kwargs)
            self.encoder = Encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim)
            self.decoder = Decoder(original_dim, intermediate_dim=intermediate_dim)

        def call(self, inputs):
            z_mean, z_log_var, z = self.encoder(inputs)
            self.add_loss(-0.5 * ops.mean(z_log_var - ops.square(z_mean) - ops.exp(z_log_var)
                                          + 1))
            return self.decoder(z)

    return VariationalAutoEncoder(original_dim=10, intermediate_dim=8, latent_dim=4)


def _vae_loop(lib, weights):
    vae = _researchers_vae(fresh(lib))
    vae(MLP_X[:1])
    vae.set_weights(weights)
    loss_fn = lib.losses.MeanSquaredError()
    optimizer = lib.optimizers.Adam(learning_rate=1e-3)
    losses = []
    for start in (0, 4, 8):
        x = MLP_X[start:start + 4]
        loss = loss_fn(x, vae(x)) + sum(vae.losses)
        _torch_training_step(vae, optimizer, loss)
        losses.append(float(loss))
    return losses, [w.path for w in vae.weights]


def test_researchers_vae_layer_trains_with_its_kl_loss_as_keras():
    reference = _researchers_vae(fresh(keras))
    reference(MLP_X[:1])
    ours, theirs = (_vae_loop(lib, reference.get_weights()) for lib in (kestrel, keras))
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5)  # seeded normal draws alike
    assert ours[1] == theirs[1]


# --- keras_core/migration_guide_tf_keras_3_0 (its Keras parts) --------------------------------

def _raised(call):
    try:
        call()
    except Exception as error:  # noqa: BLE001  (the type and message are compared)
        return error
    raise AssertionError("no error raised")


def test_migration_saved_model_paths_are_refused_as_keras(tmp_path):
    os.makedirs(tmp_path / "saved_model")
    for lib in (kestrel, keras):
        model = fresh(lib).Sequential([lib.layers.Dense(2)])
        model(np.random.default_rng(0).random((3, 5)))
        saving = _raised(lambda: model.save(str(tmp_path / "saved_model")))
        loading = _raised(lambda: lib.models.load_model(str(tmp_path / "saved_model")))
        assert type(saving) is type(loading) is ValueError
        assert "model.export(filepath)" in str(saving)  # the way to a SavedModel now
        assert "SavedModel format is not supported by `load_model()`" in str(loading)


def _multi_output_model(lib, metrics, weights=None):
    layers = lib.layers
    inputs = layers.Input(shape=(10,))
    x1 = layers.Dense(5, activation="relu")(inputs)
    x2 = layers.Dense(5, activation="relu")(x1)
    output_1 = layers.Dense(5, activation="softmax", name="output_1")(x1)
    output_2 = layers.Dense(5, activation="softmax", name="output_2")(x2)
    model = lib.Model(inputs=inputs, outputs=[output_1, output_2])
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=metrics)
    return model


def test_migration_multi_output_metrics_go_one_per_output_as_keras():
    """A list of metrics as long as the outputs gives each output its own (Keras 3; tf.keras 2
    gave every output all of them)."""
    x = np.random.default_rng(2).uniform(size=[10, 10]).astype("float32")
    y = np.random.default_rng(3).uniform(size=[10, 5]).astype("float32")
    weights = _multi_output_model(fresh(keras), None).get_weights()
    for metrics in (["categorical_crossentropy", "categorical_crossentropy"], ["mae", "mse"],
                    [["mae", "mse"], "mae"]):
        ours, theirs = (
            _multi_output_model(fresh(lib), metrics, weights).evaluate(
                x, [y, y], verbose=0, return_dict=True) for lib in (kestrel, keras))
        assert ours.keys() == theirs.keys(), metrics
        np.testing.assert_allclose(list(ours.values()), list(theirs.values()), rtol=1e-5)
    model = _multi_output_model(fresh(kestrel), None)
    with np.testing.assert_raises_regex(ValueError, "one target per output"):
        model.evaluate(x, y, verbose=0)  # Keras fails too (a KeyError or a tree ValueError)


def _none_layer_call(lib):
    """The guide's layer whose `call` returns None, called on a symbolic input."""

    class ReturnsNone(lib.layers.Layer):
        def call(self, inputs):
            return None

    return ReturnsNone()(lib.Input(shape=(1,)))


def _migration_custom_layers(lib):
    lib = fresh(lib)
    layers = lib.layers

    class MyCustomLayer(layers.Layer):
        def __init__(self, units):
            super().__init__()
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=[input_shape[-1], self.units], initializer="zeros")
            self.b = self.add_weight(shape=[self.units], initializer="zeros")

        def call(self, inputs):
            return lib.ops.matmul(inputs, self.w) + self.b

    class TakesFoo(layers.Layer):
        def call(self, inputs):
            return inputs["foo"]

    data = np.random.default_rng(4).uniform(size=[3, 3])
    model = lib.models.Sequential([MyCustomLayer(3)])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(data, data, verbose=0).history
    foo = lib.Input(shape=(1,), name="foo")
    dropped = layers.Dropout(rate=0.3, seed=42)(np.array([[1, 2], [3, 4]]), training=True)
    return {
        "history": history,
        "trainable": [v.path for v in model.layers[0].trainable_variables],
        "none_output": type(_raised(lambda: _none_layer_call(lib))),
        "none_input": tuple(TakesFoo()({"foo": foo, "bar": {"baz": None}}).shape),
        "dropout": _numpy(lib, dropped).tolist(),
        "squeezed": tuple(lib.ops.squeeze(layers.Input([2, 2, 1])).shape),
        "renamed": [hasattr(lib.mixed_precision, name) for name in
                    ("DTypePolicy", "set_dtype_policy", "LossScaleOptimizer")],
    }


def test_migration_custom_layers_seeds_and_ops_as_keras():
    ours, theirs = (_migration_custom_layers(lib) for lib in (kestrel, keras))
    _assert_histories_close(ours.pop("history"), theirs.pop("history"))
    assert ours == theirs
    assert theirs["none_output"] is AttributeError
    assert "returned None" in str(_raised(lambda: _none_layer_call(kestrel)))


def test_migration_guides_renamed_ops_all_exist_as_in_keras():
    names = ["absolute", "all", "amax", "amin", "any", "append", "arange", "arccos", "arctan2",
             "array", "average", "clip", "conjugate", "copy", "diagonal", "dot", "empty", "flip",
             "full_like", "take", "identity", "isclose", "logaddexp", "moveaxis", "ndim", "outer",
             "power", "ravel", "std", "swapaxes", "take_along_axis", "tensordot", "true_divide",
             "var", "vdot", "nonzero", "conv", "conv_transpose", "depthwise_conv",
             "separable_conv", "sparse_categorical_crossentropy", "extract_sequences",
             "scatter_update", "slice_update", "fft2", "istft"]
    assert [n for n in names if not hasattr(kestrel.ops, n)] == \
        [n for n in names if not hasattr(keras.ops, n)] == []
    assert hasattr(kestrel.ops.image, "affine_transform")
    assert hasattr(kestrel.optimizers, "LossScaleOptimizer") and hasattr(kestrel.utils, "normalize")


# --- customizing_what_happens_in_fit (its tf.keras 2 steps, with torch autograd) ---------------

FIT_X = RNG.random((24, 6)).astype("float32")
FIT_Y = RNG.random((24, 1)).astype("float32")
FIT_WEIGHTS = RNG.random((24, 1)).astype("float32")


def _unpack(data):
    if len(data) == 3:
        return data
    return (*data, None)


def _keras2_steps(lib):
    """The guide's train_step / test_step, on the compiled_loss / compiled_metrics Kestrel keeps
    for tf.keras 2 code (Keras 3 has neither)."""

    class CustomModel(lib.Model):
        def train_step(self, data):
            x, y, sample_weight = _unpack(data)
            y_pred = self(x, training=True)
            loss = self.compiled_loss(y, y_pred, sample_weight=sample_weight,
                                      regularization_losses=self.losses)
            _torch_training_step(self, self.optimizer, loss)
            self.compiled_metrics.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            self.compiled_loss(y, y_pred, regularization_losses=self.losses)
            self.compiled_metrics.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    return CustomModel


def _keras3_steps(lib):
    """The same steps as Keras 3 writes them: compute_loss, then every metric updated."""

    class CustomModel(lib.Model):
        def train_step(self, data):
            x, y, sample_weight = _unpack(data)
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            _torch_training_step(self, self.optimizer, loss)
            return self._update_metrics(loss, y, y_pred, sample_weight)

        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            return self._update_metrics(loss, y, y_pred, None)

        def _update_metrics(self, loss, y, y_pred, sample_weight):
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

    return CustomModel


def _guide_runs(lib, model_class, weights):
    found = []
    for sample_weight in (None, FIT_WEIGHTS):
        lib = fresh(lib)
        inputs = lib.Input(shape=(6,))
        model = model_class(lib)(inputs, lib.layers.Dense(1)(inputs))
        model.set_weights(weights)
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        history = model.fit(FIT_X, FIT_Y, sample_weight=sample_weight, batch_size=8, epochs=2,
                            verbose=0, shuffle=False).history
        found.append((history, model.evaluate(FIT_X, FIT_Y, batch_size=8, verbose=0,
                                              return_dict=True)))
    return found


def test_customizing_fit_keras2_steps_train_as_keras3_steps_do_in_keras():
    source = fresh(keras)
    inputs = source.Input(shape=(6,))
    weights = source.Model(inputs, source.layers.Dense(1)(inputs)).get_weights()
    ours = _guide_runs(kestrel, _keras2_steps, weights)
    theirs = _guide_runs(keras, _keras3_steps, weights)
    for (history, scores), (reference, reference_scores) in zip(ours, theirs):
        _assert_histories_close(history, reference)
        _assert_histories_close(scores, reference_scores)


# --- working_with_rnns ------------------------------------------------------------------------

def _rnn_guide_summaries(lib):
    lib = fresh(lib)
    layers = lib.layers
    first = lib.Sequential()
    first.add(layers.Embedding(input_dim=1000, output_dim=8))
    first.add(layers.LSTM(16))
    first.add(layers.Dense(10))
    stacked = lib.Sequential([layers.Input((None,), dtype="int32"),
                              layers.Embedding(input_dim=1000, output_dim=8),
                              layers.GRU(16, return_sequences=True), layers.SimpleRNN(8),
                              layers.Dense(10)])
    encoder_input = layers.Input(shape=(None,))
    encoder_embedded = layers.Embedding(input_dim=100, output_dim=8)(encoder_input)
    output, state_h, state_c = layers.LSTM(8, return_state=True, name="encoder")(
        encoder_embedded)
    decoder_input = layers.Input(shape=(None,))
    decoder_embedded = layers.Embedding(input_dim=200, output_dim=8)(decoder_input)
    decoder_output = layers.LSTM(8, name="decoder")(decoder_embedded,
                                                    initial_state=[state_h, state_c])
    seq2seq = lib.Model([encoder_input, decoder_input], layers.Dense(10)(decoder_output))
    bidirectional = lib.Sequential()
    bidirectional.add(layers.Input((5, 10)))
    bidirectional.add(layers.Bidirectional(layers.LSTM(8, return_sequences=True)))
    bidirectional.add(layers.Bidirectional(layers.LSTM(4)))
    bidirectional.add(layers.Dense(10))
    return [summary_text(model) for model in (first, stacked, seq2seq, bidirectional)]


def test_rnn_guide_models_summarize_as_keras():
    for ours, theirs in zip(*(_rnn_guide_summaries(lib) for lib in (kestrel, keras))):
        assert ours == theirs


PARAGRAPHS = [RNG.random((4, 3, 5)).astype("float32") for _ in range(3)]


def _stateful_lstm(lib, weights):
    lstm_layer = fresh(lib).layers.LSTM(6, stateful=True)
    lstm_layer(PARAGRAPHS[0])
    lstm_layer.set_weights(weights)
    lstm_layer.reset_states()
    outputs = [_numpy(lib, lstm_layer(paragraph)) for paragraph in PARAGRAPHS[:2]]
    existing_state = lstm_layer.states
    new_lstm_layer = lib.layers.LSTM(6)
    new_lstm_layer(PARAGRAPHS[2])
    new_lstm_layer.set_weights(weights)
    outputs.append(_numpy(lib, new_lstm_layer(PARAGRAPHS[2], initial_state=existing_state)))
    lstm_layer.reset_states()
    outputs.append(_numpy(lib, lstm_layer(PARAGRAPHS[0])))
    return outputs, len(lstm_layer.weights)


def test_rnn_guide_stateful_lstm_and_state_reuse_as_keras():
    reference = fresh(keras).layers.LSTM(6)
    reference(PARAGRAPHS[0])
    ours, theirs = (_stateful_lstm(lib, reference.get_weights()) for lib in (kestrel, keras))
    for mine, expected in zip(ours[0], theirs[0]):
        np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[0][3], ours[0][0], rtol=1e-6)  # reset to zero states
    assert ours[1] == theirs[1] == 3  # the states are not weights


FIT_SEQUENCES = RNG.random((16, 6, 6)).astype("float32")
FIT_LABELS = RNG.integers(0, 10, 16)


def _lstm_models(lib, allow_cudnn_kernel):
    layers = lib.layers
    if allow_cudnn_kernel:
        lstm_layer = layers.LSTM(8)
    else:
        lstm_layer = layers.RNN(layers.LSTMCell(8))
    return lib.Sequential([layers.Input((None, 6)), lstm_layer,
                           layers.BatchNormalization(), layers.Dense(10)])


def _cudnn_and_cell_fits(lib, weights):
    found = []
    for allow_cudnn_kernel in (True, False):
        model = _lstm_models(fresh(lib), allow_cudnn_kernel)
        model.set_weights(weights)
        model.compile(loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer="sgd", metrics=["accuracy"])
        history = model.fit(FIT_SEQUENCES, FIT_LABELS, validation_data=(FIT_SEQUENCES, FIT_LABELS),
                            batch_size=8, epochs=1, verbose=0, shuffle=False)
        found.append((history.history, model.predict_on_batch(FIT_SEQUENCES[:1])))
    return found


def test_rnn_guide_lstm_layer_and_lstm_cell_models_train_alike_and_as_keras():
    weights = _lstm_models(fresh(keras), True).get_weights()
    ours, theirs = (_cudnn_and_cell_fits(lib, weights) for lib in (kestrel, keras))
    for (history, prediction), (reference, expected) in zip(ours, theirs):
        _assert_histories_close(history, reference)
        np.testing.assert_allclose(prediction, expected, rtol=1e-5, atol=1e-6)
    _assert_histories_close(ours[0][0], ours[1][0])  # LSTM(8) is RNN(LSTMCell(8))


def _nested_cell(lib):
    """The guide's NestedCell: a (vector, matrix) input and state per step."""
    ops = lib.ops

    class NestedCell(lib.layers.Layer):
        def __init__(self, unit_1, unit_2, unit_3, **kwargs):
            self.unit_1, self.unit_2, self.unit_3 = unit_1, unit_2, unit_3
            self.state_size = [(unit_1,), (unit_2, unit_3)]
            self.output_size = [(unit_1,), (unit_2, unit_3)]
            super().__init__(**kwargs)

        def build(self, input_shapes):
            i1, (i2, i3) = input_shapes[0][1], input_shapes[1][1:]
            self.kernel_1 = self.add_weight(shape=(i1, self.unit_1), initializer="uniform",
                                            name="kernel_1")
            self.kernel_2_3 = self.add_weight(shape=(i2, i3, self.unit_2, self.unit_3),
                                              initializer="uniform", name="kernel_2_3")

        def call(self, inputs, states):
            input_1, input_2 = lib.tree.flatten(inputs)
            s1, s2 = states
            output_1 = ops.matmul(input_1, self.kernel_1)
            output_2_3 = ops.einsum("bij,ijkl->bkl", input_2, self.kernel_2_3)
            return (output_1, output_2_3), (s1 + output_1, s2 + output_2_3)

    return NestedCell


def _nested_rnn_call(lib):
    lib = fresh(lib)
    rnn = lib.layers.RNN(_nested_cell(lib)(3, 2, 4))
    input_1, input_2 = lib.Input((None, 5)), lib.Input((None, 2, 3))
    return _raised(lambda: rnn((input_1, input_2)))


def test_rnn_guide_nested_cell_is_refused_as_keras_3_does():
    """Keras 3's RNN takes one (batch, timesteps, features) input: the guide's nested one fails
    in Keras (an IndexError in the cell's build, handed only the first input) and in Kestrel
    (a ValueError naming the shapes)."""
    assert isinstance(_nested_rnn_call(keras), IndexError)
    error = _nested_rnn_call(kestrel)
    assert isinstance(error, ValueError) and "(batch, timesteps, features)" in str(error)


# --- preprocessing_layers ---------------------------------------------------------------------
# Keras' lookup, text and hashing layers need TensorFlow, which the reference environment lacks:
# the expected values below are what the guide's rendered page prints from real Keras.

ODYSSEY = [
    "ξεῖν᾽, ἦ τοι μὲν ὄνειροι ἀμήχανοι ἀκριτόμυθοι",
    "γίγνοντ᾽, οὐδέ τι πάντα τελείεται ἀνθρώποισι.",
    "δοιαὶ γάρ τε πύλαι ἀμενηνῶν εἰσὶν ὀνείρων:",
    "αἱ μὲν γὰρ κεράεσσι τετεύχαται, αἱ δ᾽ ἐλέφαντι:",
    "τῶν οἳ μέν κ᾽ ἔλθωσι διὰ πριστοῦ ἐλέφαντος,",
    "οἵ ῥ᾽ ἐλεφαίρονται, ἔπε᾽ ἀκράαντα φέροντες:",
    "οἱ δὲ διὰ ξεστῶν κεράων ἔλθωσι θύραζε,",
    "οἵ ῥ᾽ ἔτυμα κραίνουσι, βροτῶν ὅτε κέν τις ἴδηται.",
]
ODYSSEY_TOKENS = [[37, 12, 25, 5, 9, 20, 21, 0, 0], [51, 34, 27, 33, 29, 18, 0, 0, 0],
                  [49, 52, 30, 31, 19, 46, 10, 0, 0], [7, 5, 50, 43, 28, 7, 47, 17, 0],
                  [24, 35, 39, 40, 3, 6, 32, 16, 0], [4, 2, 15, 14, 22, 23, 0, 0, 0],
                  [36, 48, 6, 38, 42, 3, 45, 0, 0], [4, 2, 13, 41, 53, 8, 44, 26, 11]]
DICKINSON = ["The Brain is wider than the Sky", "For put them side by side",
             "The one the other will contain", "With ease and You beside"]
DEEPER = ["The Brain is deeper than the sea"]
BIGRAM_HITS = [0, 1, 16, 17, 18, 28, 36, 37]  # the multi-hot ones of DEEPER over 41 bigrams


def test_preprocessing_guide_normalization_adapts_as_keras():
    data = np.array([[0.1, 0.2, 0.3], [0.8, 0.9, 1.0], [1.5, 1.6, 1.7]])
    found = []
    for lib in (kestrel, keras):
        layer = lib.layers.Normalization()
        layer.adapt(data)
        found.append(_numpy(lib, layer(data)))
    np.testing.assert_allclose(found[0], found[1], rtol=1e-5, atol=1e-6)


def _adapted(layer, data):
    layer.adapt(data)
    return layer


def test_preprocessing_guide_lookups_encode_as_the_guide_prints():
    layers = kestrel.layers
    tokens = _adapted(layers.TextVectorization(), ODYSSEY)(ODYSSEY)
    np.testing.assert_array_equal(_numpy(kestrel, tokens), ODYSSEY_TOKENS)
    lookup = layers.StringLookup(vocabulary=["a", "b", "c", "d"])
    np.testing.assert_array_equal(
        _numpy(kestrel, lookup(np.array([["a", "c", "d"], ["d", "z", "b"]]))),
        [[1, 3, 4], [4, 0, 2]])
    one_hot = _adapted(layers.StringLookup(output_mode="one_hot"),
                       np.array([["a"], ["b"], ["c"], ["b"], ["c"], ["a"]]))
    np.testing.assert_array_equal(
        _numpy(kestrel, one_hot(np.array([["a"], ["b"], ["c"], ["d"], ["e"], [""]]))),
        np.eye(4)[[3, 2, 1, 0, 0, 0]])
    integers = _adapted(layers.IntegerLookup(output_mode="one_hot"),
                        np.array([[10], [20], [20], [10], [30], [0]]))
    np.testing.assert_array_equal(
        _numpy(kestrel, integers(np.array([[10], [10], [20], [50], [60], [0]]))),
        np.eye(5)[[2, 2, 1, 0, 0, 4]])
    hashed = layers.CategoryEncoding(num_tokens=64, output_mode="multi_hot")(
        layers.Hashing(num_bins=64, salt=1337)(RNG.integers(0, 100000, size=(50, 1))))
    assert tuple(hashed.shape) == (50, 64)


def test_preprocessing_guide_text_vectorization_modes_as_the_guide_prints():
    layers = kestrel.layers
    ints = _adapted(layers.TextVectorization(output_mode="int"), DICKINSON)
    np.testing.assert_array_equal(_numpy(kestrel, ints(DEEPER)), [[2, 19, 14, 1, 9, 2, 1]])
    multi_hot = _adapted(layers.TextVectorization(output_mode="multi_hot", ngrams=2), DICKINSON)
    assert multi_hot.vocabulary_size() == 41
    np.testing.assert_array_equal(_numpy(kestrel, multi_hot(DEEPER)),
                                  np.eye(41)[BIGRAM_HITS].sum(axis=0, keepdims=True))
    tf_idf = _adapted(layers.TextVectorization(output_mode="tf_idf", ngrams=2), DICKINSON)
    expected = np.zeros((1, 41))
    expected[0, BIGRAM_HITS] = [5.461647, 1.6945957] + [1.0986123] * 6
    np.testing.assert_allclose(_numpy(kestrel, tf_idf(DEEPER)), expected, rtol=1e-5)
    strings = kestrel.Input(shape=(1,), dtype="string")  # the guide's end-to-end model
    inputs = kestrel.Input(shape=(41,))
    scorer = kestrel.Model(inputs, layers.Dense(1)(inputs))
    end_to_end = kestrel.Model(strings, scorer(tf_idf(strings)))
    assert tuple(end_to_end(np.array([["The one the other will absorb"]])).shape) == (1, 1)


# --- keras_core/serialization_and_saving ------------------------------------------------------

def _serialization_guide(lib, tmp_path):
    lib = fresh(lib)
    registered = lib.saving.get_custom_objects()
    kept = dict(registered)  # other tests' registrations survive this guide
    registered.clear()
    try:
        return _serialization_guide_body(lib, tmp_path)
    finally:
        registered.clear()
        registered.update(kept)


def _serialization_guide_body(lib, tmp_path):

    @lib.saving.register_keras_serializable(package="MyLayers")
    class CustomLayer(lib.layers.Layer):
        def __init__(self, factor):
            super().__init__()
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {"factor": self.factor}

    @lib.saving.register_keras_serializable(package="my_package", name="custom_fn")
    def custom_fn(x):
        return x**2

    inputs = lib.Input(shape=(4,))
    model = lib.Model(inputs, lib.layers.Dense(1, activation=custom_fn)(CustomLayer(0.5)(inputs)))
    model.compile(optimizer="rmsprop", loss="mean_squared_error")
    path = str(tmp_path / f"{lib.__name__}.keras")
    model.save(path)
    x = np.random.default_rng(0).random((4, 4))
    with lib.saving.custom_object_scope({"CustomLayer": CustomLayer, "custom_fn": custom_fn}):
        scoped = lib.models.load_model(path)
    regularizer = lib.saving.serialize_keras_object(lib.regularizers.L1(0.005))
    found = {
        "same": np.allclose(model.predict(x, verbose=0), scoped.predict(x, verbose=0)),
        "names": (lib.saving.get_registered_name(CustomLayer),
                  lib.saving.get_registered_name(custom_fn)),
        "regularizer": regularizer,
        "modules": [lib.saving.serialize_keras_object(obj)["module"] for obj in (
            lib.layers.Dense(2), lib.initializers.GlorotUniform(), lib.constraints.MaxNorm(),
            lib.losses.MeanSquaredError(), lib.metrics.Mean(),
            lib.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))],
        "clone": [layer.name for layer in lib.models.clone_model(model).layers],
        "json": lib.models.model_from_json(model.to_json()).get_config()["layers"][1]["config"],
    }
    return found


def test_serialization_guide_registers_serializes_and_reloads_as_keras(tmp_path):
    ours, theirs = (_serialization_guide(lib, tmp_path) for lib in (kestrel, keras))
    assert ours == theirs  # public modules: `keras.regularizers`, not Kestrel's own paths
    assert theirs["same"] and theirs["regularizer"]["module"] == "keras.regularizers"


# --- define_custom_kernel (Pallas is JAX-only: the same layers on a torch autograd.Function) ---

class _FusedMatmulRelu(torch.autograd.Function):
    """The guide's fused matmul + ReLU with its hand-written backward pass."""

    @staticmethod
    def forward(ctx, x, w):
        y = torch.relu(x @ w)
        ctx.save_for_backward(x, w, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, y = ctx.saved_tensors
        grad_relu = g * (y > 0)
        return grad_relu @ w.T, x.T @ grad_relu


def _kernel_layers(lib):
    class StandardDenseReLU(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer="glorot_uniform", trainable=True)

        def call(self, inputs):
            return lib.ops.relu(lib.ops.matmul(inputs, self.w))

    class FusedDenseTrainable(StandardDenseReLU):
        def call(self, inputs):
            return _FusedMatmulRelu.apply(inputs, self.w.value)

    return StandardDenseReLU, FusedDenseTrainable


KERNEL_X = RNG.random((16, 8)).astype("float32")


def _kernel_fits(lib, weights):
    found = []
    for layer_class in _kernel_layers(fresh(lib)):
        model = lib.Sequential([lib.Input((8,)), layer_class(8)])
        model.set_weights(weights)
        model.compile(optimizer="adam", loss="mse")
        found.append(model.fit(KERNEL_X, np.ones((16, 8), "float32"), batch_size=8, verbose=0,
                               shuffle=False).history)
    return found, isinstance(_kernel_layers(lib)[1](2), lib.Layer)


def test_custom_kernel_guide_layers_train_alike_and_as_keras():
    weights = [np.random.default_rng(12).normal(size=(8, 8)).astype("float32")]
    (ours, our_alias), (theirs, their_alias) = (_kernel_fits(lib, weights)
                                                for lib in (kestrel, keras))
    for history, reference in zip(ours + [ours[0]], theirs + [ours[1]]):
        _assert_histories_close(history, reference)  # fused == standard, in both libraries
    assert our_alias and their_alias  # `keras.Layer`, the guide's spelling
