"""GroupNormalization: normalizes groups of channels per sample (torch's fused group norm)."""
from __future__ import annotations

import torch.nn.functional as F

from kestrel import constraints, initializers, regularizers
from kestrel.layers.float_inputs import promote
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer, register_layer


@register_layer()
class GroupNormalization(Layer):
    """Splits the channels into `groups` and normalizes each group over its channels and all
    spatial positions, per sample; then scales by `gamma` and shifts by `beta` per channel.

    Args:
        groups: number of groups (a divisor of the channel count), or -1 for one group per
            channel (instance normalization).
        axis: the channel axis (int).
        epsilon: added to the variance.
        center / scale: whether to learn `beta` / `gamma`.
        beta_initializer / gamma_initializer, beta_regularizer / gamma_regularizer,
        beta_constraint / gamma_constraint: for the two weights.

    Input shape: any rank >= 2. Output shape: same as the input.

    Example:
        >>> GroupNormalization(groups=2)(torch.randn(4, 5, 6)).shape
        torch.Size([4, 5, 6])
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or (groups <= 0
                                                                      and groups != -1):
            raise ValueError(
                f"GroupNormalization '{self.name}': groups must be a positive integer, or -1 for "
                f"instance normalization. Received: groups={groups!r}")
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(
                f"GroupNormalization '{self.name}': axis must be an integer. "
                f"Received: axis={axis!r}")
        self.groups = groups
        self.axis = axis
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank < self.axis < rank or self.axis == 0:
            raise ValueError(
                f"GroupNormalization '{self.name}': axis {self.axis} is not a channel axis of an "
                f"input of rank {rank}. Received: input shape={tuple(input_shape)}")
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(
                f"GroupNormalization '{self.name}': the channel axis {self.axis} must have a "
                f"known size. Received: input shape={tuple(input_shape)}")
        self._groups = channels if self.groups == -1 else self.groups
        if channels < self._groups or channels % self._groups:
            raise ValueError(
                f"GroupNormalization '{self.name}': the number of channels ({channels}) must be "
                f"a multiple of groups ({self._groups}). Received: input shape="
                f"{tuple(input_shape)}")
        self._channel_dim = self.axis % rank
        self.gamma = self.add_weight("gamma", (channels,), self.gamma_initializer,
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if self.scale else None
        self.beta = self.add_weight("beta", (channels,), self.beta_initializer,
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if self.center else None
        self.input_spec = InputSpec(ndim=rank, axes={self.axis: channels})

    def call(self, inputs):
        inputs = promote(inputs, self)
        # torch's kernel wants channels first and accumulates half-precision inputs in float32
        x = inputs.movedim(self._channel_dim, 1) if self._channel_dim != 1 else inputs
        out = F.group_norm(x, self._groups, self.gamma, self.beta, self.epsilon)
        return out.movedim(1, self._channel_dim) if self._channel_dim != 1 else out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }
