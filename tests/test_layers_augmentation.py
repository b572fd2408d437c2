"""Keras 3's augmentation layers (colour, filters, warps, mixing, composite): real Keras 3
(torch backend) numbers where the result is deterministic, structural and statistical checks
where it is random."""
import doctest
import json
import os

import numpy as np
import pytest
import torch

import kestrel
from kestrel.layers import image_preprocessing as ip
from kestrel.layers.image_preprocessing import (
    composite, filters, hsv, mixing, pointwise, warps)
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (3, 9, 12, 3)).astype(np.float32)
IMAGES[..., 2] = np.round(IMAGES[..., 2] / 40) * 40  # repeated values for the histograms


@pytest.fixture(scope="module")
def real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    assert keras.backend.backend() == "torch"
    return keras


def _compare(real_keras, name, kwargs, images=IMAGES, atol=1e-4):
    theirs = getattr(real_keras.layers, name)(**kwargs)
    expected = np.asarray(theirs(images.copy(), training=True).detach().cpu())
    ours = getattr(ip, name)(**kwargs)
    got = ours(torch.from_numpy(images.copy()), training=True).numpy()
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=atol)
    assert set(theirs.get_config()) <= set(ours.get_config())


CHANNELS_FIRST = {"data_format": "channels_first"}
DETERMINISTIC = [
    ("RandomGrayscale", {"factor": 1.0}),
    ("RandomInvert", {"factor": (1.0, 1.0)}),
    ("RandomInvert", {"factor": (1.0, 1.0), "value_range": (0, 100)}),
    ("RandomPosterization", {"factor": (3, 3)}),
    ("RandomPosterization", {"factor": (1, 1), "value_range": (0, 300)}),
    ("RandomColorDegeneration", {"factor": (0.5, 0.5)}),
    ("RandomColorDegeneration", {"factor": (-0.7, -0.7), **CHANNELS_FIRST}),
    ("Solarization", {}),
    ("Solarization", {"value_range": (-1, 300)}),
    ("AutoContrast", {}),
    ("AutoContrast", {"value_range": (0, 300)}),
    ("Equalization", {}),
    ("Equalization", {"bins": 16, "value_range": (0, 300)}),
    ("Equalization", CHANNELS_FIRST),
    ("RandomHue", {"factor": (1.0, 1.0)}),
    ("RandomHue", {"factor": (0.0, 0.0)}),
    ("RandomSaturation", {"factor": (0.3, 0.3)}),
    ("RandomSaturation", {"factor": (0.8, 0.8), **CHANNELS_FIRST}),
    ("RandomSharpness", {"factor": (0.2, 0.2)}),
    ("RandomSharpness", {"factor": (0.9, 0.9), **CHANNELS_FIRST}),
    ("RandomGaussianBlur", {"factor": (1.0, 1.0), "sigma": (0.5, 0.5)}),
    ("RandomGaussianBlur", {"factor": (1.0, 1.0), "sigma": (0.7, 0.7), "kernel_size": 5}),
    ("RandomGaussianBlur", {"factor": (0.0, 0.0)}),
    ("RandomPerspective", {"factor": (0.0, 0.0)}),
    ("RandomPerspective", {"factor": (1.0, 1.0), "scale": 0.0}),
    ("RandomErasing", {"factor": (0.0, 0.0)}),
    ("RandomColorJitter", {"saturation_factor": (0.3, 0.3), "hue_factor": (1.0, 1.0)}),
]


@pytest.mark.parametrize("name,kwargs", DETERMINISTIC, ids=lambda v: str(v))
def test_deterministic_cases_match_keras(real_keras, name, kwargs):
    images = IMAGES.transpose(0, 3, 1, 2).copy() if kwargs.get("data_format") else IMAGES
    _compare(real_keras, name, kwargs, images=images)


def test_hue_in_unit_range_matches_keras(real_keras):
    _compare(real_keras, "RandomHue", {"factor": (1.0, 1.0), "value_range": (0, 1)},
             images=IMAGES / 255)


