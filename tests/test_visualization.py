import doctest
import importlib
import os
import sys

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.image  # noqa: E402

os.environ["KERAS_BACKEND"] = "torch"
import keras  # noqa: E402

import kestrel  # noqa: E402
from kestrel import visualization  # noqa: E402
from kestrel.visualization import (draw_bounding_boxes, draw_segmentation_masks,  # noqa: E402
                                   plot_bounding_box_gallery, plot_image_gallery,
                                   plot_segmentation_mask_gallery)

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (2, 6, 7, 3)).astype("float32")
MASKS = RNG.integers(-1, 4, (2, 6, 7, 1))


# --- draw_segmentation_masks: pixel-equal to Keras 3 -------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"num_classes": 4},
    {"num_classes": 4, "alpha": 0.37},
    {"num_classes": 4, "ignore_index": 0},
    {"num_classes": 4, "blend": False},
    {"num_classes": 4, "color_mapping": {0: (1, 2, 3), 1: (200, 10, 10), 2: (0, 0, 255),
                                         3: (9, 9, 9)}},
])
def test_draw_segmentation_masks_matches_keras(kwargs):
    expected = keras.visualization.draw_segmentation_masks(IMAGES, MASKS, **kwargs)
    expected = keras.ops.convert_to_numpy(expected).astype("uint8")
    result = draw_segmentation_masks(IMAGES, MASKS, **kwargs)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


def test_draw_segmentation_masks_torch_channels_first_and_3d_masks():
    expected = draw_segmentation_masks(IMAGES, MASKS, num_classes=4)
    images = torch.tensor(IMAGES).permute(0, 3, 1, 2)
    masks = torch.tensor(MASKS).permute(0, 3, 1, 2)
    result = draw_segmentation_masks(images, masks, num_classes=4, data_format="channels_first")
    np.testing.assert_array_equal(result, expected.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(draw_segmentation_masks(IMAGES, MASKS[..., 0], num_classes=4),
                                  expected)


def test_draw_segmentation_masks_infers_every_class_and_skips_unmapped():
    masks = np.array([[[0, 1], [2, 2]]])
    images = np.full((1, 2, 2, 3), 100.0)
    inferred = draw_segmentation_masks(images, masks, blend=False)  # num_classes = max + 1 = 3
    np.testing.assert_array_equal(inferred, draw_segmentation_masks(images, masks, 3, blend=False))
    assert inferred[0, 1, 1].tolist() != [100, 100, 100]
    mapped = draw_segmentation_masks(images, masks, 3, color_mapping={1: (255, 0, 0)}, blend=False)
    assert mapped[0, 0].tolist() == [[100, 100, 100], [255, 0, 0]]
    assert mapped[0, 1].tolist() == [[100, 100, 100]] * 2


def test_draw_segmentation_masks_errors():
    with pytest.raises(TypeError, match="integer dtype"):
        draw_segmentation_masks(IMAGES, MASKS.astype("float32"))
    with pytest.raises(ValueError, match="4D"):
        draw_segmentation_masks(IMAGES[0], MASKS[0])
    with pytest.raises(ValueError, match="alpha=1.5"):
        draw_segmentation_masks(IMAGES, MASKS, alpha=1.5)
    with pytest.raises(ValueError, match="must match"):
        draw_segmentation_masks(IMAGES, MASKS[:, :3])
    with pytest.raises(ValueError, match="data_format='nhwc'"):
        draw_segmentation_masks(IMAGES, MASKS, data_format="nhwc")


# --- draw_bounding_boxes (Keras needs OpenCV for it: checked against hand-made outlines) ---------

def _outline(height, width, x1, y1, x2, y2):
    """Reference: 1-pixel outline of the inclusive box, clipped to the image."""
    grid = np.zeros((height, width), bool)
    ys, xs = np.mgrid[:height, :width]
    inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
    grid[inside & ((xs == x1) | (xs == x2) | (ys == y1) | (ys == y2))] = True
    return grid


def test_draw_bounding_boxes_outlines_formats_and_skips():
    images = np.zeros((2, 20, 30, 3), "uint8")
    boxes = {"boxes": np.array([[[3, 4, 12, 9], [0, 0, 5, 5]], [[25, 15, 40, 30], [1, 1, 2, 2]]]),
             "labels": np.array([[0, -1], [1, 1]])}
    out = draw_bounding_boxes(images, boxes, "xyxy", color=(255, 0, 0), line_thickness=1)
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, ..., 0] == 255, _outline(20, 30, 3, 4, 12, 9))
    expected = _outline(20, 30, 25, 15, 40, 30) | _outline(20, 30, 1, 1, 2, 2)
    np.testing.assert_array_equal(out[1, ..., 0] == 255, expected)
    assert not out[..., 1:].any()
    rel = {"boxes": boxes["boxes"] / np.array([30, 20, 30, 20]), "labels": boxes["labels"]}
    rel_out = draw_bounding_boxes(images, rel, "rel_xyxy", color=(255, 0, 0), line_thickness=1)
    np.testing.assert_array_equal(rel_out, out)
    xywh = {"boxes": np.array([[[3, 4, 9, 5]]] * 2), "labels": np.array([[0]] * 2)}
    xywh_out = draw_bounding_boxes(images, xywh, "xywh", color=(255, 0, 0), line_thickness=1)
    np.testing.assert_array_equal(xywh_out[0], out[0])


