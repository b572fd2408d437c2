import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from kestrel import activations
from kestrel.layers import Dense, Input
from kestrel.layers.core.activation import Activation, Identity, Lambda
from kestrel.layers.core.embedding import Embedding
from kestrel.layers.core.reshaping import Flatten, Permute, RepeatVector, Reshape
from kestrel.models import Model
from kestrel.saving import register_keras_serializable
from kestrel.registry.safe_mode import safe_mode_scope
from tests.layer_harness import run_layer_test

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"


def _fixture_layer(model_name, layer_name):
    layers = json.loads((FIXTURES / f"{model_name}.json").read_text())["config"]["layers"]
    return next(l for l in layers if l["config"]["name"] == layer_name)


def _fixture_vars(model_name, group):
    with h5py.File(FIXTURES / f"{model_name}.weights.h5", "r") as f:
        vars_ = f[f"layers/{group}/vars"]
        return [vars_[str(i)][()] for i in range(len(vars_))]


# ---------------------------------------------------------------- Activation / Identity
def test_activation_harness_and_numbers():
    out = run_layer_test(Activation, {"activation": "relu"}, input_shape=(2, 3),
                         expected_output_shape=(2, 3), expected_num_trainable_weights=0)
    x = torch.randn(4, 5)
    np.testing.assert_allclose(Activation("softmax")(x).numpy(),
                               np.exp(x.numpy()) / np.exp(x.numpy()).sum(-1, keepdims=True),
                               rtol=1e-5)
    assert out.min() >= 0


def test_activation_config_and_mask_pass_through():
    layer = Activation(activations.tanh)
    assert layer.get_config()["activation"] == "tanh"
    x = torch.randn(2, 3, 4)
    x._keras_mask = torch.tensor([[True, False, True]] * 2)
    assert torch.equal(layer(x)._keras_mask, x._keras_mask)


def test_identity_returns_inputs_and_structures():
    run_layer_test(Identity, {}, input_shape=(2, 3), expected_output_shape=(2, 3))
    a, b = torch.ones(2, 3), torch.zeros(2, 4)
    out = Identity()([a, b])
    assert out[0] is a and out[1] is b
    sym = Identity()([Input((3,)), Input((4,))])
    assert [t.shape for t in sym] == [(None, 3), (None, 4)]


# ---------------------------------------------------------------- Lambda
def test_lambda_harness_with_bytecode_roundtrip():
    with safe_mode_scope(False):
        out = run_layer_test(Lambda, {"function": lambda x: x * 2 + 1}, input_shape=(2, 3),
                             expected_output_shape=(2, 3))
    assert out.shape == (2, 3)


def test_lambda_saves_bytecode_closure_defaults_and_output_shape():
    scale = 3.0
    layer = Lambda(lambda x, k=2.0: x[:, :2] * k * scale, output_shape=(2,))
    config = json.loads(json.dumps(layer.get_config()))
    assert config["function"]["class_name"] == "__lambda__"
    assert set(config["function"]["config"]) == {"code", "defaults", "closure"}
    assert config["output_shape"] == [2]
    with safe_mode_scope(False):
        clone = Lambda.from_config(config)
    x = torch.randn(4, 5)
    np.testing.assert_allclose(clone(x).numpy(), x[:, :2].numpy() * 6.0, rtol=1e-6)
    assert clone(Input((5,))).shape == (None, 2)


def test_lambda_bytecode_refused_in_safe_mode():
    config = Lambda(lambda x: x).get_config()
    with pytest.raises(ValueError, match="safe_mode=False.*enable_unsafe_deserialization"):
        Lambda.from_config(config)
    with safe_mode_scope(False), pytest.raises(ValueError, match="execute code"):
        Lambda.from_config(config, safe_mode=True)
    assert isinstance(Lambda.from_config(config, safe_mode=False), Lambda)


def _double(x):
    return x * 2


def test_lambda_named_function_saved_by_name_and_found_again():
    config = json.loads(json.dumps(Lambda(_double).get_config()))
    assert config["function"]["class_name"] == "function"
    assert config["function"]["config"] == "_double"
    with pytest.raises(TypeError, match="could not find the function '_double'"):
        Lambda.from_config(config)
    clone = Lambda.from_config(config, custom_objects={"_double": _double})
    assert torch.equal(clone(torch.ones(2)), torch.full((2,), 2.0))
    builtin = Lambda.from_config(json.loads(json.dumps(Lambda(activations.relu).get_config())))
    assert builtin.function is activations.relu


