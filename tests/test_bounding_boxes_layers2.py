"""Boxes and masks through RandomPerspective, the mixing layers, the composite layers and
Resizing's aspect-ratio modes: real Keras 3 (torch backend) on the same draw where Keras'
result is deterministic given it, and a box around a bright square still enclosing the square
where it is random."""
import os

import numpy as np
import pytest
import torch

from kestrel.layers.image_preprocessing import (
    AugMix, CutMix, MixUp, Pipeline, RandAugment, RandomColorJitter, RandomErasing, RandomFlip,
    RandomPerspective, Resizing)
from kestrel.layers.image_preprocessing.data import transform_boxes
from kestrel.ops.image_warp import _homography

os.environ.setdefault("KERAS_BACKEND", "torch")
RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (3, 20, 30, 3)).astype(np.float32)
MASKS = RNG.integers(0, 3, (3, 20, 30, 1)).astype(np.float32)
BOXES = np.array([[[2, 3, 12, 15], [20, 1, 29, 19], [0, 0, 0, 0]],
                  [[5, 5, 25, 10], [0, 0, 29, 19], [-1, -1, -1, -1]],
                  [[10, 2, 14, 18], [-1, -1, -1, -1], [-1, -1, -1, -1]]], np.float32)
LABELS = np.array([[1, 2, 5], [3, 4, -1], [6, -1, -1]], np.float32)


@pytest.fixture(scope="module")
def keras():
    import keras

    assert keras.backend.backend() == "torch"
    return keras


def _np(x):
    return np.asarray(x.detach().cpu()) if isinstance(x, torch.Tensor) else np.asarray(x)


def _boxes():
    return {"boxes": BOXES.copy(), "labels": LABELS.copy()}


def test_random_perspective_matches_keras_on_the_same_draw(keras):
    theirs = keras.layers.RandomPerspective(factor=0.7, scale=0.6, seed=3,
                                            bounding_box_format="xyxy")
    ours = RandomPerspective(factor=0.7, scale=0.6, bounding_box_format="xyxy")
    t = theirs.get_random_transformation({"images": IMAGES}, training=True)
    assert 0 < int(_np(t["apply_perspective"]).sum()) < 3  # both cases are checked
    params = (torch.as_tensor(_np(t["apply_perspective"])).reshape(-1, 1, 1, 1),
              _homography(torch.as_tensor(_np(t["start_points"])).double(),
                          torch.as_tensor(_np(t["end_points"])).double()).float())
    expected = theirs.transform_bounding_boxes(_boxes(), t, training=True)
    got = transform_boxes(ours, _boxes(), params, (20, 30), False)
    real = LABELS >= 0
    np.testing.assert_allclose(got["boxes"].numpy()[real], _np(expected["boxes"])[real],
                               atol=1e-3)
    np.testing.assert_array_equal(got["labels"].numpy(), _np(expected["labels"]))
    images = torch.as_tensor(IMAGES)
    np.testing.assert_allclose(ours.transform_images(images, params).numpy(),
                               _np(theirs.transform_images(IMAGES, t)), atol=1e-2)
    masks = ours.transform_masks(torch.as_tensor(MASKS), params).numpy()
    same = masks == _np(theirs.transform_segmentation_masks(MASKS, t))
    assert same.mean() > 0.995  # nearest: a rare pixel exactly half-way may differ


def _square_data():
    images = np.zeros((4, 24, 32, 3), np.float32)
    images[:, 9:15, 12:20] = 255.0
    boxes = np.tile(np.array([[12, 9, 20, 15], [-1, -1, -1, -1]], np.float32), (4, 1, 1))
    labels = np.tile(np.array([[1, -1]], np.float32), (4, 1))
    return {"images": images, "segmentation_masks": (images[..., :1] > 0).astype(np.uint8),
            "bounding_boxes": {"boxes": boxes, "labels": labels}}


