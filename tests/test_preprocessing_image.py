"""keras.preprocessing.image (Keras 2): ImageDataGenerator against Keras 3's legacy module (same
code as Keras 2) for warps, normalization and fit; directory and dataframe iterators on PNGs
written in tmp_path; model.fit on datagen.flow."""
import doctest
import os

import numpy as np
import pytest
import torch

import kestrel
from kestrel.preprocessing import _affine, _image_io, image
from kestrel.preprocessing.image import (ImageDataGenerator, apply_affine_transform,
                                         array_to_img, img_to_array, load_img, save_img,
                                         smart_resize)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (6, 7, 9, 3)).astype("float32")


@pytest.fixture(scope="module")
def legacy():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    from keras.src.legacy.preprocessing import image as legacy_image

    return legacy_image


@pytest.mark.parametrize("module", [image, _affine, _image_io])
def test_doctests(module):
    assert doctest.testmod(module, extraglobs={"np": np}).failed == 0


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "wrap", "constant"])
@pytest.mark.parametrize("order", [0, 1])
def test_affine_transform_matches_keras(legacy, fill_mode, order):
    x = IMAGES[0]
    for params in (dict(theta=33), dict(tx=2.5, ty=-3.2), dict(shear=20),
                   dict(zx=0.7, zy=1.4), dict(theta=-70, tx=1.3, shear=-10, zx=1.2, zy=0.8)):
        for axes in (dict(row_axis=0, col_axis=1, channel_axis=2),
                     dict(row_axis=1, col_axis=2, channel_axis=0)):
            arr = x if axes["channel_axis"] == 2 else x.transpose(2, 0, 1)
            ours = apply_affine_transform(arr, **params, **axes, fill_mode=fill_mode, cval=-5.0,
                                          order=order)
            ref = legacy.apply_affine_transform(arr, **params, **axes, fill_mode=fill_mode,
                                                cval=-5.0, order=order)
            np.testing.assert_allclose(ours, ref, atol=1e-3, err_msg=str((params, axes)))


def test_affine_identity_and_errors():
    img = IMAGES[0]
    assert apply_affine_transform(img, row_axis=0, col_axis=1, channel_axis=2) is img
    with pytest.raises(ValueError, match="fill_mode"):
        apply_affine_transform(IMAGES[0], theta=3, row_axis=0, col_axis=1, channel_axis=2,
                               fill_mode="mirror")
    with pytest.raises(ValueError, match="3D"):
        apply_affine_transform(IMAGES, theta=3)


def test_random_transform_matches_keras_with_same_seed(legacy):
    kwargs = dict(rotation_range=30, width_shift_range=0.2, height_shift_range=[1, 2],
                  shear_range=10, zoom_range=0.3, channel_shift_range=20.0, fill_mode="reflect",
                  horizontal_flip=True, vertical_flip=True, brightness_range=(0.5, 1.5))
    ours, ref = ImageDataGenerator(**kwargs), legacy.ImageDataGenerator(**kwargs)
    for seed in range(4):
        p_ours = ours.get_random_transform(IMAGES[0].shape, seed=seed)
        p_ref = ref.get_random_transform(IMAGES[0].shape, seed=seed)
        assert p_ours.keys() == p_ref.keys()
        for key in p_ref:
            np.testing.assert_allclose(p_ours[key] if p_ours[key] is not None else np.nan,
                                       p_ref[key] if p_ref[key] is not None else np.nan)
        np.testing.assert_allclose(ours.random_transform(IMAGES[1], seed=seed),
                                   ref.random_transform(IMAGES[1], seed=seed), atol=1e-2)


def test_rescale_and_samplewise(legacy):
    kwargs = dict(rescale=1 / 255.0, samplewise_center=True, samplewise_std_normalization=True)
    ours, ref = ImageDataGenerator(**kwargs), legacy.ImageDataGenerator(**kwargs)
    np.testing.assert_allclose(ours.standardize(IMAGES[0].copy()),
                               ref.standardize(IMAGES[0].copy()), rtol=1e-5, atol=1e-6)
    x = ImageDataGenerator(rescale=0.5).standardize(np.full((2, 2, 1), 8.0))
    assert x.tolist() == [[[4.0], [4.0]], [[4.0], [4.0]]]