# ---------------------------------------------------------------- every layer: shared checks
RANDOM = [
    ("RandomErasing", {"seed": 1}), ("RandomGrayscale", {"seed": 1}),
    ("RandomHue", {"factor": 0.3, "seed": 1}), ("RandomSaturation", {"factor": 0.5, "seed": 1}),
    ("RandomColorJitter", {"brightness_factor": 0.2, "contrast_factor": 0.3,
                           "saturation_factor": 0.5, "hue_factor": 0.2, "seed": 1}),
    ("RandomPerspective", {"scale": 0.3, "seed": 1}), ("RandomInvert", {"seed": 1}),
    ("RandomPosterization", {"factor": 6, "seed": 1}), ("RandomSharpness", {"factor": 0.7,
                                                                            "seed": 1}),
    ("RandomGaussianBlur", {"seed": 1}), ("RandomElasticTransform", {"seed": 1}),
    ("RandomColorDegeneration", {"factor": 0.5, "seed": 1}),
    ("Solarization", {"addition_factor": 0.3, "threshold_factor": 0.6, "seed": 1}),
    ("AutoContrast", {}), ("Equalization", {}), ("MixUp", {"seed": 1}), ("CutMix", {"seed": 1}),
    ("AugMix", {"seed": 1}), ("RandAugment", {"seed": 1}),
]


@pytest.mark.parametrize("name,kwargs", RANDOM, ids=lambda v: str(v))
def test_random_layers_shape_range_seed_inference(name, kwargs):
    cls = getattr(ip, name)
    x = torch.from_numpy(IMAGES)
    out = cls(**kwargs)(x, training=True)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 255
    again = cls(**kwargs)(x, training=True)
    torch.testing.assert_close(out, again)  # same seed, same draws
    if name != "AutoContrast":  # AutoContrast applies at inference too, as in Keras
        torch.testing.assert_close(cls(**kwargs)(x, training=False), x)
    run_layer_test(cls, kwargs, input_shape=(2, 9, 12, 3), expected_output_shape=(2, 9, 12, 3),
                   expected_num_trainable_weights=0, run_training_check=False)


@pytest.mark.parametrize("name,kwargs", RANDOM, ids=lambda v: str(v))
def test_configs_have_keras_keys(real_keras, name, kwargs):
    theirs = getattr(real_keras.layers, name)(**kwargs).get_config()
    ours = getattr(ip, name)(**kwargs).get_config()
    assert set(theirs) <= set(ours)
    json.dumps(ours)


def test_random_layers_vary_across_images_and_calls():
    x = torch.from_numpy(IMAGES).repeat(8, 1, 1, 1)
    layer = ip.RandomHue(0.5, seed=3)
    out = layer(x, training=True)
    assert not torch.allclose(out[0], out[3])  # one draw per image
    assert not torch.allclose(out, layer(x, training=True))  # the stream moves on


def test_apply_probability_is_about_the_keras_mean():
    x = torch.full((400, 2, 2, 3), 10.0)
    inverted = (ip.RandomInvert(seed=0)(x, training=True) != x).flatten(1).any(1).float()
    assert 0.4 < inverted.mean() < 0.6  # P(u < U(0, 1)) = 1/2
    gray = torch.rand(400, 2, 2, 3, generator=torch.Generator().manual_seed(0))
    changed = (ip.RandomGrayscale(0.25, seed=0)(gray, training=True) != gray).flatten(1).any(1)
    assert 0.15 < changed.float().mean() < 0.35


def test_elastic_displacement_matches_keras_in_distribution(real_keras):
    ramp = np.broadcast_to(np.arange(64, dtype=np.float32)[None, None, :, None] + 100,
                           (4, 64, 64, 1)).copy()
    kwargs = {"factor": (1.0, 1.0), "scale": (0.5, 0.5), "fill_mode": "nearest"}
    theirs = np.mean([np.abs(np.asarray(real_keras.layers.RandomElasticTransform(
        seed=s, **kwargs)(ramp.copy(), training=True)) - ramp)[:, 8:-8, 8:-8].mean()
        for s in range(2)])
    ours = np.mean([(ip.RandomElasticTransform(seed=s, **kwargs)(
        torch.from_numpy(ramp), training=True).numpy() - ramp)[:, 8:-8, 8:-8].__abs__().mean()
        for s in range(2)])
    assert 0.7 < ours / theirs < 1.4


@pytest.mark.parametrize("fill_mode", warps.ELASTIC_FILL_MODES)
def test_elastic_without_displacement_is_identity(fill_mode):
    x = torch.from_numpy(IMAGES)
    layer = ip.RandomElasticTransform((1.0, 1.0), scale=(0.0, 0.0), fill_mode=fill_mode)
    torch.testing.assert_close(layer(x, training=True), x)


def test_mixup_mixes_images_and_labels_consistently():
    x = torch.from_numpy(IMAGES).repeat(2, 1, 1, 1)
    labels = torch.eye(6)
    out = ip.MixUp(alpha=0.5, seed=0)({"images": x, "labels": labels}, training=True)
    torch.testing.assert_close(out["labels"].sum(-1), torch.ones(6))
    weights = out["labels"]  # each image is the labels' blend of the batch's images
    torch.testing.assert_close(out["images"], torch.einsum("ij,jhwc->ihwc", weights, x),
                               rtol=1e-4, atol=1e-3)


