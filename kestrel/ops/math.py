"""`kestrel.ops` math family: special functions, segment reductions, top-k, FFTs and STFTs.

FFT ops take and return `(real, imag)` pairs of float tensors, as Keras does.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kestrel.ops.convert import float_result, to_tensors, torch_dtype
from kestrel.ops.dispatch import keras_op, module_all

_UNARY = {"erf": torch.erf, "erfc": torch.erfc, "erfinv": torch.erfinv, "rsqrt": torch.rsqrt}


def _float(x) -> torch.Tensor:
    """`x` as a tensor; integer and bool ones cast to floatx, float ones (float64 too) kept."""
    (x,) = to_tensors(x)
    return x if x.is_floating_point() or x.is_complex() else x.to(torch_dtype(float_result(x)))


def _unary(name, fn):
    def op(x):
        return fn(_float(x))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"Element-wise `{name}`; integer and bool inputs give floatx."
    return keras_op(op)


for _name, _fn in _UNARY.items():
    globals()[_name] = _unary(_name, _fn)


@keras_op
def logsumexp(x, axis=None, keepdims=False):
    """`log(sum(exp(x)))` over `axis` (all axes when None), computed stably."""
    x = _float(x)
    dims = tuple(range(x.ndim)) if axis is None else axis
    return torch.logsumexp(x, dim=dims, keepdim=keepdims)


@keras_op
def logdet(x):
    """Log-determinant of the square matrices in `x` (`nan` where the determinant is < 0)."""
    (x,) = to_tensors(x)
    return torch.logdet(x)


@keras_op
def cdist(x, y):
    """Euclidean distances between the rows of `x` (..., n, d) and `y` (..., m, d)."""
    x, y = to_tensors(x, y)
    if x.ndim < 2 or y.ndim < 2 or x.shape[-1] != y.shape[-1]:
        raise ValueError("ops.cdist: inputs must have rank >= 2 and the same last dimension. "
                         f"Received: x.shape={tuple(x.shape)}, y.shape={tuple(y.shape)}")
    diff = x.unsqueeze(-2) - y.unsqueeze(-3)
    return torch.sqrt(torch.sum(diff * diff, dim=-1))


@keras_op
def top_k(x, k, sorted=True):
    """The `k` largest values along the last axis and their indices (as torch's topk)."""
    (x,) = to_tensors(x)
    return torch.topk(x, int(k), sorted=sorted)


@keras_op
def in_top_k(targets, predictions, k):
    """Whether each target's prediction is among the `k` largest of its row."""
    targets, predictions = to_tensors(targets, predictions)
    kth = torch.topk(predictions, int(k)).values[..., -1:]
    chosen = torch.take_along_dim(predictions, targets.long()[:, None], dim=-1)
    return (chosen >= kth).squeeze(-1)


# ------------------------------------------------------------------ segment reductions
_SEGMENT = {"segment_sum": ("sum", 0.0), "segment_prod": ("prod", 1.0),
            "segment_max": ("amax", float("-inf")), "segment_min": ("amin", float("inf"))}


def _segment(name, reduce, start):
    def op(data, segment_ids, num_segments=None, sorted=False):
        data, segment_ids = to_tensors(data, segment_ids)
        count = int(num_segments) if num_segments is not None else int(segment_ids.max()) + 1
        ids = segment_ids.long()
        ids = torch.where((ids >= 0) & (ids < count), ids, count)  # dropped: an extra row
        ids = ids.reshape(-1, *[1] * (data.ndim - 1)).expand(data.shape)
        out = torch.full((count + 1, *data.shape[1:]), start, dtype=torch.float32,
                         device=data.device)
        out = out.scatter_reduce(0, ids, data.float(), reduce)
        return out[:-1].to(data.dtype)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"`{reduce}` of the rows of `data` sharing a segment id (ids outside "
                  "[0, num_segments) are dropped).")
    return keras_op(op)


for _name, (_reduce, _start) in _SEGMENT.items():
    globals()[_name] = _segment(_name, _reduce, _start)


# ------------------------------------------------------------------ complex and FFT
def _complex(x, op: str) -> torch.Tensor:
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise ValueError(f"ops.{op}: x must be a (real, imag) pair of tensors. "
                         f"Received: x of type {type(x).__name__}")
    real, imag = to_tensors(*x)
    if real.shape != imag.shape:
        raise ValueError(f"ops.{op}: real and imaginary parts must have the same shape. "
                         f"Received: {tuple(real.shape)} and {tuple(imag.shape)}")
    if not (real.is_floating_point() and imag.is_floating_point()):
        raise ValueError(f"ops.{op}: real and imaginary parts must be floats. "
                         f"Received: {real.dtype} and {imag.dtype}")
    return torch.complex(real, imag)


def _pair(z: torch.Tensor) -> tuple:
    return z.real, z.imag


@keras_op
def view_as_complex(x):
    """A complex64 tensor (as Keras, whatever the float width) from a tensor whose last axis
    (size 2) holds (real, imag)."""
    (x,) = to_tensors(x)
    if x.shape[-1:] != (2,):
        raise ValueError("ops.view_as_complex: the last axis must have size 2. "
                         f"Received: x.shape={tuple(x.shape)}")
    return torch.view_as_complex(x.to(torch.float32).contiguous())


