"""`ProgbarLogger`: prints Keras 3's progress bar and epoch headers."""
from __future__ import annotations

from kestrel.callbacks._io import print_msg
from kestrel.callbacks.callback import Callback
from kestrel.utils.progbar import Progbar


class ProgbarLogger(Callback):
    """Prints metrics to stdout as a progress bar; `fit` adds one unless `verbose=0`.

    Args:
        count_mode: `"steps"`, the only mode: the bar counts batches, as in Keras 3.
    """

    def __init__(self, count_mode: str = "steps"):
        super().__init__()
        if count_mode != "steps":
            raise ValueError(
                "ProgbarLogger counts steps (batches), as Keras 3 does; "
                f"count_mode must be 'steps'. Received: count_mode={count_mode!r}"
            )
        self.count_mode = count_mode
        self.seen = 0
        self.progbar: Progbar | None = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def wants_batch_logs(self) -> bool:
        """Whether the next train batch will redraw the bar, so it needs fresh logs."""
        return self.verbose == 1 and (self.progbar is None or self.progbar.due())

    def _needs_batch_logs(self) -> bool:
        return False

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_train_end(self, logs=None):
        self._called_in_fit = False

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        if self.verbose and self.epochs > 1:
            print_msg(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(None)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = Progbar(target=self.target, verbose=self.verbose,
                               stateless_metrics=(), unit_name="step")

    def _update_progbar(self, batch, logs):
        self.seen = batch + 1  # one-based
        if self.verbose == 1:
            if self.progbar is None:
                self._reset_progbar()
            # Read the (possibly lazy, on-device) logs only when the bar will redraw.
            values = list(logs.items()) if logs and self.progbar.due() else None
            self.progbar.update(self.seen, values, finalize=False)

    def _finalize_progbar(self, logs):
        if self.progbar is None:
            self._reset_progbar()
        if self.target is None:
            self.target = self.progbar.target = self.seen
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)
