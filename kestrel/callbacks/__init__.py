"""Callbacks: hooks into `fit`, `evaluate` and `predict` (Keras' `keras.callbacks`)."""
from kestrel.callbacks.backup_and_restore import BackupAndRestore
from kestrel.callbacks.base_logger import BaseLogger
from kestrel.callbacks.callback import Callback
from kestrel.callbacks.callback_list import CallbackList
from kestrel.callbacks.csv_logger import CSVLogger
from kestrel.callbacks.early_stopping import EarlyStopping
from kestrel.callbacks.history import History
from kestrel.callbacks.lambda_callback import LambdaCallback
from kestrel.callbacks.lr_scheduler import LearningRateScheduler
from kestrel.callbacks.model_checkpoint import ModelCheckpoint
from kestrel.callbacks.monitor_callback import MonitorCallback
from kestrel.callbacks.progbar_logger import ProgbarLogger
from kestrel.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from kestrel.callbacks.remote_monitor import RemoteMonitor
from kestrel.callbacks.swap_ema_weights import SwapEMAWeights
from kestrel.callbacks.tensorboard import TensorBoard
from kestrel.callbacks.terminate_on_nan import TerminateOnNaN
from kestrel.other_backends import OrbaxCheckpoint

__all__ = [
    "BackupAndRestore", "BaseLogger", "CSVLogger", "Callback", "CallbackList", "EarlyStopping",
    "History", "LambdaCallback", "LearningRateScheduler", "ModelCheckpoint", "MonitorCallback",
    "OrbaxCheckpoint", "ProgbarLogger", "ReduceLROnPlateau", "RemoteMonitor", "SwapEMAWeights",
    "TensorBoard", "TerminateOnNaN",
]