def test_draw_bounding_boxes_thickness_scaling_and_channels_first():
    images = torch.full((1, 3, 16, 16), 0.5)  # floats <= 1 are read as [0, 1]
    boxes = {"boxes": torch.tensor([[[4.0, 4.0, 11.0, 11.0]]]), "labels": torch.tensor([[2]])}
    out = draw_bounding_boxes(images, boxes, "xyxy", color=(0, 255, 0), line_thickness=3,
                              data_format="channels_first")
    assert out.shape == (1, 3, 16, 16)
    green = out[0, 1] == 255
    assert green[3:6, 3:13].all() and green[3:13, 10:13].all()  # 3 pixels, centred on edges
    assert not green[6:10, 6:10].any() and not green[2].any()
    assert out[0, 0, 7, 7] == 127  # 0.5 * 255, truncated


def test_draw_bounding_boxes_labels_with_pillow():
    pytest.importorskip("PIL")
    images = np.zeros((1, 60, 60, 3), "uint8")
    boxes = {"boxes": np.array([[[10, 40, 50, 55]]]), "labels": np.array([[1]]),
             "confidences": np.array([[0.9]])}
    plain = draw_bounding_boxes(images, boxes, "xyxy", color=(255, 255, 255), line_thickness=1)
    labelled = draw_bounding_boxes(images, boxes, "xyxy", class_mapping={1: "cat"},
                                   color=(255, 255, 255), line_thickness=1, font_scale=0.5)
    text = labelled[0, ..., 0] != plain[0, ..., 0]
    assert text[:32].any()  # above the box (baseline at y1 - 8)
    assert not text[40:].any()


def test_draw_bounding_boxes_without_pillow_warns_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    boxes = {"boxes": np.array([[[1, 1, 5, 5], [2, 2, 6, 6]]]), "labels": np.array([[1, 1]])}
    with pytest.warns(UserWarning, match="Pillow") as record:
        out = draw_bounding_boxes(np.zeros((1, 8, 8, 3)), boxes, "xyxy", class_mapping={1: "a"})
    assert len(record) == 1 and out.any()


def test_draw_bounding_boxes_errors():
    images = np.zeros((1, 8, 8, 3))
    with pytest.raises(TypeError, match="type\\(bounding_boxes\\)=list"):
        draw_bounding_boxes(images, [], "xyxy")
    with pytest.raises(ValueError, match="'labels'"):
        draw_bounding_boxes(images, {"boxes": np.zeros((1, 1, 4))}, "xyxy")
    with pytest.raises(ValueError, match="4D"):
        draw_bounding_boxes(images[0], {"boxes": [], "labels": []}, "xyxy")
    with pytest.raises(ValueError, match="one value per image channel"):
        draw_bounding_boxes(images[..., :1], {"boxes": np.zeros((1, 1, 4)),
                                              "labels": np.zeros((1, 1))}, "xyxy")


# --- galleries -----------------------------------------------------------------------------------

