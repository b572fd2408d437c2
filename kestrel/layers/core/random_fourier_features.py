"""RandomFourierFeatures (Keras 2's `keras.layers.experimental`): `cos(x @ W / scale + b)`,
random features whose dot products approximate a shift-invariant kernel (keras.io quasi_svm).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from kestrel import initializers
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer, register_layer

_KERNELS = ("gaussian", "laplacian")


def _random_features_initializer(kernel_initializer, shape):
    """Gaussian kernel: standard normal features; Laplacian: standard Cauchy samples."""
    if not isinstance(kernel_initializer, str):
        return initializers.get(kernel_initializer)
    if kernel_initializer.lower() == "gaussian":
        return initializers.RandomNormal(stddev=1.0)
    probs = np.random.uniform(0.0, 1.0, size=shape)
    return initializers.Constant(np.tan(np.pi * (probs - 0.5)).astype("float32"))


@register_layer()
class RandomFourierFeatures(Layer):
    """Maps inputs `(batch, input_dim)` to `(batch, output_dim)` random Fourier features.

    Args:
        output_dim: number of random features (positive int).
        kernel_initializer: `"gaussian"`, `"laplacian"` or an initializer of the random
            (non-trainable) `unscaled_kernel`.
        scale: initial kernel scale (positive; default `sqrt(input_dim / 2)` for the Gaussian
            kernel, 1 otherwise); a trainable, non-negative weight `kernel_scale`.
        trainable: whether `kernel_scale` trains (False by default, as Keras 2).
    """

    def __init__(self, output_dim, kernel_initializer="gaussian", scale=None, trainable=False,
                 name=None, **kwargs):
        if output_dim <= 0:
            raise ValueError("`output_dim` should be a positive integer. "
                             f"Received: output_dim={output_dim}")
        if isinstance(kernel_initializer, str) and kernel_initializer.lower() not in _KERNELS:
            raise ValueError(f"Unsupported `kernel_initializer`: {kernel_initializer} "
                             f"Expected one of: {list(_KERNELS)}")
        if scale is not None and scale <= 0.0:
            raise ValueError("When provided, `scale` should be a positive float. "
                             f"Received: scale={scale}")
        super().__init__(trainable=trainable, name=name, **kwargs)
        self.output_dim = output_dim
        self.kernel_initializer = kernel_initializer
        self.scale = scale

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(f"RandomFourierFeatures '{self.name}' expects inputs of shape "
                             f"(batch, input_dim) with a known input_dim. "
                             f"Received: input_shape={tuple(input_shape)}")
        input_dim = int(input_shape[-1])
        self.input_spec = InputSpec(ndim=2, axes={-1: input_dim})
        self.unscaled_kernel = self.add_weight(
            name="unscaled_kernel", shape=(input_dim, self.output_dim), trainable=False,
            initializer=_random_features_initializer(self.kernel_initializer,
                                                     (input_dim, self.output_dim)))
        self.bias = self.add_weight(
            name="bias", shape=(self.output_dim,), trainable=False,
            initializer=initializers.RandomUniform(minval=0.0, maxval=2 * math.pi))
        if self.scale is None:
            gaussian = str(self.kernel_initializer).lower() == "gaussian"
            self.scale = float(np.sqrt(input_dim / 2.0)) if gaussian else 1.0
        self.kernel_scale = self.add_weight(
            name="kernel_scale", shape=(1,), trainable=True, constraint="NonNeg",
            initializer=initializers.Constant(self.scale))

    def call(self, inputs):
        inputs = torch.as_tensor(inputs).to(self.unscaled_kernel.dtype)
        kernel = self.unscaled_kernel / self.kernel_scale
        return torch.cos(inputs @ kernel + self.bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        kernel_initializer = self.kernel_initializer
        if not isinstance(kernel_initializer, str):
            kernel_initializer = initializers.serialize(kernel_initializer)
        return {**super().get_config(), "output_dim": self.output_dim,
                "kernel_initializer": kernel_initializer, "scale": self.scale}
