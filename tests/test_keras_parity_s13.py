"""Parity with real Keras 3 (torch backend) for gaps closed in s13: Normalization's
statistics shapes, ReversibleEmbedding's masks, unsorted LayerNormalization axes, the
masking warning, saving an unbuilt model's weights, and unzipped `.keras` directories."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import kestrel  # noqa: E402

ADAPT_2D = np.arange(12, dtype="float32").reshape(4, 3)
ADAPT_3D = np.random.RandomState(0).rand(2, 3, 4).astype("float32")


def _h5_layout(path):
    """{dataset path: shape} of an HDF5 file."""
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda k, v: out.update({k: v.shape}) if hasattr(v, "shape") else None)
    return out


# ---------------------------------------------------------------------- 1. Normalization
@pytest.mark.parametrize("data, kwargs", [(ADAPT_2D, {}), (ADAPT_2D, {"axis": None}),
                                          (ADAPT_3D, {"axis": 1}), (ADAPT_3D, {"axis": (1, 2)})])
def test_normalization_adapted_statistics_keep_the_broadcast_shape(data, kwargs):
    ours, ref = kestrel.layers.Normalization(**kwargs), keras.layers.Normalization(**kwargs)
    ours.adapt(data)
    ref.adapt(data)
    for name in ("mean", "variance"):
        np.testing.assert_allclose(getattr(ours, name).cpu().numpy(),
                                   keras.ops.convert_to_numpy(getattr(ref, name)), rtol=1e-6)
        assert tuple(getattr(ours, name).shape) == tuple(getattr(ref, name).shape)
    assert [w.path for w in ours.weights] == [w.path for w in ref.weights]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in ref.get_weights()]


def test_normalization_given_statistics_and_unbuilt_layer():
    kwargs = {"mean": [1.0, 2.0, 3.0], "variance": [1.0, 4.0, 9.0]}
    ours, ref = kestrel.layers.Normalization(**kwargs), keras.layers.Normalization(**kwargs)
    assert ours.mean is None and ref.mean is None
    ours.build((None, 3))
    ref.build((None, 3))
    assert tuple(ours.mean.shape) == tuple(ref.mean.shape)
    assert ours.weights == [] and ref.weights == []


def test_normalization_weight_files_keep_keras_names(tmp_path):
    files = {}
    for lib in (kestrel, keras):
        layer = lib.layers.Normalization(name="norm")
        layer.adapt(ADAPT_2D)
        model = lib.Sequential([lib.Input((3,)), layer])
        model.save_weights(tmp_path / f"{lib.__name__}.weights.h5")
        files[lib.__name__] = _h5_layout(tmp_path / f"{lib.__name__}.weights.h5")
        model.save(tmp_path / f"{lib.__name__}.h5")  # legacy names: Kestrel adds tf.keras' ":0"
        with h5py.File(tmp_path / f"{lib.__name__}.h5") as f:
            names = [n.decode() if isinstance(n, bytes) else n
                     for n in f["model_weights/norm"].attrs["weight_names"]]
        files[lib.__name__ + " h5"] = [n.removesuffix(":0") for n in names]
        restored = lib.Sequential([lib.Input((3,)), lib.layers.Normalization()])
        restored.load_weights(tmp_path / f"{lib.__name__}.weights.h5")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(restored.layers[0].mean),
                                   ADAPT_2D.mean(0, keepdims=True))
    assert files["kestrel"] == files["keras"]
    assert files["kestrel h5"] == files["keras h5"]


# ---------------------------------------------------------------------- 2. ReversibleEmbedding
def _mask_list(tensor):
    mask = getattr(tensor, "_keras_mask", None)
    return None if mask is None else keras.ops.convert_to_numpy(mask).tolist()


def test_reversible_embedding_sets_its_mask_in_call_not_compute_mask():
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    for lib in (kestrel, keras):
        layer = lib.layers.ReversibleEmbedding(5, 2, mask_zero=True)
        out = layer(ids)
        assert layer.compute_mask(lib.ops.convert_to_tensor(ids)) is None
        assert _mask_list(out) == (ids != 0).tolist()
        assert _mask_list(layer(out, reverse=True)) is None
        symbolic = layer(lib.Input((4,), dtype="int32"))
        assert getattr(symbolic, "_keras_mask", None) is None


def test_reversible_embedding_mask_reaches_the_next_layer_at_run_time():
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    models = []
    for lib in (keras, kestrel):
        inputs = lib.Input((4,), dtype="int32")
        hidden = lib.layers.ReversibleEmbedding(5, 2, mask_zero=True)(inputs)
        models.append(lib.Model(inputs, lib.layers.LSTM(3)(hidden)))
    models[1].set_weights(models[0].get_weights())
    np.testing.assert_allclose(models[1](ids).detach().numpy(),
                               keras.ops.convert_to_numpy(models[0](ids)), atol=1e-6)


# ---------------------------------------------------------------------- 3. LayerNormalization
@pytest.mark.parametrize("kwargs", [{"axis": [2, 1]}, {"axis": (2, 1), "rms_scaling": True},
                                    {"axis": [2, 1], "center": False}, {"axis": [-1, 1]}])
def test_layer_normalization_unsorted_axes(kwargs):
    x = ADAPT_3D
    ours, ref = kestrel.layers.LayerNormalization(**kwargs), keras.layers.LayerNormalization(**kwargs)
    assert ours.get_config()["axis"] == ref.get_config()["axis"]  # as given, before build
    ours.build(x.shape)
    ref.build(x.shape)
    assert ours.axis == ref.axis and ours.get_config()["axis"] == ref.get_config()["axis"]
    assert [(w.path, tuple(w.shape)) for w in ours.weights] == \
        [(w.path.replace(ref.name, ours.name), tuple(w.shape)) for w in ref.weights]
    weights = [np.random.RandomState(i).rand(*w.shape).astype("float32")
               for i, w in enumerate(ref.get_weights())]
    ref.set_weights(weights)
    ours.set_weights(weights)
    np.testing.assert_allclose(ours(x).detach().numpy(), keras.ops.convert_to_numpy(ref(x)),
                               atol=1e-5)
