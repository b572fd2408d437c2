"""TensorBoard: event files read back with TensorBoard's own EventAccumulator."""
import builtins
import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from kestrel.callbacks import CallbackList, TensorBoard  # noqa: E402
from kestrel.callbacks import tensorboard as tensorboard_module  # noqa: E402


class Optimizer:
    learning_rate = 0.01
    iterations = 0


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = torch.nn.Linear(3, 2)
        self.optimizer = Optimizer()
        self.stop_training = False

    def to_json(self):
        return json.dumps({"class_name": "Sequential", "config": {"name": "tiny"}})


def _fit(callback, epochs=2, steps=3, model=None):
    model = model or Model()
    callbacks = CallbackList([callback], model=model, verbose=0, epochs=epochs, steps=steps)
    callbacks.on_train_begin()
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            model.optimizer.iterations += 1
            callbacks.on_train_batch_end(step, {"loss": torch.tensor(1.0 + step)})
        callbacks.on_test_begin()
        callbacks.on_test_end({"loss": 0.5})
        callbacks.on_epoch_end(epoch, {"loss": 0.25 * (epoch + 1), "accuracy": 0.5,
                                       "val_loss": 0.75, "val_accuracy": 0.125})
    callbacks.on_train_end()
    return model


def _read(folder):
    events = EventAccumulator(str(folder), size_guidance={"histograms": 0, "images": 0})
    events.Reload()
    return events


def _scalars(events, tag):
    return [(event.step, pytest.approx(event.value)) for event in events.Scalars(tag)]


def test_epoch_scalars_in_train_and_validation_folders(tmp_path):
    _fit(TensorBoard(tmp_path, write_steps_per_second=True))
    train, val = _read(tmp_path / "train"), _read(tmp_path / "validation")
    assert _scalars(train, "epoch_loss") == [(0, 0.25), (1, 0.5)]
    assert _scalars(train, "epoch_accuracy") == [(0, 0.5), (1, 0.5)]
    assert _scalars(train, "epoch_learning_rate") == [(0, 0.01), (1, 0.01)]
    assert [e.step for e in train.Scalars("epoch_steps_per_second")] == [0, 1]
    assert all(e.value > 0 for e in train.Scalars("epoch_steps_per_second"))
    assert _scalars(val, "epoch_loss") == [(0, 0.75), (1, 0.75)]
    assert _scalars(val, "epoch_accuracy") == [(0, 0.125), (1, 0.125)]
    assert _scalars(val, "evaluation_loss_vs_iterations") == [(3, 0.5), (6, 0.5)]
    assert not [t for t in train.Tags()["scalars"] if t.startswith(("batch_", "val_"))]
    # The model config is written for the graph dashboard, as Keras does.
    assert "keras" in train.Tags()["tensors"]
    config = train.Tensors("keras")[0].tensor_proto.string_val[0]
    assert json.loads(config)["config"]["name"] == "tiny"


def test_batch_scalars_every_update_freq(tmp_path):
    _fit(TensorBoard(tmp_path, update_freq=2, write_graph=False))
    train = _read(tmp_path / "train")
    assert _scalars(train, "batch_loss") == [(2, 2.0), (4, 1.0), (6, 3.0)]
    assert "keras" not in train.Tags()["tensors"]
    _fit(TensorBoard(tmp_path / "every", update_freq="batch"))
    assert len(_read(tmp_path / "every" / "train").Scalars("batch_loss")) == 6


def test_weight_histograms_and_images(tmp_path):
    model = _fit(TensorBoard(tmp_path, histogram_freq=2, write_images=True), epochs=3)
    train = _read(tmp_path / "train")
    assert sorted(train.Tags()["histograms"]) == ["dense/bias/histogram",
                                                  "dense/weight/histogram"]
    histogram = train.Histograms("dense/weight/histogram")
    assert [event.step for event in histogram] == [0, 2]
    assert histogram[0].histogram_value.num == 6
    assert histogram[0].histogram_value.max == pytest.approx(model.dense.weight.max().item())
    # Keras' layout: a bias is one column, a kernel has its longer side across.
    bias, kernel = train.Images("dense/bias/image")[0], train.Images("dense/weight/image")[0]
    assert (bias.width, bias.height) == (1, 2)
    assert (kernel.width, kernel.height) == (3, 2)


