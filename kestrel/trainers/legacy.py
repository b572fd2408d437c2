"""Keras 2's generator training names, kept working with a DeprecationWarning: each one calls
`fit` / `evaluate` / `predict`, which take generators and `Sequence`s directly.

`fit_generator` reads a generator (given with its step count) as Keras 2 did: from
`on_train_begin` on, going on with it from epoch to epoch, validation included. `workers`,
`use_multiprocessing` and `max_queue_size` are accepted and ignored: batches are drawn in the
training process (Keras 3 sets these on a `PyDataset` instead). Keras 1's names (`nb_epoch`,
`samples_per_epoch`, `val_samples`, `nb_worker`, ...) are converted as Keras 2 did.
"""
from __future__ import annotations

import types
import warnings

from kestrel.layers.keras1_args import keras2_arguments


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"`Model.{old}` is deprecated and will be removed in a future version. "
                  f"Please use `Model.{new}`, which supports generators.", DeprecationWarning,
                  stacklevel=3)


class _ReadAfterTrainBegin:
    """A generator given to `fit_generator` with its step count, read only once training has
    begun: Keras 2 called the callbacks' `on_train_begin` before drawing the first batch (the
    image_ocr example's generator is a callback that builds its word list there), where
    Keras 3's `fit` reads a generator ahead. Every epoch goes on with the same generator."""

    def __init__(self, generator):
        self.generator = generator

    def __iter__(self):
        return self.generator


def _read_after_train_begin(data, steps):
    """`data` wrapped in `_ReadAfterTrainBegin` when it is a generator and `steps` is set."""
    return _ReadAfterTrainBegin(data) if steps and isinstance(data, types.GeneratorType) \
        else data


class GeneratorMethods:
    """`fit_generator`, `evaluate_generator` and `predict_generator` for `Trainer`, and Keras
    2's private `_make_train_function` / `_make_test_function` / `_make_predict_function`,
    which scripts call (a Flask app before serving, a resumed run before
    `optimizer.set_weights`).

    Example:
        >>> def batches():
        ...     while True:
        ...         yield x, y
        >>> model.fit_generator(batches(), steps_per_epoch=10, epochs=2)  # doctest: +SKIP
    """

    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1,
                      callbacks=None, validation_data=None, validation_steps=None,
                      validation_freq=1, class_weight=None, max_queue_size=10, workers=1,
                      use_multiprocessing=False, shuffle=True, initial_epoch=0, **keras1):
        """Keras 2's `fit` on a generator or `Sequence`; use `fit` instead."""
        if keras1:
            return self.fit_generator(**keras2_arguments("fit_generator", locals()))
        _deprecated("fit_generator", "fit")
        shuffle = shuffle and not isinstance(generator, types.GeneratorType)  # Sequences only
        return self.fit(_read_after_train_begin(generator, steps_per_epoch),
                        steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                        callbacks=callbacks,
                        validation_data=_read_after_train_begin(validation_data,
                                                                validation_steps),
                        validation_steps=validation_steps, validation_freq=validation_freq,
                        class_weight=class_weight, shuffle=shuffle, initial_epoch=initial_epoch)

    def _make_train_function(self):
        """Make the train function and, as Keras 2 did there, the optimizer's variables."""
        if getattr(self, "optimizer", None) is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_weights)
        self.make_train_function()

    def _make_test_function(self):
        self.make_test_function()

    def _make_predict_function(self):
        self.make_predict_function()

    def evaluate_generator(self, generator, steps=None, callbacks=None, max_queue_size=10,
                           workers=1, use_multiprocessing=False, verbose=0, **keras1):
        """Keras 2's `evaluate` on a generator or `Sequence`; use `evaluate` instead."""
        if keras1:
            return self.evaluate_generator(**keras2_arguments("evaluate_generator", locals()))
        _deprecated("evaluate_generator", "evaluate")
        return self.evaluate(generator, steps=steps, callbacks=callbacks, verbose=verbose)

    def predict_generator(self, generator, steps=None, callbacks=None, max_queue_size=10,
                          workers=1, use_multiprocessing=False, verbose=0, **keras1):
        """Keras 2's `predict` on a generator or `Sequence`; use `predict` instead."""
        if keras1:
            return self.predict_generator(**keras2_arguments("predict_generator", locals()))
        _deprecated("predict_generator", "predict")
        return self.predict(generator, steps=steps, callbacks=callbacks, verbose=verbose)