def test_cutmix_labels_follow_the_pasted_area():
    x = torch.arange(6.0).reshape(6, 1, 1, 1).expand(6, 16, 16, 1).contiguous()
    out = ip.CutMix(seed=2)({"images": x, "labels": torch.eye(6)}, training=True)
    own = (out["images"] == x).flatten(1).float().mean(1)
    torch.testing.assert_close(out["labels"].diagonal(), own, atol=0.15, rtol=0)
    assert ip.CutMix(seed=2)(x[0], training=True).shape == (16, 16, 1)  # one image: unchanged


def test_erasing_fills_one_box_per_image():
    x = torch.full((4, 20, 20, 3), 100.0)
    out = ip.RandomErasing((1.0, 1.0), scale=(0.1, 0.1), fill_value=[1, 2, 3], seed=0)(
        x, training=True)
    erased = out[..., 0] == 1
    assert torch.equal(out[erased], torch.tensor([1.0, 2.0, 3.0]).expand(int(erased.sum()), 3))
    rows, cols = erased.any(2).sum(1), erased.any(1).sum(1)
    assert torch.equal(erased.sum((1, 2)), rows * cols)  # a rectangle
    assert (rows * cols > 0).all()


def test_rand_augment_and_augmix_use_every_op():
    assert len(ip.RandAugment().ops) == 11 and len(ip.AugMix(all_ops=False).ops) == 7
    x = torch.from_numpy(IMAGES)
    outs = [ip.RandAugment(num_ops=1, factor=0.9, seed=s)(x, training=True) for s in range(6)]
    assert len({round(float((o - x).abs().mean()), 3) for o in outs}) > 2
    torch.testing.assert_close(ip.RandAugment(num_ops=0)(x, training=True), x)


def test_pipeline_runs_in_order_and_round_trips():
    pipe = ip.Pipeline([ip.RandomInvert((1.0, 1.0)), ip.Solarization()])
    x = torch.from_numpy(IMAGES)
    torch.testing.assert_close(pipe(x, training=True), x)  # invert twice
    torch.testing.assert_close(pipe(x), x)
    clone = ip.Pipeline.from_config(json.loads(json.dumps(pipe.get_config())))
    assert [type(layer).__name__ for layer in clone.layers] == ["RandomInvert", "Solarization"]
    torch.testing.assert_close(clone(x, training=True), x)


def test_keras_pipeline_config_loads(real_keras):
    keras_pipe = real_keras.layers.Pipeline([real_keras.layers.RandomInvert((1.0, 1.0)),
                                             real_keras.layers.AutoContrast()])
    ours = ip.Pipeline.from_config(json.loads(json.dumps(keras_pipe.get_config())))
    expected = np.asarray(keras_pipe(IMAGES.copy(), training=True))
    np.testing.assert_allclose(ours(torch.from_numpy(IMAGES), training=True).numpy(), expected,
                               rtol=1e-5, atol=1e-4)


def test_model_saves_and_loads(tmp_path):
    model = kestrel.Sequential([kestrel.layers.Input((9, 12, 3)),
                                ip.RandAugment(seed=0), ip.RandomColorJitter(hue_factor=0.1),
                                ip.Equalization(), ip.AutoContrast()])
    x = torch.from_numpy(IMAGES)
    path = str(tmp_path / "aug.keras")
    model.save(path)
    loaded = kestrel.saving.load_model(path)
    torch.testing.assert_close(loaded(x, training=False), model(x, training=False))
    assert [type(layer).__name__ for layer in loaded.layers][-2:] == ["Equalization",
                                                                       "AutoContrast"]


@pytest.mark.parametrize("bad", [
    lambda: ip.RandomGrayscale(1.5), lambda: ip.RandomHue(2.0),
    lambda: ip.RandomPosterization(9), lambda: ip.RandomGaussianBlur(kernel_size=4),
    lambda: ip.RandomPerspective(scale=2.0), lambda: ip.RandomElasticTransform(fill_mode="x"),
    lambda: ip.RandomErasing(fill_value=[1, 2]), lambda: ip.MixUp(alpha=0),
    lambda: ip.Equalization(bins=1), lambda: ip.AutoContrast(value_range=5),
    lambda: ip.AugMix(num_chains=0), lambda: ip.Pipeline("x")])
def test_bad_arguments_raise(bad):
    with pytest.raises(ValueError, match="Received"):
        bad()


@pytest.mark.parametrize("module", [composite, filters, hsv, mixing, pointwise, warps])
def test_docstring_examples(module):
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
