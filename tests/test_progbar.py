"""Progbar: Keras 3's line format, averaging, throttling and lazy tensor conversion."""
import re
import types

import pytest
import torch

from kestrel.utils import progbar as progbar_module
from kestrel.utils.progbar import Progbar


@pytest.fixture
def clock(monkeypatch):
    """A fake clock for the progbar module: set `clock.now` to move time."""
    fake = types.SimpleNamespace(now=0.0)
    fake.time = lambda: fake.now
    monkeypatch.setattr(progbar_module, "time", fake)
    return fake


def test_line_format_when_not_a_tty(capsys, clock):
    bar = Progbar(4, interval=0)
    clock.now = 1.0  # slow first step, left out of the estimate once past it
    bar.update(1, [("loss", 1.0), ("accuracy", 0.25)])
    clock.now = 1.003
    bar.update(2, [("loss", 2.0), ("accuracy", 0.75)])
    clock.now = 1.006
    bar.update(4, [("loss", 4.0), ("accuracy", 1.0)])
    lines = capsys.readouterr().out.split("\n")
    assert lines[0] == "1/4 ━━━━━─────────────── 3s 1s/step - loss: 1.0000 - accuracy: 0.2500"
    # Stateless values are averaged; the ETA counts only steps after the first one.
    assert lines[1] == "2/4 ━━━━━━━━━━────────── 0s 3ms/step - loss: 1.5000 - accuracy: 0.5000"
    # The final line shows the elapsed time and the last values, then a newline.
    assert lines[2] == "4/4 ━━━━━━━━━━━━━━━━━━━━ 1s 2ms/step - loss: 4.0000 - accuracy: 1.0000"
    assert lines[3] == "" and len(lines) == 4


def test_stateful_metrics_are_shown_as_given(capsys, clock):
    bar = Progbar(2, interval=0, stateful_metrics=["accuracy"])
    bar.update(1, [("loss", 1.0), ("accuracy", 0.2)])
    bar.update(2, [("loss", 3.0), ("accuracy", 0.9)], finalize=False)
    assert bar.value("loss") == 2.0
    assert bar.value("accuracy") == pytest.approx(0.9)
    with pytest.raises(ValueError, match="Received: stateful_metrics"):
        Progbar(2, stateful_metrics=["a"], stateless_metrics=["b"])


def test_eta_and_time_units(capsys, clock):
    bar = Progbar(100, interval=0)
    clock.now = 0.5
    bar.update(1)
    for now, step, eta in [(2.5, 2, "3:16"), (200.5, 3, "2:41:40"), (200.6, 99, "2s"), (200.6, 98, "4s")]:
        clock.now = now
        bar.update(step)
        assert f" {eta} " in capsys.readouterr().out.split("\n")[-2]
    assert progbar_module._format_time(2e-5, "step") == " 20us/step"
    assert progbar_module._format_time(0.25, "sample") == " 250ms/sample"
    assert progbar_module._format_time(3.0, "step") == " 3s/step"


def test_small_values_use_exponent_and_unknown_target(capsys, clock):
    bar = Progbar(None, interval=0)
    bar.update(3, [("loss", 1e-5)])
    assert capsys.readouterr().out == "      3/Unknown 0s 0s/step - loss: 1.0000e-05\n"


def test_verbose_2_prints_one_line_at_the_end(capsys, clock):
    bar = Progbar(29, verbose=2)
    for step in range(1, 30):
        clock.now = step * 0.003
        bar.update(step, [("loss", 0.31)])
    assert capsys.readouterr().out == "29/29 - 0s - 3ms/step - loss: 0.3100\n"


def test_verbose_0_prints_nothing(capsys):
    bar = Progbar(3, verbose=0)
    bar.update(3, [("loss", 1.0)])
    assert capsys.readouterr().out == ""


def test_tty_redraws_in_place_with_colors(capsys, clock):
    bar = Progbar(2, interval=0)
    bar._dynamic_display = True
    bar.update(1, [("loss", 123.0)])
    bar.update(2, [("loss", 1.0)])
    first, second = capsys.readouterr().out.split("\r")[1:]
    assert not first.endswith("\n") and second.endswith("\n")
    plain = re.sub(r"\x1b\[\d+m", "", second)
    assert plain.startswith("2/2 " + "━" * 20 + " 0s 0s/step - loss: 1.0000")
    assert "\x1b[32m" in second  # the done part is green
    # The shorter line is padded to erase the end of the longer one.
    # Like Keras, each redraw first backspaces over the previous line's width.
    assert first.endswith("\b" * len(re.sub(r"\x1b\[\d+m", "", first.rstrip("\b"))))
    assert len(plain.rstrip("\n")) == len(re.sub(r"\x1b\[\d+m", "", first.rstrip("\b")))


class _CountingScalar:
    """A stand-in for a device tensor that counts host conversions."""

    conversions = 0

    def detach(self):
        _CountingScalar.conversions += 1
        return torch.tensor(0.5)


def test_values_are_converted_only_when_printed(capsys, clock):
    clock.now = 100.0
    bar = Progbar(10, interval=1.0, stateful_metrics=["loss"])
    for step in range(1, 10):  # all within one interval: only the first one prints
        bar.update(step, [("loss", _CountingScalar())])
    assert _CountingScalar.conversions == 1
    assert not bar.due()
    clock.now = 105.0
    assert bar.due()
    bar.update(10, [("loss", _CountingScalar())])
    assert _CountingScalar.conversions == 2
    assert capsys.readouterr().out.count("\n") == 2


def test_tensor_values_average(capsys):
    bar = Progbar(2, verbose=0)
    bar.update(1, [("loss", torch.tensor(1.0))])
    bar.update(2, [("loss", torch.tensor(2.0))], finalize=False)
    assert bar.value("loss") == 1.5
    bar.add(1, [("loss", torch.tensor(6.0))])
    assert bar.value("loss") == 6.0  # finalized past the target: the last value