@pytest.mark.parametrize("make, bright", [
    (lambda seed: RandomPerspective(scale=0.5, seed=seed, bounding_box_format="xyxy"), True),
    # colour ops (solarization, equalization) may dim the square: only its mask is checked
    (lambda seed: RandAugment(num_ops=4, factor=0.1, seed=seed, bounding_box_format="xyxy"),
     False),
    (lambda seed: Pipeline([RandomFlip(seed=seed, bounding_box_format="xyxy"),
                            RandomPerspective(scale=0.4, seed=seed, bounding_box_format="xyxy"),
                            RandomColorJitter(brightness_factor=0.1, seed=seed,
                                              bounding_box_format="xyxy")]), True),
])
def test_boxes_and_masks_follow_the_square(make, bright):
    moved = 0
    for seed in range(3):
        out = make(seed)(_square_data(), training=True)
        images = out["images"].numpy().max(-1)
        masks = out["segmentation_masks"].numpy()[..., 0]
        boxes = out["bounding_boxes"]["boxes"].numpy()
        np.testing.assert_array_equal(boxes[:, 1], -1)  # padding rows stay
        assert out["segmentation_masks"].dtype == torch.uint8
        for image, mask, (x1, y1, x2, y2) in zip(images, masks, boxes[:, 0]):
            for pixels in (np.argwhere(mask), np.argwhere(image > 200))[:1 + bright]:
                assert len(pixels) and x1 - 1 <= pixels[:, 1].min() <= pixels[:, 1].max() <= x2
                assert y1 - 1 <= pixels[:, 0].min() <= pixels[:, 0].max() <= y2
            moved += not np.allclose([x1, y1, x2, y2], [12, 9, 20, 15])
    assert moved


def test_mixup_mixes_masks_and_appends_boxes_as_keras(keras):
    theirs = keras.layers.MixUp(seed=0, bounding_box_format="xyxy")
    t = theirs.get_random_transformation({"images": IMAGES}, training=True)
    w, order = _np(t["mix_weight"]), _np(t["permutation_order"])
    ours = MixUp(bounding_box_format="xyxy")
    params = (torch.as_tensor(w), torch.as_tensor(order))
    np.testing.assert_allclose(ours.blend(torch.as_tensor(IMAGES), params).numpy(),
                               _np(theirs.transform_images(IMAGES, t)), atol=1e-3)
    got = ours.mix_boxes(_boxes(), params[1])
    expected = theirs.transform_bounding_boxes(_boxes(), t)
    np.testing.assert_array_equal(got["boxes"].numpy(), _np(expected["boxes"]))
    # Keras stacks the labels on the batch axis (a shape that no longer fits the boxes);
    # Kestrel keeps each label with its box.
    np.testing.assert_array_equal(got["labels"].numpy(),
                                  np.concatenate([LABELS, LABELS[order]], 1))
    # Keras' masks lose their batch order (take without an axis): the intended mix here.
    masks = ours.blend_masks(torch.as_tensor(MASKS), params).numpy()
    w4 = w.reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(masks, w4 * MASKS + (1 - w4) * MASKS[order], atol=1e-5)

    out = MixUp(seed=1, bounding_box_format="xyxy")(
        {"images": IMAGES, "labels": np.eye(3, dtype=np.float32),
         "segmentation_masks": MASKS, "bounding_boxes": _boxes()}, training=True)
    assert out["bounding_boxes"]["boxes"].shape == (3, 6, 4)
    assert out["bounding_boxes"]["labels"].shape == (3, 6)
    assert out["segmentation_masks"].shape == MASKS.shape
    np.testing.assert_allclose(out["labels"].sum(-1).numpy(), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="bounding_box_format=None"):
        MixUp()({"images": IMAGES, "bounding_boxes": _boxes()}, training=True)


def test_cutmix_pastes_masks_with_the_images_and_refuses_boxes(keras):
    masks = RNG.integers(0, 4, (4, 16, 16, 1)).astype(np.int64)
    images = np.repeat(masks, 3, -1).astype(np.float32)
    changed = 0
    for seed in range(4):
        out = CutMix(seed=seed)({"images": images, "segmentation_masks": masks}, training=True)
        assert out["segmentation_masks"].dtype == torch.int64
        np.testing.assert_array_equal(out["segmentation_masks"].numpy()[..., 0],
                                      out["images"].numpy()[..., 0])
        changed += not np.array_equal(out["segmentation_masks"].numpy(), masks)
    assert changed
    data = {"images": IMAGES, "bounding_boxes": _boxes()}
    with pytest.raises(NotImplementedError):
        keras.layers.CutMix(bounding_box_format="xyxy")(data, training=True)
    with pytest.raises(NotImplementedError, match="CutMix"):
        CutMix(bounding_box_format="xyxy")(data, training=True)