@pytest.mark.parametrize("kwargs", [
    dict(featurewise_center=True),
    dict(featurewise_center=True, featurewise_std_normalization=True, rescale=0.01),
    dict(zca_whitening=True),
])
def test_featurewise_fit_matches_keras(legacy, kwargs):
    ours, ref = ImageDataGenerator(**kwargs), legacy.ImageDataGenerator(**kwargs)
    x = IMAGES[:, :4, :4]
    ours.fit(x)
    ref.fit(x)
    for name in ("mean", "std", "zca_whitening_matrix"):
        if getattr(ref, name) is not None:
            np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-3,
                                       atol=1e-4)
    np.testing.assert_allclose(ours.standardize(x[0].copy()), ref.standardize(x[0].copy()),
                               rtol=1e-3, atol=1e-3)
    if "std" in str(kwargs):  # the standardized training set has zero mean and unit std
        out = np.stack([ours.standardize(img.copy()) for img in x])
        np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-4)
        np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_flow_batches_subsets_and_seed():
    gen = ImageDataGenerator(rescale=2.0, validation_split=0.5)
    y = np.array([0, 1, 0, 1, 0, 1])
    it = gen.flow(IMAGES, y, batch_size=4, shuffle=False, sample_weight=np.arange(6.0))
    x0, y0, w0 = it[0]
    np.testing.assert_allclose(x0, IMAGES[:4] * 2)
    assert y0.tolist() == [0, 1, 0, 1] and w0.tolist() == [0, 1, 2, 3] and len(it) == 2
    assert it[1][0].shape == (2, 7, 9, 3)
    val = gen.flow(IMAGES, y, subset="validation", shuffle=False)
    train = gen.flow(IMAGES, y, subset="training", shuffle=False)
    assert val.n == 3 and train.n == 3 and val[0][1].tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="different classes"):
        gen.flow(IMAGES, np.array([0, 0, 0, 1, 1, 1]), subset="training")
    a = ImageDataGenerator(rotation_range=40).flow(IMAGES, y, seed=3, batch_size=3)
    b = ImageDataGenerator(rotation_range=40).flow(IMAGES, y, seed=3, batch_size=3)
    np.testing.assert_array_equal(next(a)[0], next(b)[0])
    extra = gen.flow((IMAGES, np.arange(6)), y, batch_size=2, shuffle=False)[1]
    assert isinstance(extra[0], list) and extra[0][1].tolist() == [2, 3]