def test_lambda_registered_function_roundtrip():
    @register_keras_serializable(package="TestCore")
    def triple(x):
        return x * 3

    config = json.loads(json.dumps(Lambda(triple).get_config()))
    assert config["function"]["config"] == "TestCore>triple"
    assert Lambda.from_config(config).function is triple


def test_lambda_arguments_training_mask_and_output_shape_function():
    def fn(x, power, training=None, mask=None):
        return x ** power + (1.0 if training else 0.0)

    layer = Lambda(fn, arguments={"power": 2}, output_shape=lambda s: s,
                   mask=lambda inputs, mask: inputs > 1)
    x = torch.tensor([[0.5, 2.0]])
    out = layer(x)
    np.testing.assert_allclose(out.numpy(), [[0.25, 4.0]])
    assert out._keras_mask.tolist() == [[False, True]]
    np.testing.assert_allclose(layer(x, training=True).numpy(), [[1.25, 5.0]])
    assert layer(Input((7,))).shape == (None, 7)


def test_lambda_keras2_config_loads():
    code = Lambda(lambda x: x + 1).get_config()["function"]["config"]["code"]
    config = {"name": "lam", "trainable": True, "dtype": "float32", "function": [code, None, None],
              "function_type": "lambda", "module": "__main__", "output_shape": None,
              "output_shape_type": "raw", "output_shape_module": None, "arguments": {}}
    with safe_mode_scope(False):
        layer = Lambda.from_config(config)
    assert torch.equal(layer(torch.zeros(2)), torch.ones(2))


def test_lambda_rejects_non_callable():
    with pytest.raises(ValueError, match="function must be callable"):
        Lambda(3)


# ---------------------------------------------------------------- Flatten
def test_flatten_harness_and_numbers():
    run_layer_test(Flatten, {}, input_shape=(2, 3, 4, 5), expected_output_shape=(2, 60))
    x = torch.randn(2, 3, 4)
    np.testing.assert_array_equal(Flatten()(x).numpy(), x.numpy().reshape(2, 12))
    assert Flatten()(torch.ones(3)).shape == (3, 1)
    assert Flatten()(Input((None, 4))).shape == (None, None)
    assert Flatten().compute_output_shape((None,)) == (None, 1)


def test_flatten_channels_first_uses_channels_last_order():
    x = torch.randn(2, 3, 4, 5)  # (batch, channels, h, w)
    expected = np.transpose(x.numpy(), (0, 2, 3, 1)).reshape(2, -1)
    layer = Flatten(data_format="channels_first")
    np.testing.assert_array_equal(layer(x).numpy(), expected)
    assert layer.get_config()["data_format"] == "channels_first"
    with pytest.raises(ValueError, match="data_format"):
        Flatten(data_format="nhwc")


# ---------------------------------------------------------------- Reshape
def test_reshape_harness_and_numbers():
    run_layer_test(Reshape, {"target_shape": (3, -1)}, input_shape=(2, 12),
                   expected_output_shape=(2, 3, 4))
    x = torch.randn(2, 3, 4)
    np.testing.assert_array_equal(Reshape((4, 3))(x).numpy(), x.numpy().reshape(2, 4, 3))
    assert Reshape((-1, 2))(torch.ones(0, 6)).shape == (0, 3, 2)
    assert Reshape((-1, 2))(Input((None, 4))).shape == (None, None, 2)


def test_reshape_errors():
    with pytest.raises(ValueError, match="at most one -1"):
        Reshape((-1, -1))
    with pytest.raises(ValueError, match="non-negative"):
        Reshape((2, -3))
    layer = Reshape((5, -1), name="resh")
    with pytest.raises(ValueError, match="Reshape 'resh'.*total size"):
        layer(torch.ones(2, 12))
    with pytest.raises(ValueError, match="total size"):
        Reshape((5, 5))(Input((12,)))