def test_plot_image_gallery_saved_like_keras(tmp_path):
    images = RNG.integers(0, 256, (4, 12, 12, 3)).astype("float32") / 255.0
    ours, theirs = tmp_path / "ours.png", tmp_path / "keras.png"
    assert plot_image_gallery(images, value_range=(0, 1), path=ours) is not None
    keras.visualization.plot_image_gallery(images, value_range=(0, 1), path=str(theirs))
    ours, theirs = matplotlib.image.imread(ours), matplotlib.image.imread(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_plot_image_gallery_layout_titles_and_errors():
    fig = plot_image_gallery(torch.zeros(8, 3, 5, 5), y_true=[0, 1], label_map={0: "cat"},
                             data_format="channels_first", show=False)
    assert len(fig.axes) == 9 and fig.get_size_inches().tolist() == [6.0, 6.0]
    assert sum(bool(ax.images) for ax in fig.axes) == 8  # Keras 3 would show 6 of 8
    assert [ax.get_title() for ax in fig.axes[:3]] == ["Label: cat", "Label: Unknown", ""]
    fig = plot_image_gallery(np.zeros((3, 4, 4, 1)), rows=1, scale=1.5, show=False)
    assert fig.get_size_inches().tolist() == [4.5, 1.5]
    assert fig.axes[0].images[0].get_array().shape == (4, 4)  # grayscale
    with pytest.raises(ValueError, match="not both"):
        plot_image_gallery(np.zeros((1, 4, 4, 3)), path="x.png", show=True)
    with pytest.raises(ValueError, match="label_map"):
        plot_image_gallery(np.zeros((1, 4, 4, 3)), y_pred=[1], show=False)


def test_galleries_need_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"kestrel\[viz\]"):
        plot_image_gallery(np.zeros((1, 4, 4, 3)), show=False)
    with pytest.raises(ImportError, match="plot_bounding_box_gallery"):
        plot_bounding_box_gallery(np.zeros((1, 4, 4, 3)), "xyxy", show=False)


def test_plot_bounding_box_gallery(tmp_path):
    images = np.zeros((2, 16, 16, 3))
    y_true = {"boxes": np.array([[[2, 2, 10, 10]]] * 2), "labels": np.array([[0]] * 2)}
    y_pred = {"boxes": np.array([[[4, 4, 12, 12]]] * 2), "labels": np.array([[0]] * 2)}
    fig = plot_bounding_box_gallery(images, "xyxy", y_true=y_true, y_pred=y_pred, legend=True,
                                    line_thickness=1, show=False)
    assert len(fig.axes) == 2 and len(fig.legends) == 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Ground Truth", "Prediction"]
    shown = fig.axes[0].images[0].get_array()
    assert shown[2, 2].tolist() == [0, 188, 212] and shown[12, 12].tolist() == [255, 235, 59]
    scaled = plot_bounding_box_gallery(np.full((1, 16, 16, 3), 0.5), "xyxy", y_true=y_true,
                                       value_range=(0, 1), show=False)
    assert scaled.axes[0].images[0].get_array()[0, 0].tolist() == [127, 127, 127]
    path = tmp_path / "boxes.png"
    plot_bounding_box_gallery(images, "xyxy", y_true=y_true, path=path)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="not both"):
        plot_bounding_box_gallery(images, "xyxy", legend=True, legend_handles=[object()])


def test_plot_segmentation_mask_gallery(tmp_path):
    images = np.full((3, 2, 2, 3), 0.5)
    masks = np.array([[[1, 1], [0, -1]]] * 3)
    fig = plot_segmentation_mask_gallery(images, 2, value_range=(0, 1), y_true=masks,
                                         y_pred=masks[..., None], show=False)
    assert len(fig.axes) == 9 and fig.get_size_inches().tolist() == [6.0, 6.0]
    original, drawn = (ax.images[0].get_array() for ax in fig.axes[:2])
    assert original[0, 0].tolist() == [127, 127, 127]
    np.testing.assert_array_equal(
        drawn, draw_segmentation_masks(np.full((1, 2, 2, 3), 127.5), masks[:1], 2)[0])
    path = tmp_path / "masks.png"
    channels_first = np.transpose(images, (0, 3, 1, 2))
    plot_segmentation_mask_gallery(channels_first, 2, value_range=(0, 1),
                                   y_true=masks[:, None], data_format="channels_first", path=path)
    assert matplotlib.image.imread(path).ndim == 3


def test_lazy_module_and_docstring_examples():
    assert kestrel.visualization is visualization
    assert set(visualization.__all__) == {n for n in dir(keras.visualization) if n[0] != "_"}
    for name in ("draw_bounding_boxes", "draw_segmentation_masks", "plot_image_gallery",
                 "annotated_galleries"):
        module = importlib.import_module(f"kestrel.visualization.{name}")
        result = doctest.testmod(module, extraglobs=vars(visualization))
        assert result.attempted > 0 and result.failed == 0, name
