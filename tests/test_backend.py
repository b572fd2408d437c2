"""kestrel.backend (Keras 3 names), kestrel.config switches and the name/device scopes."""
import pytest
import torch

import kestrel
from kestrel import backend
from tests.ops_harness import keras


def test_keras3_backend_names_exist_and_agree():
    k = keras().backend
    for name in [n for n in dir(k) if not n.startswith("_")]:
        assert hasattr(backend, name), name
    assert backend.backend() == "torch"
    assert backend.floatx() == k.floatx() and backend.epsilon() == k.epsilon()
    assert backend.image_data_format() == k.image_data_format()
    for dtype in ("float32", "int8", torch.float16, "bool"):
        assert backend.standardize_dtype(dtype) == k.standardize_dtype(dtype)
        assert backend.is_float_dtype(dtype) == k.is_float_dtype(dtype)
        assert backend.is_int_dtype(dtype) == k.is_int_dtype(dtype)
    assert backend.result_type("int32", float) == "float32"


def test_is_keras_tensor_and_uids():
    assert backend.is_keras_tensor(kestrel.Input((2,)))
    assert not backend.is_keras_tensor(torch.ones(2))
    first = backend.get_uid("thing")
    assert backend.get_uid("thing") == first + 1
    backend.clear_session()
    assert backend.get_uid("thing") == 1


def test_keras3_config_names_exist():
    for name in [n for n in dir(keras().config) if not n.startswith("_")]:
        assert hasattr(kestrel.config, name), name
    with pytest.raises(ValueError, match="PyTorch only"):
        kestrel.config.set_backend("jax")
    kestrel.config.set_dtype_policy("mixed_bfloat16")
    try:
        assert kestrel.config.dtype_policy().name == "mixed_bfloat16"
    finally:
        kestrel.config.set_dtype_policy("float32")


def test_top_level_names_exist():
    for name in ("Variable", "Layer", "Loss", "Metric", "Optimizer", "Initializer",
                 "Regularizer", "KerasTensor", "InputSpec", "DTypePolicy", "name_scope",
                 "device", "Operation", "ops", "random", "tree", "backend"):
        assert getattr(kestrel, name) is not None, name


def test_scopes():
    from kestrel.backend.scopes import current_path

    with kestrel.name_scope("outer"):
        with kestrel.name_scope("inner"):
            assert current_path() == "outer/inner"
    assert current_path() == ""
    with kestrel.device("cpu"):
        assert kestrel.config.device() == torch.device("cpu")
        assert torch.zeros(1).device == torch.device("cpu")


def test_symbolic_scope_marks_shape_inference_as_keras_does():
    """`SymbolicScope` is open while a layer's `call` runs for shapes on symbolic inputs (as
    Keras' `compute_output_spec`), closed in eager calls; nested scopes restore the outer."""
    from kestrel.backend.scopes import in_symbolic_scope

    seen = []

    class Probe(kestrel.layers.Layer):
        def call(self, x):
            seen.append(in_symbolic_scope())
            return x

    Probe()(kestrel.Input((3,)))
    Probe()(torch.ones(1, 3))
    assert seen == [True, False]
    with kestrel.SymbolicScope():
        with kestrel.SymbolicScope():
            assert in_symbolic_scope()
        assert in_symbolic_scope()
    assert not in_symbolic_scope()
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope as keras_in_scope
    with keras().SymbolicScope():  # the reference agrees on the public class's behaviour
        assert keras_in_scope()
