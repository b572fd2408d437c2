"""Keras 2 names: callbacks.BaseLogger, utils.HDF5Matrix (io_utils), layers.AtrousConvolution1D
/ 2D (Keras 1 arguments) and utils.multi_gpu_model, checked against real Keras where it has
the equivalent (Conv1D / Conv2D with dilation_rate, fit's epoch logs)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402  (the trusted reference)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel.utils import multi_gpu_utils  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 4)).astype("float32")
Y = RNG.standard_normal((12, 2)).astype("float32")


def _dense_pair():
    """The same Dense model in Keras and Kestrel, with equal weights, compiled alike."""
    models = []
    for lib in (keras, kestrel):
        inputs = lib.Input((4,))
        model = lib.Model(inputs, lib.layers.Dense(2)(inputs))
        model.compile(lib.optimizers.SGD(0.1), "mse")
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    return models


# ------------------------------------------------------------------ BaseLogger
def test_base_logger_keeps_keras_epoch_averages():
    reference, model = _dense_pair()
    logger = kestrel.callbacks.BaseLogger(stateful_metrics=["lr"])
    assert logger.stateful_metrics == {"lr"}
    assert kestrel.callbacks.BaseLogger().stateful_metrics == set()
    seen = []
    after = kestrel.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(dict(logs)))
    ours = model.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                     validation_split=0.25, callbacks=[logger, after]).history
    theirs = reference.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0,
                           validation_split=0.25).history
    assert sorted(ours) == sorted(theirs) == ["loss", "val_loss"]
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5)
        np.testing.assert_allclose([logs[key] for logs in seen], theirs[key], rtol=1e-5)


# ------------------------------------------------------------------ HDF5Matrix
@pytest.fixture
def h5_path(tmp_path):
    path = str(tmp_path / "data.h5")
    with h5py.File(path, "w") as f:
        f["x"] = X
        f["y"] = Y
    return path


def test_hdf5_matrix_is_an_array_over_the_slice(h5_path):
    matrix = kestrel.utils.HDF5Matrix(h5_path, "x", start=2, end=10, normalizer=lambda a: a * 2)
    rows = X[2:10] * 2
    assert kestrel.utils.io_utils.HDF5Matrix is kestrel.utils.HDF5Matrix
    assert (len(matrix), matrix.shape, matrix.ndim, matrix.size) == (8, (8, 4), 2, 32)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[3], rows[3])
    np.testing.assert_array_equal(matrix[-1], rows[-1])
    np.testing.assert_array_equal(matrix[1:5], rows[1:5])
    np.testing.assert_array_equal(matrix[:], rows)
    np.testing.assert_array_equal(matrix[[5, 0, 5, 2]], rows[[5, 0, 5, 2]])
    np.testing.assert_array_equal(matrix[np.array([7, 1])], rows[[7, 1]])
    np.testing.assert_array_equal(np.asarray(matrix), rows)
    other = kestrel.utils.HDF5Matrix(h5_path, "y")
    assert other.data.file == matrix.data.file and len(other) == 12
    with pytest.raises(IndexError, match="row 8 is out of range for 8 rows"):
        matrix[8]
    with pytest.raises(IndexError, match="row 9"):
        matrix[[0, 9]]
    with pytest.raises(IndexError, match="step 1"):
        matrix[::2]


def test_hdf5_matrix_in_fit_and_predict(h5_path):
    x, y = (kestrel.utils.HDF5Matrix(h5_path, name) for name in ("x", "y"))
    _, on_arrays = _dense_pair()
    _, on_hdf5 = _dense_pair()
    on_hdf5.set_weights(on_arrays.get_weights())
    for model, (xs, ys) in ((on_arrays, (X, Y)), (on_hdf5, (x, y))):
        kestrel.utils.set_random_seed(1)
        model.fit(xs, ys, batch_size=4, epochs=2, shuffle="batch", verbose=0)
    for ours, expected in zip(on_hdf5.get_weights(), on_arrays.get_weights()):
        np.testing.assert_allclose(ours, expected, rtol=1e-6)
    np.testing.assert_allclose(on_hdf5.predict(x, verbose=0), on_arrays.predict(X, verbose=0),
                               rtol=1e-6)


# ------------------------------------------------------------------ AtrousConvolution1D / 2D
def _same_as_keras(ours, theirs, input_shape):
    """Equal configs (but the name) and outputs with equal weights."""
    theirs.build(input_shape)
    ours.build(input_shape)
    ours.set_weights(theirs.get_weights())
    config = lambda layer: {k: v for k, v in layer.get_config().items() if k != "name"}  # noqa
    assert config(ours) == config(theirs)
    x = RNG.standard_normal(input_shape).astype("float32")
    np.testing.assert_allclose(ours(x).detach().numpy(),
                               keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)


def test_atrous_convolution_2d_is_a_dilated_conv2d():
    with pytest.warns(UserWarning, match="`AtrousConvolution2D` layer has been deprecated"):
        ours = kestrel.layers.AtrousConvolution2D(
            3, 3, 2, atrous_rate=(2, 1), border_mode="same", dim_ordering="tf",
            init="he_normal", W_regularizer="l2", bias=False)
    assert type(ours) is kestrel.layers.Conv2D
    theirs = keras.layers.Conv2D(3, (3, 2), padding="same", data_format="channels_last",
                                 dilation_rate=(2, 1), kernel_initializer="he_normal",
                                 kernel_regularizer="l2", use_bias=False)
    _same_as_keras(ours, theirs, (2, 7, 6, 2))


@pytest.mark.parametrize("arguments", [
    ((4,), {"nb_row": 2, "nb_col": 3}), ((4, 2), {"nb_col": 3}),
    ((), {"nb_filter": 4, "nb_row": 2, "nb_col": 3, "subsample": 1})])
def test_atrous_convolution_2d_kernel_from_rows_and_cols(arguments):
    args, kwargs = arguments
    with pytest.warns(UserWarning, match=r"Update your `Conv2D` call to the Keras 2 API"):
        layer = kestrel.layers.AtrousConvolution2D(*args, **kwargs)
    assert (layer.filters, layer.kernel_size, layer.dilation_rate) == (4, (2, 3), (1, 1))


def test_atrous_convolution_1d_is_a_dilated_conv1d():
    with pytest.warns(UserWarning, match="`AtrousConvolution1D` layer has been deprecated"):
        ours = kestrel.layers.AtrousConvolution1D(
            nb_filter=2, filter_length=3, atrous_rate=2, border_mode="causal",
            subsample_length=1, activation="relu")
    theirs = keras.layers.Conv1D(2, 3, padding="causal", dilation_rate=2, activation="relu")
    _same_as_keras(ours, theirs, (2, 9, 3))
    with pytest.warns(UserWarning):
        keras2_style = kestrel.layers.AtrousConvolution1D(2, 3, input_dim=5, input_length=9)
    assert keras2_style.dilation_rate == (1,)
    assert keras2_style._batch_input_shape == (None, 9, 5)


def test_atrous_convolution_argument_errors():
    with pytest.warns(UserWarning), pytest.raises(
            TypeError, match="both the legacy keyword argument `border_mode` and the Keras 2 "
                             "keyword argument `padding`. Stick to the latter!"):
        kestrel.layers.AtrousConvolution2D(2, 3, 3, border_mode="same", padding="valid")
    with pytest.warns(UserWarning), pytest.raises(
            TypeError, match="`Conv1D` can accept only 2 positional arguments"):
        kestrel.layers.AtrousConvolution1D(2, 3, "glorot_uniform")
    with pytest.warns(UserWarning), pytest.raises(TypeError, match="`nb_col=3` without `nb_row`"):
        kestrel.layers.AtrousConvolution2D(nb_filter=2, nb_col=3)


# ------------------------------------------------------------------ multi_gpu_model
def test_multi_gpu_model_needs_two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    inputs = kestrel.Input((4,))
    model = kestrel.Model(inputs, kestrel.layers.Dense(2)(inputs))
    assert kestrel.utils.multi_gpu_model is multi_gpu_utils.multi_gpu_model
    with pytest.raises(ValueError, match=r"with `gpus >= 2`. Received: `gpus=0`"):
        kestrel.utils.multi_gpu_model(model)
    with pytest.raises(ValueError, match=r"with `len\(gpus\) >= 2`. Received: `gpus=\[0\]`"):
        kestrel.utils.multi_gpu_model(model, gpus=[0])
    with pytest.raises(ValueError, match=r"expect the following devices to be available: "
                                         r"\['cpu', 'cuda:0', 'cuda:1'\]. However this machine "
                                         r"only has: \['cpu'\]. Try reducing `gpus`."):
        kestrel.utils.multi_gpu_model(model, gpus=2, cpu_merge=False, cpu_relocation=True)


def test_target_gpu_ids_on_a_listed_machine():
    devices = ["cpu", "cuda:0", "cuda:1", "cuda:2"]
    assert multi_gpu_utils.target_gpu_ids(None, devices) == [0, 1, 2]
    assert multi_gpu_utils.target_gpu_ids(2, devices) == [0, 1]
    assert multi_gpu_utils.target_gpu_ids((2, 0), devices) == [2, 0]
    with pytest.raises(ValueError, match=r"`gpus=\[0, 5\]`.*'cuda:5'"):
        multi_gpu_utils.target_gpu_ids([0, 5], devices)


def test_data_parallel_model_shares_the_template(monkeypatch, tmp_path):
    """Without CUDA torch's DataParallel runs the template as is: this checks the Keras API
    around it (predict, compile, fit training the template's weights, saving the template);
    splitting over real GPUs needs a machine with two of them."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reference, template = _dense_pair()
    parallel = multi_gpu_utils.DataParallelModel(template, device_ids=[0, 1])
    np.testing.assert_allclose(parallel.predict(X, verbose=0), template.predict(X, verbose=0))
    assert len(parallel.trainable_weights) == 2
    parallel.compile(kestrel.optimizers.SGD(0.1), "mse")
    ours = parallel.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    theirs = reference.fit(X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-5)
    for trained, expected in zip(template.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(trained, expected, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "template.weights.h5")
    template.save_weights(path)
    reference.load_weights(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reference(X)),
                               parallel.predict(X, verbose=0), rtol=1e-5)
