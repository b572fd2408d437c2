"""Inference matmuls of large Dense layers through oneDNN, with the kernel packed once.

On an x86 CPU, a float32 batch of at least `MIN_ROWS` rows and no autograd, oneDNN's linear
with a weight reordered ahead of time (and relu fused) runs 6-9% faster than `addmm`
(measured on the benchmark MLP; see benchmarks/README.md). Each call costs ~20 µs more, so
small layers and batches keep `addmm`. The packed copy is kept on the layer and rebuilt when
the kernel changes (its version counter or its storage), and released as soon as the layer
runs with autograd again. Traced, compiled, exported and functorch-transformed code never
takes this path: the op is CPU-only and private to torch.
"""
from __future__ import annotations

import platform

import torch

MIN_ROWS = 256
MIN_MULTIPLY_ADDS = 2**25  # rows * input_dim * units

_available: bool | None = None  # decided on first use; False after any failure of the op


def applies(layer, inputs: torch.Tensor) -> bool:
    """Whether `layer`'s call on `inputs` takes the packed path (and, under autograd, drop
    the packed copy)."""
    if torch.is_grad_enabled():
        if layer._packed_kernel is not None:
            layer._packed_kernel = None
        return False
    if type(inputs) is not torch.Tensor or not _usable() or _transformed():
        return False
    kernel = layer.kernel
    return (inputs.dim() == 2 and inputs.shape[0] >= MIN_ROWS
            and inputs.shape[1] == kernel.shape[0]
            and inputs.shape[0] * kernel.numel() >= MIN_MULTIPLY_ADDS
            and inputs.device.type == "cpu" and kernel.device.type == "cpu"
            and inputs.dtype is torch.float32 and kernel.dtype is torch.float32
            and not torch.is_autocast_enabled("cpu"))


def linear(layer, inputs: torch.Tensor, fuse_relu: bool) -> torch.Tensor | None:
    """`inputs @ kernel + bias` (then relu when `fuse_relu`), or None if the op failed."""
    global _available
    try:
        return torch.ops.mkldnn._linear_pointwise(
            inputs, _packed(layer, inputs.shape[0]), layer.bias,
            "relu" if fuse_relu else "none", [], "")
    except RuntimeError:  # an op this torch build lacks or rejects: addmm from now on
        _available = False
        return None


def _packed(layer, rows: int) -> torch.Tensor:
    kernel = layer.kernel
    key = (kernel._version, kernel.data_ptr())
    cached = layer._packed_kernel
    if cached is None or cached[0] != key:
        weight = kernel.detach().t().contiguous()
        cached = layer._packed_kernel = (key, torch.ops.mkldnn._reorder_linear_weight(weight, rows))
    return cached[1]


def _usable() -> bool:
    global _available
    if _available is None:
        _available = platform.machine().lower() in ("x86_64", "amd64") and \
            torch.backends.mkldnn.is_available() and \
            hasattr(torch.ops.mkldnn, "_linear_pointwise") and \
            hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    return _available


def _transformed() -> bool:
    """Whether the call is being traced, compiled, exported or run under a functorch
    transform (vmap, grad): those must see plain torch ops."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()
            or torch.compiler.is_exporting() or torch._C._are_functorch_transforms_active())
