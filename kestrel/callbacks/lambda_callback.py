"""`LambdaCallback`: build a callback from plain functions."""
from __future__ import annotations

from kestrel.callbacks.callback import Callback

_HOOKS = frozenset(name for name in vars(Callback) if name.startswith("on_"))


class LambdaCallback(Callback):
    """A callback whose hooks are the functions you pass.

    Functions receive the hook's arguments: `on_epoch_begin(epoch, logs)`,
    `on_train_begin(logs)`, `on_train_batch_end(batch, logs)` and so on.

    Args:
        on_epoch_begin: Called at the start of every epoch.
        on_epoch_end: Called at the end of every epoch.
        on_train_begin: Called at the start of training.
        on_train_end: Called at the end of training.
        on_train_batch_begin: Called at the start of every training batch.
        on_train_batch_end: Called at the end of every training batch.
        **kwargs: Any other hook of `Callback`, e.g. `on_test_end=fn` or the Keras 2
            `on_batch_end=fn`.

    Example:
    ```python
    print_batch = LambdaCallback(on_train_batch_begin=lambda batch, logs: print(batch))
    ```
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        unknown = sorted(set(kwargs) - _HOOKS)
        if unknown:
            raise ValueError(
                f"LambdaCallback only accepts callback hooks ({', '.join(sorted(_HOOKS))}). "
                f"Received: {', '.join(f'{name}={kwargs[name]!r}' for name in unknown)}"
            )
        hooks = dict(kwargs, on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name, function in hooks.items():
            if function is not None:
                setattr(self, name, function)
