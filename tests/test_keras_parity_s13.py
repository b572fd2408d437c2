"""Parity with real Keras 3 (torch backend) for gaps closed in s13: Normalization's
statistics shapes, ReversibleEmbedding's masks, unsorted LayerNormalization axes, the
masking warning, saving an unbuilt model's weights, unzipped `.keras` directories and
`objects_to_skip`."""
import os
import warnings

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
    # named: automatic names count the layers earlier tests made, differently per library
    ours = kestrel.layers.Normalization(name="norm", **kwargs)
    ref = keras.layers.Normalization(name="norm", **kwargs)
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


def test_normalization_reads_state_dicts_with_the_former_keys():
    layer = kestrel.layers.Normalization()
    layer.adapt(ADAPT_2D)
    former = {key.replace("adapt_", ""): value for key, value in layer.state_dict().items()}
    restored = kestrel.layers.Normalization()
    restored.build((None, 3))
    restored.load_state_dict(former)
    np.testing.assert_array_equal(restored.mean.numpy(), layer.mean.numpy())


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


# ---------------------------------------------------------------------- 4. dropped-mask warning
def _dropped_mask_warnings(lib, make, symbolic, calls=1):
    """The "destroy the mask" warnings of `calls` calls of `make(lib)` on an Embedding's
    masked output, under Python's default filter (a repeated message shows once)."""
    ids = np.array([[1, 2, 0, 0]])
    source = lib.Input((4,), dtype="int32") if symbolic else ids
    masked = lib.layers.Embedding(5, 4, mask_zero=True)(source)
    layer = make(lib)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(calls):
            layer(masked) if not isinstance(layer, tuple) else layer[0](*layer[1](masked))
    return [str(w.message) for w in caught if "destroy the mask" in str(w.message)]


class _NoMasking:
    """A user layer whose call ignores masks (supports_masking stays False, as in Keras)."""

    def __new__(cls, lib):
        class Plain(lib.layers.Layer):
            def call(self, x):
                return x
        return Plain(name="plain")


DROPPED_MASK_CASES = {
    "conv": lambda lib: lib.layers.Conv1D(2, 1, name="conv"),
    "flatten": lambda lib: lib.layers.Flatten(name="flat"),
    "user layer": _NoMasking,
    "dense": lambda lib: lib.layers.Dense(2, name="dense"),
    "mha": lambda lib: (lib.layers.MultiHeadAttention(2, 2, name="mha"), lambda h: (h, h)),
    "gqa": lambda lib: (lib.layers.GroupQueryAttention(2, 2, 1, name="gqa"),
                        lambda h: (h, h)),
    "masking then conv": lambda lib: (lambda h: lib.layers.Conv1D(2, 1, name="c")(
        lib.layers.Masking()(h)), lambda h: (h,)),
}


@pytest.mark.parametrize("symbolic", [False, True])
@pytest.mark.parametrize("case", DROPPED_MASK_CASES)
def test_dropped_mask_warning_as_keras(case, symbolic):
    make = DROPPED_MASK_CASES[case]
    assert _dropped_mask_warnings(kestrel, make, symbolic, calls=2) == \
        _dropped_mask_warnings(keras, make, symbolic, calls=2)


def test_dropped_mask_warning_for_a_nested_model():
    messages = []
    for lib in (kestrel, keras):
        inner_in = lib.Input((4, 4))
        inner = lib.Model(inner_in, lib.layers.Dense(2)(inner_in), name="inner")
        messages.append(_dropped_mask_warnings(lib, lambda _: inner, symbolic=True))
    assert messages[0] == messages[1] and len(messages[0]) == 1


# ---------------------------------------------------------------------- 5. unbuilt models
def _raised(fn):
    try:
        fn()
    except Exception as error:  # noqa: BLE001 - the error itself is compared
        return type(error), str(error)
    return None


@pytest.mark.parametrize("filename", ["m.weights.h5", "m.h5"])
def test_save_weights_of_an_unbuilt_model(tmp_path, filename):
    errors = []
    for lib in (kestrel, keras):
        model = lib.Sequential([lib.layers.Dense(2)])
        path = tmp_path / f"{lib.__name__}_{filename}"
        errors.append(_raised(lambda: model.save_weights(path)))
        assert not path.exists()
    if filename == "m.weights.h5":
        assert errors[0] == errors[1] and errors[0][0] is ValueError
    else:  # Keras 3 refuses the suffix first; Kestrel writes tf.keras 2 files, if built
        assert errors[0][0] is ValueError and "not yet been built" in errors[0][1]


