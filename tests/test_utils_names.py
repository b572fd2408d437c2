"""keras.utils / dtype_policies / legacy / mixed_precision names, checked against real Keras 3."""
import os

import pytest

import kestrel

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")


def test_config_container_behaves_like_keras():
    ours, theirs = kestrel.utils.Config(lr=0.1), keras.utils.Config(lr=0.1)
    for config in (ours, theirs):
        config.seed = 3
        config["momentum"] = 0.9
        config.update(nesterov=True)
    assert ours.as_dict() == theirs.as_dict()
    assert ours.to_json() == theirs.to_json()
    assert list(ours.items()) == list(theirs.items())
    with pytest.raises(AttributeError, match="Did you mean 'seed'"):
        ours.sed
    ours.freeze()
    assert ours.frozen
    with pytest.raises(ValueError, match="frozen"):
        ours.lr = 1.0
    with pytest.raises(ValueError, match="frozen"):
        ours["lr"] = 1.0
    ours.unfreeze()
    ours.lr = 1.0
    assert ours["lr"] == 1.0


def test_get_source_inputs_order_matches_keras():
    def sources(lib):
        a, b, c = lib.Input((3,), name="a"), lib.Input((3,), name="b"), lib.Input((3,), name="c")
        x = lib.layers.Add()([lib.layers.Dense(3)(c), a])
        y = lib.layers.Concatenate()([x, b, a])
        return [t.name for t in lib.utils.get_source_inputs(y)]

    assert sources(kestrel) == sources(keras) == ["c", "a", "b"]


def test_utils_names_exist_like_keras():
    wanted = {"Config", "get_source_inputs", "is_keras_tensor", "standardize_dtype",
              "enable_interactive_logging", "disable_interactive_logging",
              "is_interactive_logging_enabled", "register_keras_serializable",
              "get_custom_objects", "get_registered_name", "custom_object_scope",
              "serialize_keras_object", "deserialize_keras_object"}
    assert wanted <= set(dir(kestrel.utils))
    for name in wanted:
        assert callable(getattr(kestrel.utils, name)), name
    for dtype in (float, int, bool, "float64", "bfloat16"):
        assert kestrel.utils.standardize_dtype(dtype) == keras.utils.standardize_dtype(dtype)
    assert kestrel.utils.is_keras_tensor(kestrel.Input((2,)))


@pytest.mark.parametrize("identifier", [None, "mixed_float16", "bfloat16",
                                        {"class_name": "DTypePolicy", "config": {"name": "float16"}}])
def test_dtype_policies_get_and_serialize(identifier):
    ours, theirs = kestrel.dtype_policies.get(identifier), keras.dtype_policies.get(identifier)
    assert (ours.name, ours.compute_dtype, ours.variable_dtype) == (
        theirs.name, theirs.compute_dtype, theirs.variable_dtype)
    assert kestrel.dtype_policies.serialize(ours) == keras.dtype_policies.serialize(theirs)


@pytest.mark.parametrize("bad", ["bogus", 3])
def test_dtype_policies_get_refuses_like_keras(bad):
    with pytest.raises(ValueError) as ours:
        kestrel.dtype_policies.get(bad)
    with pytest.raises(ValueError) as theirs:
        keras.dtype_policies.get(bad)
    assert str(ours.value) == str(theirs.value)


def test_mixed_precision_keras3_names():
    kestrel.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        assert kestrel.mixed_precision.dtype_policy().name == "mixed_bfloat16"
        assert kestrel.mixed_precision.Policy("float16").compute_dtype == "float16"
    finally:
        kestrel.mixed_precision.set_dtype_policy(None)


def test_legacy_serialization_writes_keras2_dicts():
    ours = kestrel.legacy.saving.serialize_keras_object(kestrel.layers.Dense(2, name="d"))
    theirs = keras.legacy.saving.serialize_keras_object(keras.layers.Dense(2, name="d"))
    assert set(ours) == set(theirs) == {"class_name", "config"}
    assert ours["class_name"] == "Dense" and ours["config"]["units"] == 2
    layer = kestrel.legacy.saving.deserialize_keras_object(theirs, module_objects=None)
    assert isinstance(layer, kestrel.layers.Dense) and layer.units == 2
    with pytest.raises(ValueError, match="get_config"):
        kestrel.legacy.saving.serialize_keras_object(object())
