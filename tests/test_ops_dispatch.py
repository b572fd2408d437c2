"""The generic op machinery: conversion, promotion, symbolic recording and graph round trips."""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import ops
from kestrel.backend.dtypes import result_type
from tests.ops_harness import check_op, check_symbolic, keras


def test_result_type_matches_keras_on_every_pair():
    kinds = ["bool", "uint8", "int8", "int16", "int32", "int64", "bfloat16", "float16",
             "float32", "float64", int, float]
    for a in kinds:
        for b in kinds:
            assert result_type(a, b) == keras().backend.result_type(a, b), (a, b)


@pytest.mark.parametrize("value", [1.0, 3, True, [1.0, 2.0], [1, 2], np.array([1.0]),
                                   np.array([1], "int64"), np.float64(2.0),
                                   np.array([1.0], "float16")])
def test_convert_to_tensor_dtypes_as_keras(value):
    from kestrel.ops.convert import convert_to_tensor

    assert convert_to_tensor(value).dtype == keras().ops.convert_to_tensor(value).dtype


def test_strings_are_refused_clearly():
    from kestrel.ops.convert import convert_to_tensor

    with pytest.raises(ValueError, match="Strings"):
        convert_to_tensor(np.array(["a"]))


@pytest.mark.parametrize("a, b", [(np.ones(3, "int32"), 1.5), (np.ones(3, "int8"), 2),
                                  (np.ones((2, 1), "float16"), np.ones(3, "float32"))])
def test_arithmetic_promotes_as_keras(a, b):
    for name in ("add", "subtract", "multiply", "divide"):
        check_op(name, a, b)


def test_symbolic_ops_record_nodes_and_round_trip(tmp_path):
    x = kestrel.Input((3, 4))
    y = ops.mean(x, axis=1)
    z = ops.concatenate([y, x[:, 0], x[..., 1:3, 2] * 2, 1.0 - y[:, :1]], axis=-1)
    assert z.shape == (None, 11) and z.dtype == "float32"
    model = kestrel.Model(x, z)
    data = torch.randn(2, 3, 4)
    expected = torch.cat([data.mean(1), data[:, 0], data[..., 1:3, 2] * 2,
                          1.0 - data.mean(1)[:, :1]], -1)
    torch.testing.assert_close(model(data), expected)
    reloaded = kestrel.models.model_from_json(model.to_json())
    torch.testing.assert_close(reloaded(data), expected)
    model.save(tmp_path / "ops.keras")
    torch.testing.assert_close(kestrel.models.load_model(tmp_path / "ops.keras")(data), expected)
    names = [layer.name for layer in model.operations]
    assert names[1].startswith("mean") and names[2].startswith("get_item")
    assert [layer.name for layer in model.layers] == [names[0]]  # op nodes are not layers


def test_symbolic_spec_matches_keras():
    check_symbolic("mean", (None, 3, 4), axis=1)
    check_symbolic("concatenate", [(None, 3), ((None, 2), "float16")], axis=-1)
    check_symbolic("divide", ((None, 3), "int32"), 2)


def test_unknown_op_name_in_a_file_is_refused():
    from kestrel.ops.operation import FunctionOp

    with pytest.raises(ValueError, match="Unknown Kestrel op"):
        FunctionOp.from_config({"function": "os.system", "name": "evil"})
