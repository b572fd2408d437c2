"""Image preprocessing and augmentation layers: real Keras 3 (torch backend) numbers where the
result is deterministic, structural and statistical properties where it is random."""
import doctest
import os

import numpy as np
import pytest
import torch

import kestrel
from kestrel.layers import Input
from kestrel.layers.image_preprocessing import (
    CenterCrop, RandomBrightness, RandomContrast, RandomCrop, RandomFlip, RandomRotation,
    RandomShear, RandomTranslation, RandomZoom, Rescaling, Resizing, affine, color, flip,
    geometric, rescaling, sizing)
from tests.layer_harness import run_layer_test

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (3, 9, 12, 2)).astype(np.float32)


@pytest.fixture(scope="module")
def real_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    assert keras.backend.backend() == "torch"
    return keras


def _compare(real_keras, cls, kwargs, images=IMAGES, training=True, atol=2e-3, rtol=1e-5):
    """Kestrel's and Keras' layers built from the same arguments give the same numbers."""
    theirs = getattr(real_keras.layers, cls.__name__)(**kwargs)
    call = {"training": training} if training is not None else {}
    expected = np.asarray(theirs(images.copy(), **call).detach().cpu())
    got = cls(**kwargs)(torch.from_numpy(images.copy()), **call).numpy()
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
    ours_config = cls(**kwargs).get_config()
    assert set(theirs.get_config()) == set(ours_config)
    return got


# ---------------------------------------------------------------- deterministic, vs Keras
@pytest.mark.parametrize("kwargs", [{"scale": 1 / 255}, {"scale": 1 / 127.5, "offset": -1},
                                    {"scale": [0.5, 2.0], "offset": [1.0, -1.0]}])
def test_rescaling_matches_keras(real_keras, kwargs):
    _compare(real_keras, Rescaling, kwargs, training=None, atol=1e-6)


@pytest.mark.parametrize("kwargs", [
    {"height": 5, "width": 7},
    {"height": 18, "width": 20, "interpolation": "nearest"},
    {"height": 6, "width": 4, "interpolation": "bicubic"},
    {"height": 4, "width": 5, "antialias": True},
    {"height": 5, "width": 5, "crop_to_aspect_ratio": True},
    {"height": 5, "width": 5, "pad_to_aspect_ratio": True, "fill_value": 7.0},
    {"height": 10, "width": 4, "pad_to_aspect_ratio": True},
    {"height": 4, "width": 3, "data_format": "channels_first", "interpolation": "bicubic"},
])
def test_resizing_matches_keras(real_keras, kwargs):
    _compare(real_keras, Resizing, kwargs, training=None)


def test_resizing_integer_images_and_one_image(real_keras):
    images = RNG.integers(0, 256, (2, 7, 5, 3)).astype(np.uint8)
    _compare(real_keras, Resizing, {"height": 4, "width": 9}, images=images, training=None,
             atol=1)
    single = Resizing(4, 9)(torch.from_numpy(images[0]))
    assert single.dtype == torch.uint8 and single.shape == (4, 9, 3)