def test_profile_batch_writes_a_trace(tmp_path):
    _fit(TensorBoard(tmp_path, profile_batch=(2, 3), write_graph=False), epochs=1)
    traces = [name for name in os.listdir(tmp_path / "train") if name.endswith(".json")]
    assert len(traces) == 1


def test_arguments_are_validated(tmp_path):
    with pytest.raises(ValueError, match=r"Received: profile_batch=\(3, 1\)"):
        TensorBoard(tmp_path, profile_batch=(3, 1))
    with pytest.raises(ValueError, match="Received: update_freq='often'"):
        TensorBoard(tmp_path, update_freq="often")
    assert tensorboard_module._parse_profile_batch("2,4") == (2, 4)


def test_missing_tensorboard_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torch.utils.tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install kestrel\[tensorboard\]"):
        TensorBoard()


def _projected(log_dir, epoch, name):
    folder = log_dir / "train" / f"{epoch:05d}" / name
    tensors = np.loadtxt(folder / "tensors.tsv", delimiter="\t", ndmin=2)
    labels = (folder / "metadata.tsv").read_text().splitlines() \
        if (folder / "metadata.tsv").exists() else None
    return tensors, labels


def test_embeddings_project_embedding_tables_with_their_labels(tmp_path):
    """`embeddings_freq` / `embeddings_metadata` (a file by layer name, read from log_dir):
    each Embedding layer's table every `embeddings_freq` epochs, for the projector."""
    import kestrel
    model = kestrel.Sequential([kestrel.Input((3,), dtype="int32"),
                                kestrel.layers.Embedding(4, 2, name="words"),
                                kestrel.layers.Flatten(), kestrel.layers.Dense(1)])
    model.compile("sgd", "mse")
    (tmp_path / "words.tsv").write_text("the\ncat\nsat\ndown\n")
    board = TensorBoard(tmp_path, embeddings_freq=2, embeddings_metadata={"words": "words.tsv"})
    x, y = np.random.randint(0, 4, (8, 3)), np.random.rand(8, 1)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[board])
    assert sorted(p.name for p in (tmp_path / "train").iterdir() if p.is_dir()) == \
        ["00000", "00002"]
    tensors, labels = _projected(tmp_path, 2, "words")
    np.testing.assert_allclose(tensors, model.get_layer("words").get_weights()[0], rtol=1e-5)
    assert labels == ["the", "cat", "sat", "down"]
    config = (tmp_path / "train" / "projector_config.pbtxt").read_text()
    assert 'tensor_path: "00002/words/tensors.tsv"' in config
    with pytest.raises(ValueError, match=r"embeddings_metadata` argument: \['nouns'\]"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[TensorBoard(
            tmp_path, embeddings_freq=1, embeddings_metadata={"nouns": "words.tsv"})])


def test_keras2_embeddings_data_projects_a_layers_outputs(tmp_path):
    """Keras 2's `embeddings_layer_names` + `embeddings_data`: the named layer's outputs on
    the data, one row a sample, labelled by the metadata file's rows."""
    import kestrel
    model = kestrel.Sequential([kestrel.Input((4,)), kestrel.layers.Dense(3, name="features"),
                                kestrel.layers.Dense(1)])
    model.compile("sgd", "mse")
    data = np.random.rand(5, 4).astype("float32")
    (tmp_path / "metadata.tsv").write_text("".join(f"{i}.0\n" for i in range(5)))
    board = TensorBoard(tmp_path, embeddings_freq=1, embeddings_layer_names=["features"],
                        embeddings_metadata="metadata.tsv", embeddings_data=data)
    model.fit(data, np.zeros((5, 1)), epochs=1, verbose=0, callbacks=[board])
    tensors, labels = _projected(tmp_path, 0, "features")
    features = kestrel.Model(model.inputs, model.get_layer("features").output)
    np.testing.assert_allclose(tensors, features.predict(data, verbose=0), rtol=1e-5)
    assert labels == [f"{i}.0" for i in range(5)]
    (tmp_path / "metadata.tsv").write_text("0\n1\n")
    with pytest.raises(ValueError, match="has 2 rows, but layer 'features' projects 5"):
        model.fit(data, np.zeros((5, 1)), epochs=1, verbose=0, callbacks=[board])
