"""kestrel.ops math, linalg and einops families against real Keras (torch backend)."""
import numpy as np
import pytest
import torch

from kestrel import ops
from tests.ops_harness import check_op, check_symbolic

g = torch.Generator().manual_seed(0)
X = torch.rand(3, 4, generator=g)
RE, IM = torch.rand(2, 8, generator=g), torch.rand(2, 8, generator=g)
M = torch.rand(2, 3, 3, generator=g)
SPD = M @ M.transpose(-1, -2) + 3 * torch.eye(3)
L = torch.linalg.cholesky(SPD)
B = torch.rand(2, 3, 2, generator=g)
TALL = torch.rand(5, 3, generator=g)
SIGNAL = torch.rand(2, 32, generator=g)
IDS = torch.tensor([0, 0, 1, 2, 2, 2])
LOOSE = {"rtol": 1e-4, "atol": 1e-5}

MATH = [
    *[(n, (x,), {}) for n in ("erf", "erfc", "rsqrt", "erfinv")
      for x in (X * 0.9, torch.tensor([1, 2, 3]))],
    ("erf", (X.half(),), {"rtol": 1e-3}),
    ("logsumexp", (X,), {}), ("logsumexp", (X,), {"axis": 1, "keepdims": True}),
    ("logsumexp", (torch.tensor([1, 2]),), {"axis": 0}),
    ("logdet", (SPD,), LOOSE),
    ("cdist", (torch.rand(2, 5, 3), torch.rand(2, 4, 3)), {}),
    ("cdist", (np.linspace(0, 1, 15, dtype="float32").reshape(5, 3),
               np.eye(4, 3, dtype="float32")), {}),
    ("top_k", (X, 2), {}), ("top_k", (torch.tensor([[3, 1, 2]]), 2), {}),
    ("in_top_k", (torch.tensor([0, 3, 1]), X, 2), {}),
    *[(n, (torch.rand(6, 2), IDS), kw) for n in ("segment_sum", "segment_max", "segment_min",
                                                 "segment_prod")
      for kw in ({}, {"num_segments": 4})],
    *[(n, (torch.arange(6), torch.tensor([0, 0, 1, 3, 3, -1])), {"num_segments": 3})
      for n in ("segment_sum", "segment_max", "segment_min", "segment_prod")],
    ("fft", ((RE, IM),), LOOSE), ("fft2", ((RE, IM),), LOOSE), ("ifft2", ((RE, IM),), LOOSE),
    ("rfft", (RE,), LOOSE), ("rfft", (RE,), {"fft_length": 6, **LOOSE}),
    ("irfft", ((RE, IM),), LOOSE), ("irfft", ((RE, IM),), {"fft_length": 10, **LOOSE}),
    ("extract_sequences", (torch.rand(2, 10), 4, 3), {}),
    ("view_as_complex", (torch.rand(3, 2),), {}), ("view_as_real", (torch.complex(RE, IM),), {}),
    ("stft", (torch.rand(2, 3, 32), 8, 4, 8), LOOSE),
    ("stft", (SIGNAL, 8, 4, 8), {"window": torch.rand(8), **LOOSE}),
]
STFT = [(kw, lengths) for kw in ({"window": "hann", "center": True},
                                 {"window": "hamming", "center": False},
                                 {"window": None, "center": True})
        for lengths in ((8, 4, 8), (6, 2, 8), (8, 3, 16))]
