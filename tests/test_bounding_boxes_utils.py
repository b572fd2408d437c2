"""`kestrel.utils.bounding_boxes` against real Keras 3 (torch backend) on the same inputs."""
import doctest
import os

import numpy as np
import pytest
import torch

from kestrel.utils import bounding_boxes as bb
from kestrel.utils.bounding_boxes import converters, deltas, iou

os.environ.setdefault("KERAS_BACKEND", "torch")
RNG = np.random.default_rng(0)
XY = RNG.uniform(0, 40, (2, 5, 2))
BOXES = np.concatenate([XY, XY + RNG.uniform(1, 30, (2, 5, 2))], -1).astype(np.float32)
FORMATS = bb.SUPPORTED_FORMATS


@pytest.fixture(scope="module")
def kb():
    import keras

    assert keras.backend.backend() == "torch"
    return keras.utils.bounding_boxes


def _np(x):
    return np.asarray(x.detach().cpu()) if isinstance(x, torch.Tensor) else np.asarray(x)


def test_public_names_match_keras(kb):
    theirs = {n for n in dir(kb) if not n.startswith("_")}
    assert theirs == set(bb.__all__)


@pytest.mark.parametrize("source", FORMATS)
def test_convert_format_every_pair_matches_keras(kb, source):
    boxes = _np(kb.convert_format(BOXES.copy(), "xyxy", source, height=80, width=70))
    for target in FORMATS:
        expected = _np(kb.convert_format(boxes.copy(), source, target, height=80, width=70))
        got = bb.convert_format(boxes, source, target, height=80, width=70)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_convert_format_dict_dtype_torch_and_errors():
    boxes = {"boxes": torch.tensor([[1, 2, 3, 4]]), "labels": torch.tensor([7])}
    got = bb.convert_format(boxes, "XYXY", "xywh", dtype="float64")
    assert got["boxes"].dtype == torch.float64 and got["labels"].tolist() == [7]
    assert got["boxes"].tolist() == [[1.0, 2.0, 2.0, 2.0]]
    with pytest.raises(ValueError, match="Received: target='xyz'"):
        bb.convert_format(BOXES, "xyxy", "xyz")
    with pytest.raises(ValueError, match="height"):
        bb.convert_format(BOXES, "xyxy", "rel_xyxy")
    with pytest.raises(ValueError, match=r"boxes.shape=\(2, 3\)"):
        bb.convert_format(np.zeros((2, 3)), "xyxy", "xywh")


def test_clip_crop_pad_affine_match_keras(kb):
    data = {"boxes": BOXES * 2 - 20, "labels": np.arange(10).reshape(2, 5)}
    for fmt, (h, w) in (("xyxy", (50, 60)), ("rel_xyxy", (None, None))):
        source = data if fmt == "xyxy" else dict(data, boxes=data["boxes"] / 100)
        expected = kb.clip_to_image_size(dict(source), height=h, width=w,
                                         bounding_box_format=fmt)
        got = bb.clip_to_image_size(source, height=h, width=w, bounding_box_format=fmt)
        np.testing.assert_allclose(got["boxes"].numpy(), _np(expected["boxes"]), atol=1e-6)
        np.testing.assert_array_equal(got["labels"].numpy(), _np(expected["labels"]))
    np.testing.assert_allclose(bb.crop(BOXES, 5, 7, 30, 40).numpy(),
                               _np(kb.crop(BOXES, 5, 7, 30, 40)), atol=1e-6)
    np.testing.assert_allclose(bb.pad(BOXES, 5, 7).numpy(), _np(kb.pad(BOXES, 5, 7)), atol=1e-6)
    params = [np.array(v, np.float32) for v in
              ([30.0, -10.0], [0.1, -0.2], [0.05, 0.0], [1.2, 0.8], [10.0, 0.0], [0.0, -15.0])]
    expected = kb.affine_transform(BOXES, *params, height=80, width=70)
    got = bb.affine_transform(BOXES, *params, height=80, width=70)
    np.testing.assert_allclose(got.numpy(), _np(expected), rtol=1e-4, atol=1e-3)
    with pytest.raises(NotImplementedError, match="bounding_box_format='yxyx'"):
        bb.crop(BOXES, 0, 0, 1, 1, bounding_box_format="yxyx")


@pytest.mark.parametrize("fmt", ["xyxy", "center_yxhw", "rel_xywh"])
def test_iou_and_ciou_match_keras(kb, fmt):
    boxes = _np(kb.convert_format(BOXES.copy(), "xyxy", fmt, height=80, width=70))
    shape = (80, 70, 3)
    others = boxes[:, ::-1].copy()
    others[0, 1] = -1  # a padding box
    for a, b in ((boxes, others), (boxes[0], others), (boxes[0], others[1])):
        for masking in (False, True)[:1 + (a.ndim == b.ndim)]:  # Keras masks equal ranks
            expected = kb.compute_iou(a, b, fmt, use_masking=masking, image_shape=shape)
            got = bb.compute_iou(a, b, fmt, use_masking=masking, image_shape=shape)
            np.testing.assert_allclose(got.numpy(), _np(expected), rtol=1e-5, atol=1e-6)
    if not fmt.startswith("rel"):  # Keras refuses relative formats in compute_ciou
        np.testing.assert_allclose(bb.compute_ciou(boxes, others, fmt).numpy(),
                                   _np(kb.compute_ciou(boxes, others, fmt)), atol=1e-5)
    with pytest.raises(ValueError, match="rank 2"):
        bb.compute_iou(boxes[0, 0], boxes[0], fmt, image_shape=shape)


def test_deltas_match_keras_and_round_trip(kb):
    anchors = BOXES[0]
    for enc, var in (("center_yxhw", None), ("center_xywh", [0.1, 0.1, 0.2, 0.2])):
        expected = kb.encode_box_to_deltas(anchors, BOXES, "xyxy", "rel_xyxy", enc, var,
                                           image_shape=(80, 70, 3))
        got = bb.encode_box_to_deltas(anchors, BOXES, "xyxy", "rel_xyxy", enc, var,
                                      image_shape=(80, 70, 3))
        np.testing.assert_allclose(got.numpy(), _np(expected), rtol=1e-5, atol=1e-5)
        back = bb.decode_deltas_to_boxes({"p3": anchors}, {"p3": got}, "xyxy", "rel_xyxy", enc,
                                         var, image_shape=(80, 70, 3))["p3"]
        theirs = kb.decode_deltas_to_boxes(anchors, got.clone(), "xyxy", "rel_xyxy", enc, var,
                                           image_shape=(80, 70, 3))
        np.testing.assert_allclose(back.numpy(), _np(theirs), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(back.numpy(), BOXES, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="encoding_format='xyxy'"):
        bb.encode_box_to_deltas(anchors, BOXES, "xyxy", "xyxy", "xyxy")


@pytest.mark.parametrize("module", [converters, deltas, iou])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0
