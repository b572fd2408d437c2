"""`kestrel.ops.linalg`: decompositions, solvers, norms and `jvp` (registered under plain names).

Factorizations that fail on an all-zero matrix (cholesky, inv, solve, lu_factor, ...) return
NaNs of the right shape for it instead of raising: that is what symbolic shape inference runs
them on. Any other failing input raises torch's `LinAlgError`.
"""
from __future__ import annotations

import torch

from kestrel import config
from kestrel.backend.dtypes import result_type, standardize_dtype
from kestrel.ops.convert import to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all


def _matrices(op: str, *xs, square: bool = True):
    """Convert `xs`; check that the first is a (batch of) square matrices."""
    xs = to_tensors(*xs)
    a = xs[0]
    if a.ndim < 2:
        raise ValueError(f"ops.{op}: expected input of rank >= 2. "
                         f"Received: shape={tuple(a.shape)}")
    if square and a.shape[-1] != a.shape[-2]:
        raise ValueError(f"ops.{op}: expected square matrices. Received: shape={tuple(a.shape)}")
    return xs


def _guarded(fn, a, *rest):
    """`fn(a, *rest)`; on an all-zero `a` that fails, NaN results of the same structure."""
    try:
        return fn(a, *rest)
    except RuntimeError:
        if torch.any(a):
            raise
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand(a.shape)
    out = fn(eye.clone(), *rest)
    fill = lambda t: torch.full_like(t, float("nan")) if t.is_floating_point() else t  # noqa: E731
    return type(out)(map(fill, out)) if isinstance(out, tuple) else fill(out)


@keras_op
def cholesky(x, upper=False):
    """The Cholesky factor of positive-definite `x` (lower, or upper when `upper=True`)."""
    (x,) = _matrices("cholesky", x)
    return _guarded(lambda a: torch.linalg.cholesky(a, upper=upper), x)


@keras_op
def cholesky_inverse(x, upper=False):
    """The inverse of `L @ L.T` given its Cholesky factor `x`."""
    (x,) = _matrices("cholesky_inverse", x)
    return _guarded(lambda a: torch.cholesky_inverse(a, upper=upper), x)


@keras_op
def det(x):
    """Determinant of the square matrices in `x`."""
    (x,) = _matrices("det", x)
    return torch.det(x)


@keras_op
def inv(x):
    """Inverse of the square matrices in `x`."""
    (x,) = _matrices("inv", x)
    return _guarded(torch.linalg.inv, x)


@keras_op
def eig(x):
    """Eigenvalues and eigenvectors (complex) of the square matrices in `x`."""
    (x,) = _matrices("eig", x)
    return torch.linalg.eig(x)


@keras_op
def eigh(x):
    """Eigenvalues (ascending) and eigenvectors of the symmetric matrices in `x`."""
    (x,) = _matrices("eigh", x)
    return torch.linalg.eigh(x)


@keras_op
def lu_factor(x):
    """LU factorization with partial pivoting: `(lu, pivots)`, pivots 0-based."""
    (x,) = _matrices("lu_factor", x, square=False)
    lu, pivots = _guarded(torch.linalg.lu_factor, x)
    return lu, pivots - 1


@keras_op
def qr(x, mode="reduced"):
    """QR decomposition; `mode` is "reduced" or "complete"."""
    if mode not in ("reduced", "complete"):
        raise ValueError("ops.qr: mode must be 'reduced' or 'complete'. "
                         f"Received: mode={mode!r}")
    (x,) = _matrices("qr", x, square=False)
    return torch.linalg.qr(x, mode=mode)


@keras_op
def svd(x, full_matrices=True, compute_uv=True):
    """Singular value decomposition `(u, s, vh)`, or just `s` when `compute_uv=False`."""
    (x,) = _matrices("svd", x, square=False)
    if not compute_uv:
        return torch.linalg.svdvals(x)
    return torch.linalg.svd(x, full_matrices=full_matrices)


def _check_rhs(op: str, a, b):
    if b.ndim < 1:
        raise ValueError(f"ops.{op}: b must have rank >= 1. Received: shape={tuple(b.shape)}")
    size = a.shape[-2] if a.ndim == b.ndim else a.shape[-1]
    against = b.shape[-2] if a.ndim == b.ndim else b.shape[-1]
    if a.ndim in (b.ndim, b.ndim + 1) and size != against:
        raise ValueError(f"ops.{op}: incompatible shapes. "
                         f"Received: a.shape={tuple(a.shape)}, b.shape={tuple(b.shape)}")


@keras_op
def solve(a, b):
    """`x` such that `a @ x == b`."""
    a, b = _matrices("solve", a, b)
    _check_rhs("solve", a, b)
    return _guarded(torch.linalg.solve, a, b)


@keras_op
def solve_triangular(a, b, lower=False):
    """`x` such that `a @ x == b` for triangular `a` (upper unless `lower=True`)."""
    a, b = _matrices("solve_triangular", a, b)
    _check_rhs("solve_triangular", a, b)
    vector = b.ndim == a.ndim - 1
    out = torch.linalg.solve_triangular(a, b.unsqueeze(-1) if vector else b, upper=not lower)
    return out.squeeze(-1) if vector else out


@keras_op
def lstsq(a, b, rcond=None):
    """Least-squares solution of `a @ x == b`."""
    a, b = _matrices("lstsq", a, b, square=False)
    if rcond is None:
        return torch.linalg.lstsq(a, b)[0]
    if a.device.type == "cuda":
        return torch.linalg.pinv(a, rtol=rcond) @ b
    return torch.linalg.lstsq(a, b, rcond=rcond, driver="gelsd")[0]


@keras_op
def matrix_rank(x, tol=None):
    """Rank of the matrices in `x` (int32); singular values <= `tol` count as zero."""
    (x,) = _matrices("matrix_rank", x, square=False)
    return torch.linalg.matrix_rank(x, atol=tol).to(torch.int32)


@keras_op
def pinv(x, rcond=None):
    """Moore-Penrose pseudo-inverse; singular values below `rcond * max` count as zero."""
    (x,) = _matrices("pinv", x, square=False)
    return torch.linalg.pinv(x, rtol=rcond)


@keras_op
def norm(x, ord=None, axis=None, keepdims=False):
    """Vector or matrix norm (as `numpy.linalg.norm`); integer inputs give floats."""
    (x,) = to_tensors(x)
    name = standardize_dtype(x.dtype)
    target = config.floatx() if name == "int64" else result_type(name, float)
    return torch.linalg.norm(x.to(torch_dtype(target)), ord=ord, dim=axis, keepdim=keepdims)


@keras_op
def jvp(fun, primals, tangents, has_aux=False):
    """`(fun(*primals), J @ tangents)` (and the aux output when `has_aux`), by forward mode."""
    return torch.func.jvp(fun, tuple(primals), tuple(tangents), has_aux=has_aux)


__all__ = module_all()