@keras_op
def view_as_real(x):
    """A float tensor with a last axis of size 2 holding (real, imag) of complex `x`."""
    (x,) = to_tensors(x)
    if not x.is_complex():
        raise ValueError(f"ops.view_as_real: x must be complex. Received: dtype={x.dtype}")
    return torch.view_as_real(x)


@keras_op
def fft(x):
    """1D FFT over the last axis of the complex `(real, imag)` pair `x`."""
    return _pair(torch.fft.fft(_complex(x, "fft")))


@keras_op
def fft2(x):
    """2D FFT over the last two axes of the `(real, imag)` pair `x`."""
    return _pair(torch.fft.fft2(_complex(x, "fft2")))


@keras_op
def ifft2(x):
    """Inverse 2D FFT over the last two axes of the `(real, imag)` pair `x`."""
    return _pair(torch.fft.ifft2(_complex(x, "ifft2")))


@keras_op
def rfft(x, fft_length=None):
    """FFT of real `x` over its last axis: `(real, imag)` of `fft_length // 2 + 1` bins."""
    (x,) = to_tensors(x)
    return _pair(torch.fft.rfft(x, n=fft_length, dim=-1))


@keras_op
def irfft(x, fft_length=None):
    """Inverse of `rfft`: a real signal of `fft_length` samples from a `(real, imag)` pair."""
    return torch.fft.irfft(_complex(x, "irfft"), n=fft_length, dim=-1)


@keras_op
def extract_sequences(x, sequence_length, sequence_stride):
    """Frames of `sequence_length` samples every `sequence_stride` along the last axis."""
    (x,) = to_tensors(x)
    return x.unfold(-1, int(sequence_length), int(sequence_stride))


def _window(window, length: int, dtype, device, op: str):
    if window is None:
        return None
    if isinstance(window, str):
        makers = {"hann": torch.hann_window, "hamming": torch.hamming_window}
        if window not in makers:
            raise ValueError(f"ops.{op}: a string window must be 'hann' or 'hamming'. "
                             f"Received: window={window!r}")
        return makers[window](length, periodic=True, dtype=dtype, device=device)
    (win,) = to_tensors(window, dtype=dtype)
    if win.shape != (length,):
        raise ValueError(f"ops.{op}: window must have shape (sequence_length,). "
                         f"Received: window.shape={tuple(win.shape)}")
    return win.to(device)


@keras_op
def stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True):
    """Short-time Fourier transform of real `x` over its last axis.

    Returns `(real, imag)` of shape `(..., frames, fft_length // 2 + 1)`.
    """
    (x,) = to_tensors(x)
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"ops.stft: x must be float32 or float64. Received: dtype={x.dtype}")
    if fft_length < sequence_length:
        raise ValueError("ops.stft: fft_length must be >= sequence_length. Received: "
                         f"sequence_length={sequence_length}, fft_length={fft_length}")
    win = _window(window, sequence_length, x.dtype, x.device, "stft")
    if win is None:
        win = torch.ones(sequence_length, dtype=x.dtype, device=x.device)
    batch, samples = x.shape[:-1], x.shape[-1]
    z = torch.stft(x.reshape(-1, samples), n_fft=fft_length, hop_length=sequence_stride,
                   win_length=sequence_length, window=win, center=center, return_complex=True)
    return _pair(z.reshape(*batch, *z.shape[-2:]).transpose(-2, -1))


def _overlap_add(frames: torch.Tensor, stride: int) -> torch.Tensor:
    """Sum frames (..., n, length) placed every `stride` samples into one signal."""
    *batch, count, length = frames.shape
    total = length + stride * (count - 1)
    flat = frames.reshape(-1, count, length).transpose(1, 2)
    out = F.fold(flat, output_size=(1, total), kernel_size=(1, length), stride=(1, stride))
    return out.reshape(*batch, total)


@keras_op
def istft(x, sequence_length, sequence_stride, fft_length, length=None, window="hann",
          center=True):
    """Inverse of `stft`: a real signal from a `(real, imag)` pair of spectrogram frames."""
    z = _complex(x, "istft")
    win = _window(window, sequence_length, z.real.dtype, z.device, "istft")
    if sequence_length == fft_length and center and win is not None:
        batch = z.shape[:-2]
        flat = z.reshape(-1, *z.shape[-2:]).transpose(-2, -1)
        out = torch.istft(flat, n_fft=fft_length, hop_length=sequence_stride,
                          win_length=sequence_length, window=win, center=True, length=length)
        return out.reshape(*batch, out.shape[-1])
    frames = torch.fft.irfft(z, n=fft_length, dim=-1)
    if win is not None:
        left = (fft_length - sequence_length) // 2
        win = F.pad(win, (left, fft_length - sequence_length - left))
        overlaps = -(-fft_length // sequence_stride)
        energy = F.pad(win.square(), (0, overlaps * sequence_stride - fft_length))
        energy = energy.reshape(overlaps, sequence_stride).sum(0).repeat(overlaps)
        frames = frames * (win / energy[:fft_length])
    signal = _overlap_add(frames, sequence_stride)
    start = fft_length // 2 if center else 0
    if length is not None:
        return signal[..., start:start + length]
    return signal[..., start:signal.shape[-1] - start]


__all__ = module_all()
