"""`TerminateOnNaN`: stop training when the batch loss becomes NaN or infinite."""
from __future__ import annotations

import math

from kestrel.callbacks._io import print_msg
from kestrel.callbacks.callback import Callback


class TerminateOnNaN(Callback):
    """Stops training when a NaN or infinite loss is seen at the end of a batch.

    It reads the loss of every batch, which waits for the device once per batch.

    Args:
        raise_error: If False (default), set `model.stop_training = True` so training
            ends gracefully (other callbacks' `on_train_end` still run). If True, raise a
            `RuntimeError` at once.
    """

    def __init__(self, raise_error: bool = False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        value = float(loss)
        if math.isfinite(value):
            return
        if self.raise_error:
            raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. "
                               f"Loss value: {value}. Terminating training immediately.")
        print_msg(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True
