"""SpectralNormalization: divide a layer's kernel by its largest singular value."""
from __future__ import annotations

import torch

from kestrel import initializers, ops
from kestrel.layers.core.wrapper import Wrapper
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import register_layer


@register_layer()
class SpectralNormalization(Wrapper):
    """Spectral normalization of the wrapped layer's `kernel` (or `embeddings`).

    In training, `power_iterations` steps of the power method refine the estimate `vector_u`
    of the kernel's top singular vector, and the kernel (viewed as `(-1, last_dim)` in Keras'
    layout) is replaced by `kernel / sigma` before the wrapped layer runs. As in Keras, the
    wrapper's own weights are the shared kernel and `vector_u` `(1, last_dim)`
    (non-trainable), then the wrapped layer's.

    Args:
        layer: a Layer with a `kernel` or `embeddings` weight.
        power_iterations: number of power-method steps per training call (positive int).

    Example:
        >>> from kestrel.layers import Dense
        >>> SpectralNormalization(Dense(4))(torch.ones(2, 3)).shape
        torch.Size([2, 4])
    """

    _keras_training_default = False  # Keras' `call(..., training=False)`

    def __init__(self, layer, power_iterations=1, **kwargs):
        super().__init__(layer, **kwargs)
        if isinstance(power_iterations, bool) or not isinstance(power_iterations, int) \
                or power_iterations <= 0:
            raise ValueError(f"SpectralNormalization '{self.name}': power_iterations must be a "
                             f"positive integer. Received: power_iterations={power_iterations!r}")
        self.power_iterations = power_iterations

    def build(self, input_shape):
        super().build(input_shape)
        self.input_spec = InputSpec(min_ndim=1, axes={-1: input_shape[-1]})
        attr = next((a for a in ("kernel", "embeddings")
                     if isinstance(getattr(self.layer, a, None), torch.Tensor)), None)
        if attr is None:
            raise ValueError(f"SpectralNormalization '{self.name}': {type(self.layer).__name__} "
                             "has no attribute 'kernel' nor 'embeddings'")
        self.kernel = getattr(self.layer, attr)  # shared: one weight, listed here first
        self._weight_order.append("kernel")
        layout = self.layer._weight_layouts.get(attr)
        if layout is not None:
            self._weight_layouts["kernel"] = layout
        self._layout = layout
        units = self._keras_kernel().shape[-1]
        self.vector_u = self.add_weight(
            "vector_u", (1, units), initializers.TruncatedNormal(stddev=0.02), trainable=False)

    def _keras_kernel(self) -> torch.Tensor:
        return self.kernel if self._layout is None else self._layout[1](self.kernel)

    def call(self, inputs, training=None):
        training = self.training if training is None else training
        if training:
            self._normalize()
        return self.layer(inputs).to(inputs.dtype)

    @torch.no_grad()
    def _normalize(self) -> None:
        """One training step of the power method; the kernel becomes `kernel / sigma`."""
        kernel = self._keras_kernel()
        if not bool(kernel.any()):
            return
        weights = kernel.reshape(-1, kernel.shape[-1])
        u = self.vector_u
        for _ in range(self.power_iterations):
            v = ops.normalize(u @ weights.T, axis=None)
            u = ops.normalize(v @ weights, axis=None)
        sigma = v @ weights @ u.T
        self.vector_u.copy_(u)
        new = kernel / sigma
        self.kernel.copy_(new if self._layout is None else self._layout[0](new))

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}
