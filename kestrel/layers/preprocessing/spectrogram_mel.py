"""MelSpectrogram: STFT power mapped through HTK mel filter banks, optionally in decibels."""
from __future__ import annotations

import math

import torch

from kestrel import ops
from kestrel.layers.layer import Layer, register_layer

_MEL_BREAK_HERTZ = 700.0
_MEL_HIGH_Q = 1127.0


def hertz_to_mel(hertz: torch.Tensor) -> torch.Tensor:
    """HTK mel scale: `1127 * ln(1 + f / 700)`."""
    return _MEL_HIGH_Q * torch.log(1.0 + hertz / _MEL_BREAK_HERTZ)


def linear_to_mel_weight_matrix(num_mel_bins=20, num_spectrogram_bins=129, sampling_rate=8000,
                                lower_edge_hertz=125.0, upper_edge_hertz=3800.0,
                                dtype=torch.float32) -> torch.Tensor:
    """`(num_spectrogram_bins, num_mel_bins)` triangular filters (peak 1, DC bin zeroed) that
    map a linear spectrogram `[..., bins]` to the mel scale by `tensordot(S, A, 1)`.

    Example:
        >>> linear_to_mel_weight_matrix(4, 9, 8000, 100.0, 4000.0).shape
        torch.Size([9, 4])
    """
    linear = torch.linspace(0.0, sampling_rate / 2.0, num_spectrogram_bins, dtype=dtype)[1:]
    bins_mel = hertz_to_mel(linear).unsqueeze(1)
    edges = torch.linspace(float(hertz_to_mel(torch.tensor(float(lower_edge_hertz)))),
                           float(hertz_to_mel(torch.tensor(float(upper_edge_hertz)))),
                           num_mel_bins + 2, dtype=dtype)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = torch.clamp(torch.minimum(lower_slopes, upper_slopes), min=0.0)
    return torch.nn.functional.pad(weights, (0, 0, 1, 0))


@register_layer()
class MelSpectrogram(Layer):
    """Mel spectrogram of raw audio `(batch, time)` (or `(time,)`).

    Args:
        fft_length: FFT size.
        sequence_stride: hop between frames.
        sequence_length: window length (default `fft_length`).
        window: `"hann"`, `"hamming"` or None (periodic windows, as `ops.stft`).
        sampling_rate: samples per second of the input.
        num_mel_bins: number of mel bands.
        min_freq, max_freq: band edges in Hz (`max_freq` defaults to `sampling_rate / 2`).
        power_to_db: convert power to decibels.
        top_db: dynamic range kept below the maximum of the whole call's output (in dB).
        mag_exp: exponent applied to the STFT magnitude (2 = power).
        min_power: floor before the logarithm.
        ref_power: power that maps to 0 dB.

    Input shape: `(batch, time)` or `(time,)`.
    Output shape: `(batch, num_mel_bins, frames)`, `frames = 1 + time // sequence_stride`
    (frames are centered, reflect-padded).

    Example:
        >>> MelSpectrogram(fft_length=64, sequence_stride=32, num_mel_bins=8)(
        ...     torch.rand(2, 256)).shape
        torch.Size([2, 8, 9])
    """

    def __init__(self, fft_length=2048, sequence_stride=512, sequence_length=None,
                 window="hann", sampling_rate=16000, num_mel_bins=128, min_freq=20.0,
                 max_freq=None, power_to_db=True, top_db=80.0, mag_exp=2.0, min_power=1e-10,
                 ref_power=1.0, **kwargs):
        self.fft_length = fft_length
        self.sequence_stride = sequence_stride
        self.sequence_length = sequence_length or fft_length
        if fft_length < self.sequence_length:
            raise ValueError("MelSpectrogram: `fft_length` must be greater than or equal to "
                             f"`sequence_length`. Received: sequence_length="
                             f"{self.sequence_length}, fft_length={fft_length}")
        self.window = window
        self.sampling_rate = sampling_rate
        self.num_mel_bins = num_mel_bins
        self.min_freq = min_freq
        self.max_freq = max_freq or int(sampling_rate / 2)
        self.power_to_db = power_to_db
        self.top_db = top_db
        self.mag_exp = mag_exp
        self.min_power = min_power
        self.ref_power = ref_power
        super().__init__(**kwargs)

    def call(self, inputs):
        inputs = torch.as_tensor(inputs)
        dtype = inputs.dtype if inputs.dtype == torch.float64 else torch.float32
        real, imag = ops.stft(inputs.to(dtype), self.sequence_length, self.sequence_stride,
                              self.fft_length, window=self.window, center=True)
        spec = torch.sqrt(real ** 2 + imag ** 2) ** self.mag_exp
        matrix = linear_to_mel_weight_matrix(self.num_mel_bins, spec.shape[-1],
                                             self.sampling_rate, self.min_freq,
                                             self.max_freq).to(spec.device, spec.dtype)
        out = torch.tensordot(spec, matrix, dims=1)
        if self.power_to_db:
            out = self._to_db(out)
        return out.transpose(-1, -2).to(self._variable_dtype)

    def _to_db(self, power):
        db = 10.0 * torch.log10(torch.clamp(power, min=self.min_power))
        db = db - 10.0 * math.log10(max(abs(self.ref_power), self.min_power))
        return torch.maximum(db, db.max() - self.top_db)

    def get_config(self):
        return {**super().get_config(), "fft_length": self.fft_length,
                "sequence_stride": self.sequence_stride,
                "sequence_length": self.sequence_length, "window": self.window,
                "sampling_rate": self.sampling_rate, "num_mel_bins": self.num_mel_bins,
                "min_freq": self.min_freq, "max_freq": self.max_freq,
                "power_to_db": self.power_to_db, "top_db": self.top_db,
                "mag_exp": self.mag_exp, "min_power": self.min_power,
                "ref_power": self.ref_power}
