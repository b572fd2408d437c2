"""Keras 2 `K` functions and `keras.preprocessing` against Keras 2.15 (tf.keras).

Every expected value below was computed once with Keras 2.15 (TensorFlow 2.15.1) on the same
literal inputs; the tests need no TensorFlow.
"""
import inspect
import os
import warnings

import numpy as np
import pytest
import torch

from kestrel import backend as K
from kestrel.preprocessing import image, sequence

X = np.array([[-1.5, 0.5, 2.0], [0.25, -0.75, 3.0]], "float32")
P = np.array([[0.1, 0.6, 0.3], [0.7, 0.2, 0.1]], "float32")
T = np.array([[0, 1, 0], [1, 0, 0]], "float32")


def close(got, expected, tol=1e-5):
    np.testing.assert_allclose(K.eval(got), expected, rtol=tol, atol=tol)


def test_keras2_defaults_and_dtypes_of_op_functions():
    assert K.eval(K.argmax(X)).tolist() == [2, 2] and K.dtype(K.argmax(X)) == "int64"
    assert K.eval(K.argmin(X, axis=0)).tolist() == [0, 1, 0]
    close(K.cumsum(X), [[-1.5, 0.5, 2.0], [-1.25, -0.25, 5.0]])
    close(K.cumprod(X), [[-1.5, 0.5, 2.0], [-0.375, -0.375, 6.0]])
    assert K.int_shape(K.expand_dims(X)) == (2, 3, 1)
    ints = np.array([[-1, -2], [4, 7]], "int32")
    assert K.eval(K.mean(ints)).tolist() == 2 and K.dtype(K.mean(ints)) == "int32"
    assert K.eval(K.mean(ints, axis=1)).tolist() == [-1, 5]  # truncated, as Keras 2
    close(K.mean(np.array([True, False, False])), 1 / 3)
    assert K.dtype(K.sqrt(torch.tensor([-4.0, 9.0], dtype=torch.float64))) == "float64"
    close(K.sqrt(torch.tensor([-4.0, 9.0], dtype=torch.float64)), [0.0, 3.0])
    assert K.eval(K.arange(-3)).shape == (0,)
    close(K.arange(1.0, 3.0, 0.5), [1.0, 1.5, 2.0, 2.5])
    assert K.dtype(K.arange(1.0, 3.0, 0.5)) == "float32"
    assert K.dtype(K.arange(3, dtype="float64")) == "float64"


def test_keras2_argument_names():
    assert list(inspect.signature(K.equal).parameters) == ["x", "y"]
    assert list(inspect.signature(K.tile).parameters) == ["x", "n"]
    assert list(inspect.signature(K.reshape).parameters) == ["x", "shape"]
    assert list(inspect.signature(K.one_hot).parameters) == ["indices", "num_classes"]
    assert K.eval(K.equal(x=X, y=P)).sum() == 0
    assert K.int_shape(K.reshape(X, shape=(3, 2))) == (3, 2)
    assert K.int_shape(K.tile(X, n=(1, 2))) == (2, 6)
    assert K.int_shape(K.one_hot(indices=np.array([1, 0]), num_classes=3)) == (2, 3)
    assert K.dtype(K.zeros_like(X, dtype="int32", name="z")) == "int32"
    assert len(K.stop_gradient(variables=[X, P])) == 2
    assert K.is_sparse(tensor=X) is False and K.to_dense(tensor=X) is X
    with pytest.raises(ValueError, match="ragged=True"):
        K.placeholder(shape=(None, 3), ragged=True)
    K.set_image_data_format(data_format="channels_first")
    try:
        assert K.image_data_format() == "channels_first"
    finally:
        K.set_image_data_format("channels_last")


def test_focal_and_ignore_class_crossentropies():
    close(K.binary_focal_crossentropy(T, P),
          [[0.001054, 0.081732, 0.032101], [0.032101, 0.008926, 0.001054]], 1e-5)
    close(K.binary_focal_crossentropy(T, P, apply_class_balancing=True, alpha=0.3, gamma=1.5),
          [[0.002332, 0.038769, 0.041025], [0.017582, 0.013971, 0.002332]], 1e-5)
    close(K.binary_focal_crossentropy(T, X, from_logits=True),
          [[0.006703, 0.067573, 1.650078], [0.110401, 0.039819, 2.766281]], 1e-5)
    close(K.categorical_focal_crossentropy(T, P), [0.020433, 0.008025], 1e-5)
    close(K.categorical_focal_crossentropy(T, X, from_logits=True, gamma=1.0),
          [0.354639, 0.66681], 1e-5)
    close(K.sparse_categorical_crossentropy(np.array([1, 2]), P, ignore_class=2),
          [0.510826, 0.0], 1e-5)