LINALG = [
    ("cholesky", (SPD,), {}), ("cholesky", (SPD,), {"upper": True}),
    ("cholesky_inverse", (L,), {}), ("cholesky_inverse", (L.transpose(-1, -2),), {"upper": True}),
    ("det", (SPD,), {}), ("inv", (SPD,), {}), ("eigh", (SPD,), {}),
    ("eig", (torch.diag(torch.tensor([1.0, 2.0, 3.0])),), {}),
    ("lu_factor", (SPD,), {}), ("lu_factor", (TALL.T,), {}),
    ("qr", (TALL,), {}), ("qr", (TALL,), {"mode": "complete"}),
    ("svd", (TALL,), {}), ("svd", (TALL,), {"full_matrices": False}),
    ("svd", (TALL,), {"compute_uv": False}),
    ("solve", (SPD, B), {}), ("solve", (SPD[0], torch.rand(3)), {}),
    ("solve_triangular", (L, B), {"lower": True}),
    ("solve_triangular", (L[0].T, torch.rand(3)), {}),
    ("lstsq", (TALL, torch.rand(5, 2)), {}), ("lstsq", (TALL, torch.rand(5, 2)), {"rcond": 1e-3}),
    ("matrix_rank", (torch.tensor([[1.0, 2.0], [2.0, 4.0]]),), {}),
    ("matrix_rank", (SPD,), {"tol": 0.5}),
    ("pinv", (TALL,), {}), ("pinv", (TALL,), {"rcond": 0.1}),
    *[("norm", (X - 0.5,), {"ord": o, "axis": a})
      for o, a in ((None, None), (2, -1), (1, 0), (np.inf, 1), ("fro", None), ("nuc", (0, 1)),
                   (1, (0, 1)), (-np.inf, (0, 1)), (0, 1), (3, 0))],
    ("norm", (X,), {"axis": 1, "keepdims": True}), ("norm", (np.arange(4),), {}),
    ("norm", (torch.arange(4),), {}),
]
PATTERNS = [("b h w c -> b c h w", {}), ("b h w c -> (b h) w c", {}), ("b h w c -> b (c h w)", {}),
            ("b (h1 h) (w1 w) c -> (b h1 w1) h w c", {"h1": 2, "w1": 2}),
            ("b (h h1) (w w1) c -> b h w (c h1 w1)", {"h1": 2, "w1": 5})]


@pytest.mark.parametrize("name, args, kwargs", MATH, ids=[c[0] for c in MATH])
def test_math_op_matches_keras(name, args, kwargs):
    check_op(name, *args, **kwargs)


@pytest.mark.parametrize("kwargs, lengths", STFT)
def test_stft_and_istft_match_keras(kwargs, lengths):
    real, imag = check_op("stft", SIGNAL, *lengths, **kwargs, **LOOSE)
    check_op("istft", (real, imag), *lengths, **kwargs, **LOOSE)
    check_op("istft", (real, imag), *lengths, length=20, **kwargs, **LOOSE)


@pytest.mark.parametrize("name, args, kwargs", LINALG, ids=[c[0] for c in LINALG])
def test_linalg_op_matches_keras(name, args, kwargs):
    check_op(name, *args, **LOOSE, **kwargs)


@pytest.mark.parametrize("pattern, lengths", PATTERNS)
def test_rearrange_matches_keras(pattern, lengths):
    check_op("rearrange", torch.rand(4, 6, 10, 3), pattern, **lengths)


def test_jvp_matches_forward_mode():
    value, tangent = ops.jvp(lambda a: a ** 2, (torch.tensor([1.0, 2.0]),),
                             (torch.tensor([1.0, 1.0]),))
    torch.testing.assert_close(tangent, torch.tensor([2.0, 4.0]))
    *_, aux = ops.linalg.jvp(lambda a: (a ** 2, a), (torch.tensor([3.0]),), (torch.ones(1),),
                             has_aux=True)
    torch.testing.assert_close(aux, torch.tensor([3.0]))


def test_symbolic_specs_match_keras():
    for name in ("erf", "rfft", "rsqrt"):
        check_symbolic(name, (None, 16))
    check_symbolic("stft", (None, 32), 8, 4, 8)
    check_symbolic("logsumexp", (None, 3), axis=1)
    check_symbolic("extract_sequences", (None, 10), 4, 3)
    check_symbolic("segment_sum", (6, 2), ((6,), "int32"), num_segments=3)
    check_symbolic("fft", [(None, 8), (None, 8)])
    for name in ("cholesky", "inv", "det", "cholesky_inverse", "eigh", "qr", "svd", "pinv",
                 "matrix_rank"):
        check_symbolic(name, (None, 3, 3))
    check_symbolic("solve", (None, 3, 3), (None, 3, 2))
    check_symbolic("norm", (None, 3), axis=1)
    check_symbolic("rearrange", (2, 6, 10, 3), "b h w c -> b (c h w)")


def test_errors_name_the_op_and_argument():
    with pytest.raises(ValueError, match=r"ops.inv: expected square"):
        ops.inv(torch.rand(2, 3))
    with pytest.raises(torch.linalg.LinAlgError):
        ops.inv(torch.ones(2, 2))
    with pytest.raises(ValueError, match="mode"):
        ops.qr(TALL, mode="r")
    with pytest.raises(ValueError, match="window"):
        ops.stft(SIGNAL, 8, 4, 8, window="box")
    with pytest.raises(ValueError, match=r"\(real, imag\)"):
        ops.fft(RE)
    with pytest.raises(ValueError, match="once on each side"):
        ops.rearrange(X, "a b -> a")
