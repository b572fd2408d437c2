"""Keras 3 activation functions, computed with fused torch ops.

Each function takes a tensor and returns a tensor of the same shape (`glu` halves `axis`).
Other inputs (a `KerasTensor`, NumPy arrays, lists) go through the Keras op the activation
stands for (`kestrel.ops.elu`, ...), which converts them or records a graph node.

>>> import torch
>>> relu(torch.tensor([-2.0, 0.5, 8.0]), max_value=6.0)
tensor([0.0000, 0.5000, 6.0000])
"""
from __future__ import annotations

import functools
import inspect
import warnings

import torch
import torch.nn.functional as F

from kestrel.registry.object_registry import register_builtin

Axis = int | tuple[int, ...]

# Keras' op for an activation where it is not `kestrel.ops.<the activation's name>`; the
# "activations." ops are Keras' own op classes of `keras.src.activations` (ReLU, Mish).
_OPS = {"exponential": "exp", "relu": "activations.relu", "mish": "activations.mish"}
# Keras 2's keywords that Keras 3 renamed: `relu(x, alpha=0.1)` is `negative_slope=0.1`.
_KERAS2_KEYWORDS = {"relu": {"alpha": "negative_slope"},
                    "leaky_relu": {"alpha": "negative_slope"}}


def activation(*aliases: str):
    """Register a builtin activation (also under `aliases`) that computes on torch tensors
    and hands any other input to its Keras op (on a `KerasTensor`: one graph node)."""

    def decorator(fn):
        op_name = _OPS.get(fn.__name__, fn.__name__)
        signature = inspect.signature(fn)

        renamed = _KERAS2_KEYWORDS.get(fn.__name__, {})

        @functools.wraps(fn)
        def apply(x, *args, **kwargs):
            for old, new in renamed.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}() got both `{old}` (Keras 2) and "
                                        f"`{new}`; pass `{new}` only.")
                    kwargs[new] = kwargs.pop(old)
            if isinstance(x, torch.Tensor):
                return fn(x, *args, **kwargs)
            from kestrel.ops.dispatch import get_op

            call = signature.bind(x, *args, **kwargs)
            call.apply_defaults()  # the activation's defaults, not the op's (gelu differs)
            return get_op(op_name)(*call.args, **call.kwargs)

        apply.raw = fn
        return register_builtin("activations", *aliases)(apply)

    return decorator


@activation()
def relu(x: torch.Tensor, negative_slope: float = 0.0, max_value: float | None = None,
         threshold: float = 0.0) -> torch.Tensor:
    """Rectified linear unit, optionally leaky, capped and thresholded.

    Args:
        negative_slope: slope for values below `threshold`.
        max_value: upper bound of the output (`None`: unbounded).
        threshold: values at or below it are zeroed (or leak).
    """
    if threshold == 0.0:
        if negative_slope != 0.0 and max_value is None:
            return F.leaky_relu(x, negative_slope)
        if max_value == 6.0:  # Keras' own relu6 path: one fused op, fast backward
            out = F.relu6(x)
        else:
            out = torch.relu(x)
            if max_value is not None:
                out = out.clamp_max(max_value)
    else:
        out = torch.where(x > threshold, x, 0.0)
        if max_value is not None:
            out = torch.clamp(out, 0.0, max_value)
    if negative_slope != 0.0:
        out = out - negative_slope * torch.relu(threshold - x)
    return out


@activation()
def leaky_relu(x: torch.Tensor, negative_slope: float = 0.2) -> torch.Tensor:
    """Leaky ReLU: `x` if `x > 0`, else `negative_slope * x`."""
    return F.leaky_relu(x, negative_slope)


@activation()
def relu6(x: torch.Tensor) -> torch.Tensor:
    """ReLU capped at 6."""
    return F.relu6(x)


@activation()
def softmax(x: torch.Tensor, axis: Axis = -1) -> torch.Tensor:
    """Softmax over `axis` (an int or a tuple of ints)."""
    if isinstance(axis, int):
        if -x.dim() <= axis < x.dim() and x.shape[axis] == 1:
            _warn_softmax_over_one(x, axis)
        if _short_cpu_rows(x, axis):
            exp = (x - x.amax(axis, keepdim=True)).exp_()
            return exp.div_(exp.sum(axis, keepdim=True))
        return torch.softmax(x, axis)
    return torch.exp(x - torch.logsumexp(x, tuple(axis), keepdim=True))


def _warn_softmax_over_one(x: torch.Tensor, axis: int) -> None:
    """Keras' warning for a softmax over an axis of size 1 (always 1: a sigmoid was meant)."""
    warnings.warn(
        f"You are using a softmax over axis {axis} of a tensor of shape {x.shape}. This axis "
        "has size 1. The softmax operation will always return the value 1, which is likely "
        "not what you intended. Did you mean to use a sigmoid instead?")


def _short_cpu_rows(x: torch.Tensor, axis: int) -> bool:
    """Inference on CPU over a short axis that is not a multiple of 16 (e.g. 10 classes),
    where torch's softmax kernel is several times slower than exp / sum / divide."""
    size = x.shape[axis] if x.dim() else 0
    return (x.device.type == "cpu" and size < 64 and size % 16 != 0
            and not (x.requires_grad and torch.is_grad_enabled()))


@activation()
def log_softmax(x: torch.Tensor, axis: Axis = -1) -> torch.Tensor:
    """Logarithm of the softmax over `axis`."""
    if isinstance(axis, int):
        return torch.log_softmax(x, axis)
    return x - torch.logsumexp(x, tuple(axis), keepdim=True)


