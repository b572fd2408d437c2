"""`ops.image.scale_and_translate` and `ops.ctc_decode(strategy="beam_search")` against real
Keras 3 (torch backend) on the same inputs."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from kestrel import ops  # noqa: E402

RNG = np.random.default_rng(7)
IMAGES = RNG.normal(size=(2, 7, 9, 3)).astype("float32")
METHODS = ["linear", "bilinear", "trilinear", "cubic", "bicubic", "tricubic", "lanczos3",
           "lanczos5"]
# (output shape, scale, translation): downsampling, upsampling, identity, mixed with shifts
GEOMETRIES = [((2, 4, 5, 3), [0.5, 0.6], [0.3, -0.2]), ((2, 15, 20, 3), [2.1, 2.3], [-0.5, 1.0]),
              ((2, 7, 9, 3), [1.0, 1.0], [0.0, 0.0]), ((2, 5, 13, 3), [0.7, 1.5], [2.0, -3.0])]


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("antialias", [True, False])
def test_scale_and_translate_matches_keras(method, antialias):
    for shape, scale, shift in GEOMETRIES:
        scale, shift = np.array(scale, "float32"), np.array(shift, "float32")
        expected = keras.ops.image.scale_and_translate(IMAGES, shape, scale, shift, (1, 2),
                                                       method, antialias)
        got = ops.image.scale_and_translate(IMAGES, shape, scale, shift, (1, 2), method,
                                            antialias)
        assert tuple(got.shape) == shape and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), _np(expected), atol=1e-5)


def test_scale_and_translate_integer_images_and_one_axis():
    images = RNG.integers(0, 255, (1, 6, 6, 1)).astype("uint8")
    args = ((1, 9, 4, 1), [1.5, 0.7], [0.1, 0.2], (1, 2), "cubic")
    got = ops.image.scale_and_translate(images, *args)
    assert got.dtype == torch.uint8
    np.testing.assert_array_equal(got.numpy(), _np(keras.ops.image.scale_and_translate(
        images, *args)))
    # a single spatial axis (negative index), rank-2 input, as in Keras' docstring example
    plane = np.arange(9, dtype="float32").reshape(3, 3)
    got = ops.image.scale_and_translate(plane, (3, 5), [2.0], [-0.5], (-1,), "linear")
    expected = keras.ops.image.scale_and_translate(plane, (3, 5), [2.0], [-0.5], (-1,),
                                                   "linear")
    np.testing.assert_allclose(got.numpy(), _np(expected), atol=1e-6)


def test_scale_and_translate_symbolic_and_errors():
    x = kestrel.Input((7, 9, 3))
    y = ops.image.scale_and_translate(x, (None, 4, 5, 3), [0.5, 0.6], [0.0, 0.0], (1, 2),
                                      "lanczos3")
    assert y.shape == (None, 4, 5, 3)
    model = kestrel.Model(x, y)
    np.testing.assert_allclose(
        model(torch.from_numpy(IMAGES)).numpy(),
        ops.image.scale_and_translate(IMAGES, (2, 4, 5, 3), [0.5, 0.6], [0.0, 0.0], (1, 2),
                                      "lanczos3").numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="method='nearest'"):
        ops.image.scale_and_translate(IMAGES, (2, 4, 5, 3), [1, 1], [0, 0], (1, 2), "nearest")
    with pytest.raises(ValueError, match="one value per spatial dim"):
        ops.image.scale_and_translate(IMAGES, (2, 4, 5, 3), [1.0], [0.0, 0.0], (1, 2), "cubic")


def _beam_cases():
    rng = np.random.default_rng(3)
    for case in range(10):
        batch, steps, classes = rng.integers(1, 5), rng.integers(1, 9), rng.integers(2, 7)
        logits = rng.normal(size=(batch, steps, classes)).astype("float32") * 2
        lengths = rng.integers(0 if case % 3 == 0 else 1, steps + 1, size=batch).astype("int32")
        width = int(rng.integers(1, 12))
        yield (logits, lengths, width, int(rng.integers(1, width + 1)),
               [0, None, int(classes) - 1, 1][case % 4])


def test_ctc_beam_search_matches_keras():
    for logits, lengths, width, top, blank in _beam_cases():
        kwargs = dict(strategy="beam_search", beam_width=width, top_paths=top, mask_index=blank)
        expected_paths, expected_scores = map(_np, keras.ops.ctc_decode(logits, lengths,
                                                                        **kwargs))
        paths, scores = ops.ctc_decode(logits, lengths, **kwargs)
        assert paths.dtype == torch.int32 and tuple(paths.shape) == expected_paths.shape
        np.testing.assert_allclose(scores.numpy(), expected_scores, atol=1e-5)
        found = np.isfinite(expected_scores)  # -inf rows: fewer distinct paths than top_paths
        np.testing.assert_array_equal(paths.numpy().transpose(1, 0, 2)[found],
                                      expected_paths.transpose(1, 0, 2)[found])


def test_ctc_beam_search_longer_sequences_and_graph():
    logits = np.random.default_rng(5).normal(size=(3, 20, 6)).astype("float32")
    lengths = np.array([20, 13, 1], "int32")
    kwargs = dict(strategy="beam_search", beam_width=8, top_paths=3)
    expected = [_np(v) for v in keras.ops.ctc_decode(logits, lengths, **kwargs)]
    got = ops.ctc_decode(logits, lengths, **kwargs)
    np.testing.assert_array_equal(got[0].numpy(), expected[0])
    np.testing.assert_allclose(got[1].numpy(), expected[1], atol=1e-5)
    x, n = kestrel.Input((20, 6)), kestrel.Input((), dtype="int32")
    paths, scores = ops.ctc_decode(x, n, **kwargs)
    assert paths.shape == (3, None, 20) and scores.shape == (None, 3)
    outs = kestrel.Model([x, n], [paths, scores])([torch.from_numpy(logits),
                                                   torch.from_numpy(lengths)])
    np.testing.assert_array_equal(outs[0].numpy(), expected[0])


def test_ctc_decode_arguments():
    logits = np.zeros((1, 3, 4), "float32")
    with pytest.raises(ValueError, match="strategy 'beam'"):
        ops.ctc_decode(logits, [3], strategy="beam")
    with pytest.raises(ValueError, match="beam_width=0"):
        ops.ctc_decode(logits, [3], strategy="beam_search", beam_width=0)
    with pytest.raises(ValueError, match="mask_index=4"):
        ops.ctc_decode(logits, [3], mask_index=4)
