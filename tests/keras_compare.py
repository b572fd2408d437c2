"""Helpers for tests that run the same code with Kestrel and with real Keras."""
import numpy as np
import torch


def as_numpy(x):
    """A tensor (detached, on the host) or an array-like as a NumPy array."""
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)


def layout(model):
    """(class, name, parameter count) per layer."""
    return [(type(l).__name__, l.name, l.count_params()) for l in model.layers]


def copy_weights(src, dst):
    """Layer by layer, so the check does not depend on the model-level weight order."""
    for a, b in zip(src.layers, dst.layers):
        b.set_weights(a.get_weights())


def summary_text(model, line_length=80) -> str:
    """What `model.summary(line_length=...)` prints, as one string."""
    lines = []
    model.summary(line_length=line_length, print_fn=lambda line, **kw: lines.append(line))
    return "\n".join(lines).strip()
