"""The epoch and batch loops behind fit, evaluate and predict, with callbacks."""
from __future__ import annotations

import warnings

import numpy as np
import torch

from kestrel import config
from kestrel.layers.node import flatten, map_structure
from kestrel.ops.core import convert_to_numpy
from kestrel.trainers import cpu_memory, data_adapter, step_groups
from kestrel.trainers.arguments import check_counts, check_not_empty, whole_steps
from kestrel.trainers.class_weights import ClassWeights
from kestrel.trainers.deferred_updates import DeferredUpdates, can_defer
from kestrel.trainers.logs import LazyLogs


def _verbose(verbose) -> int:
    return 1 if verbose == "auto" else int(verbose)


def _callback_list(model, callbacks, verbose, epochs, steps):
    from kestrel.callbacks import CallbackList

    if isinstance(callbacks, CallbackList):
        return callbacks
    return CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                        verbose=verbose, epochs=epochs, steps=steps)


def _session(model):
    from kestrel.distribution import api

    if api.active() is None:
        return None
    from kestrel.distribution.data_parallel import DataParallelSession

    return DataParallelSession(model)


def _for_rank(session, verbose: int, callbacks):
    """On ranks other than 0: silent, and without the callbacks that print or write files."""
    if session is None or session.rank == 0:
        return verbose, callbacks
    from kestrel import callbacks as cbs

    writers = (cbs.ModelCheckpoint, cbs.CSVLogger, cbs.TensorBoard, cbs.ProgbarLogger)
    items = [] if callbacks is None else \
        callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]
    return 0, [cb for cb in items if not isinstance(cb, writers)]


def run_fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split,
            validation_data, shuffle, class_weight, sample_weight, initial_epoch,
            steps_per_epoch, validation_steps, validation_batch_size, validation_freq):
    steps_per_epoch, validation_steps = whole_steps(steps_per_epoch), whole_steps(validation_steps)
    check_counts("fit", batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch,
                 steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                 validation_batch_size=validation_batch_size)
    verbose = _verbose(verbose)
    limit = config.max_epochs()  # `keras.config.set_max_epochs`, for debugging runs
    if limit and limit < epochs:
        warnings.warn(f"Limiting epochs to {limit}", stacklevel=3)
        epochs = limit
    device = model._device()
    cpu_memory.keep_freed(device)
    if y is None and model._target_tensors is not None:
        y = model._target_tensors
    if validation_data is None and validation_split:
        (x, y, sample_weight), validation_data = data_adapter.split_validation(
            x, y, sample_weight, validation_split)
    train_data = data_adapter.get_adapter(x, y, sample_weight, batch_size, steps_per_epoch,
                                          shuffle, device)
    _check_array_data("fit", train_data)
    _draw_build_batch_seeds(model, train_data)
    if isinstance(train_data, data_adapter.IterableAdapter):
        train_data.reset()
    if class_weight is not None:
        class_weight = ClassWeights(class_weight)
        if isinstance(train_data, data_adapter.ArrayAdapter) and \
                isinstance(train_data.y, torch.Tensor):
            class_weight.check(train_data.y)  # once; other data is checked on the error path
    val_data = None
    if validation_data is not None:
        vx, vy, vsw = data_adapter.unpack(validation_data) if isinstance(
            validation_data, (tuple, list)) else (validation_data, None, None)
        val_data = data_adapter.get_adapter(vx, vy, vsw, validation_batch_size or batch_size,
                                            validation_steps, False, device)
        _check_array_data("fit", val_data, "validation_data")
    session = _session(model)
    if session is not None:
        verbose, callbacks = _for_rank(session, verbose, callbacks)
        first_x = map_structure(
            lambda t: data_adapter.to_device(t[:1], train_data.batch_device), train_data.x) \
            if isinstance(train_data, data_adapter.ArrayAdapter) else None
        session.start(first_x)
    try:
        return _fit_epochs(model, train_data, val_data, callbacks, verbose, epochs,
                           initial_epoch, class_weight, validation_freq, session)
    finally:
        if session is not None:
            session.finish()


