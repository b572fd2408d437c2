"""keras.io vision examples (part c: keypoints, DeepLabV3+, ViT, segmentation, MIL, CCT, ConvLSTM,
autoencoder): the same code runs with Kestrel and with real Keras (torch backend); graphs, values
and training behaviour agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _summary_rows(model):
    """The first column of each summary row ("name (Class)"), joined across wrapped lines."""
    printed = []
    model.summary(line_length=200, print_fn=lambda text, **_: printed.append(text))
    rows = [line.split("│")[1].strip() for line in "\n".join(printed).splitlines()
            if line.startswith("│")]
    return [row for row in rows if row]


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_preprocess_input_on_symbolic_tensor_records_keras_ops(mode, data_format):
    """keypoint_detection: mobilenet_v2.preprocess_input(inputs) gives the nodes Keras' gives
    (true_divide / subtract, get_item x3 + stack for RGB->BGR), with the same values."""
    shape = (4, 5, 3) if data_format == "channels_last" else (3, 4, 5)
    x = np.random.default_rng(0).uniform(0, 255, (2,) + shape).astype("float32")
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        inputs = k.Input(shape)
        outputs = k.applications.imagenet_utils.preprocess_input(
            inputs, data_format=data_format, mode=mode)
        model = k.Model(inputs, outputs)
        got[lib] = _summary_rows(model), model.predict(x, verbose=0)
    assert got[kestrel][0] == got[keras][0]
    np.testing.assert_allclose(got[kestrel][1], got[keras][1], rtol=1e-6, atol=1e-4)


def _script_layer(lib):
    """A custom layer as a script defines it (its module is `__main__`), unregistered."""
    class Patches(lib.layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def call(self, images):
            patches = lib.ops.image.extract_patches(images, size=self.patch_size)
            shape = lib.ops.shape(patches)
            return lib.ops.reshape(patches, (shape[0], shape[1] * shape[2], shape[3]))

        def get_config(self):
            return {**super().get_config(), "patch_size": self.patch_size}

    Patches.__module__ = "__main__"
    return Patches


def test_script_defined_layer_serializes_without_module_and_reloads_across(tmp_path):
    """object_detection_using_vision_transformer: a `__main__` class is written with module
    null (as Keras), and the .keras file loads in the other library with custom_objects."""
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    saved = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        patches_cls = _script_layer(k)
        inputs = k.Input((8, 8, 3))
        model = k.Model(inputs, k.layers.Dense(2)(patches_cls(4)(inputs)))
        entry = model.get_config()["layers"][1]
        assert (entry["module"], entry["registered_name"]) == (None, "Patches")
        path = str(tmp_path / f"{lib.__name__}.keras")
        model.save(path)
        saved[lib] = path, model.predict(x, verbose=0)
    for writer, reader in ((keras, kestrel), (kestrel, keras)):
        path, expected = saved[writer]
        loaded = reader.models.load_model(path, custom_objects={"Patches": _script_layer(reader)})
        assert loaded.layers[1].patch_size == 4
        np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-5)


def _plus_one(x):
    return x + 1


def test_lambda_named_function_config_matches_keras(tmp_path):
    """A Lambda of a named function is written as Keras writes it (module builtins,
    registered_name "function"), and loads with custom_objects in either library."""
    x = np.ones((2, 3), "float32")
    for lib in (keras, kestrel):
        k = _fresh(lib)
        inputs = k.Input((3,))
        model = k.Model(inputs, k.layers.Lambda(_plus_one)(inputs))
        assert model.layers[1].get_config()["function"] == {
            "module": "builtins", "class_name": "function", "config": "_plus_one",
            "registered_name": "function"}
        model.save(str(tmp_path / f"{lib.__name__}.keras"))
    for writer, reader in ((keras, kestrel), (kestrel, keras)):
        loaded = reader.models.load_model(str(tmp_path / f"{writer.__name__}.keras"),
                                          custom_objects={"_plus_one": _plus_one})
        np.testing.assert_allclose(loaded.predict(x, verbose=0), x + 1)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "Bicubic"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_upsampling2d_interpolations_match_keras(interpolation, data_format):
    """deeplabv3_plus: UpSampling2D(size, interpolation=...) gives Keras' values, bicubic too."""
    x = np.random.default_rng(0).random((2, 3, 5, 4)).astype("float32")
    got = [np.asarray(lib.layers.UpSampling2D((2, 3), data_format=data_format,
                                              interpolation=interpolation)(x))
           for lib in (keras, kestrel)]
    assert got[1].shape == got[0].shape
    np.testing.assert_allclose(got[1], got[0], atol=1e-5)


def test_upsampling2d_rejects_unknown_interpolation():
    with pytest.raises(ValueError, match="interpolation must be one of .*Received: "
                                         "interpolation='lanczos3'"):
        kestrel.layers.UpSampling2D(2, interpolation="lanczos3")