def test_saving_an_unbuilt_model_warns_as_keras(tmp_path):
    messages = []
    for lib in (kestrel, keras):
        model = lib.Sequential([lib.layers.Dense(2)])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.save(tmp_path / f"{lib.__name__}.keras")
        messages.append([str(w.message) for w in caught if "not yet been built" in str(w.message)])
    assert messages[0] == messages[1] and len(messages[0]) == 1


# ---------------------------------------------------------------------- 6. zipped=False
def _trained_dense(lib):
    # named: automatic names count the layers earlier tests made, differently per library
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2, name="dense")], name="seq")
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), epochs=1, verbose=0)
    return model


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_unzipped_keras_directory_round_trips_between_keras_and_kestrel(tmp_path):
    x = np.linspace(0, 1, 6, dtype="float32").reshape(2, 3)
    for saver, loader in ((kestrel, keras), (keras, kestrel), (kestrel, kestrel)):
        model = _trained_dense(saver)
        folder = tmp_path / f"{saver.__name__}_to_{loader.__name__}"
        saver.saving.save_model(model, folder, zipped=False)
        assert _files(folder) == ["config.json", "metadata.json", "model.weights.h5"]
        restored = loader.saving.load_model(folder)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(restored.predict(x, verbose=0)),
                                   keras.ops.convert_to_numpy(model.predict(x, verbose=0)),
                                   rtol=1e-6)
        assert len(restored.optimizer.variables) == len(model.optimizer.variables)
    assert _h5_layout(tmp_path / "kestrel_to_keras" / "model.weights.h5") == \
        _h5_layout(tmp_path / "keras_to_kestrel" / "model.weights.h5")


def test_unzipped_save_errors_as_keras(tmp_path):
    errors = []
    for lib in (kestrel, keras):
        model = _trained_dense(lib)
        errors.append(_raised(lambda: model.save(tmp_path / f"{lib.__name__}.keras",
                                                 zipped=False)))
    assert errors[0][0] is errors[1][0] is ValueError
    assert errors[0][1].replace("kestrel.keras", "keras.keras") == errors[1][1]


def _two_dense(lib):
    return lib.Sequential([lib.Input((3,)), lib.layers.Dense(2), lib.layers.Dense(1)])


def test_objects_to_skip_saves_and_loads_as_keras(tmp_path):
    layouts, kept, loaded = [], [], []
    for lib in (kestrel, keras):
        model = _two_dense(lib)
        partial = tmp_path / f"{lib.__name__}_partial.weights.h5"
        lib.saving.save_weights(model, partial, objects_to_skip=[model.layers[0]])
        layouts.append(_h5_layout(partial))
        full = tmp_path / f"{lib.__name__}_full.weights.h5"
        model.save_weights(full)
        target = _two_dense(lib)
        first = target.get_weights()[0].copy()
        target.load_weights(full, objects_to_skip=[target.layers[0]])
        kept.append(np.array_equal(target.get_weights()[0], first))
        loaded.append(np.array_equal(target.get_weights()[2], model.get_weights()[2]))
        target.load_weights(partial, objects_to_skip=[target.layers[0]])  # nothing missing
    assert layouts[0] == layouts[1] and kept == loaded == [True, True]


def test_objects_to_skip_errors_as_keras(tmp_path):
    errors = []
    for lib in (kestrel, keras):
        model = _two_dense(lib)
        model.save(tmp_path / "m.keras")
        errors.append([
            _raised(lambda: model.load_weights(tmp_path / "m.keras", objects_to_skip=[])),
            _raised(lambda: model.save_weights(tmp_path / "m.weights.h5", objects_to_skip=[])),
            _raised(lambda: model.load_weights(tmp_path / "m.keras", foo=1))])
    assert errors[0][0] == errors[1][0] and errors[0][2] == errors[1][2]
    assert errors[0][1][0] is errors[1][1][0] is TypeError  # not a Model.save_weights keyword



def test_unzipped_members_are_replaced_atomically(tmp_path):
    from kestrel.saving import keras_zip

    model = _trained_dense(kestrel)
    folder = tmp_path / "model"
    kestrel.saving.save_model(model, folder, zipped=False)
    before = (folder / "config.json").read_bytes()

    class Unwritable(str):
        def encode(self, *args):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        keras_zip.DirectoryArchive(folder).writestr("config.json", Unwritable("{}"))
    assert (folder / "config.json").read_bytes() == before
    assert _files(folder) == ["config.json", "metadata.json", "model.weights.h5"]
