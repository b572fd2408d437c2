"""plot_history: one subplot per metric, train and val_ curves carrying the logged values."""
import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402

import kestrel as keras  # noqa: E402
from kestrel import layers  # noqa: E402
from kestrel.utils.plot_history import plot_history  # noqa: E402

LOGS = {"loss": [1.0, 0.5, 0.25], "accuracy": [0.5, 0.7, 0.9],
        "val_loss": [1.1, 0.6, 0.4], "val_accuracy": [0.4, 0.6, 0.8]}


def _curves(ax) -> dict:
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in ax.get_lines()}


def test_one_subplot_per_metric_with_validation(tmp_path):
    path = tmp_path / "curves.png"
    fig = plot_history(LOGS, to_file=path)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    loss = _curves(fig.axes[0])
    assert loss["train"] == ([1, 2, 3], LOGS["loss"])
    assert loss["validation"] == ([1, 2, 3], LOGS["val_loss"])
    assert _curves(fig.axes[1])["validation"][1] == LOGS["val_accuracy"]
    image = matplotlib.image.imread(path)
    assert image.shape[1] > image.shape[0] > 100  # two plots side by side


def test_history_from_fit_and_metric_selection(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.rand(32, 4).astype("float32")
    history = model.fit(x, x.sum(1, keepdims=True), epochs=2, verbose=0)
    fig = plot_history(history, metrics="loss", to_file=tmp_path / "loss.svg")
    assert len(fig.axes) == 1
    assert _curves(fig.axes[0]) == {"train": ([1, 2], history.history["loss"])}
    assert (tmp_path / "loss.svg").read_bytes().lstrip().startswith(b"<?xml")


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="mae"):
        plot_history(LOGS, metrics=["mae"])
    with pytest.raises(TypeError, match="History"):
        plot_history([1, 2])
