"""`SwapEMAWeights`: evaluate (and optionally checkpoint) with the optimizer's EMA weights."""
from __future__ import annotations

import torch

from kestrel.callbacks.callback import Callback


class SwapEMAWeights(Callback):
    """Puts the optimizer's moving averages into the model during evaluation and prediction.

    The model's weights and their averages (kept by an optimizer made with `use_ema=True`)
    are exchanged in place, then exchanged back when evaluation ends.

    Args:
        swap_on_epoch: If True, the averages are also swapped in at the end of each epoch
            (so that callbacks after this one, such as `ModelCheckpoint`, see them) and out
            at the start of the next; after the last epoch they stay in the model.

    Example:
        >>> model.compile(optimizer=kestrel.optimizers.SGD(use_ema=True), loss="mse")
        >>> model.fit(x, y, validation_data=(vx, vy), callbacks=[SwapEMAWeights()])
    """

    def __init__(self, swap_on_epoch: bool = False):
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._swapped = False

    def _ema_optimizers(self) -> list:
        optimizer = self.model.optimizer
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        inner = getattr(optimizer, "optimizers", None)
        if inner is None:
            if not getattr(optimizer, "use_ema", False):
                raise ValueError("SwapEMAWeights must be used when `use_ema=True` is set on "
                                 f"the optimizer. Received: use_ema={optimizer.use_ema}")
            return [optimizer]
        chosen = [o for o in inner if getattr(o, "use_ema", False)]
        if not chosen:
            raise ValueError("SwapEMAWeights must be used when at least one inner optimizer "
                             "has `use_ema=True` set. Received a MultiOptimizer with all inner "
                             "optimizers having `use_ema=False`.")
        return chosen

    def _swap(self, into_model: bool) -> None:
        if self._swapped != into_model:
            for optimizer in self._ema_optimizers():
                optimizer.swap_ema_weights()
            self._swapped = into_model

    def on_train_begin(self, logs=None):
        self._ema_optimizers()  # fail early, before the first epoch

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch:
            self._swap(False)

    def on_epoch_end(self, epoch, logs=None):
        if not self.swap_on_epoch:
            return
        self._swap(True)
        if epoch == self.params["epochs"] - 1:  # the EMA weights stay: averages follow them
            with torch.no_grad():
                for optimizer in self._ema_optimizers():
                    torch._foreach_copy_(optimizer._ema_variables(), optimizer._params)

    def on_test_begin(self, logs=None):
        self._swap(True)

    def on_test_end(self, logs=None):
        self._swap(False)

    def on_predict_begin(self, logs=None):
        self._swap(True)

    def on_predict_end(self, logs=None):
        self._swap(False)
