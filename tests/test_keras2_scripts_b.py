"""Classic Keras 2 `examples/` scripts (reuters_mlp, mnist_net2net, ...) with `keras` renamed to
`kestrel`: the Keras 2 spellings they rely on, checked against real Keras 3 (torch backend) on
the part of the API both share, and against Keras 2's documented behaviour where Keras 3
dropped the spelling (noted per test).
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402

RNG = np.random.default_rng(0)


def test_reuters_mlp_integer_hyperparameters_from_numpy():
    """reuters_mlp: `num_classes = np.max(y_train) + 1` is a NumPy int, and Keras 2 took it
    as `Dense(num_classes)` (Keras 3 refuses it). Kestrel takes NumPy ints where Keras takes
    ints, keeps Python ints in the config, and builds what Keras builds from the int."""
    y = np.array([3, 0, 45])
    num_classes = np.max(y) + 1
    x = RNG.random((3, 6)).astype("float32")
    got = {}
    for lib, i in ((kestrel, np.int64), (keras, int)):  # Keras 3 refuses some NumPy ints
        k = _fresh(lib)
        got[lib] = k.Sequential([
            k.Input((6,)), k.layers.Dense(i(num_classes)), k.layers.RepeatVector(i(2)),
            k.layers.Reshape((i(2), i(23), 2)), k.layers.Permute((i(2), 1, 3)),
            k.layers.Reshape((-1,))])
    for a, b in zip(got[kestrel].layers, got[keras].layers):
        assert (a.name, a.count_params()) == (b.name, b.count_params())
        assert a.get_config() == b.get_config()
    assert type(got[kestrel].layers[0].units) is int
    json.dumps(got[kestrel].get_config())
    np.testing.assert_allclose(got[kestrel].predict(x, verbose=0),
                               got[keras].predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    emb = kestrel.layers.Embedding(np.max(y) + 1, np.int64(4))
    assert (emb.input_dim, emb.output_dim) == (46, 4) and type(emb.input_dim) is int
    with pytest.raises(ValueError, match="Dense 'bad': units must be a positive integer. "
                                         "Received: units=2.0"):
        kestrel.layers.Dense(2.0, name="bad")