def test_fit_consumes_flow():
    x = RNG.uniform(0, 255, (32, 8, 8, 3)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 127).astype("float32")
    datagen = ImageDataGenerator(rescale=1 / 255.0, horizontal_flip=True, rotation_range=10)
    model = kestrel.Sequential([kestrel.layers.Input((8, 8, 3)), kestrel.layers.Flatten(),
                                kestrel.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(datagen.flow(x, y, batch_size=8), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


def _write_tree(root):
    colors = {"zebra": (250, 250, 250), "ant": (10, 20, 30), "cat": (200, 0, 0)}
    for name, color in colors.items():
        os.makedirs(root / name)
        for i in range(3 if name != "cat" else 2):
            save_img(str(root / name / f"img{i}.png"), np.full((6, 10, 3), color, "float32"),
                     scale=False)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "stray.png").write_bytes(b"")


def test_flow_from_directory(tmp_path):
    _write_tree(tmp_path)
    gen = ImageDataGenerator(rescale=1 / 255.0)
    it = gen.flow_from_directory(str(tmp_path), target_size=(4, 5), batch_size=4, shuffle=False)
    assert it.class_indices == {"ant": 0, "cat": 1, "zebra": 2}
    assert it.filenames == [os.path.join(c, f"img{i}.png") for c, n in
                            (("ant", 3), ("cat", 2), ("zebra", 3)) for i in range(n)]
    assert it.classes.tolist() == [0, 0, 0, 1, 1, 2, 2, 2] and len(it) == 2
    x, y = it[0]
    assert x.shape == (4, 4, 5, 3) and y.shape == (4, 3)
    np.testing.assert_allclose(x[0, 0, 0], np.array([10, 20, 30]) / 255.0, rtol=1e-6)
    assert y.argmax(axis=1).tolist() == [0, 0, 0, 1]
    sparse = gen.flow_from_directory(str(tmp_path), target_size=(4, 5), class_mode="sparse",
                                     color_mode="grayscale", classes=["zebra", "ant"],
                                     shuffle=False)
    xs, ys = sparse[0]
    assert xs.shape == (6, 4, 5, 1) and ys.tolist() == [0, 0, 0, 1, 1, 1]
    split = ImageDataGenerator(validation_split=0.34).flow_from_directory(
        str(tmp_path), target_size=(4, 5), subset="validation", class_mode=None)
    assert split.samples == 2 and split[0].shape == (2, 4, 5, 3)  # int(0.34 * n) per class
    assert split.filenames == [os.path.join("ant", "img0.png"), os.path.join("zebra", "img0.png")]


def test_fit_consumes_flow_from_directory(tmp_path):
    _write_tree(tmp_path)
    it = ImageDataGenerator(rescale=1 / 255.0).flow_from_directory(
        str(tmp_path), target_size=(4, 4), batch_size=3)
    model = kestrel.Sequential([kestrel.layers.Input((4, 4, 3)), kestrel.layers.Flatten(),
                                kestrel.layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    assert np.isfinite(model.fit(it, epochs=1, verbose=0).history["loss"]).all()


def test_flow_from_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    _write_tree(tmp_path)
    df = pd.DataFrame({"filename": ["ant/img0.png", "zebra/img1.png", "missing.png",
                                    "cat/img0.png"],
                       "class": ["ant", "zebra", "ant", "cat"], "w": [1.0, 2.0, 3.0, 4.0]})
    gen = ImageDataGenerator()
    with pytest.warns(UserWarning, match="invalid image filename"):
        it = gen.flow_from_dataframe(df, str(tmp_path), weight_col="w", target_size=(3, 3),
                                     shuffle=False)
    assert it.class_indices == {"ant": 0, "cat": 1, "zebra": 2}
    x, y, w = it[0]
    assert x.shape == (3, 3, 3, 3) and y.argmax(1).tolist() == [0, 2, 1]
    assert w.tolist() == [1.0, 2.0, 4.0]
    raw = gen.flow_from_dataframe(df.iloc[[0, 1]].assign(v=[0.5, 1.5]), str(tmp_path),
                                  y_col="v", class_mode="raw", target_size=(3, 3),
                                  shuffle=False)
    assert raw[0][1].tolist() == [0.5, 1.5]


def test_image_io_round_trip(tmp_path, legacy):
    arr = RNG.uniform(0, 255, (5, 6, 3)).astype("float32")
    path = tmp_path / "a.png"
    save_img(path, arr, scale=False)
    loaded = img_to_array(load_img(path))
    np.testing.assert_array_equal(loaded, arr.astype("uint8"))
    assert img_to_array(load_img(path, color_mode="grayscale")).shape == (5, 6, 1)
    assert load_img(path, target_size=(3, 4)).size == (4, 3)
    assert img_to_array(load_img(path), data_format="channels_first").shape == (3, 5, 6)
    assert array_to_img(arr[:, :, :1]).mode == "L" and array_to_img(arr).mode == "RGB"
    np.testing.assert_array_equal(np.asarray(array_to_img(arr)),
                                  np.asarray(legacy.image_utils.array_to_img(arr)))
    with pytest.raises(ValueError, match="color_mode"):
        load_img(path, color_mode="cmyk")


def test_smart_resize_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    x = RNG.uniform(0, 1, (2, 10, 20, 3)).astype("float32")
    for size in ((5, 5), (8, 4)):
        np.testing.assert_allclose(smart_resize(x, size),
                                   keras.preprocessing.image.smart_resize(x, size), atol=1e-5)
    assert smart_resize(x[0], (4, 4)).shape == (4, 4, 3)
    assert isinstance(smart_resize(torch.from_numpy(x), (4, 4)), torch.Tensor)
