"""Samplers of `kestrel.random`: normal, uniform, truncated normal, integers, gamma, beta,
binomial and categorical draws, each from the generator its `seed=` names."""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.backend.dtypes import is_float_dtype, is_int_dtype, standardize_dtype
from kestrel.ops.convert import convert_to_tensor, torch_dtype
from kestrel.random.seed_generator import torch_generator


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(d) for d in shape)


def _float_dtype(dtype, fn: str) -> torch.dtype:
    name = standardize_dtype(dtype)
    if not is_float_dtype(name):
        raise ValueError(f"`kestrel.random.{fn}` requires a floating point `dtype`. "
                         f"Received: dtype={name}")
    return torch_dtype(name)


def _param(value, like_shape, dtype, device):
    """A distribution parameter as a tensor broadcast to the output shape."""
    return torch.broadcast_to(convert_to_tensor(value, dtype=dtype, device=device), like_shape)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Samples of a normal distribution.

    >>> normal((2, 3), mean=1.0, stddev=0.5, seed=7).shape
    torch.Size([2, 3])
    """
    dtype, device = _float_dtype(dtype, "normal"), config.device()
    out = torch.randn(_shape(shape), dtype=dtype, device=device,
                      generator=torch_generator(seed, device))
    return out * stddev + mean


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Samples of a uniform distribution on `[minval, maxval)`."""
    dtype, device = _float_dtype(dtype, "uniform"), config.device()
    out = torch.rand(_shape(shape), dtype=dtype, device=device,
                     generator=torch_generator(seed, device))
    return out * (maxval - minval) + minval


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal samples redrawn until they lie within two standard deviations of the mean."""
    dtype, device = _float_dtype(dtype, "truncated_normal"), config.device()
    generator = torch_generator(seed, device)
    out = torch.randn(_shape(shape), dtype=dtype, device=device, generator=generator)
    outside = out.abs() >= 2
    while bool(outside.any()):
        redraw = torch.randn(out.shape, dtype=dtype, device=device, generator=generator)
        out = torch.where(outside, redraw, out)
        outside = out.abs() >= 2
    return out * stddev + mean


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers drawn uniformly from `[minval, maxval)`."""
    name = standardize_dtype(dtype)
    if not is_int_dtype(name):
        raise ValueError("`kestrel.random.randint` requires an integer `dtype`. "
                         f"Received: dtype={name}")
    device = config.device()
    out = torch.randint(int(minval), int(maxval), _shape(shape), device=device,
                        generator=torch_generator(seed, device))
    return out.to(torch_dtype(name))


def categorical(logits, num_samples, dtype="int32", seed=None):
    """Class indices drawn from the rows of `logits` (batch, classes): (batch, num_samples)."""
    logits = convert_to_tensor(logits)
    if logits.ndim != 2:
        raise ValueError("`logits` should be a 2-D tensor with shape [batch_size, num_classes]."
                         f" Received: logits.shape={tuple(logits.shape)}")
    probs = torch.softmax(logits.float(), dim=-1)
    out = torch.multinomial(probs, int(num_samples), replacement=True,
                            generator=torch_generator(seed, logits.device))
    return out.to(torch_dtype(dtype))


def _standard_gamma(alpha: torch.Tensor, generator) -> torch.Tensor:
    """Gamma(alpha, 1) samples by Marsaglia and Tsang's method, vectorized with rejection."""
    boost = alpha < 1
    a = torch.where(boost, alpha + 1, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty_like(alpha)
    pending = torch.ones_like(alpha, dtype=torch.bool)
    while bool(pending.any()):
        x = torch.randn(alpha.shape, dtype=alpha.dtype, device=alpha.device, generator=generator)
        u = torch.rand(alpha.shape, dtype=alpha.dtype, device=alpha.device, generator=generator)
        v = (1 + c * x) ** 3
        accept = (v > 0) & (torch.log(u) < 0.5 * x * x + d - d * v + d * torch.log(v))
        take = pending & accept
        out = torch.where(take, d * v, out)
        pending = pending & ~accept
    u = torch.rand(alpha.shape, dtype=alpha.dtype, device=alpha.device, generator=generator)
    return torch.where(boost, out * u ** (1.0 / alpha), out)


def _work_dtype(dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def gamma(shape, alpha, dtype=None, seed=None):
    """Samples of a Gamma distribution with concentration `alpha` (scale 1)."""
    dtype, device = _float_dtype(dtype, "gamma"), config.device()
    alpha = _param(alpha, _shape(shape), _work_dtype(dtype), device)
    return _standard_gamma(alpha, torch_generator(seed, device)).to(dtype)


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Samples of a Beta(`alpha`, `beta`) distribution on [0, 1]."""
    dtype, device = _float_dtype(dtype, "beta"), config.device()
    work, generator = _work_dtype(dtype), torch_generator(seed, device)
    x = _standard_gamma(_param(alpha, _shape(shape), work, device), generator)
    y = _standard_gamma(_param(beta, _shape(shape), work, device), generator)
    return (x / (x + y)).to(dtype)


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Number of successes in `counts` trials of probability `probabilities`."""
    dtype, device = _float_dtype(dtype, "binomial"), config.device()
    counts = _param(counts, _shape(shape), torch.float32, device)
    probabilities = _param(probabilities, _shape(shape), torch.float32, device)
    out = torch.binomial(counts.contiguous(), probabilities.contiguous(),
                         generator=torch_generator(seed, device))
    return out.to(dtype)
