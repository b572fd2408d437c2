"""keras.io vision examples (part 3) whose patterns once differed from Keras 3: the same code runs
with Kestrel and with real Keras (torch backend); names, shapes, configs and values must agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _selective_kernel_feature_fusion(k, multi_scale_feature_1, multi_scale_feature_2):
    """MIRNet's fusion block: activations called on symbolic tensors."""
    channels = list(multi_scale_feature_1.shape)[-1]
    combined = k.layers.Add()([multi_scale_feature_1, multi_scale_feature_2])
    gap = k.layers.GlobalAveragePooling2D()(combined)
    channel_wise = k.ops.reshape(gap, (-1, 1, 1, channels))
    compact = k.layers.Conv2D(channels // 2, kernel_size=(1, 1), activation="relu")(channel_wise)
    descriptor_1 = k.layers.Conv2D(channels, kernel_size=(1, 1), activation="softmax")(compact)
    descriptor_2 = k.layers.Conv2D(channels, kernel_size=(1, 1), activation="softmax")(compact)
    feature_1 = multi_scale_feature_1 * descriptor_1
    feature_2 = multi_scale_feature_2 * descriptor_2
    return k.layers.Add()([feature_1, feature_2])


def _mirnet_block(k):
    inputs = k.Input((8, 8, 4))
    a = k.layers.Conv2D(4, 3, padding="same")(inputs)
    a = k.activations.relu(a)  # MIRNet writes this on KerasTensors
    b = k.activations.gelu(k.layers.Conv2D(4, 3, padding="same")(inputs))
    fused = _selective_kernel_feature_fusion(k, a, b)
    out = k.activations.relu(fused, max_value=1.0)
    return k.Model(inputs, k.activations.sigmoid(out) + k.activations.exponential(inputs))


def test_activations_on_keras_tensors_record_keras_op_nodes():
    models = {k.__name__: _mirnet_block(_fresh(k)) for k in (keras, kestrel)}
    kestrel_model, keras_model = models["kestrel"], models["keras"]
    assert kestrel_model.count_params() == keras_model.count_params()
    kestrel_model.set_weights(keras_model.get_weights())
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(kestrel_model.predict(x, verbose=0),
                               keras_model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

    def op_nodes(model):
        return [(entry["module"], entry["class_name"],
                 {k: v for k, v in entry["config"].items() if k != "name"})
                for entry in model.get_config()["layers"] if entry["module"].startswith(
                    ("keras.src.ops.nn", "keras.src.activations", "keras.src.ops.numpy"))]

    assert op_nodes(kestrel_model) == op_nodes(keras_model)
    assert ("keras.src.activations.activations", "ReLU",
            {"negative_slope": 0.0, "max_value": 1.0, "threshold": 0.0}) in op_nodes(kestrel_model)
    assert ("keras.src.ops.nn", "Gelu", {"approximate": False}) in op_nodes(kestrel_model)


def test_keras_saved_activation_nodes_load_in_kestrel(tmp_path):
    keras_model = _mirnet_block(_fresh(keras))
    path = str(tmp_path / "mirnet_block.keras")
    keras_model.save(path)
    model = kestrel.models.load_model(path)
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), keras_model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["relu", "gelu", "elu", "softmax", "exponential", "mish",
                                  "sparsemax", "hard_silu", "threshold"])
def test_each_activation_on_a_keras_tensor(name):
    args = (0.1, -1.0) if name == "threshold" else ()
    inputs = kestrel.Input((3, 4))
    outputs = getattr(kestrel.activations, name)(inputs, *args)
    model = kestrel.Model(inputs, outputs)
    assert tuple(outputs.shape) == (None, 3, 4)
    x = np.random.default_rng(2).standard_normal((2, 3, 4)).astype("float32")
    expected = getattr(kestrel.activations, name)(kestrel.ops.convert_to_tensor(x), *args)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected.numpy(), rtol=1e-6)
    if name == "mish":  # Keras' own Mish class; Keras itself cannot call mish symbolically
        assert model.get_config()["layers"][1]["class_name"] == "Mish"
