"""`keras.utils.legacy`: Keras 2-style object (de)serialization (`{"class_name", "config"}`)."""
from kestrel.legacy.saving import deserialize_keras_object, serialize_keras_object

__all__ = ["deserialize_keras_object", "serialize_keras_object"]
