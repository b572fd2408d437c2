"""`TensorBoard`: write metrics, weight histograms and profiles for TensorBoard."""
from __future__ import annotations

import os
import time
import warnings

import numpy as np

from kestrel.callbacks.callback import Callback


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ImportError(
            "The TensorBoard callback needs the `tensorboard` package. Install it with "
            "`pip install kestrel[tensorboard]`."
        ) from e
    return SummaryWriter


def _parse_profile_batch(profile_batch) -> tuple[int, int]:
    message = ("profile_batch must be a non-negative integer or 2-tuple of positive "
               "integers. A pair of positive integers signifies a range of batches to "
               f"profile. Received: profile_batch={profile_batch!r}")
    if isinstance(profile_batch, str):
        try:
            profile_batch = [int(part) for part in profile_batch.split(",")]
        except ValueError:
            raise ValueError(message) from None
        if len(profile_batch) == 1:
            profile_batch = profile_batch[0]
    if isinstance(profile_batch, int):
        start = stop = profile_batch
    elif isinstance(profile_batch, (tuple, list)) and len(profile_batch) == 2:
        start, stop = profile_batch
    else:
        raise ValueError(message)
    if start < 0 or stop < start:
        raise ValueError(message)
    return start, stop


def _weight_image(weight: np.ndarray) -> np.ndarray | None:
    """A weight as an NHWC image batch, as Keras lays it out, or None if it cannot be."""
    w = np.squeeze(weight)
    if w.ndim == 1:  # bias
        w = w.reshape(1, w.shape[0], 1, 1)
    elif w.ndim == 2:  # dense kernel, widest side horizontal
        w = w.T if w.shape[0] > w.shape[1] else w
        w = w.reshape(1, w.shape[0], w.shape[1], 1)
    elif w.ndim == 3:  # conv kernel (h, w, channels) -> one image per channel
        w = np.transpose(w, (2, 0, 1))[..., None]
    else:
        return None
    return w


_KERAS2_ARGUMENTS = ("batch_size", "write_grads")


def _ignore_keras2_arguments(kwargs: dict) -> None:
    unknown = sorted(set(kwargs) - set(_KERAS2_ARGUMENTS))
    if unknown:
        raise TypeError(f"TensorBoard got unexpected keyword arguments: {unknown}")
    for name in kwargs:
        warnings.warn(f"`{name}` argument is deprecated (Keras 2) and has no effect.",
                      DeprecationWarning, stacklevel=3)


def _read_metadata(path, rows: int, layer_name: str):
    """(labels, header) of a projector metadata file: one label a row, or tab-separated
    columns under a header line; (None, None) without a file."""
    if path is None:
        return None, None
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    header = lines.pop(0).split("\t") if lines and "\t" in lines[0] else None
    labels = [line.split("\t") for line in lines] if header else lines
    if len(labels) != rows:
        raise ValueError(f"TensorBoard: the embeddings metadata {path} has {len(labels)} rows, "
                         f"but layer '{layer_name}' projects {rows}.")
    return labels, header