def test_local_convolutions():
    x = np.arange(20, dtype="float32").reshape(2, 5, 2) / 10
    k = np.arange(48, dtype="float32").reshape(4, 4, 3) / 20 - 1
    out = K.eval(K.local_conv1d(x, k, (2,), (1,)))
    assert out.shape == (2, 4, 3)
    np.testing.assert_allclose(out[0, :, 0], [-0.39, -0.17, 1.01, 3.15], atol=1e-5)
    np.testing.assert_allclose(out[1, 3], [7.25, 7.6, 7.95], atol=1e-5)
    k2 = np.arange(32, dtype="float32").reshape(4, 8, 1) / 10 - 1
    x_cf = np.arange(18, dtype="float32").reshape(1, 2, 3, 3) / 10
    close(K.local_conv2d(x_cf, k2, (2, 2), (1, 1), (2, 2), data_format="channels_first"),
          [[[[-2.52, 1.76], [8.08, 15.56]]]], 1e-4)
    x_cl = np.arange(18, dtype="float32").reshape(1, 3, 3, 2) / 10
    close(K.local_conv2d(x_cl, k2, (2, 2), (1, 1), (2, 2)),
          [[[[-1.76], [1.36]], [[8.56], [18.08]]]], 1e-4)


def test_ctc_helpers():
    sparse = K.ctc_label_dense_to_sparse(np.array([[1, 2, 0], [3, 0, 0]], "int32"),
                                         np.array([2, 1], "int32")).coalesce()
    assert sparse.indices().T.tolist() == [[0, 0], [0, 1], [1, 0]]
    assert sparse.values().tolist() == [1, 2, 3] and list(sparse.shape) == [2, 3]
    (paths,), scores = K.ctc_decode(
        np.array([[[0.1, 0.8, 0.1], [0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]], "float32"),
        np.array([3]))
    assert paths.dtype == torch.int64 and K.eval(paths).tolist() == [[1, 0, -1]]
    close(scores, [[0.66943]], 1e-4)


def _step(x, states):
    out = x * 2 + states[0]
    return out, [out]


@pytest.mark.parametrize("kwargs, last, shape, outputs", [
    ({"mask": True}, [4, 36], (2, 4, 1), [0, 0, 4, 4, 0, 10, 22, 36]),
    ({"mask": True, "zero_output_for_mask": True}, [0, 36], (2, 4, 1),
     [0, 0, 4, 0, 0, 10, 22, 36]),
    ({"return_all_outputs": False}, [12, 44], (2, 1, 1), [12, 44]),
    ({"go_backwards": True}, [12, 44], (2, 4, 1), [6, 10, 12, 12, 14, 26, 36, 44]),
    ({"time_major": True}, [12, 44], (4, 2, 1), [0, 8, 2, 18, 6, 30, 12, 44]),
])
def test_rnn_options(kwargs, last, shape, outputs):
    xs = np.arange(8, dtype="float32").reshape(2, 4, 1)
    if kwargs.get("mask"):
        kwargs = {**kwargs, "mask": np.array([[1, 0, 1, 0], [0, 1, 1, 1]], bool)}
    if kwargs.get("time_major"):
        xs = xs.transpose(1, 0, 2)
    got_last, got_outputs, _ = K.rnn(_step, xs, [np.zeros((2, 1), "float32")], **kwargs)
    close(got_last, np.reshape(last, (2, 1)))
    assert tuple(got_outputs.shape) == shape
    close(K.flatten(got_outputs), outputs)


def test_variables_uids_and_phases():
    v = K.variable([1.0, 2.0])
    value = K.get_value(v)
    K.set_value(v, [3.0, 4.0])
    assert value.tolist() == [1.0, 2.0]  # a copy, as Keras 2
    assert K.dtype(K.ones((2,), dtype="int32")) == "int32"
    assert K.dtype(K.random_uniform((3,), 0, 5, dtype="int32", seed=1)) == "int32"
    assert K.dtype(K.random_bernoulli((2,), 0.5)) == "float32"
    assert K.count_params(K.variable(np.zeros((2, 3)))) == 6
    K.reset_uids()
    assert [K.get_uid("x"), K.get_uid("x"), K.get_uid("y")] == [1, 2, 1]
    K.reset_uids()
    assert K.get_uid("x") == 1
    with K.learning_phase_scope(1):
        assert K.learning_phase() == 1
    assert K.learning_phase() == 0


def test_conv_keeps_float64():
    x, k = np.ones((1, 4, 2)), np.ones((2, 2, 3))
    assert K.dtype(K.conv1d(x, k)) == "float64"  # Keras 2 and Keras 3's torch backend


def test_preprocessing_keras2_arguments(tmp_path):
    path = os.path.join(tmp_path, "a.png")
    image.save_img(path, np.full((4, 4, 3), 200.0, "float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert image.load_img(path, grayscale=True).mode == "L"
    it = image.NumpyArrayIterator(np.zeros((2, 3, 3, 1)), None, image.ImageDataGenerator(),
                                  batch_size=2)
    assert it.data_format == "channels_last" and it[0].dtype == np.float32
    gen = image.ImageDataGenerator(featurewise_center=True, zca_whitening=True)
    gen.fit(np.random.default_rng(0).uniform(size=(4, 3, 3, 1)))
    assert gen.zca_whitening_matrix.dtype == np.float32
    assert sequence.pad_sequences([[1, 2, 3], [4]], maxlen=2).tolist() == [[2, 3], [0, 4]]
