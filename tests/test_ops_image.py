"""kestrel.ops.image against real Keras 3 (torch backend): values, dtypes and symbolic specs."""
import numpy as np
import pytest
import torch

from kestrel import ops
from tests.ops_harness import check_op, check_symbolic

rng = np.random.default_rng(1)
IMG = rng.random((2, 8, 6, 3)).astype("float32")
SQUARE = rng.random((2, 7, 7, 3)).astype("float32")
CF = np.moveaxis(IMG, -1, 1).copy()
UINT8 = (IMG * 255).astype("uint8")
SHIFT = np.array([1.0, 0.1, -1.5, -0.2, 0.9, 2.0, 0.0, 0.0], "float32")
START = np.array([[0, 0], [6, 0], [6, 6], [0, 6]], "float32")
END = np.array([[1, 0], [6, 1], [5, 6], [0, 5]], "float32")

CASES = [
    ("rgb_to_grayscale", (IMG,), {}),
    ("rgb_to_grayscale", (CF[0],), {"data_format": "channels_first"}),
    ("rgb_to_hsv", (IMG,), {}),
    ("hsv_to_rgb", (IMG,), {}),
    ("rgb_to_hsv", (CF,), {"data_format": "channels_first"}),
    ("resize", (IMG, (4, 3)), {}),
    ("resize", (IMG, (11, 9)), {"interpolation": "nearest"}),
    ("resize", (IMG, (5, 5)), {"interpolation": "bicubic", "antialias": True}),
    ("resize", (IMG[0], (4, 4)), {"crop_to_aspect_ratio": True}),
    ("resize", (IMG, (4, 4)), {"pad_to_aspect_ratio": True, "fill_value": 0.5}),
    ("resize", (UINT8, (5, 4)), {}),
    ("resize", (CF, (3, 5)), {"data_format": "channels_first"}),
    ("pad_images", (IMG, 1, 2, 0, 1), {}),
    ("pad_images", (IMG[0],), {"top_padding": 2, "left_padding": 1, "target_height": 12,
                               "target_width": 9}),
    ("pad_images", (CF,), {"bottom_padding": 1, "right_padding": 2, "target_height": 10,
                           "target_width": 8, "data_format": "channels_first"}),
    ("crop_images", (IMG, 1, 2, 0, 1), {}),
    ("crop_images", (IMG,), {"top_cropping": 2, "left_cropping": 1, "target_height": 4,
                             "target_width": 3}),
    ("extract_patches", (IMG, 2), {}),
    ("extract_patches", (IMG, (3, 2)), {"strides": 1, "padding": "same"}),
    ("extract_patches", (CF, 2), {"data_format": "channels_first", "dilation_rate": 2,
                                  "strides": 1}),
    ("extract_patches_3d", (rng.random((1, 4, 5, 6, 2)).astype("float32"), 2), {}),
    ("extract_patches", (rng.random((4, 4, 4, 1)).astype("float32"), (2, 2, 2)), {}),
    ("gaussian_blur", (IMG,), {"data_format": "channels_last"}),  # Keras ignores None here
    ("gaussian_blur", (CF, (5, 5), (2.0, 2.0)), {"data_format": "channels_first"}),
    ("sobel_edges", (IMG,), {}),
    ("ssim", (SQUARE, np.clip(SQUARE + 0.1, 0, 1)), {"filter_size": 3}),
    ("ssim", (SQUARE[0], SQUARE[0] * 0.5), {"filter_size": 5, "max_val": 2.0}),
    ("map_coordinates", (IMG[0, :, :, 0], rng.uniform(-1, 8, (2, 5, 4))), {"order": 1}),
    ("map_coordinates", (IMG[0], rng.uniform(-1, 8, (3, 6))), {"order": 0,
                                                               "fill_mode": "wrap"}),
    ("map_coordinates", (IMG[0, 0], rng.uniform(-3, 9, (2, 7))),
     {"order": 1, "fill_mode": "mirror"}),
    ("affine_transform", (IMG, np.stack([SHIFT, SHIFT])), {}),
    ("affine_transform", (IMG, np.stack([SHIFT, SHIFT * 0.9])), {"fill_mode": "reflect"}),
    # nearest interpolation away from exact half-pixel ties (where the rounding side may differ)
    ("affine_transform", (IMG[0], SHIFT + np.array([0, 0, 0.13, 0, 0, 0.07, 0, 0], "float32")),
     {"interpolation": "nearest", "fill_mode": "nearest"}),
    ("affine_transform", (CF, np.stack([SHIFT, SHIFT])), {"fill_mode": "constant", "fill_value": 0.5,
                                       "data_format": "channels_first"}),
    ("perspective_transform", (SQUARE, START, END), {}),
    ("perspective_transform", (SQUARE[0], START, END), {"interpolation": "nearest",
                                                        "fill_value": 1.0}),
]


@pytest.mark.parametrize("name, args, kwargs", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_image_op_matches_keras(name, args, kwargs):
    check_op(f"image.{name}", *args, rtol=1e-4, atol=1e-5, **kwargs)


def test_image_ops_are_not_flat_and_have_prefixed_names():
    assert not hasattr(ops, "resize") and ops.image.resize.op_name == "image.resize"


def test_one_transform_warps_the_whole_batch():
    both = ops.image.affine_transform(IMG, SHIFT)  # Keras' torch backend fails here
    torch.testing.assert_close(both[1], ops.image.affine_transform(IMG[1], SHIFT))


def test_elastic_transform_is_seeded_and_keeps_shape_and_dtype():
    x = torch.rand(2, 9, 8, 3)
    a = ops.image.elastic_transform(x, alpha=3.0, sigma=1.0, seed=4)
    b = ops.image.elastic_transform(x, alpha=3.0, sigma=1.0, seed=4)
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert not torch.equal(a, x)
    same = ops.image.elastic_transform(x, alpha=0.0, sigma=1.0, seed=4)
    torch.testing.assert_close(same, x)
    cf = ops.image.elastic_transform(x.permute(0, 3, 1, 2), alpha=3.0, sigma=1.0, seed=4,
                                     data_format="channels_first")
    torch.testing.assert_close(cf.permute(0, 2, 3, 1), a)


@pytest.mark.parametrize("name, specs, kwargs", [
    ("resize", [(None, 8, 6, 3), [4, 5]], {}),
    ("rgb_to_grayscale", [(None, 8, 6, 3)], {}),
    ("extract_patches", [(None, 8, 6, 3), 2], {}),
    ("pad_images", [(None, 8, 6, 3), 1, 2, 0, 1], {}),
    ("crop_images", [(None, 8, 6, 3), 1, 2, 0, 1], {}),
    ("sobel_edges", [(None, 8, 6, 3)], {}),
    ("affine_transform", [(None, 8, 6, 3), (None, 8)], {}),
])
def test_symbolic_specs_match_keras(name, specs, kwargs):
    check_symbolic(f"image.{name}", *specs, **kwargs)


@pytest.mark.parametrize("call, message", [
    (lambda: ops.image.resize(IMG, (4, 4), interpolation="cubic"), "interpolation"),
    (lambda: ops.image.resize(IMG[0, 0], (4, 4)), "rank"),
    (lambda: ops.image.pad_images(IMG, 1, 1), "exactly two"),
    (lambda: ops.image.rgb_to_hsv(UINT8), "float dtype"),
    (lambda: ops.image.affine_transform(IMG, SHIFT, fill_mode="edge"), "fill_mode"),
    (lambda: ops.image.map_coordinates(IMG[0], [[0.0], [1.0]], 1), "one entry per axis"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
