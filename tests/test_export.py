"""export_model: ONNX Runtime, TorchScript and torch.export artifacts reproduce predict()."""
import os

import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel import layers
from kestrel.export import TensorSpec, export_model

ATOL = 1e-5
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def _mlp():
    return keras.Sequential([keras.Input(shape=(8,)), layers.Dense(16, activation="relu"),
                             layers.Dropout(0.5), layers.Dense(3, activation="softmax")])


def _two_inputs():
    a, b = keras.Input(shape=(8,), name="a"), keras.Input(shape=(4,), name="b")
    x = layers.Concatenate()([layers.Dense(6, activation="tanh")(a), layers.Dense(6)(b)])
    x = layers.BatchNormalization()(x)
    return keras.Model([a, b], [layers.Dense(1, name="score")(x),
                                layers.Dense(2, activation="softmax", name="kind")(x)])


def _cnn():
    return keras.Sequential([
        keras.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(), layers.MaxPooling2D(), layers.Flatten(), layers.Dense(2)])


def _ort_run(path, feeds):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(os.fspath(path))
    return session, session.run(None, feeds)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_onnx_mlp_matches_predict_for_any_batch(tmp_path):
    pytest.importorskip("onnxscript")
    model = _mlp()
    export_model(model, tmp_path / "mlp.onnx", verbose=False)
    for batch in (1, 5):  # exported with an example batch of 2; the batch axis is dynamic
        x = _rand(batch, 8)
        session, (out,) = _ort_run(tmp_path / "mlp.onnx", {model.inputs[0].name: x})
        np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=ATOL)
    assert session.get_inputs()[0].shape == ["batch", 8]


def test_onnx_functional_two_inputs_two_outputs(tmp_path):
    pytest.importorskip("onnxscript")
    keras.utils.set_random_seed(1)
    model = _two_inputs()
    xa, xb = _rand(4, 8, seed=1), _rand(4, 4, seed=2)
    norm, = [l for l in model.layers if isinstance(l, layers.BatchNormalization)]
    norm.set_weights([w + 0.3 for w in norm.get_weights()])  # non-trivial moving statistics
    export_model(model, tmp_path / "f.onnx", verbose=False)
    session, outputs = _ort_run(tmp_path / "f.onnx", {"a": xa, "b": xb})
    assert [o.name for o in session.get_outputs()] == ["score", "kind"]
    for out, ref in zip(outputs, model.predict([xa, xb], verbose=0)):
        np.testing.assert_allclose(out, ref, atol=ATOL)


def test_onnx_cnn(tmp_path):
    pytest.importorskip("onnxscript")
    model, x = _cnn(), _rand(3, 8, 8, 1)
    export_model(model, tmp_path / "cnn.onnx", verbose=False)
    _, (out,) = _ort_run(tmp_path / "cnn.onnx", {model.inputs[0].name: x})
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=ATOL)


def test_onnx_embedding_lstm(tmp_path):
    pytest.importorskip("onnxscript")
    model = keras.Sequential([keras.Input(shape=(6,), dtype="int64"),
                              layers.Embedding(20, 4), layers.LSTM(5), layers.Dense(1)])
    x = np.random.default_rng(0).integers(0, 20, (3, 6))
    export_model(model, tmp_path / "lstm.onnx", verbose=False)
    _, (out,) = _ort_run(tmp_path / "lstm.onnx", {model.inputs[0].name: x})
    np.testing.assert_allclose(out, model.predict(x, verbose=0), atol=ATOL)


def test_torchscript_and_torch_export_match_predict(tmp_path):
    model = _two_inputs()
    xa, xb = _rand(5, 8), _rand(5, 4)
    expected = model.predict([xa, xb], verbose=0)
    export_model(model, tmp_path / "f.pt", format="torchscript", verbose=False)
    export_model(model, tmp_path / "f.pt2", format="torch_export", verbose=False)
    scripted = torch.jit.load(tmp_path / "f.pt")
    program = torch.export.load(tmp_path / "f.pt2").module()
    with torch.no_grad():
        for run in (scripted, program):
            outputs = run(torch.from_numpy(xa), torch.from_numpy(xb))
            for out, ref in zip(outputs, expected):
                np.testing.assert_allclose(out.numpy(), ref, atol=ATOL)


def test_subclassed_model_and_explicit_signature(tmp_path):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(4, activation="relu")
            self.out = layers.Dense(2)

        def call(self, x):
            return self.out(self.hidden(x))

    net = Net()
    with pytest.raises(ValueError, match="not been built"):
        export_model(net, tmp_path / "n.pt2", format="torch_export")
    assert not os.listdir(tmp_path)
    export_model(net, tmp_path / "n.pt2", format="torch_export",
                 input_signature=[TensorSpec((None, 3))], verbose=False)
    x = _rand(7, 3)
    with torch.no_grad():
        out = torch.export.load(tmp_path / "n.pt2").module()(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), net.predict(x, verbose=0), atol=ATOL)


def test_inference_mode_and_training_flag_restored(tmp_path):
    model = _mlp()
    model.train()
    export_model(model, tmp_path / "m.pt", format="torchscript", verbose=False)
    assert model.training and model.layers[1].training
    x = _rand(64, 8)
    with torch.no_grad():
        out = torch.jit.load(tmp_path / "m.pt")(torch.from_numpy(x))
    model.eval()
    np.testing.assert_allclose(out.numpy(), model.predict(x, verbose=0), atol=ATOL)


def test_errors_and_atomic_writes(tmp_path, capsys):
    model = _mlp()
    with pytest.raises(ValueError, match="'onnx', 'torchscript', 'torch_export'.*format='tflite'"):
        export_model(model, tmp_path / "m.tflite", format="tflite")
    with pytest.raises(ValueError, match=r"\.pt2"):
        export_model(model, tmp_path / "m.pt", format="torch_export")
    with pytest.raises(ValueError, match="opset_version"):
        export_model(model, tmp_path / "m.pt", format="torchscript", opset_version=17)
    target = tmp_path / "m.pt"
    target.write_bytes(b"previous")
    with pytest.raises(ValueError):  # fails while tracing: wrong input size
        export_model(model, target, format="torchscript", input_signature=[(None, 5)])
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["m.pt"]
    export_model(model, target, format="torchscript")
    assert "Saved artifact at" in capsys.readouterr().out


def test_masked_lstm_exports_to_onnx(tmp_path):
    import onnxruntime as ort

    model = keras.Sequential([keras.Input(shape=(6,), dtype="int64"),
                              keras.layers.Embedding(20, 4, mask_zero=True),
                              keras.layers.LSTM(5), keras.layers.Dense(2)])
    x = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 8, 9]])
    model.export(str(tmp_path / "masked.onnx"))
    session = ort.InferenceSession(str(tmp_path / "masked.onnx"))
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x), rtol=1e-5, atol=1e-6)