@pytest.mark.parametrize("cls, kwargs", [
    (RandomErasing, dict(factor=(1.0, 1.0))),
    (RandomColorJitter, dict(brightness_factor=0.3, hue_factor=0.2)),
])
def test_colour_and_erasing_layers_leave_boxes_and_masks_as_keras(keras, cls, kwargs):
    data = {"images": IMAGES, "segmentation_masks": MASKS, "bounding_boxes": _boxes()}
    expected = getattr(keras.layers, cls.__name__)(
        seed=0, bounding_box_format="xyxy", **kwargs)(data, training=True)
    got = cls(seed=0, bounding_box_format="xyxy", **kwargs)(data, training=True)
    for key in ("boxes", "labels"):
        np.testing.assert_array_equal(got["bounding_boxes"][key].numpy(),
                                      _np(expected["bounding_boxes"][key]))
    np.testing.assert_array_equal(got["segmentation_masks"].numpy(), MASKS)
    assert not np.allclose(got["images"].numpy(), IMAGES)


def test_augmix_moves_masks_through_its_chains_and_keeps_boxes():
    data = _square_data()
    changed = 0
    for seed in range(3):
        layer = AugMix(seed=seed, chain_depth=3, bounding_box_format="xyxy")
        out = layer({**data, "segmentation_masks": data["segmentation_masks"].astype(
            np.float32)}, training=True)
        np.testing.assert_array_equal(out["bounding_boxes"]["boxes"].numpy(),
                                      data["bounding_boxes"]["boxes"])  # as Keras
        masks = out["segmentation_masks"].numpy()
        assert masks.shape == (4, 24, 32, 1) and masks.min() >= 0 and masks.max() <= 1 + 1e-6
        changed += not np.array_equal(masks, data["segmentation_masks"])
        # the masks' mixing weights are the images': a mask of ones stays ones
        ones = layer.transform_masks(torch.ones(4, 24, 32, 1), (
            np.array([0.5, 0.5]), 0.3, [[], []]))
        np.testing.assert_allclose(ones.numpy(), 1.0)
    assert changed


@pytest.mark.parametrize("fmt", ["xyxy", "xywh", "rel_yxyx"])
@pytest.mark.parametrize("kwargs", [
    dict(height=20, width=20, pad_to_aspect_ratio=True),
    dict(height=17, width=13, pad_to_aspect_ratio=True),
    dict(height=7, width=13, pad_to_aspect_ratio=True),
    dict(height=17, width=13, crop_to_aspect_ratio=True),
    dict(height=7, width=23, crop_to_aspect_ratio=True),
    dict(height=9, width=11),
])
def test_resizing_boxes_and_padding_rows_match_keras(keras, fmt, kwargs):
    from keras.utils.bounding_boxes import convert_format

    pad = (BOXES == -1).all(-1, keepdims=True)
    boxes = np.where(pad, -1, _np(convert_format(BOXES, "xyxy", fmt, height=20, width=30)))
    data = {"images": IMAGES, "bounding_boxes": {"boxes": boxes, "labels": LABELS}}
    expected = keras.layers.Resizing(bounding_box_format=fmt, **kwargs)(data)["bounding_boxes"]
    got = Resizing(bounding_box_format=fmt, **kwargs)(data)["bounding_boxes"]
    np.testing.assert_allclose(got["boxes"].numpy(), _np(expected["boxes"]), atol=1e-4)
    np.testing.assert_array_equal(got["labels"].numpy(), _np(expected["labels"]))
    assert (got["boxes"].numpy()[(LABELS == -1) & (BOXES == -1).all(-1)] == 0).all()
