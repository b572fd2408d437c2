"""`plot_history`: learning curves of a `fit()` run, one subplot per metric.

Each subplot draws a metric per epoch and, when present, its `val_` counterpart. Drawing uses
matplotlib's Agg backend through the object API, so it works without a display and leaves
pyplot's global state alone.
"""
from __future__ import annotations

import os


def _history_dict(history) -> dict:
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError("plot_history expects a History (returned by fit()) or a dict of "
                        f"lists. Received: history={history!r}")
    return logs


def plot_history(history, metrics=None, to_file=None):
    """Plot training curves; returns the matplotlib `Figure`.

    Args:
        history: the `History` returned by `fit()`, or its `.history` dict.
        metrics: names to plot (without `val_`); default: every logged metric that is not a
            `val_` one, in logging order (or the validation ones when only those exist).
        to_file: optional image path; the suffix picks the format (png, svg, pdf).

    Example:
        >>> history = model.fit(x, y, validation_split=0.2, epochs=5)
        >>> fig = keras.utils.plot_history(history, to_file="curves.png")
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plot_history needs matplotlib: `pip install kestrel[plot]` (or "
                          "`pip install matplotlib`).") from None
    logs = _history_dict(history)
    if metrics is None:
        metrics = [k for k in logs if not k.startswith("val_")] or \
            [k[4:] for k in logs if k.startswith("val_")]
    elif isinstance(metrics, str):
        metrics = [metrics]
    missing = [m for m in metrics if m not in logs and f"val_{m}" not in logs]
    if missing or not metrics:
        raise ValueError(f"plot_history: no logged values for {missing or 'any metric'}. "
                         f"Logged: {sorted(logs)}. Received: metrics={metrics}")
    fig = Figure(figsize=(5 * len(metrics), 4), layout="constrained")
    FigureCanvasAgg(fig)
    for index, name in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), index + 1)
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in logs:
                values = [float(v) for v in logs[key]]
                ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend()
    if to_file is not None:
        to_file = os.fspath(to_file)
        folder = os.path.dirname(os.path.abspath(to_file))
        os.makedirs(folder, exist_ok=True)
        fig.savefig(to_file)
    return fig
