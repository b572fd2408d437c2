"""Applications B (Inception, Xception, NASNet, EfficientNet/V2, ConvNeXt) against real Keras 3.

Each architecture is built in Keras (torch backend) with a fixed seed and random BatchNorm
statistics, saved in the published legacy `.h5` layout and as `.weights.h5`, loaded into
Kestrel's model through `weights=<path>`, and compared: layer names, parameter count and
predictions on the same random images.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402

import kestrel  # noqa: E402
from kestrel import applications  # noqa: E402

# Keras' own get_weights() trips NumPy 2's __array__(copy=...) deprecation
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _randomize(model, rng):
    """Random moving statistics, scales and input statistics, so inference paths are
    really exercised."""
    for layer in model._flatten_layers(include_self=False):
        kind, weights = type(layer).__name__, layer.get_weights()
        if kind == "BatchNormalization":
            weights[-2] = rng.normal(0, 0.1, weights[-2].shape)
            weights[-1] = rng.uniform(0.5, 1.5, weights[-1].shape)
        elif kind == "LayerScale":
            weights[0] = rng.uniform(0.5, 1.0, weights[0].shape)
        elif kind == "Normalization" and weights:
            weights[:2] = rng.uniform(0.3, 0.6, (2, *weights[0].shape))
            weights[1] = weights[1] ** 2
        else:
            continue
        layer.set_weights([np.asarray(w, "float32") for w in weights])


def _names(model):
    return [layer.name for layer in model.layers if type(layer).__name__ != "FunctionOp"]


def _build_pair(name, tmp_path, fmt, keras_fn=None, seed=0, **kwargs):
    """(Keras model, Kestrel model loaded from the Keras weights saved as `fmt`)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    reference = (keras_fn or getattr(keras.applications, name))(weights=None, **kwargs)
    _randomize(reference, np.random.default_rng(seed))
    if fmt == "h5":
        path = str(tmp_path / f"{name}.h5")
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    else:
        path = str(tmp_path / f"{name}.weights.h5")
        reference.save_weights(path)
    kestrel.backend.clear_session()
    model = getattr(applications, name)(weights=path, **kwargs)
    return reference, model


def _check(name, tmp_path, fmt="h5", size=32, keras_fn=None, batch=2, **kwargs):
    kwargs.setdefault("input_shape", (size, size, 3))
    reference, model = _build_pair(name, tmp_path, fmt, keras_fn, **kwargs)
    assert model.name == reference.name
    assert _names(model) == _names(reference)
    assert model.count_params() == reference.count_params()
    images = np.random.default_rng(1).uniform(0, 255, (batch, *kwargs["input_shape"]))
    images = images.astype("float32")
    expected = keras.ops.convert_to_numpy(reference(images, training=False))
    got = np.asarray(model.predict(images, verbose=0))
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)
    return model


@pytest.mark.parametrize("fmt", ["h5", "weights.h5"])
def test_inception_v3(tmp_path, fmt):
    _check("InceptionV3", tmp_path, fmt, size=75, include_top=False, pooling="avg")


def test_inception_v3_top(tmp_path):
    _check("InceptionV3", tmp_path, size=75, include_top=True, classes=7, batch=1)


def test_inception_resnet_v2(tmp_path):
    _check("InceptionResNetV2", tmp_path, "weights.h5", size=75, include_top=False,
           pooling="max")


def test_xception(tmp_path):
    _check("Xception", tmp_path, size=71, include_top=False, pooling="avg")


def test_efficientnet_b0(tmp_path):
    _check("EfficientNetB0", tmp_path, include_top=False, pooling="avg")


def test_efficientnet_b1_top(tmp_path):
    _check("EfficientNetB1", tmp_path, "weights.h5", include_top=True, classes=5, batch=1)


def test_efficientnet_v2_b0(tmp_path):
    _check("EfficientNetV2B0", tmp_path, include_top=False, pooling="max")


def test_efficientnet_v2_b1_without_preprocessing(tmp_path):
    _check("EfficientNetV2B1", tmp_path, "weights.h5", include_top=True, classes=3, batch=1,
           include_preprocessing=False)


def _keras_nasnet_mobile(**kwargs):
    """Keras 3 refuses NASNetMobile on torch; its generic NASNet builds the same graph."""
    from keras.src.applications.nasnet import NASNet

    return NASNet(kwargs.pop("input_shape"), penultimate_filters=1056, num_blocks=4,
                  stem_block_filters=32, skip_reduction=False, default_size=224,
                  name="nasnet_mobile", **kwargs)


def test_nasnet_mobile(tmp_path):
    _check("NASNetMobile", tmp_path, keras_fn=_keras_nasnet_mobile, include_top=False,
           pooling="avg")


@pytest.mark.parametrize("fmt", ["h5", "weights.h5"])
def test_convnext_tiny(tmp_path, fmt):
    _check("ConvNeXtTiny", tmp_path, fmt, include_top=True, classes=4, batch=1)


@pytest.mark.parametrize("module, mode", [
    ("inception_v3", "tf"), ("inception_resnet_v2", "tf"), ("xception", "tf"),
    ("nasnet", "tf"), ("efficientnet", None), ("efficientnet_v2", None), ("convnext", None)])
def test_preprocess_input_matches_keras(module, mode):
    images = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    expected = getattr(keras.applications, module).preprocess_input(images.copy())
    got = getattr(applications, module).preprocess_input(images.copy())
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-6)
    if mode is None:
        np.testing.assert_array_equal(np.asarray(got), images)


def test_argument_errors():
    with pytest.raises(ValueError, match="classes"):
        applications.Xception(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match="at least 75x75"):
        applications.InceptionV3(weights=None, include_top=False, input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="penultimate_filters"):
        applications.nasnet.NASNet((32, 32, 3), penultimate_filters=100, weights=None,
                                   include_top=False)
    with pytest.raises(ValueError, match="Only `None` and `softmax`"):
        applications.EfficientNetB0(weights="imagenet", classifier_activation="relu")
    with pytest.raises(ValueError, match="does not match weights variant"):
        applications.convnext.ConvNeXt([3, 3, 9, 3], [96, 192, 384, 768], name="mine",
                                       weights="imagenet", weights_name="convnext_tiny")