@activation()
def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Logistic sigmoid `1 / (1 + exp(-x))`."""
    return torch.sigmoid(x)


@activation()
def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """`log(sigmoid(x))`, computed stably."""
    return F.logsigmoid(x)


@activation()
def tanh(x: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent."""
    return torch.tanh(x)


@activation()
def gelu(x: torch.Tensor, approximate: bool = False) -> torch.Tensor:
    """Gaussian error linear unit; `approximate=True` uses the tanh formula."""
    return F.gelu(x, approximate="tanh" if approximate else "none")


@activation()
def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Exponential linear unit: `x` if `x > 0`, else `alpha * (exp(x) - 1)`."""
    return F.elu(x, alpha)


@activation()
def celu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Continuously differentiable ELU: `max(x, 0) + min(0, alpha * (exp(x / alpha) - 1))`."""
    return F.celu(x, alpha)


@activation()
def selu(x: torch.Tensor) -> torch.Tensor:
    """Scaled ELU with the self-normalizing constants of Klambauer et al. (2017)."""
    return F.selu(x)


@activation()
def softplus(x: torch.Tensor) -> torch.Tensor:
    """`log(exp(x) + 1)`."""
    return F.softplus(x)


@activation()
def softsign(x: torch.Tensor) -> torch.Tensor:
    """`x / (abs(x) + 1)`."""
    return F.softsign(x)


@activation("swish")
def silu(x: torch.Tensor) -> torch.Tensor:
    """Sigmoid linear unit (swish): `x * sigmoid(x)`."""
    return F.silu(x)


swish = silu


@activation()
def exponential(x: torch.Tensor) -> torch.Tensor:
    """`exp(x)`."""
    return torch.exp(x)


@register_builtin("activations")
def linear(x: torch.Tensor) -> torch.Tensor:
    """The identity: returns `x` unchanged."""
    return x


@activation()
def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear sigmoid, Keras 3's `relu6(x + 3) / 6`."""
    return F.hardsigmoid(x)


@activation("hard_swish")
def hard_silu(x: torch.Tensor) -> torch.Tensor:
    """Hard SiLU (hard swish): `x * relu6(x + 3) / 6`."""
    return F.hardswish(x)


hard_swish = hard_silu


@activation()
def hard_tanh(x: torch.Tensor) -> torch.Tensor:
    """`x` clipped to [-1, 1]."""
    return F.hardtanh(x)


@activation()
def mish(x: torch.Tensor) -> torch.Tensor:
    """`x * tanh(softplus(x))`."""
    return F.mish(x)


@activation()
def glu(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Gated linear unit: splits `axis` in halves `a, b` and returns `a * sigmoid(b)`."""
    return F.glu(x, axis)


@activation()
def hard_shrink(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """`x` where `abs(x) > threshold`, else 0."""
    return F.hardshrink(x, threshold)


@activation()
def soft_shrink(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Moves `x` towards 0 by `threshold`; values within `threshold` of 0 become 0."""
    return F.softshrink(x, threshold)


@activation()
def tanh_shrink(x: torch.Tensor) -> torch.Tensor:
    """`x - tanh(x)`."""
    return F.tanhshrink(x)


@activation()
def threshold(x: torch.Tensor, threshold: float, default_value: float) -> torch.Tensor:
    """`x` where `x > threshold`, else `default_value`."""
    return F.threshold(x, threshold, default_value)


@activation()
def squareplus(x: torch.Tensor, b: float = 4) -> torch.Tensor:
    """`(x + sqrt(x**2 + b)) / 2`, a smooth ReLU."""
    return 0.5 * (x + torch.sqrt(x * x + b))


@activation()
def sparse_plus(x: torch.Tensor) -> torch.Tensor:
    """0 below -1, `x` above 1, `(x + 1)**2 / 4` in between."""
    return torch.where(x <= -1.0, 0.0, torch.where(x >= 1.0, x, 0.25 * (x + 1.0) ** 2))


@activation()
def sparse_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """`(x + 1) / 2` clipped to [0, 1]."""
    return torch.clamp(0.5 * (x + 1.0), 0.0, 1.0)


@activation()
def sparsemax(x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    """Euclidean projection of `x` onto the probability simplex along `axis`."""
    z = x.movedim(axis, -1)
    z_sorted = torch.sort(z, dim=-1, descending=True).values
    cumsum = torch.cumsum(z_sorted, dim=-1)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    support = (1.0 + k * z_sorted > cumsum).to(z.dtype)
    k_z = support.sum(dim=-1, keepdim=True)
    tau = (torch.sum(z_sorted * support, dim=-1, keepdim=True) - 1.0) / k_z
    return torch.relu(z - tau).movedim(-1, axis)


_IN_PLACE = {relu: torch.Tensor.relu_, sigmoid: torch.Tensor.sigmoid_, tanh: torch.Tensor.tanh_,
             relu6: functools.partial(F.relu6, inplace=True),
             silu: functools.partial(F.silu, inplace=True)}


def in_place_form(activation):
    """The in-place torch function computing builtin `activation` into its input, or None."""
    return _IN_PLACE.get(activation)


def is_builtin(activation) -> bool:
    """Whether `activation` is one of the functions of this module (not a user's callable)."""
    return getattr(activation, "__module__", None) == __name__


def activate_fresh(activation, x: torch.Tensor) -> torch.Tensor:
    """`activation(x)` for a fresh `x` that nothing else refers to (a layer's pre-activation,
    or an intermediate a model hands over): in place where torch has the in-place form, which
    saves allocating and writing a second activation-sized buffer."""
    in_place = in_place_form(activation)
    return activation(x) if in_place is None else in_place(x)
