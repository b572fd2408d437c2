"""LayerNormalization: normalize each sample over the given axes, then scale and shift."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel import constraints, initializers, regularizers
from kestrel.layers.float_inputs import promote
from kestrel.layers.layer import Layer, register_layer


@register_layer()
class LayerNormalization(Layer):
    """Normalizes each sample to zero mean and unit variance over `axis`, independently of
    the batch: `gamma * (x - mean) / sqrt(var + epsilon) + beta`.

    Args:
        axis: axis or list of axes to normalize over (default: the last one).
        epsilon: added to the variance (Keras default 1e-3, not torch's 1e-5).
        center / scale: whether to add `beta` / multiply by `gamma`.
        rms_scaling: Keras' deprecated mode `x * gamma / sqrt(var + epsilon)` (no centering,
            no beta); it divides by the variance, not the root mean square.
        beta_initializer / gamma_initializer: initializers (`"zeros"` / `"ones"`).
        beta_regularizer / gamma_regularizer / beta_constraint / gamma_constraint: optional.

    Weights, in Keras' order: gamma, beta, each of the shape of the normalized axes.

    Example:
        >>> LayerNormalization()(torch.randn(2, 5, 8)).shape
        torch.Size([2, 5, 8])
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
            raise ValueError(
                f"LayerNormalization '{self.name}': axis must be an int or a list of ints. "
                f"Received: axis={axis!r}")
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.rms_scaling = rms_scaling
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        axes = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        for a in axes:
            if not -rank <= a < rank:
                raise ValueError(
                    f"LayerNormalization '{self.name}': axis {a} is out of bounds for an input "
                    f"of rank {rank}. Received: axis={self.axis}, input_shape={tuple(input_shape)}")
        shape = tuple(input_shape[a] for a in axes)
        if None in shape:
            raise ValueError(
                f"LayerNormalization '{self.name}': the sizes of the normalized axes must be "
                f"known. Received: axis={self.axis}, input_shape={tuple(input_shape)}")
        self.axis = axes  # as Keras' build: sorted (gamma follows), an int becomes a list
        positive = [a % rank for a in axes]
        self._axes = sorted(positive)
        self._broadcast = [input_shape[d] if d in positive else 1 for d in range(rank)]
        # F.layer_norm needs the trailing axes, listed in order (so gamma has their shape).
        self._fused = (not self.rms_scaling and positive == list(range(rank - len(axes), rank)))
        self.gamma = self.add_weight(
            "gamma", shape, self.gamma_initializer, regularizer=self.gamma_regularizer,
            constraint=self.gamma_constraint) if self.scale or self.rms_scaling else None
        self.beta = self.add_weight(
            "beta", shape, self.beta_initializer, regularizer=self.beta_regularizer,
            constraint=self.beta_constraint) if self.center and not self.rms_scaling else None

    def call(self, inputs):
        inputs = promote(inputs, self)
        if self._fused:
            return F.layer_norm(inputs, inputs.shape[inputs.dim() - len(self._axes):],
                                self.gamma, self.beta, self.epsilon)
        variance, mean = torch.var_mean(inputs, self._axes, correction=0, keepdim=True)
        inv = torch.rsqrt(variance + self.epsilon)
        if self.rms_scaling:
            out = inputs * inv
            return out * self.gamma.reshape(self._broadcast) if self.gamma is not None else out
        if self.gamma is not None:
            inv = inv * self.gamma.reshape(self._broadcast)
        shift = -mean * inv
        if self.beta is not None:
            shift = shift + self.beta.reshape(self._broadcast)
        return inputs * inv + shift

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "rms_scaling": self.rms_scaling,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }
