"""The STFT initializer: Conv1D kernels whose outputs are one side of a windowed DFT."""
from __future__ import annotations

import math

import numpy as np
import torch

from kestrel import config
from kestrel.initializers.initializer import Initializer, Shape
from kestrel.registry.object_registry import register_builtin

# Windows torch computes itself; any other name goes to `scipy.signal.get_window`.
_TORCH_WINDOWS = {"hann": torch.hann_window, "hamming": torch.hamming_window,
                  "blackman": torch.blackman_window, "bartlett": torch.bartlett_window}


def get_window(window: str, length: int, periodic: bool = False) -> torch.Tensor:
    """The float64 window `window` of `length` samples (scipy's names and values).

    Args:
        window: `"hann"`, `"hamming"`, `"blackman"`, `"bartlett"`, or (with SciPy installed)
            any name `scipy.signal.get_window` accepts.
        length: number of samples.
        periodic: True for the DFT-even (periodic) window, False for the symmetric one.

    Example:
        >>> get_window("hann", 3).tolist()
        [0.0, 1.0, 0.0]
    """
    if window in _TORCH_WINDOWS:
        return _TORCH_WINDOWS[window](length, periodic=periodic, dtype=torch.float64)
    try:
        import scipy.signal
    except ImportError:
        raise ValueError(f"STFT: window {window!r} needs SciPy (built in: "
                         f"{sorted(_TORCH_WINDOWS)}). Received: window={window!r}") from None
    try:
        return torch.from_numpy(np.asarray(scipy.signal.get_window(window, length, periodic),
                                           dtype=np.float64))
    except ValueError as error:
        raise ValueError(f"STFT: unknown window. Received: window={window!r}") from error


def check_window(window) -> None:
    """Raise ValueError early when `window` is a name no backend here can compute."""
    if isinstance(window, str):
        get_window(window, 1)


@register_builtin("initializers", "STFTInitializer", "stft")
class STFT(Initializer):
    """Kernels `(frame_length, 1, fft_length // 2 + 1)` computing the real or imaginary part
    of a windowed discrete Fourier transform when used by a strided 1D convolution.

    Args:
        side: `"real"` (cosines) or `"imag"` (negated sines).
        window: a window name (`"hann"`, `"hamming"`, ...), an array of `frame_length`
            values, or None.
        scaling: `"density"` (divide by the window's L2 norm), `"spectrum"` (by its L1
            norm) or None.
        periodic: use the periodic form of a named window.

    Example:
        >>> STFT("real", "hann")((8, 1, 5)).shape
        torch.Size([8, 1, 5])
    """

    def __init__(self, side="real", window="hann", scaling="density", periodic=False):
        if side not in ("real", "imag"):
            raise ValueError(f"STFT: `side` should be 'real' or 'imag'. Received: side={side}")
        check_window(window)
        if scaling is not None and scaling not in ("density", "spectrum"):
            raise ValueError("STFT: `scaling` must be None, 'density' or 'spectrum'. "
                             f"Received: scaling={scaling}")
        self.side = side
        self.window = window
        self.scaling = scaling
        self.periodic = periodic

    def __call__(self, shape: Shape, dtype=None) -> torch.Tensor:
        frame_length, _, bins = shape
        time = torch.arange(frame_length, dtype=torch.float64).reshape(-1, 1, 1)
        freq = torch.arange(bins, dtype=torch.float64).reshape(1, 1, -1) / ((bins - 1) * 2)
        angle = -2.0 * math.pi * time * freq
        kernel = torch.cos(angle) if self.side == "real" else torch.sin(angle)
        if self.window is not None:
            win = (get_window(self.window, frame_length, self.periodic)
                   if isinstance(self.window, str)
                   else torch.as_tensor(np.asarray(self.window), dtype=torch.float64))
            if win.ndim != 1 or win.shape[0] != frame_length:
                raise ValueError("STFT: the shape of `window` must be equal to "
                                 f"[frame_length]. Received: window shape={tuple(win.shape)}")
            kernel = kernel * win.reshape(-1, 1, 1)
            if self.scaling == "density":
                kernel = kernel / torch.sqrt(torch.sum(win ** 2))
            elif self.scaling == "spectrum":
                kernel = kernel / torch.sum(torch.abs(win))
        return kernel.to(config.to_torch_dtype(dtype))

    def get_config(self) -> dict:
        window = self.window
        if window is not None and not isinstance(window, str):
            window = np.asarray(window).tolist()
        return {"side": self.side, "window": window, "periodic": self.periodic,
                "scaling": self.scaling}


STFTInitializer = stft = STFT