# ---------------------------------------------------------------- Permute
def test_permute_harness_and_numbers():
    run_layer_test(Permute, {"dims": (2, 1)}, input_shape=(2, 3, 4),
                   expected_output_shape=(2, 4, 3))
    x = torch.randn(2, 3, 4, 5)
    out = Permute((3, 1, 2))(x)
    np.testing.assert_array_equal(out.numpy(), np.transpose(x.numpy(), (0, 3, 1, 2)))
    assert Permute((3, 1, 2)).get_config()["dims"] == (3, 1, 2)


def test_permute_errors():
    with pytest.raises(ValueError, match=r"dims must be a permutation.*Received: dims=\(0, 1\)"):
        Permute((0, 1))
    with pytest.raises(ValueError, match="rank 3"):
        Permute((2, 1))(torch.ones(2, 3, 4, 5))


# ---------------------------------------------------------------- RepeatVector
def test_repeat_vector_harness_and_numbers():
    run_layer_test(RepeatVector, {"n": 3}, input_shape=(2, 4), expected_output_shape=(2, 3, 4))
    x = torch.randn(2, 4)
    out = RepeatVector(3)(x)
    np.testing.assert_array_equal(out.numpy(), np.repeat(x.numpy()[:, None], 3, axis=1))
    out[0, 0, 0] = 7.0  # a real tensor, not a broadcast view
    assert out[0, 1, 0] != 7.0


def test_repeat_vector_errors():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        RepeatVector(0)
    with pytest.raises(ValueError, match="rank 2"):
        RepeatVector(2)(torch.ones(2, 3, 4))


# ---------------------------------------------------------------- Embedding
def test_embedding_harness_and_lookup():
    run_layer_test(Embedding, {"input_dim": 10, "output_dim": 4}, input_shape=(2, 5),
                   input_dtype="int64", expected_output_shape=(2, 5, 4),
                   expected_num_trainable_weights=1)
    layer = Embedding(10, 3)
    idx = torch.tensor([[1, 9, 0], [4, 4, 2]])
    out = layer(idx)
    table = layer.get_weights()
    assert table[0].shape == (10, 3)
    np.testing.assert_array_equal(out.detach().numpy(), table[0][idx.numpy()])
    np.testing.assert_array_equal(layer(idx.float()).detach().numpy(), out.detach().numpy())
    np.testing.assert_array_equal(layer(idx.int()).detach().numpy(), out.detach().numpy())
    assert np.abs(table[0]).max() <= 0.05


def test_embedding_symbolic_output_is_float():
    out = Embedding(10, 3)(Input((5,), dtype="int32"))
    assert out.shape == (None, 5, 3) and out.dtype == "float32"


def test_embedding_mask_zero_propagates():
    idx = torch.tensor([[3, 1, 0, 0], [2, 0, 0, 0]])
    out = Embedding(5, 2, mask_zero=True)(idx)
    assert out._keras_mask.tolist() == (idx != 0).tolist()
    assert not hasattr(Embedding(5, 2)(idx), "_keras_mask")
    tokens = Input((4,), dtype="int64")
    model = Model(tokens, Dense(3)(Embedding(5, 2, mask_zero=True)(tokens)))
    assert torch.equal(model(idx)._keras_mask, idx != 0)


def test_embedding_weights_argument_keras2_keys_and_errors():
    table = np.arange(12, dtype="float32").reshape(4, 3)
    layer = Embedding(4, 3, weights=[table], input_length=7)
    np.testing.assert_array_equal(layer(torch.tensor([2])).detach().numpy(), table[[2]])
    with pytest.raises(ValueError, match="input_dim must be a positive integer"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="output_dim"):
        Embedding(3, 2.5)


def test_embedding_matches_keras_fixture():
    layer = Embedding.from_config(_fixture_layer("seq_embedding", "embedding")["config"])
    assert (layer.input_dim, layer.output_dim, layer.mask_zero) == (100, 8, False)
    layer.build_from_config({"input_shape": [None, 15]})
    layer.set_weights(_fixture_vars("seq_embedding", "embedding"))
    dense = Dense.from_config(_fixture_layer("seq_embedding", "dense")["config"])
    dense.build_from_config({"input_shape": [None, 8]})
    dense.set_weights(_fixture_vars("seq_embedding", "dense"))
    x = torch.as_tensor(np.load(FIXTURES / "seq_embedding.x.npy"))
    y = dense(layer(x).mean(1))
    np.testing.assert_allclose(y.detach().numpy(), np.load(FIXTURES / "seq_embedding.y.npy"),
                               atol=1e-6)
