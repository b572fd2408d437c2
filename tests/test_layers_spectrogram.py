"""STFTSpectrogram, MelSpectrogram and the STFT initializer against real Keras 3 (torch)."""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel.initializers.stft import STFT  # noqa: E402
from kestrel.layers.preprocessing.spectrogram import STFTSpectrogram  # noqa: E402
from kestrel.layers.preprocessing.spectrogram_mel import MelSpectrogram  # noqa: E402
from tests.layer_harness import run_layer_test  # noqa: E402

SIGNAL = np.random.RandomState(0).randn(2, 300, 2).astype("float32")


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize("side,window,scaling,periodic", [
    ("real", "hann", "density", False), ("imag", "hamming", "spectrum", True),
    ("real", None, None, False), ("imag", "blackman", "density", False),
    ("real", "bartlett", "spectrum", True), ("imag", "triang", "density", True),
    ("real", [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5], "density", False)])
def test_stft_initializer_matches_keras(side, window, scaling, periodic):
    shape = (8, 1, 9)
    ours = STFT(side, window, scaling, periodic)(shape)
    ref = keras.initializers.STFT(side, window, scaling, periodic)(shape)
    np.testing.assert_allclose(_np(ours), _np(ref), atol=1e-5)
    assert ours.dtype == torch.float32
    assert ours.shape == shape


def test_stft_initializer_names_config_and_errors():
    assert kestrel.initializers.get("STFTInitializer").__class__ is STFT
    init = kestrel.initializers.get({"class_name": "STFT", "config": {"side": "imag"}})
    assert init.side == "imag"
    assert STFT("imag", "hamming").get_config() == keras.initializers.STFT(
        "imag", "hamming").get_config()
    with pytest.raises(ValueError, match="side"):
        STFT("both")
    with pytest.raises(ValueError, match="scaling"):
        STFT(scaling="l2")
    with pytest.raises(ValueError, match="window"):
        STFT(window="no_such_window")
    with pytest.raises(ValueError, match="frame_length"):
        STFT(window=[1.0, 1.0])((4, 1, 3))


def _strip(config):
    """A layer config without the entries whose spelling differs by design (name, dtype)."""
    return {k: v for k, v in config.items() if k not in ("name", "dtype")}


def _pair(**kwargs):
    ours, ref = STFTSpectrogram(**kwargs), keras.layers.STFTSpectrogram(**kwargs)
    return ours, ref


@pytest.mark.parametrize("kwargs", [
    dict(mode="log", frame_length=32, frame_step=16, fft_length=64),
    dict(mode="magnitude", frame_length=30, padding="same", window="hamming"),
    dict(mode="psd", frame_length=16, frame_step=5, scaling="spectrum", periodic=True),
    dict(mode="real", frame_length=16, expand_dims=True),
    dict(mode="imag", frame_length=16, padding="same", expand_dims=True),
    dict(mode="angle", frame_length=16, frame_step=8, window=None),
    dict(mode="stft", frame_length=20, frame_step=7, fft_length=32),
    dict(mode="log", frame_length=16, data_format="channels_first", expand_dims=True),
    dict(mode="stft", frame_length=16, data_format="channels_first")])
def test_stft_spectrogram_matches_keras(kwargs):
    ours, ref = _pair(**kwargs)
    x = SIGNAL if kwargs.get("data_format") != "channels_first" else SIGNAL.transpose(0, 2, 1)
    expected = _np(ref(x))
    got = _np(ours(torch.from_numpy(x)))
    assert got.shape == expected.shape
    mask = np.ones_like(expected, dtype=bool)
    if kwargs["mode"] == "angle":  # atan2 of near-zero parts is ill-conditioned
        mask = np.abs(expected) < 3.0
    np.testing.assert_allclose(got[mask], expected[mask], rtol=1e-3, atol=2e-3)
    assert [w.path.split("/")[-1] for w in ours.weights] == \
        [w.path.split("/")[-1] for w in ref.weights]
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert _strip(ours.get_config()) == _strip(ref.get_config())


def test_stft_spectrogram_layer_contract():
    run_layer_test(STFTSpectrogram, dict(frame_length=16, frame_step=8, mode="log"),
                   (2, 64, 3), expected_output_shape=(2, 7, 27),
                   expected_num_trainable_weights=2)
    run_layer_test(STFTSpectrogram, dict(frame_length=16, mode="real", padding="same",
                                         expand_dims=True),
                   (2, 64, 3), expected_output_shape=(2, 8, 9, 3),
                   expected_num_trainable_weights=1)


def test_stft_spectrogram_weights_load_from_keras_file(tmp_path):
    ref = keras.Sequential([keras.Input((128, 1)),
                            keras.layers.STFTSpectrogram(frame_length=32, mode="psd")])
    ref.layers[0].real_kernel.assign(ref.layers[0].real_kernel * 2.0)
    path = str(tmp_path / "stft.keras")
    ref.save(path)
    model = kestrel.saving.load_model(path)
    x = SIGNAL[:, :128, :1]
    np.testing.assert_allclose(_np(model(torch.from_numpy(x))), _np(ref(x)), rtol=1e-3,
                               atol=1e-3)


def test_stft_spectrogram_errors():
    with pytest.raises(ValueError, match="frame_step"):
        STFTSpectrogram(frame_length=8, frame_step=9)
    with pytest.raises(ValueError, match="fft_length"):
        STFTSpectrogram(frame_length=8, fft_length=4)
    with pytest.raises(ValueError, match="mode"):
        STFTSpectrogram(mode="power")
    with pytest.raises(ValueError, match="padding"):
        STFTSpectrogram(padding="causal")
    with pytest.warns(UserWarning, match="power of two"):
        STFTSpectrogram(frame_length=8, fft_length=12)
    with pytest.raises(TypeError, match="float"):
        STFTSpectrogram(frame_length=8)(torch.ones(1, 32, 1, dtype=torch.int32))


@pytest.mark.parametrize("kwargs,shape", [
    (dict(fft_length=64, sequence_stride=16, num_mel_bins=10, sampling_rate=8000), (2, 300)),
    (dict(fft_length=128, sequence_stride=32, sequence_length=100, window="hamming",
          num_mel_bins=16, min_freq=50.0, max_freq=3000.0, top_db=30.0, ref_power=2.0),
     (3, 400)),
    (dict(fft_length=64, sequence_stride=20, window=None, power_to_db=False, mag_exp=1.0,
          num_mel_bins=8), (257,))])
def test_mel_spectrogram_matches_keras(kwargs, shape):
    x = np.random.RandomState(1).randn(*shape).astype("float32")
    ours, ref = MelSpectrogram(**kwargs), keras.layers.MelSpectrogram(**kwargs)
    expected = _np(ref(x))
    got = _np(ours(torch.from_numpy(x)))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    assert _strip(ours.get_config()) == _strip(ref.get_config())


def test_mel_spectrogram_in_a_model_and_config():
    inputs = kestrel.Input((512,))
    outputs = MelSpectrogram(fft_length=128, sequence_stride=64, num_mel_bins=12)(inputs)
    assert tuple(outputs.shape) == (None, 12, 9)
    layer = MelSpectrogram.from_config(json.loads(json.dumps(
        MelSpectrogram(fft_length=64, sequence_stride=16).get_config())))
    assert layer.sequence_length == 64 and layer.max_freq == 8000
    with pytest.raises(ValueError, match="sequence_length"):
        MelSpectrogram(fft_length=32, sequence_length=64)
