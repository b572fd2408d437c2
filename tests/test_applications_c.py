"""Applications C: the deep and wide variants against real Keras 3 (slow).

Every architecture that tests A and B do not compare numerically is built here in real Keras
(torch backend) with `weights=None`, a fixed seed and random normalization statistics at a
small input size, saved as a legacy `.h5` and as a `.weights.h5`, and loaded from each file
into Kestrel: model name, layer names, parameter count and predictions must agree. One model
lives at a time (the Keras one is freed before Kestrel's are built) to keep memory sane.
"""
import gc
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402

import kestrel  # noqa: E402
from kestrel import applications  # noqa: E402
from tests.test_applications_b import _names, _randomize  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TOP = dict(include_top=True, classes=3)
# (architecture, keyword arguments): tops and poolings vary across the table
CASES = [
    ("ResNet101", TOP), ("ResNet152", dict(include_top=False, pooling="avg")),
    ("ResNet101V2", dict(include_top=False, pooling="max")), ("ResNet152V2", TOP),
    ("DenseNet169", dict(include_top=False, pooling="avg")), ("DenseNet201", TOP),
    ("NASNetLarge", dict(include_top=False, pooling="avg")),
    ("EfficientNetB2", TOP), ("EfficientNetB3", dict(include_top=False, pooling="max")),
    ("EfficientNetB4", dict(include_top=False, pooling="avg")), ("EfficientNetB5", TOP),
    ("EfficientNetB6", dict(include_top=False)), ("EfficientNetB7", TOP),
    ("EfficientNetV2B2", TOP), ("EfficientNetV2B3", dict(include_top=False, pooling="avg")),
    ("EfficientNetV2S", dict(include_top=False, pooling="max")), ("EfficientNetV2M", TOP),
    ("EfficientNetV2L", dict(include_top=False, pooling="avg")),
    ("ConvNeXtSmall", TOP), ("ConvNeXtBase", dict(include_top=False, pooling="avg")),
    ("ConvNeXtLarge", dict(include_top=False, pooling="max")), ("ConvNeXtXLarge", TOP),
]
SIZE = 32
# With random BatchNorm statistics, float rounding (Keras' BN formula vs torch's fused kernel)
# grows about 2x per stage in these 7-stage networks (1e-4 relative by block5 of V2M, total
# divergence at V2L's output); they keep Keras' initial statistics and agree exactly.
PLAIN_BN = {"EfficientNetV2M", "EfficientNetV2L"}


def _save_reference(name, kwargs, tmp_path, images):
    """Build Keras' model, save both weight files; return (paths, facts, predictions)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    reference = getattr(keras.applications, name)(weights=None, **kwargs)
    if name not in PLAIN_BN:
        _randomize(reference, np.random.default_rng(0))
    paths = (str(tmp_path / f"{name}.h5"), str(tmp_path / f"{name}.weights.h5"))
    with h5py.File(paths[0], "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    reference.save_weights(paths[1])
    facts = (reference.name, _names(reference), reference.count_params())
    expected = keras.ops.convert_to_numpy(reference(images, training=False))
    del reference
    keras.backend.clear_session()
    gc.collect()
    return paths, facts, expected


@pytest.mark.parametrize("name, kwargs", CASES, ids=[case[0] for case in CASES])
def test_matches_keras(name, kwargs, tmp_path):
    kwargs = {"input_shape": (SIZE, SIZE, 3), **kwargs}
    images = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    paths, facts, expected = _save_reference(name, kwargs, tmp_path, images)
    scale = max(1.0, float(np.abs(expected).max()))
    for path in paths:
        kestrel.backend.clear_session()
        model = getattr(applications, name)(weights=path, **kwargs)
        assert (model.name, _names(model), model.count_params()) == facts, path
        got = np.asarray(model.predict(images, verbose=0))
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale, err_msg=path)
        del model
        gc.collect()
