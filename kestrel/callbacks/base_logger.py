"""`BaseLogger`: Keras 2's callback that averaged batch metrics into the epoch's `logs`."""
from __future__ import annotations

from kestrel.callbacks.callback import Callback


class BaseLogger(Callback):
    """Keras 2's epoch-averaging callback, kept so that Keras 2 scripts that add it still run.

    Keras 2 added one to every model: it summed each batch's metrics weighted by the batch
    size and wrote the epoch averages into `logs` at `on_epoch_end`. Kestrel's metrics are
    already running averages, so the epoch's `logs` hold the epoch averages before any
    callback sees them; this callback leaves them as they are (adding it changes nothing).

    Args:
        stateful_metrics: names of metrics that Keras 2 copied as last seen instead of
            averaging; kept as a set, as Keras 2 did.
    """

    def __init__(self, stateful_metrics=None):
        super().__init__()
        self.stateful_metrics = set(stateful_metrics or ())
