"""Applications A (VGG, ResNet/V2, MobileNet/V2/V3, DenseNet) and imagenet_utils vs Keras 3.

Each architecture is built in real Keras (torch backend) with a fixed seed and random
BatchNorm statistics, saved in the published legacy `.h5` layout or as `.weights.h5`, loaded
into Kestrel's model through `weights=<path>`, and compared: model name, layer names,
parameter count and predictions on the same random images.
"""
import json
import os
import urllib.error

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src.applications import imagenet_utils as keras_utils  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402

import kestrel  # noqa: E402
from kestrel import applications  # noqa: E402
from kestrel.applications import imagenet_utils  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _randomize_bn(model, rng):
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            w = layer.get_weights()
            w[-2] = rng.normal(0, 0.2, w[-2].shape)
            w[-1] = rng.uniform(0.5, 1.5, w[-1].shape)
            layer.set_weights([np.asarray(v, "float32") for v in w])


def _names(model):
    return [layer.name for layer in model.layers if type(layer).__name__ != "FunctionOp"]


def _pair(name, tmp_path, fmt, **kwargs):
    """(Keras model, Kestrel model loaded from the Keras weights saved as `fmt`)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    reference = getattr(keras.applications, name)(weights=None, **kwargs)
    _randomize_bn(reference, np.random.default_rng(0))
    path = str(tmp_path / (f"{name}.h5" if fmt == "h5" else f"{name}.weights.h5"))
    if fmt == "h5":
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    else:
        reference.save_weights(path)
    kestrel.backend.clear_session()
    return reference, getattr(applications, name)(weights=path, **kwargs)


# (model, weights format, keyword arguments): small inputs, tops with few classes
CASES = [
    ("VGG16", "h5", dict(include_top=False, pooling="avg")),
    ("ResNet50", "weights.h5", dict(include_top=True, classes=5)),
    ("ResNet50V2", "h5", dict(include_top=False, pooling="max")),
    ("MobileNet", "h5", dict(include_top=True, classes=6, alpha=0.5)),
    ("MobileNetV2", "weights.h5", dict(include_top=True, classes=3, alpha=0.35)),
    ("MobileNetV3Small", "h5", dict(include_top=True, classes=5)),
    ("MobileNetV3Large", "weights.h5", dict(include_top=False, pooling="avg", minimalistic=True,
                                            include_preprocessing=False)),
    ("DenseNet121", "h5", dict(include_top=True, classes=5)),
]
# more variants of the same builders: run by `make test`, skipped with `-m "not slow"`
SLOW_CASES = [
    ("VGG19", "weights.h5", dict(include_top=False, pooling="max")),
    ("ResNet50", "h5", dict(include_top=False, pooling="avg")),
    ("ResNet50V2", "weights.h5", dict(include_top=True, classes=4)),
    ("MobileNet", "weights.h5", dict(include_top=False, pooling="avg", depth_multiplier=2)),
    ("MobileNetV2", "h5", dict(include_top=False, pooling="avg", alpha=1.3)),
    ("MobileNetV3Small", "weights.h5", dict(include_top=False, pooling="avg", minimalistic=True,
                                            alpha=0.75, include_preprocessing=False)),
    ("MobileNetV3Large", "h5", dict(include_top=False, pooling="max", alpha=1.25)),
]


@pytest.mark.parametrize("name, fmt, kwargs", CASES + [
    pytest.param(*case, marks=pytest.mark.slow) for case in SLOW_CASES])
def test_matches_keras(name, fmt, kwargs, tmp_path):
    kwargs = {"input_shape": (32, 32, 3), **kwargs}
    reference, model = _pair(name, tmp_path, fmt, **kwargs)
    assert model.name == reference.name
    assert _names(model) == _names(reference)
    assert model.count_params() == reference.count_params()
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(reference(images, training=False))
    got = np.asarray(model.predict(images, verbose=0))
    assert got.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


def test_default_names_and_top_shapes():
    assert applications.MobileNet(weights=None, input_shape=(128, 128, 3)).name == \
        "mobilenet_1.00_128"
    assert applications.MobileNetV2(weights=None, alpha=0.75).name == "mobilenetv2_0.75_224"
    model = applications.VGG16(weights=None)
    assert model.count_params() == 138357544 and model.output_shape == (None, 1000)


def test_input_tensor_keeps_its_source_inputs():
    inputs = kestrel.Input((40, 40, 3))
    scaled = kestrel.layers.Rescaling(1 / 255.0)(inputs)
    model = applications.ResNet50(weights=None, include_top=False, input_tensor=scaled)
    assert model.inputs[0] is inputs
    assert model.output_shape == (None, 2, 2, 2048)
    out = model(torch.rand(1, 40, 40, 3) * 255)
    assert tuple(out.shape) == (1, 2, 2, 2048)


# ----------------------------------------------------------------------- argument errors
def _message(fn, *args, **kwargs):
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("kwargs", [
    dict(input_shape=(20, 20, 3), include_top=False),
    dict(input_shape=(None, None, 3), include_top=True),
    dict(input_shape=(64, 64, 3), include_top=True, weights="imagenet"),
    dict(input_shape=(64, 64, 4), include_top=False, weights="imagenet"),
    dict(input_shape=(64, 64), include_top=False),
])
def test_obtain_input_shape_messages(kwargs):
    args = dict(default_size=224, min_size=32, data_format="channels_last",
                require_flatten=kwargs.pop("include_top"), **kwargs)
    assert _message(imagenet_utils.obtain_input_shape, **args) == \
        _message(keras_utils.obtain_input_shape, **args)


def test_obtain_input_shape_defaults():
    for args in [(None, 224, 32, "channels_last", True), (None, 224, 32, "channels_last", False),
                 ((64, 48, 3), 224, 32, "channels_last", False),
                 ((3, 64, 64), 224, 32, "channels_first", True)]:
        assert imagenet_utils.obtain_input_shape(*args) == \
            tuple(keras_utils.obtain_input_shape(*args))


def test_weights_argument_errors():
    message = _message(applications.ResNet50, weights="no/such/file.h5")
    assert "Received: weights=no/such/file.h5" in message
    assert "`classes` should be 1000" in _message(applications.DenseNet121, classes=10)
    assert "activations are allowed" in _message(
        applications.VGG16, weights="imagenet", classifier_activation="relu")
    assert "alpha" in _message(applications.MobileNetV2, weights="imagenet", alpha=0.6)


def test_imagenet_weights_offline_error_names_file_and_address(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("kestrel.utils.file_utils.urlopen", offline)
    with pytest.raises(OSError) as info:
        applications.ResNet50(weights="imagenet", include_top=False)
    text = str(info.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in text
    assert "keras-applications/resnet/" in text and str(tmp_path / "models") in text


# ----------------------------------------------------------------------- imagenet_utils
@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
@pytest.mark.parametrize("data_format, shape", [("channels_last", (2, 4, 5, 3)),
                                                ("channels_last", (4, 5, 3)),
                                                ("channels_first", (2, 3, 4, 5))])
def test_preprocess_input_matches_keras(mode, data_format, shape):
    x = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    expected = keras_utils.preprocess_input(x.copy(), data_format, mode)
    np.testing.assert_allclose(imagenet_utils.preprocess_input(x.copy(), data_format, mode),
                               expected, rtol=1e-6)
    tensor = torch.tensor(x)
    got = imagenet_utils.preprocess_input(tensor, data_format, mode)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert torch.equal(tensor, torch.tensor(x))  # tensors are not overwritten


def test_preprocess_input_integers_symbolic_and_errors():
    pixels = np.arange(2 * 2 * 2 * 3).reshape(2, 2, 2, 3).astype("uint8")
    expected = keras_utils.preprocess_input(pixels.copy())
    np.testing.assert_allclose(imagenet_utils.preprocess_input(pixels.copy()), expected)
    inputs = kestrel.Input((2, 2, 3))
    model = kestrel.Model(inputs, applications.resnet50.preprocess_input(inputs))
    np.testing.assert_allclose(model.predict(pixels.astype("float32"), verbose=0), expected,
                               rtol=1e-6)
    assert "Received: mode=bgr" in _message(imagenet_utils.preprocess_input, pixels, mode="bgr")
    assert applications.mobilenet_v3.preprocess_input(pixels) is pixels


def test_module_preprocessing_modes():
    x = np.full((1, 1, 1, 3), 255.0, "float32")
    for module, mode in [("vgg16", "caffe"), ("vgg19", "caffe"), ("resnet", "caffe"),
                         ("resnet_v2", "tf"), ("mobilenet", "tf"), ("mobilenet_v2", "tf"),
                         ("densenet", "torch")]:
        got = getattr(applications, module).preprocess_input(x.copy())
        np.testing.assert_allclose(got, keras_utils.preprocess_input(x.copy(), mode=mode))


def test_decode_predictions(monkeypatch):
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX", json.loads(json.dumps(index)))
    preds = np.zeros((2, 1000), "float32")
    preds[0, [3, 7, 9]] = [0.5, 0.3, 0.2]
    preds[1, 999] = 1.0
    top = applications.resnet50.decode_predictions(preds, top=2)
    assert [t[:2] for t in top[0]] == [("n00000003", "class_3"), ("n00000007", "class_7")]
    assert top[1][0][0] == "n00000999" and len(top[1]) == 2
    assert "(samples, 1000)" in _message(imagenet_utils.decode_predictions, preds[:, :10])


def test_public_names_match_keras():
    public = sorted(n for n in dir(keras.applications) if not n.startswith("_"))
    assert sorted(applications.__all__) == public
    assert applications.resnet50.ResNet50 is applications.ResNet50
    assert applications.resnet.ResNet101 is applications.ResNet101


# ----------------------------------------------------------------------- transfer learning
def test_frozen_base_keeps_batchnorm_in_inference_then_unfreezes():
    """The keras.io transfer learning recipe: freeze, train the head, unfreeze, fine-tune."""
    kestrel.utils.set_random_seed(0)
    base = applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3),
                                    alpha=0.35)
    base.trainable = False
    inputs = kestrel.Input((32, 32, 3))
    x = base(inputs, training=False)
    x = kestrel.layers.GlobalAveragePooling2D()(x)
    outputs = kestrel.layers.Dense(2)(x)
    model = kestrel.Model(inputs, outputs)
    assert len(model.trainable_weights) == 2
    bn = base.get_layer("bn_Conv1")
    conv = base.get_layer("Conv1")
    stats, kernel = bn.moving_mean.numpy().copy(), conv.kernel.numpy().copy()
    head = model.layers[-1].bias.numpy().copy()
    data = np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 3)).astype("float32")
    labels = np.random.default_rng(1).integers(0, 2, (8,))
    loss = kestrel.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss)
    model.fit(data, labels, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), stats)
    np.testing.assert_array_equal(conv.kernel.numpy(), kernel)
    assert not np.allclose(model.layers[-1].bias.numpy(), head)

    base.trainable = True
    model.compile(optimizer=kestrel.optimizers.Adam(1e-3), loss=loss)
    assert len(model.trainable_weights) == len(base.trainable_weights) + 2
    model.fit(data, labels, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(conv.kernel.numpy(), kernel)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), stats)  # called with training=False


def test_loading_weights_skips_the_initializers_and_an_incomplete_file_fails(tmp_path,
                                                                            monkeypatch):
    """Weights about to be overwritten are not drawn (ConvNeXtXLarge's cost seconds); a file
    lacking the classifier is refused rather than leaving the skipped weights at zero."""
    kwargs = dict(alpha=0.35, input_shape=(32, 32, 3), classes=3)
    source = applications.MobileNetV2(weights=None, **kwargs)
    source.save_weights(tmp_path / "m.weights.h5")
    applications.MobileNetV2(weights=None, include_top=False, **kwargs).save_weights(
        tmp_path / "notop.weights.h5")

    def refuse(*args, **kwargs):
        raise AssertionError("an initializer ran")
    monkeypatch.setattr(kestrel.initializers.VarianceScaling, "__call__", refuse)
    loaded = applications.MobileNetV2(weights=str(tmp_path / "m.weights.h5"), **kwargs)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(images, verbose=0),
                                  source.predict(images, verbose=0))
    with pytest.raises(ValueError):
        applications.MobileNetV2(weights=str(tmp_path / "notop.weights.h5"), **kwargs)
    with pytest.raises(AssertionError, match="an initializer ran"):
        applications.MobileNetV2(weights=None, **kwargs)
