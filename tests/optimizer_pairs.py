"""The same weights and gradients as Kestrel Variables and as real Keras 3 Variables, for
comparing optimizers step by step."""
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402


def random_values(specs, seed, steps):
    """Initial weights and `steps` gradient lists for `specs` (`(path, shape)` pairs)."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype("float32") for _, s in specs]
    grads = [[rng.normal(size=s).astype("float32") for _, s in specs] for _ in range(steps)]
    return weights, grads


def kestrel_variables(specs, weights):
    """Kestrel Variables holding `weights`, with the Keras paths of `specs` (as layer weights)."""
    out = []
    for (path, _), w in zip(specs, weights):
        v = kestrel.Variable(w.copy(), name=path.split("/")[1])
        v._keras_path = path
        out.append(v)
    return out


def keras_variables(specs, weights):
    """Real Keras Variables holding `weights`, created under the paths of `specs`."""
    out = []
    for (path, _), w in zip(specs, weights):
        with keras.name_scope(path.split("/")[0]):
            out.append(keras.Variable(w.copy(), name=path.split("/")[1]))
    return out
