"""KerasFileEditor: edit files saved by real Keras 3 and by Kestrel; load the results in both."""
import os

import h5py
import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402  (the trusted reference)

import kestrel  # noqa: E402
from kestrel.saving import KerasFileEditor  # noqa: E402


def _model(lib, units=(4, 2), batch_norm=False, bias=True):
    layers = [lib.Input((3,))]
    for index, n in enumerate(units):
        layers.append(lib.layers.Dense(n, use_bias=bias or index < len(units) - 1))
        if batch_norm and index == 0:
            layers.append(lib.layers.BatchNormalization())
    return lib.Sequential(layers)


def _weights(model):
    return [np.asarray(w) for w in model.get_weights()]


def _assert_loads_in_both(path, units, expected, bias=True):
    for lib in (kestrel, keras):
        model = _model(lib, units, bias=bias)
        model.load_weights(path)
        for got, want in zip(_weights(model), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def test_edit_keras_file_then_load_in_both(tmp_path):
    source = _model(keras, batch_norm=True)
    source.compile(optimizer="adam", loss="mse")
    source.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    source.save(tmp_path / "k.keras")
    editor = KerasFileEditor(tmp_path / "k.keras")
    assert editor.metadata["keras_version"] == keras.__version__
    assert editor.config["class_name"] == "Sequential"
    assert set(editor.weights_dict) == {"layers", "optimizer"}
    assert editor.weights_dict["layers"]["batch_normalization"]["3"].shape == (4,)
    ref = _model(kestrel)
    assert editor.compare(ref) == {"status": "error", "error_count": 2, "match_count": 4}
    editor.delete_object("batch_normalization")
    editor.delete_object("optimizer")
    assert editor.compare(ref) == {"status": "success", "error_count": 0, "match_count": 4}
    editor.save(tmp_path / "edited.weights.h5")
    kept = [w for w, v in zip(_weights(source), source.weights) if "batch_norm" not in v.path]
    _assert_loads_in_both(tmp_path / "edited.weights.h5", (4, 2), kept)
    theirs = keras.saving.KerasFileEditor(str(tmp_path / "edited.weights.h5"))
    assert theirs.compare(_model(keras))["status"] == "success"


def test_add_rename_and_weights_on_kestrel_file(tmp_path, capsys):
    source = _model(kestrel)
    source.save_weights(tmp_path / "s.weights.h5")
    editor = KerasFileEditor(tmp_path / "s.weights.h5")
    kernel, bias = np.full((2, 5), 0.5, "float32"), np.arange(5, dtype="float32")
    editor.add_object("layers/dense_2", {"0": kernel, "1": bias})
    editor.summary()
    out = capsys.readouterr().out
    assert "├─ dense ('dense" in out and "0: shape=(2, 5), dtype=float32" in out
    editor.resave_weights(tmp_path / "three.weights.h5")
    _assert_loads_in_both(tmp_path / "three.weights.h5", (4, 2, 5),
                          _weights(source) + [kernel, bias])
    # the last layer without its bias, then with a new one
    editor.delete_weight("layers/dense_2", "1")
    editor.save(tmp_path / "nobias.weights.h5")
    _assert_loads_in_both(tmp_path / "nobias.weights.h5", (4, 2, 5),
                          _weights(source) + [kernel], bias=False)
    editor.add_weights("dense_2", {"1": np.ones(5)})
    assert editor.weights_dict["layers"]["dense_2"]["1"].dtype == np.float64
    editor.rename_object("dense_2", "dense_9")
    assert list(editor.weights_dict["layers"]) == ["dense", "dense_1", "dense_9"]
    assert editor.compare(_model(kestrel, (4, 2, 5)))["error_count"] == 2  # missing + extra


def test_errors(tmp_path):
    _model(kestrel).save_weights(tmp_path / "m.weights.h5")
    editor = KerasFileEditor(tmp_path / "m.weights.h5")
    editor.add_object("extra", {"0": np.zeros(1)})
    editor.add_object("layers/extra", {"0": np.zeros(1)})
    cases = [
        (lambda: KerasFileEditor(tmp_path / "m.h5"), r"\.keras.*Received: filepath=.*m\.h5"),
        (lambda: editor.delete_object("extra"), "occurs more than once"),
        (lambda: editor.delete_object("nothing"), "does not appear"),
        (lambda: editor.delete_object("layers/nothing"), "'layers/nothing' not found"),
        (lambda: editor.add_object("nope/dense", {}), "path 'nope' not found"),
        (lambda: editor.add_object("x", [1]), r"must be a dict.*type\(weights\)=list"),
        (lambda: editor.rename_object("dense", "a/b"), "leaf name.*new_name='a/b'"),
        (lambda: editor.rename_object("dense", "dense_1"), "already exists"),
        (lambda: editor.delete_weight("dense", "7"), r"'7' not found.*\['0', '1'\]"),
        (lambda: editor.save(tmp_path / "x.h5"), "expected a `.weights.h5`"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_save_is_atomic_and_links_are_refused(tmp_path):
    target = tmp_path / "t.weights.h5"
    _model(kestrel).save_weights(target)
    before = target.read_bytes()
    editor = KerasFileEditor(target)
    editor.add_weights("dense", {"2": np.array([object()])})  # h5py cannot store objects
    with pytest.raises(TypeError):
        editor.save(target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["t.weights.h5"]
    with h5py.File(target, "a") as file:
        file["layers/dense/vars"]["2"] = h5py.SoftLink("/layers/dense_1/vars/0")
    with pytest.raises(ValueError, match="links are not allowed.*SoftLink"):
        KerasFileEditor(target)
