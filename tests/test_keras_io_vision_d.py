"""keras.io vision examples (part d: ConvMixer, MLP-Mixer, MobileViT, CaiT, Barlow Twins, EDSR,
distillation, PointNet, RandAugment, NNCLR, masked image modeling, EfficientNet fine-tuning):
the same code runs with Kestrel and with real Keras (torch backend) and agrees.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _augmenting_dataset(lib, x, y, reads):
    """A PyDataset that augments each batch it returns (convmixer's input pipeline)."""
    flip = lib.layers.RandomFlip("horizontal")

    class Batches(lib.utils.PyDataset):
        def __len__(self):
            return len(x) // 2

        def __getitem__(self, index):
            reads.append(index)
            rows = slice(2 * index, 2 * index + 2)
            return flip(x[rows]), y[rows]

        def on_epoch_end(self):
            reads.append("end")

    return Batches()


def test_fit_on_shuffled_py_dataset_reads_batches_as_keras():
    """convmixer: fit(PyDataset) shuffles batch order with Python's `random` and, at the first
    fit after compile, reads one batch to build; reads, augmentation draws and losses agree."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (10, 4, 4, 1)).astype("float32")
    y = rng.integers(0, 2, (10, 1))
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        reads = []
        model = k.Sequential([k.Input((4, 4, 1)), k.layers.Flatten(), k.layers.Dense(2)])
        model.compile("sgd", k.losses.SparseCategoricalCrossentropy(from_logits=True))
        history = model.fit(_augmenting_dataset(k, x, y, reads), epochs=2, verbose=0)
        got[lib] = reads, history.history["loss"]
    assert got[kestrel][0] == got[keras][0]
    np.testing.assert_allclose(got[kestrel][1], got[keras][1], rtol=1e-5)


def _config_layers(lib):
    layers = lib.layers
    return [layers.Conv2D(2, 5, groups=1), layers.DepthwiseConv2D(3), layers.Conv1D(2, 3),
            layers.MaxPooling2D((3, 2)), layers.UpSampling2D(), layers.ZeroPadding2D(1),
            layers.Cropping1D(1), layers.Reshape((2, 3)), layers.Permute((2, 1)),
            layers.ConvLSTM2D(2, 3)]


def test_window_hyperparameters_in_config_are_tuples_as_keras():
    """convmixer: `layer.get_config()["kernel_size"] == (5, 5)` picks the depthwise convs,
    so configs hold Keras' tuples (kernel sizes, strides, pools, paddings, shapes)."""
    for theirs, ours in zip(_config_layers(keras), _config_layers(kestrel)):
        expected = {k: v for k, v in theirs.get_config().items() if k != "name"}
        got = {k: v for k, v in ours.get_config().items() if k != "name"}
        tuples = {k for k, v in expected.items() if isinstance(v, tuple)}
        assert tuples and {k for k, v in got.items() if isinstance(v, tuple)} == tuples
        assert {k: got[k] for k in tuples} == {k: expected[k] for k in tuples}
    assert kestrel.layers.Conv2D(2, 5).get_config()["kernel_size"] == (5, 5)


def _build_configs(lib):
    layers = lib.layers
    inputs = lib.Input((4, 4, 3))
    x = layers.Conv2D(3, 1)(inputs)
    for layer in (layers.Activation("gelu"), layers.BatchNormalization(), layers.ReLU(),
                  layers.Dropout(0.1), layers.MaxPooling2D(), layers.Flatten(),
                  layers.Reshape((3, 4)), layers.GlobalAveragePooling1D(), layers.Dense(2),
                  layers.Softmax()):
        x = layer(x)
    model = lib.Model(inputs, x)
    return {entry["name"]: entry.get("build_config") for entry in model.get_config()["layers"]}


def test_layers_keras_builds_at_init_have_no_build_config():
    """convmixer: Activation (and Keras' other layers built at construction: ReLU, Dropout,
    pooling, Reshape, Softmax) carry no build_config in a model's config; the rest do."""
    ours, theirs = _build_configs(_fresh(kestrel)), _build_configs(_fresh(keras))
    assert {k: v is None for k, v in ours.items()} == {k: v is None for k, v in theirs.items()}
    assert ours["activation"] is None and ours["flatten"] == {"input_shape": [None, 2, 2, 3]}


def _epoch_line(lib, capsys):
    k = _fresh(lib)
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    model = k.Sequential([k.Input((3,)), k.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=[k.metrics.BinaryAccuracy(name="zeta")])
    capsys.readouterr()
    model.fit(x, y, batch_size=4, validation_data=(x, y), verbose=2,
              callbacks=[k.callbacks.ReduceLROnPlateau()])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    return line.split("step - ")[1]


def test_progress_line_keeps_the_logs_order_as_keras(capsys):
    """mlp_image_classification: the epoch line lists the step's logs (training and validation,
    sorted together), then keys callbacks add (ReduceLROnPlateau's learning_rate), as Keras."""
    ours, theirs = _epoch_line(kestrel, capsys), _epoch_line(keras, capsys)
    assert ours == theirs
    assert ours.endswith("learning_rate: 0.0100") and ours.index("val_zeta") < ours.index(" zeta")


def _history_keys(lib):
    k = _fresh(lib)

    def PSNR(y_true, y_pred):  # noqa: N802 - a script's upper-case metric function
        return k.ops.psnr(y_true, y_pred, max_val=1.0)

    inputs = k.Input((3,))
    model = k.Model(inputs, k.layers.Dense(3)(inputs))
    model.compile("sgd", "mae", metrics=[PSNR, k.metrics.mean_absolute_error, "mse"])
    x = np.linspace(0, 1, 12, dtype="float32").reshape(4, 3)
    return list(model.fit(x, x, validation_data=(x, x), verbose=0).history)


def test_function_metric_is_logged_under_its_snake_case_name():
    """edsr: compile(metrics=[PSNR]) logs `psnr` / `val_psnr`, as Keras names a function."""
    assert _history_keys(kestrel) == _history_keys(keras)
    assert "val_psnr" in _history_keys(kestrel)


def _printed_summary(lib, capsys):
    k = _fresh(lib)
    inputs = k.Input((4,))
    outputs = k.layers.Add()([k.layers.Dense(3)(inputs), k.layers.Dense(3)(inputs)])
    capsys.readouterr()
    k.Model(inputs, outputs).summary(line_length=120, show_trainable=True)
    return capsys.readouterr().out


def test_summary_wider_than_the_console_is_cropped_as_keras(capsys, monkeypatch):
    """image_classification_efficientnet_fine_tuning: summary(line_length=120) printed to an
    80-column console shows Keras' cropped lines."""
    monkeypatch.setenv("COLUMNS", "80")
    ours, theirs = _printed_summary(kestrel, capsys), _printed_summary(keras, capsys)
    assert ours == theirs
    assert max(len(line) for line in ours.splitlines()) == 80