class TensorBoard(Callback):
    """Writes logs for TensorBoard: `tensorboard --logdir=<log_dir>`.

    Event files go to `log_dir/train` and `log_dir/validation`. Epoch metrics are
    written as `epoch_<name>` (validation ones without the `val_` prefix, in the
    validation folder), along with `epoch_learning_rate`; batch metrics as
    `batch_<name>` when `update_freq` is not `"epoch"`.

    Args:
        log_dir: Folder to write the logs to; use it for nothing else.
        histogram_freq: Epoch frequency of weight histograms (0 disables them).
        write_graph: Whether to write the model's config (if it has `to_json`) for
            TensorBoard's graph dashboard.
        write_images: Whether to also write the weights as images (with histograms).
        write_steps_per_second: Whether to log training steps per second.
        update_freq: `"epoch"`, `"batch"` or an integer: write batch metrics every that
            many batches.
        profile_batch: Batch index, or `(start, stop)` pair, of training batches to
            profile with `torch.profiler` (0 disables profiling). Traces go to
            `log_dir/train` for the PyTorch profiler plugin.
        embeddings_freq: Epoch frequency of embedding projections (0 disables them): the
            tables of the `Embedding` layers, for TensorBoard's projector.
        embeddings_metadata: A file of row labels for every projected layer, or a dict of
            such files by layer name; a relative path is read from `log_dir`.
        embeddings_layer_names: Keras 2: the layers to project (by default the `Embedding`
            layers).
        embeddings_data: Keras 2: inputs whose outputs at those layers are projected instead
            of the tables.
        **kwargs: Keras 2's `batch_size` and `write_grads`, which have no effect (with a
            warning, as tf.keras 2).

    Example:
    ```python
    model.fit(x, y, epochs=2, callbacks=[keras.callbacks.TensorBoard("./logs")])
    ```
    """

    def __init__(self, log_dir="logs", histogram_freq: int = 0, write_graph: bool = True,
                 write_images: bool = False, write_steps_per_second: bool = False,
                 update_freq="epoch", profile_batch=0, embeddings_freq: int = 0,
                 embeddings_metadata=None, embeddings_layer_names=None, embeddings_data=None,
                 **kwargs):
        super().__init__()
        _ignore_keras2_arguments(kwargs)
        self._writer_class = _summary_writer_class()
        self.embeddings_freq = embeddings_freq
        self.embeddings_metadata = embeddings_metadata
        self.embeddings_layer_names = embeddings_layer_names
        self.embeddings_data = embeddings_data
        update_freq = 1 if update_freq == "batch" else update_freq
        if update_freq != "epoch" and (not isinstance(update_freq, int) or update_freq < 1):
            raise ValueError("update_freq must be 'epoch', 'batch' or a positive integer. "
                             f"Received: update_freq={update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self._start_batch, self._stop_batch = _parse_profile_batch(profile_batch)
        self._should_trace = self._stop_batch > 0
        self._profiler = None
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers: dict = {}
        self._global_train_batch = 0
        self._batch_start_time = 0.0
        self._epoch_start_time = 0.0
        self._previous_epoch_iterations = 0

    def _writer(self, kind: str):
        if kind not in self._writers:
            folder = self._train_dir if kind == "train" else self._val_dir
            self._writers[kind] = self._writer_class(log_dir=folder)
        return self._writers[kind]

    def _needs_batch_logs(self) -> bool:
        return self.update_freq != "epoch"

    def set_model(self, model):
        super().set_model(model)
        self._close_writers()
        if self.write_graph:
            self._write_model_config()

    def _write_model_config(self) -> None:
        """Write the model's JSON config as Keras' `graph_keras_model` summary."""
        if not hasattr(self.model, "to_json"):
            return
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.util import tensor_util

        try:
            config = self.model.to_json()
        except Exception as e:  # noqa: BLE001 - a subclassed model may not serialize
            warnings.warn(f"Model failed to serialize as JSON. Ignoring... {e}", stacklevel=2)
            return
        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name="graph_keras_model", content=b"1"))
        value = summary_pb2.Summary.Value(tag="keras", metadata=metadata,
                                          tensor=tensor_util.make_tensor_proto(config))
        writer = self._writer("train")
        writer._get_file_writer().add_summary(summary_pb2.Summary(value=[value]), 0)
        writer.flush()

    def _close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        self._previous_epoch_iterations = 0
        if self.embeddings_freq:
            self._metadata_paths()  # unknown layer names fail before training

    def on_train_end(self, logs=None):
        if self._profiler is not None:
            self._stop_profiler()
        self._close_writers()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        if self.write_steps_per_second:
            self._batch_start_time = time.time()
        if self._should_trace and self._global_train_batch == max(self._start_batch, 1):
            self._start_profiler()

    def on_train_batch_end(self, batch, logs=None):
        step = self._global_train_batch
        if self.update_freq != "epoch" and step % self.update_freq == 0:
            writer = self._writer("train")
            if self.write_steps_per_second:
                elapsed = max(time.time() - self._batch_start_time, 1e-9)
                writer.add_scalar("batch_steps_per_second", 1.0 / elapsed, step)
            for name, value in (logs or {}).items():
                writer.add_scalar(f"batch_{name}", float(value), step)
        if self._profiler is not None:
            self._profiler.step()
            if step >= self._stop_batch:
                self._stop_profiler()

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if not logs or optimizer is None or not hasattr(optimizer, "iterations"):
            return
        writer, step = self._writer("val"), int(optimizer.iterations)
        for name, value in logs.items():
            writer.add_scalar(f"evaluation_{name}_vs_iterations", float(value), step)
        writer.flush()

    def on_epoch_begin(self, epoch, logs=None):
        if self.write_steps_per_second:
            self._previous_epoch_iterations = int(self.model.optimizer.iterations)
            self._epoch_start_time = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self._log_epoch_metrics(epoch, logs or {})
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        if self.embeddings_freq and epoch % self.embeddings_freq == 0:
            self._log_embeddings(epoch)

    def _log_epoch_metrics(self, epoch: int, logs: dict) -> None:
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "learning_rate"):
            train_logs["learning_rate"] = float(optimizer.learning_rate)
        if self.write_steps_per_second:
            steps = int(optimizer.iterations) - self._previous_epoch_iterations
            train_logs["steps_per_second"] = steps / max(time.time() - self._epoch_start_time,
                                                         1e-9)
        for kind, values in (("train", train_logs), ("val", val_logs)):
            if values:
                writer = self._writer(kind)
                for name, value in values.items():
                    writer.add_scalar(f"epoch_{name}", float(value), epoch)
                writer.flush()

    def _log_weights(self, epoch: int) -> None:
        writer = self._writer("train")
        for name, param in self.model.named_parameters():
            weight = param.detach().float().cpu().numpy()
            tag = name.replace(".", "/")
            writer.add_histogram(f"{tag}/histogram", weight, epoch)
            if self.write_images:
                image = _weight_image(weight)
                if image is not None:
                    writer.add_images(f"{tag}/image", image, epoch, dataformats="NHWC")
        writer.flush()

    def _projected_layers(self) -> list:
        names = self.embeddings_layer_names
        if names is None:
            from kestrel.layers import Embedding
            return [layer for layer in self.model.layers if isinstance(layer, Embedding)]
        return [self.model.get_layer(name) for name in names]

    def _metadata_paths(self) -> dict:
        """Layer name -> metadata file, as Keras reads `embeddings_metadata`."""
        names = [layer.name for layer in self._projected_layers()]
        given = self.embeddings_metadata
        if given is None:
            return {}
        if isinstance(given, (str, os.PathLike)):
            given = {name: given for name in names}
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError("Unrecognized `Embedding` layer names passed to "
                             "`keras.callbacks.TensorBoard` `embeddings_metadata` argument: "
                             f"{unknown}")
        return {name: os.path.join(self.log_dir, os.fspath(path)) for name, path in given.items()}

    def _embedding_matrix(self, layer) -> np.ndarray:
        """The layer's table, or (Keras 2 `embeddings_data`) its outputs, one row a sample."""
        if self.embeddings_data is None:
            return np.asarray(layer.get_weights()[0])
        from kestrel.models import Model
        outputs = Model(self.model.inputs, layer.output).predict(self.embeddings_data,
                                                                 verbose=0)
        return outputs.reshape(len(outputs), -1)

    def _log_embeddings(self, epoch: int) -> None:
        """Each projected layer's rows (with their labels) for TensorBoard's projector."""
        writer = self._writer("train")
        paths = self._metadata_paths()
        for layer in self._projected_layers():
            matrix = self._embedding_matrix(layer)
            labels, header = _read_metadata(paths.get(layer.name), len(matrix), layer.name)
            writer.add_embedding(matrix, metadata=labels, metadata_header=header,
                                 global_step=epoch, tag=layer.name)
        writer.flush()

    def _start_profiler(self) -> None:
        import torch.profiler

        self._profiler = torch.profiler.profile(
            on_trace_ready=torch.profiler.tensorboard_trace_handler(self._train_dir))
        self._profiler.start()

    def _stop_profiler(self) -> None:
        self._profiler.stop()
        self._profiler = None
