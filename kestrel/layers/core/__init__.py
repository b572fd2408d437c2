"""Core layers; also Keras 2's `keras.layers.core` path (any layer name resolves)."""


def __getattr__(name):
    from kestrel import layers

    if name.startswith("__") or not hasattr(layers, name):
        raise AttributeError(f"module 'kestrel.layers.core' has no attribute {name!r}")
    return getattr(layers, name)
