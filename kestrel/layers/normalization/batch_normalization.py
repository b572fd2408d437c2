"""BatchNormalization: normalize with batch statistics in training, moving averages otherwise."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel import config, constraints, initializers, regularizers
from kestrel.layers.convolutional.conv_utils import channel_permutations, permuted
from kestrel.layers.float_inputs import promote
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.normalization import batch_norm_inference, batch_renorm
from kestrel.layers.layer import Layer, register_layer

_HALF = (torch.float16, torch.bfloat16)


def _float(weight):
    """A float16/bfloat16 weight (a "float16" or "bfloat16" policy) in float32, as torch's CPU
    kernels want the parameters of the float32 inputs the layer computes on."""
    return weight.float() if weight is not None and weight.dtype in _HALF else weight


@register_layer()
class BatchNormalization(Layer):
    """Normalizes each feature of `axis` to zero mean and unit variance, then scales and shifts.

    In training (`fit()` or `training=True`) it uses the batch mean and (biased) variance and
    updates `moving = moving * momentum + batch * (1 - momentum)`; in inference, and whenever
    the layer is frozen (`trainable=False`), it uses the moving statistics, as Keras 3 does.

    Args:
        axis: the features axis (`-1` for channels-last data, `1` for channels-first).
        momentum: momentum of the moving averages (Keras 0.99 is torch's 0.01).
        epsilon: added to the variance (Keras default 1e-3, not torch's 1e-5).
        center / scale: whether to add `beta` / multiply by `gamma`.
        beta_initializer / gamma_initializer / moving_mean_initializer /
            moving_variance_initializer: initializers of the four weights.
        beta_regularizer / gamma_regularizer / beta_constraint / gamma_constraint: optional.
        renorm: batch renormalization in training (see `batch_renorm`); adds the
            non-trainable weights moving_stddev, renorm_mean, renorm_stddev.
        renorm_clipping: dict with optional `rmax`, `rmin`, `dmax` clipping `r` and `d`.
        renorm_momentum: momentum of `renorm_mean` / `renorm_stddev`.
        synchronized: Keras' cross-replica flag; only `False` is supported.

    Weights, in Keras' order: gamma, beta, moving_mean, moving_variance (each `(features,)`).
    A `mask` of the input's shape without its last axis excludes entries from the statistics.

    Example:
        >>> BatchNormalization()(torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """

    _output_is_fresh = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]  # Keras 2 configs store the axis as a one-element list
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(
                f"BatchNormalization '{self.name}': axis must be an integer. "
                f"Received: axis={axis!r}")
        if synchronized:
            raise ValueError(
                f"BatchNormalization '{self.name}': synchronized=True (cross-replica batch "
                "statistics) is not supported; use synchronized=False. "
                f"Received: synchronized={synchronized}")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(
                f"BatchNormalization '{self.name}': momentum must be in [0, 1]. "
                f"Received: momentum={momentum}")
        self.axis = axis
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.synchronized = False
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.renorm = renorm
        self.renorm_clipping = (batch_renorm.check_clipping(self.name, renorm_clipping)
                                if renorm else renorm_clipping)
        self.renorm_momentum = renorm_momentum

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"BatchNormalization '{self.name}': axis {self.axis} is out of range for an input "
                f"of rank {rank}. Received: input_shape={tuple(input_shape)}")
        features = input_shape[self.axis]
        if features is None:
            raise ValueError(
                f"BatchNormalization '{self.name}': the size of axis {self.axis} must be known. "
                f"Received: input_shape={tuple(input_shape)}")
        self._axis = self.axis % rank
        shape = (features,)
        self.gamma = self.add_weight("gamma", shape, self.gamma_initializer,
                                     regularizer=self.gamma_regularizer,
                                     constraint=self.gamma_constraint) if self.scale else None
        self.beta = self.add_weight("beta", shape, self.beta_initializer,
                                    regularizer=self.beta_regularizer,
                                    constraint=self.beta_constraint) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape,
                                               self.moving_variance_initializer, trainable=False)
        if self.renorm:
            batch_renorm.build_weights(self, shape)
        self.input_spec = InputSpec(ndim=rank, axes={self.axis: features})

    def call(self, inputs, training=None, mask=None):
        training = self.training if training is None else training
        if mask is not None and mask.dim() != inputs.dim() - 1:
            raise ValueError(
                f"BatchNormalization '{self.name}': the mask must have one dimension less than "
                f"the inputs. Received: mask.shape={tuple(mask.shape)}, "
                f"inputs.shape={tuple(inputs.shape)}")
        x = inputs.float() if inputs.dtype in _HALF else promote(inputs, self)
        if training and self._trainable:
            if self.renorm:
                out = batch_renorm.train_step(self, x, mask)
            else:
                out = self._train_step(x) if mask is None else self._train_step_masked(x, mask)
        elif batch_norm_inference.faster(x):
            out = batch_norm_inference.normalize(self, x)
        else:
            flat, restore = self._channels_at_1(x)
            mean, variance = self.moving_mean, self.moving_variance
            if torch.is_grad_enabled():  # backward reads them: a training call may update them
                mean, variance = mean.clone(), variance.clone()
            out = restore(F.batch_norm(flat, _float(mean), _float(variance), _float(self.gamma),
                                       _float(self.beta), False, 0.0, self.epsilon))
        return out.to(inputs.dtype) if inputs.dtype in _HALF else out

    def _infers(self) -> bool:
        """Whether a call without `training` normalizes with the moving statistics."""
        return not (self.training and self._trainable) and self._keras_training_default is None

    def _channels_at_1(self, x: torch.Tensor):
        """A view of `x` with the features on dim 1 and its inverse: channels-last images as an
        NCHW view in channels_last memory, other channels-last data as 2D rows."""
        if self._axis == 1:
            return x, _identity
        shape, last = x.shape, x.dim() - 1
        if self._axis == last and last in (3, 4):  # images: torch's channels_last kernels
            return permuted(x, channel_permutations(last - 1)[0]), lambda y: y.movedim(1, -1)
        if self._axis == last:
            return x.reshape(-1, shape[-1]), lambda y: y.reshape(shape)
        moved = x.movedim(self._axis, -1)
        moved_shape = moved.shape
        return (moved.reshape(-1, shape[self._axis]),
                lambda y: y.reshape(moved_shape).movedim(-1, self._axis))

    def _train_step(self, x: torch.Tensor) -> torch.Tensor:
        flat, restore = self._channels_at_1(x)
        out, mean, invstd = torch.ops.aten.native_batch_norm(
            flat, _float(self.gamma), _float(self.beta), None, None, True, 0.0, self.epsilon)
        with torch.no_grad():
            variance = invstd.square().reciprocal_().sub_(self.epsilon).clamp_min_(0.0)
            self._update_moving(mean, variance)
        return restore(out)

    def _train_step_masked(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean, variance = self._masked_moments(x, mask)
        with torch.no_grad():
            self._update_moving(mean.flatten(), variance.flatten())
        return self._affine(x, mean, variance, self.gamma, self.beta)

    def _masked_moments(self, x: torch.Tensor, mask: torch.Tensor):
        """Mean and variance over the entries `mask` keeps, broadcastable against `x`."""
        reduce = [d for d in range(x.dim()) if d != self._axis]
        weights = mask.unsqueeze(-1).to(x.dtype).expand_as(x)
        count = weights.sum(reduce, keepdim=True) + config.epsilon()
        mean = (x * weights).sum(reduce, keepdim=True) / count
        variance = (((x - mean) * weights) ** 2).sum(reduce, keepdim=True) / count
        return mean, variance

    def _affine(self, x, mean, variance, gamma, beta) -> torch.Tensor:
        """`(x - mean) / sqrt(variance + epsilon) * gamma + beta` (gamma/beta may be None)."""
        view = [1] * x.dim()
        view[self._axis] = -1
        inv = torch.rsqrt(variance + self.epsilon)
        if gamma is not None:
            inv = inv * gamma.view(view)
        shift = -mean * inv
        if beta is not None:
            shift = shift + beta.view(view)
        return x * inv + shift

    def _update_moving(self, mean: torch.Tensor, variance: torch.Tensor) -> None:
        weight = 1.0 - self.momentum
        self.moving_mean.lerp_(mean.to(self.moving_mean.dtype), weight)
        self.moving_variance.lerp_(variance.to(self.moving_variance.dtype), weight)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        }


def _identity(x):
    return x
