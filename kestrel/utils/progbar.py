"""Keras 3's progress bar: `29/29 ━━━━━━━━━━━━━━━━━━━━ 1s 3ms/step - loss: 0.3100`."""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

_BOLD, _GREEN, _WHITE, _RESET = "\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m"
_BAR_CHAR = "━"
_PLAIN_TODO_CHAR = "─"  # without colors, the part still to do is drawn thinner


def _to_float(value) -> float:
    """A displayable float from a Python number, NumPy value or torch tensor (syncs)."""
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "detach"):  # torch tensor: one host sync, only when printing
        return float(value.detach().float().mean())
    return float(np.mean(value))


def _format_value(value: float, signed: bool = True) -> str:
    """Fixed point unless tiny; Keras' one-line-per-epoch log (`signed=False`) compares the
    value itself, not its magnitude, so negatives print in scientific notation there."""
    return f"{value:.4f}" if (abs(value) if signed else value) > 1e-3 else f"{value:.4e}"


def _format_time(seconds: float, unit_name: str) -> str:
    """Time per unit in s, ms or us, e.g. `" 3ms/step"`."""
    if seconds >= 1 or seconds == 0:
        return f" {seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f" {seconds * 1e3:.0f}ms/{unit_name}"
    return f" {seconds * 1e6:.0f}us/{unit_name}"


def _format_eta(eta: float) -> str:
    if eta > 3600:
        return f"{int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
    if eta > 60:
        return f"{int(eta // 60)}:{int(eta % 60):02d}"
    return f"{int(eta)}s"


class Progbar:
    """Displays a progress bar.

    Values may be 0-d torch tensors; they are converted to floats only when a line is
    printed, and redraws are throttled to one per `interval` seconds.

    Args:
        target: Total number of steps expected, `None` if unknown.
        width: Progress bar width on screen.
        verbose: 0 (silent), 1 (redrawn bar), 2 (one line when finished).
        interval: Minimum time in seconds between two redraws.
        stateful_metrics: Names of metrics shown as given rather than averaged over time.
        stateless_metrics: Names of metrics that are averaged; all others are shown as given.
            Give at most one of `stateful_metrics` and `stateless_metrics`.
        unit_name: Name of a step in the time-per-unit display.

    >>> bar = Progbar(3, verbose=0)
    >>> bar.update(1, [("loss", 1.0)]); bar.update(2, [("loss", 3.0)])
    >>> bar.value("loss")
    2.0
    """

    def __init__(self, target: int | None, width: int = 20, verbose: int = 1,
                 interval: float = 0.05, stateful_metrics=None, stateless_metrics=None,
                 unit_name: str = "step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError(
                "Progbar accepts only one of `stateful_metrics` or `stateless_metrics`. "
                f"Received: stateful_metrics={stateful_metrics}, "
                f"stateless_metrics={stateless_metrics}"
            )
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stateful_metrics = None if stateless_metrics is not None else set(
            stateful_metrics or ())
        self.stateless_metrics = None if stateless_metrics is None else set(stateless_metrics)
        self._dynamic_display = (
            (hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
            or "ipykernel" in sys.modules
            or "PYCHARM_HOSTED" in os.environ
        )
        self._values: dict[str, list] = {}  # name -> [sum or value, count]
        self._seen_so_far = 0
        self._start = time.time()
        self._last_update = 0.0
        self._time_after_first_step: float | None = None
        self._prev_total_width = 0

    def due(self) -> bool:
        """Whether the next non-final `update` would redraw the bar (cheap)."""
        return self.verbose == 1 and time.time() - self._last_update >= self.interval

    def value(self, name: str) -> float:
        """The value currently displayed for metric `name`."""
        total, count = self._values[name]
        return _to_float(total) / max(1, count)

    def update(self, current: int, values=None, finalize: bool | None = None) -> None:
        """Advance to step `current` and record `values`, a list of `(name, value)`.

        Args:
            current: Index of the current step.
            values: `(name, value_for_last_step)` pairs; stateless ones are averaged.
            finalize: Whether this is the last update; defaults to `current >= target`.
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or ():
            if self.stateful_metrics is not None:
                stateless = name not in self.stateful_metrics
            else:
                stateless = name in self.stateless_metrics
            if stateless and not finalize:
                weight = max(current - self._seen_so_far, 1)
                entry = self._values.get(name)
                if entry is None:
                    self._values[name] = [value * weight, weight]
                else:
                    entry[0] = entry[0] + value * weight
                    entry[1] += weight
            else:
                self._values[name] = [value, 1]
        self._seen_so_far = current

        now = time.time()
        if current == 1:
            self._time_after_first_step = now
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            self._print_bar(current, now, finalize)
        elif self.verbose == 2 and finalize:
            self._print_line(current, now)
        self._last_update = now

    def add(self, n: int, values=None) -> None:
        """Advance by `n` steps."""
        self.update(self._seen_so_far + n, values)

    def _metrics_text(self, signed: bool = True) -> str:
        return "".join(f" - {name}: {_format_value(self.value(name), signed)}"
                       for name in self._values)

    def _print_bar(self, current: int, now: float, finalize: bool) -> None:
        time_per_unit = self._estimate_step_duration(current, now)
        color = self._dynamic_display
        if self.target:
            digits = int(math.log10(self.target)) + 1
            count = f"{current:{digits}d}/{self.target}"
            done = min(self.width, int(self.width * current / self.target))
            full = _BAR_CHAR * done
            if color:
                empty = _BAR_CHAR * (self.width - done)
                bar = f"{_BOLD}{count}{_RESET} "
                bar += (f"{_GREEN}{full}{_RESET}" if done else "") + f"{_WHITE}{empty}{_RESET}"
            else:
                empty = _PLAIN_TODO_CHAR * (self.width - done)
                bar = f"{count} {full}{empty}"
            plain_bar = f"{count} {full}{empty}"
        else:
            bar = plain_bar = f"{current:7d}/Unknown"
        if self.target and not finalize:
            elapsed = _format_eta(time_per_unit * (self.target - current))
        else:
            elapsed = f"{now - self._start:.0f}s"
        info = _format_time(time_per_unit, self.unit_name) + self._metrics_text()
        time_text = f" {_BOLD}{elapsed}{_RESET}" if color else f" {elapsed}"
        line = bar + time_text + info
        if color:
            width = len(plain_bar) + 1 + len(elapsed) + len(info)
            erase = "\b" * self._prev_total_width  # as Keras: back over the old line, then \r
            line = erase + "\r" + line + " " * max(0, self._prev_total_width - width)
            self._prev_total_width = width
            line += "\n" if finalize else ""
        else:
            line += "\n"
        sys.stdout.write(line)
        sys.stdout.flush()

    def _print_line(self, current: int, now: float) -> None:
        time_per_unit = self._estimate_step_duration(current, now)
        if self.target:
            digits = int(math.log10(self.target)) + 1
            head = f"{current:{digits}d}/{self.target} - "
        else:
            head = f"{current} - "
        line = (f"{head}{now - self._start:.0f}s -"
                f"{_format_time(time_per_unit, self.unit_name)}{self._metrics_text(False)}\n")
        sys.stdout.write(line)
        sys.stdout.flush()

    def _estimate_step_duration(self, current: int, now: float) -> float:
        """Seconds per step, ignoring the (slow, warm-up) first step once past it."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            return (now - self._time_after_first_step) / (current - 1)
        return (now - self._start) / current
