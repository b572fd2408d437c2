"""nn ops."""
from kestrel.ops.dispatch import keras_op, module_all

__all__ = module_all()
