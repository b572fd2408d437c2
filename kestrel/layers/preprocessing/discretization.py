"""Discretization: bucket continuous values by boundaries given or estimated by `adapt`."""
from __future__ import annotations

import numpy as np
import torch

from kestrel.layers import shape_inference
from kestrel.layers.layer import Layer, register_layer
from kestrel.layers.node import shape_of
from kestrel.layers.preprocessing.adapt_data import iter_batches, is_whole
from kestrel.layers.preprocessing.category_encoding import encoded_shape
from kestrel.utils.numerical_utils import encode_categorical


@register_layer()
class Discretization(Layer):
    """Map each value to the index of its bin: `boundaries[i-1] <= x < boundaries[i]` -> `i`.

    Args:
        bin_boundaries: sorted boundaries; or set `num_bins` and call `adapt(data)`.
        num_bins: number of bins `adapt` estimates (approximate quantiles).
        epsilon: error tolerance of the quantile estimate.
        output_mode: `"int"` (int32 indices), `"one_hot"`, `"multi_hot"` or `"count"`.
        sparse: must stay False (torch outputs are dense).

    Example:
        >>> Discretization(bin_boundaries=[0.0, 1.0])(torch.tensor([-1.0, 0.5, 2.0]))
        tensor([0, 1, 2], dtype=torch.int32)
    """

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int",
                 sparse=False, dtype=None, name=None):
        super().__init__(name=name, dtype=dtype)
        if sparse:
            raise ValueError("Discretization: `sparse=True` cannot be used with the torch "
                             f"backend. Received: sparse={sparse}")
        if output_mode not in ("int", "one_hot", "multi_hot", "count"):
            raise ValueError("Discretization: invalid value for argument output_mode. Expected "
                             "one of ('int', 'one_hot', 'multi_hot', 'count'). Received: "
                             f"output_mode={output_mode}")
        if num_bins is not None and num_bins < 0:
            raise ValueError("Discretization: `num_bins` must be greater than or equal to 0. "
                             f"Received: `num_bins={num_bins}`")
        if num_bins is not None and bin_boundaries is not None:
            raise ValueError("Discretization: both `num_bins` and `bin_boundaries` should not "
                             f"be set. Received: `num_bins={num_bins}` and "
                             f"`bin_boundaries={bin_boundaries}`")
        if num_bins is None and bin_boundaries is None:
            raise ValueError("Discretization: you need to set either `num_bins` or "
                             "`bin_boundaries`.")
        self.bin_boundaries = bin_boundaries
        self.num_bins = num_bins
        self.epsilon = epsilon
        self.output_mode = output_mode
        self.sparse = sparse
        self.summary = None if bin_boundaries else np.array([[], []], dtype="float32")

    def adapt(self, data, batch_size=None, steps=None):
        """Estimate `num_bins` quantile boundaries from an array or an iterable of batches."""
        if self.num_bins is None:
            raise ValueError("Discretization: cannot adapt a layer initialized with "
                             "`bin_boundaries`; use `num_bins` instead.")
        self.summary = np.array([[], []], dtype="float32")
        batches = [data] if is_whole(data) and batch_size is None else \
            iter_batches(data, "Discretization", batch_size=batch_size, steps=steps)
        for batch in batches:
            batch = batch.detach().cpu().numpy() if isinstance(batch, torch.Tensor) else batch
            values = np.array(batch).astype("float32")
            self.summary = _merge(_summarize(values, self.epsilon), self.summary, self.epsilon)
        self.bin_boundaries = _compress(self.summary, 1.0 / self.num_bins)[0, :-1].tolist()

    def _depth(self) -> int:
        return len(self.bin_boundaries) + 1 if self.bin_boundaries is not None \
            else self.num_bins

    def call(self, inputs):
        if self.bin_boundaries is None:
            raise ValueError("Discretization: pass `bin_boundaries` at construction time or "
                             "call `adapt(dataset)` before using the layer.")
        inputs = inputs if isinstance(inputs, torch.Tensor) else _numeric_tensor(inputs)
        boundaries = torch.tensor(self.bin_boundaries, dtype=inputs.dtype
                                  if inputs.is_floating_point() else torch.float32,
                                  device=inputs.device)
        indices = torch.bucketize(inputs.to(boundaries.dtype), boundaries, right=True)
        dtype = torch.int32 if self.output_mode == "int" else self._variable_dtype
        return encode_categorical(indices, self.output_mode, self._depth(), dtype)

    def compute_output_shape(self, input_shape):
        return encoded_shape(input_shape, self.output_mode, self._depth())

    def compute_output_spec(self, *args, **kwargs):
        shape = self.compute_output_shape(shape_of(args[0]))
        return shape_inference.shapes_to_keras_tensors(
            shape, "int32" if self.output_mode == "int" else self.dtype)

    def get_config(self):
        return {"bin_boundaries": self.bin_boundaries, "num_bins": self.num_bins,
                "epsilon": self.epsilon, "output_mode": self.output_mode,
                "sparse": self.sparse, "name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        config = {k: v for k, v in config.items() if k not in ("trainable",)}
        boundaries = config.pop("bin_boundaries", None)
        if boundaries is not None and config.get("num_bins") is not None:
            layer = cls(**config)  # an adapted layer: keep num_bins, restore the boundaries
            layer.bin_boundaries = boundaries
            return layer
        return cls(bin_boundaries=boundaries, **config)


def _numeric_tensor(values) -> torch.Tensor:
    dtype = np.asarray(values).dtype
    if dtype.kind not in "biuf":
        raise ValueError(f"Discretization: expected numeric inputs. Received values of dtype "
                         f"{dtype}.")
    return torch.as_tensor(values)


def _summarize(values: np.ndarray, epsilon: float) -> np.ndarray:
    """(values, weights) of about `1 / epsilon` evenly spaced sorted samples of `values`."""
    values = np.sort(np.reshape(values, [-1]))
    step = max(np.size(values) / (1.0 / epsilon), 1)
    boundaries = values[int(step - 1)::int(step)]
    return np.stack([boundaries, np.ones_like(boundaries) * step])


def _merge(first: np.ndarray, second: np.ndarray, epsilon: float) -> np.ndarray:
    merged = np.concatenate((first, second), axis=1)
    return _compress(np.take(merged, np.argsort(merged[0]), axis=1), epsilon)


def _compress(summary: np.ndarray, epsilon: float) -> np.ndarray:
    """Interpolate a summary onto `1 / epsilon` cumulative-weight quantiles."""
    if summary.shape[1] * epsilon < 1:
        return summary
    percents = epsilon + np.arange(0.0, 1.0, epsilon)
    cum_weights = summary[1].cumsum()
    cum_percents = cum_weights / cum_weights[-1]
    new_bins = np.interp(percents, cum_percents, summary[0])
    cum_weights = np.interp(percents, cum_percents, cum_weights)
    new_weights = cum_weights - np.concatenate((np.array([0]), cum_weights[:-1]))
    return np.stack((new_bins, new_weights)).astype("float32")
