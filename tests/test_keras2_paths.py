"""Keras 2 module paths import the same objects as the Keras 3 ones."""
import importlib

import pytest

import kestrel


@pytest.mark.parametrize("module, name, expected", [
    ("kestrel.layers.core", "Dense", lambda: kestrel.layers.Dense),
    ("kestrel.layers.recurrent", "LSTM", lambda: kestrel.layers.LSTM),
    ("kestrel.layers.merge", "concatenate", lambda: kestrel.layers.concatenate),
    ("kestrel.layers.embeddings", "Embedding", lambda: kestrel.layers.Embedding),
    ("kestrel.layers.wrappers", "Bidirectional", lambda: kestrel.layers.Bidirectional),
    ("kestrel.layers.noise", "GaussianNoise", lambda: kestrel.layers.GaussianNoise),
    ("kestrel.layers.convolutional_recurrent", "ConvLSTM2D", lambda: kestrel.layers.ConvLSTM2D),
    ("kestrel.engine.topology", "Input", lambda: kestrel.Input),
    ("kestrel.engine.training", "Model", lambda: kestrel.Model),
    ("kestrel.engine.input_layer", "InputLayer", lambda: kestrel.layers.InputLayer),
    ("kestrel.utils.generic_utils", "get_custom_objects",
     lambda: kestrel.saving.get_custom_objects),
    ("kestrel.utils.vis_utils", "plot_model", lambda: kestrel.utils.plot_model),
    ("kestrel.objectives", "categorical_crossentropy",
     lambda: kestrel.losses.categorical_crossentropy),
])
def test_keras2_path_resolves(module, name, expected):
    assert getattr(importlib.import_module(module), name) is expected()


def test_unknown_name_on_an_alias_is_an_import_error():
    with pytest.raises(ImportError, match="Bogus"):
        exec("from kestrel.layers.noise import Bogus", {})


def test_keras2_utility_helpers():
    """layer_utils.count_params (shared weights once), generic_utils.to_list and
    conv_utils.convert_kernel (spatial axes flipped) as Keras 2 defines them."""
    import numpy as np
    from kestrel.utils.conv_utils import convert_kernel
    from kestrel.utils.generic_utils import to_list
    from kestrel.utils.layer_utils import count_params

    dense = kestrel.layers.Dense(3)
    model = kestrel.Sequential([kestrel.Input((4,)), dense, kestrel.layers.Dense(2)])
    assert count_params(model.trainable_weights) == model.count_params() == 23
    assert count_params(dense.weights + dense.weights) == 15
    assert to_list(1) == [1] and to_list([1]) == [1] and to_list((1,), allow_tuple=True) == [1]
    assert to_list((1,)) == [(1,)]
    kernel = np.arange(12).reshape(2, 3, 1, 2)
    np.testing.assert_array_equal(convert_kernel(kernel), kernel[::-1, ::-1])


def test_keras2_paths_read_as_attributes_in_a_fresh_interpreter():
    """`import keras` then `keras.utils.np_utils.to_categorical(...)`,
    `layers.experimental.preprocessing.RandomFlip(...)`, `keras.engine.topology.Layer`:
    the alias modules are reached by attribute before anything imported them."""
    import subprocess
    import sys
    code = (
        "import kestrel as keras\n"
        "from kestrel import layers\n"
        "assert keras.utils.np_utils.to_categorical is keras.utils.to_categorical\n"
        "assert layers.experimental.preprocessing.RandomFlip is layers.RandomFlip\n"
        "assert keras.layers.advanced_activations.LeakyReLU is layers.LeakyReLU\n"
        "assert keras.engine.topology.Layer is keras.layers.Layer\n"
        "assert keras.objectives.mse is keras.losses.mse\n"
        "for owner, name in ((keras.layers, 'bogus'), (keras.utils, 'bogus'),\n"
        "                    (keras, 'bogus'), (keras.engine, 'bogus')):\n"
        "    try:\n"
        "        getattr(owner, name)\n"
        "    except AttributeError as error:\n"
        "        assert 'bogus' in str(error)\n"
        "    else:\n"
        "        raise AssertionError(owner)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
