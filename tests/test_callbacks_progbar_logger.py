"""ProgbarLogger: epoch headers, verbose modes and evaluate/predict bars."""
import re

import pytest
import torch

from kestrel.callbacks import CallbackList, ProgbarLogger


class Model:
    stop_training = False


def _fit(verbose, epochs=2, steps=3):
    callbacks = CallbackList([], add_progbar=True, model=Model(), verbose=verbose,
                             epochs=epochs, steps=steps)
    callbacks.on_train_begin()
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        for step in range(steps):
            callbacks.on_train_batch_begin(step)
            callbacks.on_train_batch_end(step, {"loss": torch.tensor(0.5), "accuracy": 0.75})
        callbacks.on_test_begin()  # validation inside fit draws no bar of its own
        callbacks.on_test_batch_end(0, {"loss": 9.0})
        callbacks.on_test_end({"loss": 9.0})
        callbacks.on_epoch_end(epoch, {"loss": 0.31, "accuracy": 0.91, "val_loss": 0.4})
    callbacks.on_train_end()


def _lines(out):
    return [line for line in out.split("\n") if line]


def test_verbose_1_prints_headers_and_bars(capsys):
    _fit(verbose=1)
    lines = _lines(capsys.readouterr().out)
    assert lines[0] == "Epoch 1/2"
    # Keys in the order the logs give them, as Keras; the epoch logs, validation included,
    # end the epoch.
    final = re.compile(r"^3/3 ━{20} \d+s \d+(us|ms|s)/step - loss: 0\.3100 - accuracy: 0\.9100"
                       r" - val_loss: 0\.4000$")
    assert final.match(lines[lines.index("Epoch 2/2") - 1])
    assert final.match(lines[-1])
    assert lines[1].startswith("1/3 ━━━━━━──────────────") and "loss: 0.5000" in lines[1]
    assert "9.0000" not in "".join(lines)


def test_verbose_2_prints_one_line_per_epoch(capsys):
    _fit(verbose=2)
    lines = _lines(capsys.readouterr().out)
    assert lines[0::2] == ["Epoch 1/2", "Epoch 2/2"]
    for line in lines[1::2]:
        assert re.match(r"^3/3 - \d+s - \d+(us|ms|s)/step - accuracy: 0\.9100 - loss: 0\.3100 "
                        r"- val_loss: 0\.4000$", line)


def test_verbose_0_prints_nothing(capsys):
    _fit(verbose=0)
    callbacks = CallbackList([ProgbarLogger()], verbose=0, epochs=2, steps=3)
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(0)
    callbacks.on_epoch_end(0, {"loss": 1.0})
    assert capsys.readouterr().out == ""


def test_single_epoch_has_no_header(capsys):
    _fit(verbose=1, epochs=1)
    assert "Epoch" not in capsys.readouterr().out


def test_evaluate_and_predict_draw_bars(capsys):
    callbacks = CallbackList([], add_progbar=True, verbose=1, epochs=1, steps=None)
    callbacks.on_test_begin()
    for step in range(4):
        callbacks.on_test_batch_end(step, {"loss": 2.0})
    callbacks.on_test_end({"loss": 2.0})
    out = _lines(capsys.readouterr().out)
    assert out[0].startswith("      1/Unknown")
    assert out[-1].startswith("4/4 ━━━━━━━━━━━━━━━━━━━━") and out[-1].endswith("loss: 2.0000")
    callbacks.on_predict_begin()
    callbacks.on_predict_batch_end(0, {"outputs": torch.zeros(2)})
    callbacks.on_predict_end()
    assert _lines(capsys.readouterr().out)[-1].startswith("4/4 ━")


def test_count_mode_must_be_steps():
    with pytest.raises(ValueError, match="Received: count_mode='samples'"):
        ProgbarLogger(count_mode="samples")
