"""The `Callback` base class: hooks called by `fit`, `evaluate` and `predict`."""
from __future__ import annotations

from torch.nn.parallel import DistributedDataParallel

_TRAIN_BATCH_HOOKS = ("on_batch_begin", "on_batch_end",
                      "on_train_batch_begin", "on_train_batch_end")
_TEST_BATCH_HOOKS = ("on_test_batch_begin", "on_test_batch_end")
_PREDICT_BATCH_HOOKS = ("on_predict_batch_begin", "on_predict_batch_end")
_BATCH_END_HOOKS = ("on_batch_end", "on_train_batch_end",
                    "on_test_batch_end", "on_predict_batch_end")


class Callback:
    """Base class for callbacks; subclass it and override the hooks you need.

    Attributes:
        params: Dict of training parameters (`verbose`, `epochs`, `steps`).
        model: The model being trained (unwrapped from `DistributedDataParallel`); Keras 2
            callbacks assign it themselves in an overridden `set_model`.
        validation_data: Keras 2.0-2.3's view of fit's validation arrays (see `fit`); None
            until a fit with validation arrays sets it.

    Batch-level `logs` may hold 0-d torch tensors (possibly on the GPU); call `float()` on a
    value only when you need it, since each call waits for the device. Epoch-level `logs`
    hold Python floats.
    """

    validation_data = None

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params: dict) -> None:
        self.params = params

    def set_model(self, model) -> None:
        self._model = model

    @property
    def model(self):
        if isinstance(self._model, DistributedDataParallel):
            return self._model.module
        return self._model

    @model.setter
    def model(self, model) -> None:
        self._model = model

    def _overrides(self, names) -> bool:
        """Whether any hook in `names` is overridden, by the class or on the instance."""
        return any(
            name in vars(self) or getattr(type(self), name) is not getattr(Callback, name)
            for name in names
        )

    def _implements_train_batch_hooks(self) -> bool:
        return self._overrides(_TRAIN_BATCH_HOOKS)

    def _implements_test_batch_hooks(self) -> bool:
        return self._overrides(_TEST_BATCH_HOOKS)

    def _implements_predict_batch_hooks(self) -> bool:
        return self._overrides(_PREDICT_BATCH_HOOKS)

    def _needs_batch_logs(self) -> bool:
        """Whether a batch-end hook reads `logs`; built-ins refine this guess."""
        return self._overrides(_BATCH_END_HOOKS)

    def on_batch_begin(self, batch: int, logs=None):
        """A backwards compatibility alias for `on_train_batch_begin`."""

    def on_batch_end(self, batch: int, logs=None):
        """A backwards compatibility alias for `on_train_batch_end`."""

    def on_epoch_begin(self, epoch: int, logs=None):
        """Called at the start of a training epoch (0-based `epoch`)."""

    def on_epoch_end(self, epoch: int, logs=None):
        """Called at the end of a training epoch; `logs` hold the epoch's metrics.

        Validation results are included with keys prefixed by `val_`.
        """

    def on_train_batch_begin(self, batch: int, logs=None):
        """Called at the start of a training batch in `fit`."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs=None):
        """Called at the end of a training batch; `logs` hold running metric results."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs=None):
        """Called at the start of a batch in `evaluate` or validation."""

    def on_test_batch_end(self, batch: int, logs=None):
        """Called at the end of a batch in `evaluate` or validation."""

    def on_predict_batch_begin(self, batch: int, logs=None):
        """Called at the start of a batch in `predict`."""

    def on_predict_batch_end(self, batch: int, logs=None):
        """Called at the end of a batch in `predict`; `logs` hold `outputs`."""

    def on_train_begin(self, logs=None):
        """Called at the start of training."""

    def on_train_end(self, logs=None):
        """Called at the end of training; `logs` hold the last epoch's results."""

    def on_test_begin(self, logs=None):
        """Called at the start of evaluation or validation."""

    def on_test_end(self, logs=None):
        """Called at the end of evaluation or validation; `logs` hold the results."""

    def on_predict_begin(self, logs=None):
        """Called at the start of prediction."""

    def on_predict_end(self, logs=None):
        """Called at the end of prediction."""