def test_resizing_area_averages_blocks():
    x = torch.from_numpy(IMAGES[:, :8])
    got = Resizing(4, 3, interpolation="area")(x).numpy()
    blocks = IMAGES[:, :8].reshape(3, 4, 2, 3, 4, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(got, blocks, rtol=1e-5)


@pytest.mark.parametrize("kwargs", [{"height": 5, "width": 6}, {"height": 8, "width": 12},
                                    {"height": 12, "width": 10},
                                    {"height": 3, "width": 4, "data_format": "channels_first"}])
def test_center_crop_matches_keras(real_keras, kwargs):
    _compare(real_keras, CenterCrop, kwargs, training=None, atol=1e-3)


FILLS = [("reflect", "bilinear"), ("wrap", "nearest"), ("constant", "bilinear"),
         ("nearest", "bilinear"), ("constant", "nearest")]


@pytest.mark.parametrize("fill_mode, interpolation", FILLS)
def test_fixed_rotation_matches_keras(real_keras, fill_mode, interpolation):
    for factor in [(0.1, 0.1), (-0.25, -0.25)]:
        _compare(real_keras, RandomRotation, {
            "factor": factor, "fill_mode": fill_mode, "interpolation": interpolation,
            "fill_value": 5.0}, images=IMAGES[:, :, :11])  # no half-pixel ties for "nearest"


@pytest.mark.parametrize("fill_mode, interpolation", FILLS)
def test_fixed_zoom_and_translation_match_keras(real_keras, fill_mode, interpolation):
    common = {"fill_mode": fill_mode, "interpolation": interpolation, "fill_value": 5.0}
    _compare(real_keras, RandomZoom, {"height_factor": (0.3, 0.3), **common})
    _compare(real_keras, RandomZoom, {"height_factor": (-0.4, -0.4),
                                      "width_factor": (0.5, 0.5), **common})
    _compare(real_keras, RandomTranslation, {"height_factor": (0.25, 0.25),
                                             "width_factor": (-1 / 3, -1 / 3), **common})


def test_channels_first_and_single_image_warp_match_keras(real_keras):
    images = np.ascontiguousarray(IMAGES.transpose(0, 3, 1, 2))
    _compare(real_keras, RandomRotation, {"factor": (0.1, 0.1), "data_format": "channels_first"},
             images=images)
    _compare(real_keras, RandomZoom, {"height_factor": (0.3, 0.3)}, images=IMAGES[0])


def test_fixed_brightness_matches_keras(real_keras):
    _compare(real_keras, RandomBrightness, {"factor": (0.2, 0.2)}, atol=1e-4)
    _compare(real_keras, RandomBrightness, {"factor": (-0.5, -0.5), "value_range": (0, 1)},
             images=IMAGES / 255, atol=1e-6)


@pytest.mark.parametrize("cls, kwargs", [
    (RandomFlip, {}), (RandomContrast, {"factor": 0.5}), (RandomShear, {"x_factor": 0.3}),
    (RandomCrop, {"height": 4, "width": 4})])
def test_random_layer_config_keys_match_keras(real_keras, cls, kwargs):
    theirs = getattr(real_keras.layers, cls.__name__)(**kwargs).get_config()
    ours = cls(**kwargs).get_config()
    assert set(theirs) == set(ours)
    for key in ("factor", "mode", "value_range"):
        if key in theirs:
            assert list(np.ravel(theirs[key])) == list(np.ravel(ours[key]))


# ---------------------------------------------------------------- random, structure and stats
AUGMENTATIONS = [
    (RandomFlip, {"seed": 1}), (RandomFlip, {"mode": "vertical", "seed": 1}),
    (RandomRotation, {"factor": 0.2, "seed": 1}), (RandomZoom, {"height_factor": 0.3, "seed": 1}),
    (RandomTranslation, {"height_factor": 0.2, "width_factor": 0.1, "seed": 1}),
    (RandomShear, {"x_factor": 0.2, "y_factor": 0.1, "seed": 1}),
    (RandomContrast, {"factor": 0.5, "seed": 1}), (RandomBrightness, {"factor": 0.3, "seed": 1}),
]


@pytest.mark.parametrize("cls, kwargs", AUGMENTATIONS)
def test_augmentations_identity_at_inference_and_seeded(cls, kwargs):
    x = torch.from_numpy(IMAGES)
    layer = cls(**kwargs)
    assert torch.equal(layer(x, training=False), x)
    assert not torch.equal(cls(**kwargs)(x), x)  # called on its own it augments, as in Keras
    first, second = layer(x, training=True), layer(x, training=True)
    assert first.shape == x.shape and first.dtype == torch.float32
    assert not torch.equal(first, second)  # a sequence of draws, not one
    again = cls(**kwargs)
    torch.testing.assert_close(again(x, training=True), first)
    layer.train()
    assert not torch.equal(layer(x), x)  # training mode (as in fit) augments
    assert 0 <= float(first.min()) and float(first.max()) <= 255 + 1e-3


def test_flip_really_flips_each_image_or_keeps_it():
    x = torch.arange(64 * 2 * 3, dtype=torch.float32).reshape(64, 2, 3, 1)
    for mode, axes in [("horizontal", [2]), ("vertical", [1]),
                       ("horizontal_and_vertical", [1, 2])]:
        out = RandomFlip(mode, seed=3)(x, training=True)
        flipped = torch.tensor([torch.equal(o, f) for o, f in zip(out, x.flip(axes))])
        kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
        assert bool((flipped ^ kept).all()) and 16 < int(flipped.sum()) < 48
    channels_first = RandomFlip("horizontal", seed=3, data_format="channels_first")
    out = channels_first(x.permute(0, 3, 1, 2), training=True)
    torch.testing.assert_close(out.permute(0, 2, 3, 1), RandomFlip("horizontal", seed=3)(
        x, training=True))


def test_rotation_by_quarter_turns_is_exact_and_translation_moves_pixels():
    x = torch.arange(2 * 5 * 5 * 1, dtype=torch.float32).reshape(2, 5, 5, 1)
    quarter = RandomRotation((0.25, 0.25), interpolation="nearest")(x, training=True)
    torch.testing.assert_close(quarter, torch.rot90(x, 1, dims=(1, 2)))
    shifted = RandomTranslation((0.2, 0.2), (0.4, 0.4), fill_mode="constant",
                                interpolation="nearest")(x, training=True)
    torch.testing.assert_close(shifted[:, 1:, 2:], x[:, :-1, :-2])
    assert float(shifted[:, 0].abs().sum() + shifted[:, :, :2].abs().sum()) == 0


def test_random_draws_cover_their_range():
    x = torch.full((400, 4, 4, 1), 100.0)
    delta = RandomBrightness((-0.2, 0.4), seed=0)(x, training=True)[:, 0, 0, 0] - 100
    assert -51 <= float(delta.min()) < -45 and 96 < float(delta.max()) <= 102
    assert abs(float(delta.mean()) - 25.5) < 6
    ramp = torch.arange(16.0).reshape(1, 4, 4, 1).expand(400, -1, -1, -1)
    contrast = RandomContrast(0.5, value_range=(-100, 100), seed=0)(ramp, training=True)
    ratio = (contrast - contrast.mean((1, 2), keepdim=True)) / (ramp - 7.5)
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1], atol=1e-4)  # one factor per image
    assert 1.0 <= float(per_image.min()) < 1.05 and 1.45 < float(per_image.max()) <= 1.5


