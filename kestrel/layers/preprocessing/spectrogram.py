"""STFTSpectrogram: a short-time Fourier transform as two trainable strided 1D convolutions."""
from __future__ import annotations

import math
import warnings

import torch

from kestrel import config, ops
from kestrel.initializers.stft import STFT, check_window
from kestrel.layers.convolutional.conv_utils import conv_output_length
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer, register_layer

MODES = ("log", "magnitude", "psd", "real", "imag", "angle", "stft")


@register_layer()
class STFTSpectrogram(Layer):
    """Spectrogram of a `(batch, time, channels)` signal, each channel transformed alike.

    The kernels (`real_kernel`, `imag_kernel`, each `(frame_length, 1, fft_length // 2 + 1)`)
    start as the windowed DFT of the `STFT` initializer and may be trained.

    Args:
        mode: `"log"` (log magnitude), `"magnitude"`, `"psd"`, `"real"`, `"imag"`, `"angle"`
            or `"stft"` (real and imaginary parts concatenated on the frequency axis).
        frame_length: samples per frame.
        frame_step: hop between frames (default `frame_length // 2`).
        fft_length: FFT size, at least `frame_length` (default: the next power of two).
        window: window name, array of `frame_length` values, or None.
        periodic: use the periodic form of a named window.
        scaling: `"density"`, `"spectrum"` or None (see `STFT`).
        padding: `"valid"` or `"same"`.
        expand_dims: return `(batch, frames, freq, channels)` instead of folding the channels
            into the last axis.
        data_format: `"channels_last"` or `"channels_first"`.

    Input shape: `(batch, time, channels)` (channels-last).
    Output shape: `(batch, frames, channels * freq)`, or `(batch, frames, freq, channels)`
    with `expand_dims`; `freq = fft_length // 2 + 1` (twice that in `"stft"` mode).

    Example:
        >>> STFTSpectrogram(frame_length=64, frame_step=32)(torch.rand(2, 256, 1)).shape
        torch.Size([2, 7, 33])
    """

    def __init__(self, mode="log", frame_length=256, frame_step=None, fft_length=None,
                 window="hann", periodic=False, scaling="density", padding="valid",
                 expand_dims=False, data_format=None, **kwargs):
        if frame_step is not None and not 1 <= frame_step <= frame_length:
            raise ValueError("STFTSpectrogram: `frame_step` should be a positive integer not "
                             f"greater than `frame_length`. Received: frame_step={frame_step}, "
                             f"frame_length={frame_length}")
        if fft_length is not None and fft_length < frame_length:
            raise ValueError("STFTSpectrogram: `fft_length` should be not less than "
                             f"`frame_length`. Received: fft_length={fft_length}, "
                             f"frame_length={frame_length}")
        if fft_length is not None and (fft_length & -fft_length) != fft_length:
            warnings.warn("STFTSpectrogram: `fft_length` is recommended to be a power of two. "
                          f"Received: fft_length={fft_length}", stacklevel=2)
        if mode not in MODES:
            raise ValueError(f"STFTSpectrogram: output mode is invalid, it must be one of "
                             f"{', '.join(MODES)}. Received: mode={mode}")
        if scaling is not None and scaling not in ("density", "spectrum"):
            raise ValueError("STFTSpectrogram: `scaling` must be None, 'density' or "
                             f"'spectrum'. Received: scaling={scaling}")
        if padding not in ("valid", "same"):
            raise ValueError("STFTSpectrogram: `padding` should be 'valid' or 'same'. "
                             f"Received: padding={padding}")
        check_window(window)
        super().__init__(**kwargs)
        self.mode = mode
        self.frame_length = frame_length
        self.frame_step = frame_step
        self._frame_step = frame_step or frame_length // 2
        self.fft_length = fft_length
        self._fft_length = fft_length or 2 ** int(math.ceil(math.log2(frame_length)))
        self.window = window
        self.periodic = periodic
        self.scaling = scaling
        self.padding = padding
        self.expand_dims = expand_dims
        self.data_format = data_format or config.image_data_format()
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError("STFTSpectrogram: `data_format` must be 'channels_last' or "
                             f"'channels_first'. Received: data_format={data_format}")
        self.input_spec = InputSpec(ndim=3)

    def build(self, input_shape):
        shape = (self.frame_length, 1, self._fft_length // 2 + 1)
        for side in ("real", "imag"):
            if self.mode != ("imag" if side == "real" else "real"):
                setattr(self, f"{side}_kernel", self.add_weight(
                    name=f"{side}_kernel", shape=shape,
                    initializer=STFT(side, self.window, self.scaling, self.periodic)))

    def _transform(self, signals, kernel) -> torch.Tensor:
        """`(batch * channels, 1, time)` -> `(batch * channels, freq, frames)`."""
        return ops.conv(signals, kernel.value.to(signals.dtype), strides=self._frame_step,
                        padding=self.padding, data_format="channels_first")

    def call(self, inputs):
        inputs = torch.as_tensor(inputs)
        if inputs.dtype not in (torch.float16, torch.float32, torch.float64):
            raise TypeError("STFTSpectrogram: invalid input type. Expected `float16`, "
                            f"`float32` or `float64`. Received: input type={inputs.dtype}")
        if self.data_format == "channels_last":
            inputs = inputs.transpose(1, 2)
        batch, channels, time = inputs.shape
        signals = inputs.reshape(batch * channels, 1, time)
        real = self._transform(signals, self.real_kernel) if self.mode != "imag" else None
        imag = self._transform(signals, self.imag_kernel) if self.mode != "real" else None
        if self.mode in ("real", "imag"):
            out = real if self.mode == "real" else imag
        elif self.mode == "angle":
            out = torch.atan2(imag, real)
        elif self.mode == "stft":
            out = torch.cat([real, imag], dim=1)
        else:
            power = real ** 2 + imag ** 2
            if self.mode == "psd":
                # Every bin but DC and Nyquist also counts its mirrored negative frequency.
                out = power + torch.nn.functional.pad(power[:, 1:-1], (0, 0, 1, 1))
            else:
                eps = config.epsilon()
                out = torch.sqrt(torch.clamp(power, min=eps))
                if self.mode == "log":
                    out = torch.log(torch.clamp(out, min=eps))
        out = out.reshape(batch, channels, out.shape[1], out.shape[2])
        return self._arrange(out)

    def _arrange(self, out):
        """`(batch, channels, freq, frames)` -> the layout `data_format`/`expand_dims` ask."""
        batch, channels, freq, frames = out.shape
        if self.expand_dims:
            return out.permute(0, 3, 2, 1) if self.data_format == "channels_last" \
                else out.transpose(2, 3)
        out = out.reshape(batch, channels * freq, frames)
        return out.transpose(1, 2) if self.data_format == "channels_last" else out

    def compute_output_shape(self, input_shape):
        batch, *rest = input_shape
        time, channels = rest if self.data_format == "channels_last" else rest[::-1]
        freq = (self._fft_length // 2 + 1) * (2 if self.mode == "stft" else 1)
        frames = conv_output_length(time, self.frame_length, self._frame_step, 1, self.padding)
        if self.expand_dims:
            return (batch, frames, freq, channels) if self.data_format == "channels_last" \
                else (batch, channels, frames, freq)
        folded = None if channels is None else channels * freq
        return (batch, frames, folded) if self.data_format == "channels_last" \
            else (batch, folded, frames)

    def get_config(self):
        window = self.window
        if window is not None and not isinstance(window, str):
            window = torch.as_tensor(window).tolist()
        return {**super().get_config(), "mode": self.mode, "frame_length": self.frame_length,
                "frame_step": self.frame_step, "fft_length": self.fft_length,
                "window": window, "periodic": self.periodic, "scaling": self.scaling,
                "padding": self.padding, "data_format": self.data_format,
                "expand_dims": self.expand_dims}
