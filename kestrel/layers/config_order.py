"""Keras' key order for configs that a class hierarchy writes piece by piece."""
from __future__ import annotations


def keras_order(config: dict, order: tuple[str, ...]) -> dict:
    """`config` with the keys that `order` names moved, in that order, after the others.

    The keys before them are the base ones (`name`, `trainable`, `dtype`, and a set
    `activity_regularizer`, which Keras writes right after `dtype`).
    """
    moved = [key for key in order if key in config
             and not (key == "activity_regularizer" and config[key] is not None)]
    kept = [key for key in config if key not in moved]
    return {key: config[key] for key in (*kept, *moved)}


def keras_config_order(*order: str):
    """Class decorator: the class's `get_config()` lists the keys `order` names last, in that
    order, as Keras writes them. Subclasses that add keys after `super().get_config()` keep
    them after these, as in Keras."""
    def decorate(cls):
        get_config = cls.get_config

        def ordered_get_config(self):
            return keras_order(get_config(self), order)

        ordered_get_config.__doc__ = get_config.__doc__
        cls.get_config = ordered_get_config
        return cls
    return decorate