def test_random_crop_positions_and_inference():
    x = torch.arange(9 * 12, dtype=torch.float32).reshape(1, 9, 12, 1).repeat(4, 1, 1, 1)
    layer = RandomCrop(4, 5, seed=2)
    corners = set()
    for _ in range(40):
        out = layer(x, training=True)
        top, left = divmod(int(out[0, 0, 0, 0]), 12)
        torch.testing.assert_close(out, x[:, top:top + 4, left:left + 5])
        corners.add((top, left))
    assert len(corners) > 20 and max(t for t, _ in corners) <= 5
    expected = Resizing(4, 5, crop_to_aspect_ratio=True)(x)  # Keras' documented inference
    torch.testing.assert_close(layer(x, training=False), expected)
    assert RandomCrop(20, 20)(x, training=True).shape == (4, 20, 20, 1)


def test_warps_use_the_input_device_and_stay_batched():
    x = torch.from_numpy(IMAGES).to("meta")
    for cls, kwargs in AUGMENTATIONS[2:6]:
        out = cls(**{**kwargs, "seed": None})(x, training=True)
        assert out.device.type == "meta" and out.shape == x.shape


# ---------------------------------------------------------------- harness, models, saving
HARNESS = [
    (Rescaling, {"scale": 0.5, "offset": 1.0}, (2, 6, 8, 3)),
    (Resizing, {"height": 4, "width": 5}, (2, 4, 5, 3)),
    (CenterCrop, {"height": 4, "width": 4}, (2, 4, 4, 3)),
    (RandomCrop, {"height": 3, "width": 5, "seed": 1}, (2, 3, 5, 3)),
] + [(cls, kwargs, (2, 6, 8, 3)) for cls, kwargs in AUGMENTATIONS]


@pytest.mark.parametrize("cls, kwargs, out_shape", HARNESS)
def test_harness(cls, kwargs, out_shape):
    run_layer_test(cls, kwargs, input_shape=(2, 6, 8, 3), expected_output_shape=out_shape,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    assert cls(**kwargs).compute_output_shape((None, 6, 8, 3)) == (None,) + out_shape[1:]


def test_pipeline_in_a_model_trains_and_round_trips(tmp_path):
    model = kestrel.Sequential([
        Input((12, 12, 3)), Rescaling(1 / 255), RandomFlip(seed=1), RandomRotation(0.1, seed=2),
        RandomZoom(0.2, seed=3), RandomTranslation(0.1, 0.1, seed=4), RandomContrast(0.2, seed=5),
        RandomBrightness(0.1, value_range=(0, 1), seed=6), RandomCrop(10, 10, seed=7),
        Resizing(8, 8), CenterCrop(6, 6), kestrel.layers.Flatten(), kestrel.layers.Dense(2)])
    assert model.output_shape == (None, 2)
    x = RNG.uniform(0, 255, (16, 12, 12, 3)).astype(np.float32)
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((16, 2), np.float32), epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = kestrel.saving.load_model(tmp_path / "m.keras")
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_symbolic_output_dtype_and_rank_check():
    inputs = Input((6, 8, 3), dtype="uint8")
    assert Rescaling(1 / 255)(inputs).dtype == "float32"
    assert Resizing(3, 4)(inputs).dtype == "uint8"
    assert RandomFlip()(inputs).dtype == "float32"
    with pytest.raises(ValueError, match="RandomFlip .*rank 3 .*or 4"):
        RandomFlip()(torch.zeros(2, 3), training=True)


@pytest.mark.parametrize("make, arg", [
    (lambda: Resizing(0, 4), "height"), (lambda: Resizing(4, 4, interpolation="lanczos3"),
                                         "interpolation"),
    (lambda: Resizing(4, 4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), "only one"),
    (lambda: CenterCrop(3, 2.5), "width"), (lambda: RandomFlip("diagonal"), "mode"),
    (lambda: RandomRotation(1.5), "factor"), (lambda: RandomRotation(0.1, fill_mode="edge"),
                                              "fill_mode"),
    (lambda: RandomZoom(-1.0), "height_factor"), (lambda: RandomTranslation(0.1, (1, 2, 3)),
                                                  "width_factor"),
    (lambda: RandomContrast(-0.2), "factor"), (lambda: RandomBrightness(0.2, (1,)),
                                               "value_range"),
    (lambda: RandomShear(x_factor=(-0.1, 0.2)), "x_factor"), (lambda: Rescaling("x"), "scale"),
    (lambda: RandomFlip(seed=1.5), "seed")])
def test_bad_arguments(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


@pytest.mark.parametrize("module", [affine, color, flip, geometric, rescaling, sizing])
def test_docstring_examples(module):
    module.torch = torch
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