def _draw_build_batch_seeds(model, data) -> None:
    """Keras reads a batch to build at a fit/evaluate while the model (or any layer in it,
    e.g. a sublayer its `call` never uses), its compiled loss or its compiled metrics are
    unbuilt (a recompile without a loss or metrics keeps the built ones; a `compute_loss`
    call before fit builds the loss); the same random draws keep shuffled orders equal to
    Keras' after the same seed."""
    loss = model.compiled_loss if getattr(model, "loss", None) is not None else None
    metrics = model.compiled_metrics if model.compiled_metrics.configured else None
    built = getattr(model, "_build_batch_read_for", ())
    layers_built = all(layer.built for layer in model._flatten_layers())
    if layers_built and all(part is None or part.built or any(part is b for b in built)
                            for part in (loss, metrics)):
        return
    model._build_batch_read_for = (loss, metrics)
    if isinstance(data, data_adapter.ArrayAdapter):
        data.draw_build_batch_seeds()
    elif isinstance(data, data_adapter.IterableAdapter):
        data.read_build_batch()


def _build_optimizer(model) -> None:
    """Keras builds a compiled model's optimizer at evaluate too (a summary printed after
    `evaluate` then counts the optimizer's variables)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built and model.trainable_weights:
        optimizer.build(model.trainable_weights)


def _check_array_data(fn: str, data, name: str = "x") -> None:
    if isinstance(data, data_adapter.ArrayAdapter):
        check_not_empty(fn, data.n, name)


def _fit_epochs(model, train_data, val_data, callbacks, verbose, epochs, initial_epoch,
                class_weight, validation_freq, session):
    callbacks = _callback_list(model, callbacks, verbose, epochs, train_data.num_batches)
    history = callbacks._history
    model.stop_training = False
    model._initial_epoch = None
    model._initial_step = 0  # a callback restoring a mid-epoch backup sets both
    callbacks.on_train_begin()
    if model._initial_epoch is not None:
        initial_epoch = model._initial_epoch
    first_step = model._initial_step
    steps = model._steps
    k = model.steps_per_execution
    epoch_logs = {}
    step_logs = None
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        model.train(steps.trains_layers)
        logs = LazyLogs(model._flat_metrics())
        batches = iter(session.shard(train_data, True) if session is not None else train_data)
        if first_step:  # resuming mid-epoch: the same order, done batches skipped
            for _ in range(first_step):
                next(batches, None)
            callbacks.on_resume_position()
        if class_weight is not None:
            batches = ((bx, by, class_weight(by, bsw)) for bx, by, bsw in batches)
        for begin, end, group in step_groups.groups(batches, k, first_step):
            callbacks.on_train_batch_begin(begin)
            step_logs = step_groups.run_group(steps.train, group, steps)[-1]
            if step_logs is not None:  # what a user's train_step returned
                logs = step_logs
            elif begin == 0:
                logs = LazyLogs(model._flat_metrics())  # metrics are created on the first batch
            callbacks.on_train_batch_end(end, logs)
            if model.stop_training:
                break
        first_step = 0
        model.eval()
        if session is not None:
            session.reduce_metrics(model._flat_metrics())
        epoch_logs = model._results(step_logs, nested=True)
        if val_data is not None and _should_validate(epoch, validation_freq):
            val_logs = run_evaluate(model, val_data, None, None, 0, None, None, callbacks,
                                    session)
            epoch_logs.update({f"val_{name}": value for name, value in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    model.eval()
    if epochs > initial_epoch and model.optimizer is not None:  # EMA weights, as Keras
        model.optimizer.finalize_variable_values(model.trainable_weights)
    callbacks.on_train_end(epoch_logs)
    model.history = history
    return history


def _should_validate(epoch: int, freq) -> bool:
    if isinstance(freq, int):
        return (epoch + 1) % freq == 0
    return (epoch + 1) in freq


def run_evaluate(model, x, y, batch_size, verbose, sample_weight, steps, callbacks,
                 session=None) -> dict:
    steps = whole_steps(steps)
    if not isinstance(x, (data_adapter.ArrayAdapter, data_adapter.IterableAdapter)):
        check_counts("evaluate", batch_size=batch_size, steps=steps)
    verbose = _verbose(verbose)
    own_session = session is None
    session = session or _session(model)
    if own_session:
        verbose, callbacks = _for_rank(session, verbose, callbacks)
    if y is None and model._target_tensors is not None:
        y = model._target_tensors
    device = model._device()
    cpu_memory.keep_freed(device)
    data = x if isinstance(x, (data_adapter.ArrayAdapter, data_adapter.IterableAdapter)) else \
        data_adapter.get_adapter(x, y, sample_weight, batch_size, steps, False, device)
    _check_array_data("evaluate", data)
    _draw_build_batch_seeds(model, data)
    if isinstance(data, data_adapter.IterableAdapter):
        data.reset()  # each pass (validation too) starts afresh, as Keras
    _build_optimizer(model)
    callbacks = _callback_list(model, callbacks, verbose, 1, data.num_batches)
    was_training = model.training
    model.eval()
    model.reset_metrics()
    callbacks.on_test_begin()
    deferred = DeferredUpdates(model) if can_defer(model, callbacks) else None
    test = model._steps.test if deferred is None else deferred.test
    flush = None if deferred is None else deferred.flush
    logs = LazyLogs(model._flat_metrics())
    batches = session.shard(data, False) if session is not None else data
    step_logs = None
    for begin, end, group in step_groups.groups(batches, model.steps_per_execution):
        callbacks.on_test_batch_begin(begin)
        group = [batch for batch in group if flatten(batch[0])[0].shape[0]]
        if group:
            step_logs = step_groups.run_group(test, group, model._steps)[-1]
        if step_logs is not None:  # what a user's test_step returned
            logs = step_logs
        elif begin == 0:
            logs = LazyLogs(model._flat_metrics(), flush)
        callbacks.on_test_batch_end(end, logs)
    if deferred is not None:
        deferred.flush()
    if session is not None:
        session.reduce_metrics(model._flat_metrics())
    results = model._results(step_logs)
    callbacks.on_test_end(results)
    if was_training:  # eval() above already left every layer in inference mode
        model.train()
    return results


def run_predict(model, x, batch_size, verbose, steps, callbacks):
    steps = whole_steps(steps)
    check_counts("predict", batch_size=batch_size, steps=steps)
    verbose = _verbose(verbose)
    device = model._device()
    cpu_memory.keep_freed(device)
    data = data_adapter.get_adapter(x, None, None, batch_size, steps, False, device)
    _check_array_data("predict", data)
    session = _session(model)
    verbose, callbacks = _for_rank(session, verbose, callbacks)
    callbacks = _callback_list(model, callbacks, verbose, 1, data.num_batches)
    model.eval()
    k = getattr(model, "steps_per_execution", 1)  # predict works on uncompiled models too
    callbacks.on_predict_begin()
    outputs = []
    batches = session.shard(data, False) if session is not None else data
    with torch.no_grad():  # a user's predict_step runs without gradients too
        for begin, end, group in step_groups.groups(batches, k):
            callbacks.on_predict_batch_begin(begin)
            if session is not None:  # None for an empty batch keeps the ranks aligned
                outs = [None if flatten(batch[0])[0].shape[0] == 0 else
                        model._predict_batch(batch) for batch in group]
            else:
                outs = step_groups.run_group(model._predict_batch, group, model._steps)
            outputs += outs
            outs = [o for o in outs if o is not None]
            if outs and callbacks._implements_predict_batch_hooks():
                callbacks.on_predict_batch_end(end, {"outputs": _concat(outs)})
    callbacks.on_predict_end()
    if session is not None:
        local = [None if o is None else map_structure(convert_to_numpy, o)
                 for o in outputs]
        outputs = [map_structure(torch.from_numpy, o) for o in session.gather(local)]
    if not outputs:
        raise ValueError("predict() got no data: the input yielded no batches.")
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return convert_to_numpy(torch.cat(outputs))  # bfloat16 (mixed_bfloat16) as float32
    flat = [flatten(o) for o in outputs]
    merged = iter([_join_numpy([f[i] for f in flat]) for i in range(len(flat[0]))])
    return map_structure(lambda _: next(merged), first)


def _join_numpy(column: list):
    """One output's batches as one NumPy array (string outputs are NumPy already)."""
    if isinstance(column[0], np.ndarray):
        return np.concatenate(column)
    return convert_to_numpy(torch.cat(column))


def _concat(outputs: list):
    """A group's outputs joined along the batch axis (one batch's outputs as they are)."""
    if len(outputs) == 1:
        return outputs[0]
    flat = [flatten(o) for o in outputs]
    joined = iter([torch.cat(column) for column in zip(*flat)])
    return map_structure(lambda _: next(joined), outputs[0])
