"""Callback base, CallbackList, History and LambdaCallback."""
import pytest
import torch

from kestrel.callbacks import (
    Callback, CallbackList, EarlyStopping, History, LambdaCallback, ModelCheckpoint,
    ProgbarLogger, TensorBoard, TerminateOnNaN,
)


class Model:
    stop_training = False


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_batch_end(self, batch, logs=None):  # Keras 2 alias
        self.calls.append(("on_batch_end", batch, logs))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("on_epoch_end", epoch, dict(logs)))
        logs["seen_by"] = "recorder"  # later callbacks see this


def test_hooks_reach_every_callback_in_order():
    recorder, history = Recorder(), History()
    model = Model()
    callbacks = CallbackList([recorder, [history]], model=model, verbose=0, epochs=1, steps=2)
    assert callbacks.callbacks == [recorder, history]
    assert recorder.model is model and history.params == {"verbose": 0, "epochs": 1, "steps": 2}
    assert model.history is history
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(0)
    loss = torch.tensor(0.5)
    callbacks.on_train_batch_end(0, {"loss": loss})
    callbacks.on_epoch_end(0, {"loss": torch.tensor(0.25), "val": {"val_loss": 0.5}})
    callbacks.on_train_end()
    # Batch logs reach callbacks untouched (no host sync); epoch logs become flat floats.
    assert recorder.calls[0] == ("on_batch_end", 0, {"loss": loss})
    assert recorder.calls[1] == ("on_epoch_end", 0, {"loss": 0.25, "val_loss": 0.5})
    assert history.history == {"loss": [0.25], "seen_by": ["recorder"], "val_loss": [0.5]}
    assert history.epoch == [0]


def test_default_history_and_progbar_are_added_once():
    history = History()
    callbacks = CallbackList([history], add_history=True, add_progbar=True)
    assert callbacks.callbacks[0] is history
    assert [type(cb) for cb in callbacks] == [History, ProgbarLogger]


def test_needs_batch_logs():
    assert not CallbackList([], add_history=True, add_progbar=True).needs_batch_logs
    assert not CallbackList([EarlyStopping(), ModelCheckpoint("m.keras")]).needs_batch_logs
    assert CallbackList([ModelCheckpoint("m.keras", save_freq=5)]).needs_batch_logs
    assert CallbackList([TerminateOnNaN()]).needs_batch_logs
    assert CallbackList([Recorder()]).needs_batch_logs
    assert CallbackList([LambdaCallback(on_train_batch_end=print)]).needs_batch_logs
    assert not CallbackList([LambdaCallback(on_epoch_end=print)]).needs_batch_logs
    assert not CallbackList([TensorBoard()]).needs_batch_logs
    callbacks = CallbackList([EarlyStopping()])
    callbacks.append(Recorder())
    assert callbacks.needs_batch_logs


def test_wants_batch_logs_follows_the_progress_bar():
    callbacks = CallbackList([], add_progbar=True, verbose=1, epochs=1, steps=10)
    callbacks.on_train_begin()
    callbacks.on_epoch_begin(0)
    assert callbacks.wants_batch_logs()  # the first batch always draws
    callbacks._progbar.progbar.interval = 1e9
    callbacks.on_train_batch_end(0, {"loss": 1.0})
    assert not callbacks.wants_batch_logs()
    quiet = CallbackList([], add_progbar=True, verbose=2, epochs=1, steps=10)
    assert not quiet.wants_batch_logs()


def test_implements_batch_hooks():
    class TestOnly(Callback):
        def on_test_batch_begin(self, batch, logs=None):
            pass

    assert not Callback()._implements_train_batch_hooks()
    assert Recorder()._implements_train_batch_hooks()
    assert TestOnly()._implements_test_batch_hooks()
    assert not TestOnly()._implements_predict_batch_hooks()
    callbacks = CallbackList([TestOnly(), History()])
    assert callbacks._implements_test_batch_hooks()
    assert not callbacks._implements_train_batch_hooks()
    assert callbacks._train_batch == [] and callbacks._test_batch == callbacks.callbacks[:1]
    with pytest.raises(TypeError, match="Received: callbacks=<built-in function print>"):
        CallbackList(print)


def test_model_is_unwrapped_from_ddp():
    callback = Callback()
    module = torch.nn.Linear(1, 1)
    wrapper = torch.nn.parallel.DistributedDataParallel.__new__(
        torch.nn.parallel.DistributedDataParallel)
    torch.nn.Module.__init__(wrapper)
    wrapper.module = module
    callback.set_model(wrapper)
    assert callback.model is module


def test_lambda_callback_calls_the_functions():
    seen = []
    callback = LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(("epoch_begin", epoch)),
        on_train_batch_end=lambda batch, logs: seen.append(("batch_end", batch, logs["loss"])),
        on_train_end=lambda logs: seen.append(("train_end",)),
        on_test_end=lambda logs: seen.append(("test_end", logs["loss"])),
        on_batch_begin=lambda batch, logs: seen.append(("batch_begin", batch)),
    )
    callbacks = CallbackList([callback], model=Model())
    callbacks.on_epoch_begin(3)
    callbacks.on_train_batch_begin(0)
    callbacks.on_train_batch_end(0, {"loss": 2.0})
    callbacks.on_test_end({"loss": 1.0})
    callbacks.on_train_end()
    assert seen == [("epoch_begin", 3), ("batch_begin", 0), ("batch_end", 0, 2.0),
                    ("test_end", 1.0), ("train_end",)]
    with pytest.raises(ValueError, match="Received: on_epoch_ned="):
        LambdaCallback(on_epoch_ned=print)
