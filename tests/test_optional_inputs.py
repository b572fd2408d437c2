"""`Input(optional=True)`: the model accepts None there and hands it to the layers, as Keras;
the flag is in the InputLayer config both ways."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh  # noqa: E402

X = np.arange(6, dtype="float32").reshape(3, 2)


def _model(lib):
    class AddIfGiven(lib.layers.Layer):
        def call(self, x, y):
            return x if y is None else x + y

    a, b = lib.Input((2,)), lib.Input((2,), optional=True)
    return lib.Model([a, b], AddIfGiven()(a, b))


def test_optional_input_takes_none_as_keras():
    ours, theirs = _model(fresh(kestrel)), _model(fresh(keras))
    for inputs in ([X, None], [X, X]):
        np.testing.assert_allclose(np.asarray(ours(inputs)),
                                   keras.ops.convert_to_numpy(theirs(inputs)))
    assert ours.get_config()["layers"][1]["config"]["optional"] is True
    assert theirs.get_config()["layers"][1]["config"]["optional"] is True
    assert ours.get_config()["layers"][0]["config"]["optional"] is False


def test_required_input_still_refuses_none():
    model = _model(fresh(kestrel))
    a = model.inputs[0]
    with pytest.raises(ValueError, match=f"'{a.name}' is not optional"):
        model([None, X])


def test_optional_flag_survives_a_config_round_trip():
    model = _model(fresh(kestrel))
    layer_cls = type(model.layers[-1])
    clone = kestrel.Model.from_config(model.get_config(),
                                      custom_objects={"AddIfGiven": layer_cls})
    assert clone.layers[1].optional and not clone.layers[0].optional
    np.testing.assert_allclose(np.asarray(clone([X, None])), X)
