"""Image layers on `{"images", "bounding_boxes", "segmentation_masks"}`: real Keras 3 (torch
backend) where the result is deterministic, and a box around a bright square still enclosing
the square where it is random."""
import os

import numpy as np
import pytest
import torch

from kestrel.layers.image_preprocessing import (
    CenterCrop, RandomCrop, RandomFlip, RandomRotation, RandomShear, RandomTranslation,
    RandomZoom, Resizing, RandomBrightness)
from kestrel.layers.image_preprocessing.max_num_bounding_boxes import MaxNumBoundingBoxes

os.environ.setdefault("KERAS_BACKEND", "torch")
IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 20, 30, 3)).astype(np.float32)
BOXES = np.array([[[2, 3, 12, 15], [20, 1, 29, 19]], [[5, 5, 25, 10], [-1, -1, -1, -1]]],
                 np.float32)
LABELS = np.array([[1, 2], [3, -1]], np.float32)


@pytest.fixture(scope="module")
def keras():
    import keras

    assert keras.backend.backend() == "torch"
    return keras


def _data(fmt="xyxy"):
    return {"images": IMAGES.copy(), "bounding_boxes": {"boxes": BOXES.copy(),
                                                        "labels": LABELS.copy()}}


def _np(x):
    return np.asarray(x.detach().cpu()) if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize("cls, kwargs", [
    (Resizing, dict(height=10, width=12)),
    (Resizing, dict(height=16, width=16, crop_to_aspect_ratio=True)),
    (CenterCrop, dict(height=12, width=14)),
    (CenterCrop, dict(height=24, width=24)),
])
def test_deterministic_layers_move_boxes_as_keras(keras, cls, kwargs):
    theirs = getattr(keras.layers, cls.__name__)(bounding_box_format="xyxy", **kwargs)
    ours = cls(bounding_box_format="xyxy", **kwargs)
    expected, got = theirs(_data()), ours(_data())
    real = _np(expected["bounding_boxes"]["labels"]) >= 0  # Keras zeroes padding rows
    np.testing.assert_allclose(got["bounding_boxes"]["boxes"].numpy()[real],
                               _np(expected["bounding_boxes"]["boxes"])[real], atol=1e-4)
    np.testing.assert_array_equal(got["bounding_boxes"]["labels"].numpy(),
                                  _np(expected["bounding_boxes"]["labels"]))
    np.testing.assert_allclose(got["images"].numpy(), _np(expected["images"]), atol=2e-3)
    assert ours.get_config()["bounding_box_format"] == "xyxy"
    assert set(ours.get_config()) == set(theirs.get_config())


def test_relative_formats_and_single_image(keras):
    boxes = _np(keras.utils.bounding_boxes.convert_format(BOXES[0], "xyxy", "rel_yxyx",
                                                          height=20, width=30))
    data = {"images": IMAGES[0], "bounding_boxes": {"boxes": boxes, "labels": LABELS[0]}}
    got = Resizing(10, 12, bounding_box_format="rel_yxyx")(data)
    assert got["images"].shape == (10, 12, 3)
    np.testing.assert_allclose(got["bounding_boxes"]["boxes"].numpy(), boxes, atol=1e-6)


def _square_data(fmt="xyxy"):
    images = np.zeros((4, 24, 32, 1), np.float32)
    images[:, 6:12, 10:20] = 255.0
    boxes = np.tile(np.array([[10, 6, 20, 12]], np.float32), (4, 1, 1))
    masks = (images > 0).astype(np.uint8)
    return {"images": images, "segmentation_masks": masks,
            "bounding_boxes": {"boxes": boxes, "labels": np.ones((4, 1), np.float32)}}


@pytest.mark.parametrize("layer", [
    RandomFlip(seed=1, bounding_box_format="xyxy"),
    RandomRotation(0.08, fill_mode="constant", seed=2, bounding_box_format="xyxy"),
    RandomTranslation(0.2, 0.2, fill_mode="constant", seed=3, bounding_box_format="xyxy"),
    RandomZoom(0.3, fill_mode="constant", seed=4, bounding_box_format="xyxy"),
    RandomShear(0.2, 0.2, fill_mode="constant", seed=5, bounding_box_format="xyxy"),
    RandomCrop(16, 20, seed=6, bounding_box_format="xyxy"),
    RandomBrightness(0.2, seed=7, bounding_box_format="xyxy"),
    Resizing(20, 20, pad_to_aspect_ratio=True, bounding_box_format="xyxy"),  # Keras: approx.
])
def test_random_layers_boxes_and_masks_follow_the_square(layer):
    out = layer(_square_data(), training=True)
    images, masks = out["images"].numpy()[..., 0], out["segmentation_masks"].numpy()[..., 0]
    boxes = out["bounding_boxes"]["boxes"].numpy()[:, 0]
    assert out["segmentation_masks"].dtype == torch.uint8
    assert set(np.unique(masks)) <= {0, 1}
    moved = 0
    for image, mask, (x1, y1, x2, y2) in zip(images, masks, boxes):
        ys, xs = np.nonzero(mask)
        # pixel i covers [i, i + 1]: the mask and the bright pixels lie in the box (1 px slack)
        for pixels in (np.argwhere(mask), np.argwhere(image > 200)):
            assert len(pixels) and x1 - 1 <= pixels[:, 1].min() <= pixels[:, 1].max() <= x2
            assert y1 - 1 <= pixels[:, 0].min() <= pixels[:, 0].max() <= y2
        moved += not np.allclose([x1, y1, x2, y2], [10, 6, 20, 12])
    assert moved or isinstance(layer, RandomBrightness)
    if not isinstance(layer, (RandomCrop, Resizing)):  # identity at inference
        same = layer(_square_data(), training=False)["bounding_boxes"]["boxes"].numpy()
        np.testing.assert_allclose(same[:, 0], [[10, 6, 20, 12]] * 4, atol=1e-4)


def test_missing_format_and_padding_rows():
    with pytest.raises(ValueError, match="bounding_box_format=None"):
        RandomFlip()(_data(), training=True)
    out = RandomFlip("horizontal", seed=0, bounding_box_format="xyxy")(_data(), training=True)
    np.testing.assert_array_equal(out["bounding_boxes"]["boxes"].numpy()[1, 1], [-1] * 4)
    assert out["bounding_boxes"]["labels"][1, 1].item() == -1


def test_max_num_bounding_boxes_matches_keras(keras):
    for n in (1, 4):
        expected = keras.layers.MaxNumBoundingBoxes(n, bounding_box_format="xyxy")(
            _data())["bounding_boxes"]
        got = MaxNumBoundingBoxes(n)(_data())["bounding_boxes"]
        for key in ("boxes", "labels"):
            np.testing.assert_array_equal(got[key].numpy(), _np(expected[key]))
    with pytest.raises(KeyError, match="unsupported keys"):
        MaxNumBoundingBoxes(2)({"images": IMAGES, "bounding_boxes": {"boxes": BOXES, "x": 1}})
    assert MaxNumBoundingBoxes.from_config(MaxNumBoundingBoxes(3).get_config()).max_number == 3
