import threading

import pytest
import torch

from kestrel.registry import safe_mode
from kestrel.registry.safe_mode import safe_mode_enabled, safe_mode_scope


def test_enabled_by_default_and_scoped():
    assert safe_mode_enabled()
    with safe_mode_scope(False):
        assert not safe_mode_enabled()
        with safe_mode_scope(True):
            assert safe_mode_enabled()
        with safe_mode_scope(None):  # None keeps the current setting
            assert not safe_mode_enabled()
        assert not safe_mode_enabled()
    assert safe_mode_enabled()


def test_scope_restores_after_an_error():
    with pytest.raises(RuntimeError), safe_mode_scope(False):
        raise RuntimeError
    assert safe_mode_enabled()


def test_scope_is_per_thread():
    seen = []
    with safe_mode_scope(False):
        thread = threading.Thread(target=lambda: seen.append(safe_mode_enabled()))
        thread.start()
        thread.join()
    assert seen == [True]


def test_enable_unsafe_deserialization_is_global(monkeypatch):
    monkeypatch.setitem(safe_mode._DEFAULT, "enabled", True)
    safe_mode.enable_unsafe_deserialization()
    assert not safe_mode_enabled()
    with safe_mode_scope(True):
        assert safe_mode_enabled()


def test_lambda_loading_through_the_registry_obeys_the_scope():
    from kestrel.layers.core.activation import Lambda
    from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

    config = serialize_keras_object(Lambda(lambda x: x * 5), "layers")
    with pytest.raises(ValueError, match="safe mode forbids"):
        deserialize_keras_object(config, "layers")
    with safe_mode_scope(False):
        layer = deserialize_keras_object(config, "layers")
    assert layer.function(2) == 10


def test_dump_and_load_lambda_roundtrip_with_closure_and_defaults():
    offset = 10
    fn = lambda x, k=2: x * k + offset  # noqa: E731
    saved = safe_mode.dump_lambda(fn)
    assert saved["defaults"] == [2] and saved["closure"] == [10]
    with pytest.raises(ValueError, match="Lambda 'f' holds a Python lambda"):
        safe_mode.load_lambda(**saved, owner="Lambda 'f'")
    loaded = safe_mode.load_lambda(**saved, safe_mode=False)
    assert loaded(3) == 16 and loaded(3, k=1) == 13
    uses_torch = safe_mode.load_lambda(**safe_mode.dump_lambda(lambda x: torch.relu(x)),
                                       safe_mode=False)
    assert uses_torch(torch.tensor([-1.0])).item() == 0.0


def test_public_deserialize_obeys_an_enclosing_scope_and_its_own_argument():
    from kestrel.layers.core.activation import Lambda
    from kestrel.saving import deserialize_keras_object, serialize_keras_object

    config = serialize_keras_object(Lambda(lambda x: x * 5))
    with pytest.raises(ValueError, match="safe mode forbids"):
        deserialize_keras_object(config)
    assert deserialize_keras_object(config, safe_mode=False).function(2) == 10
    with safe_mode_scope(False):  # the enclosing scope wins over the default argument
        assert deserialize_keras_object(config).function(2) == 10
