"""Files saved by Kestrel load in real Keras 3 (torch backend) with the same predictions.

Keras runs in a subprocess so that importing it cannot change anything in this process.
"""
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kestrel as keras
import kestrel.layers
from kestrel.registry import object_registry
from kestrel.saving.keras_weights import optimizer_state

for _module in pkgutil.walk_packages(kestrel.layers.__path__, "kestrel.layers."):
    importlib.import_module(_module.name)


def L(class_name: str):
    """A built-in layer class by its Keras name."""
    return object_registry.lookup(class_name, "layers")


def _mlp():
    model = keras.Sequential([keras.Input(shape=(6,)), L("Dense")(8, activation="relu"),
                              L("Dropout")(0.3), L("Dense")(3, activation="softmax")],
                             name="mlp")
    return model, "sparse_categorical_crossentropy", np.float32, [(6,)], [3]


def _two_inputs():
    a, b = keras.Input(shape=(5,), name="a"), keras.Input(shape=(3,), name="b")
    merged = L("Concatenate")()([L("Dense")(4, activation="relu")(a), L("Dense")(4)(b)])
    trunk = L("Dense")(6, activation="tanh", name="trunk")(merged)
    outputs = [L("Dense")(1, name="reg")(trunk), L("Dense")(2, activation="softmax",
                                                           name="cls")(trunk)]
    model = keras.Model([a, b], outputs, name="two_inputs")
    return model, {"reg": "mse", "cls": "sparse_categorical_crossentropy"}, np.float32, \
        [(5,), (3,)], [None, 2]


def _cnn():
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 3)), L("Conv2D")(4, 3, padding="same", activation="relu"),
        L("MaxPooling2D")(), L("BatchNormalization")(), L("GlobalAveragePooling2D")(),
        L("Dense")(2)], name="cnn")
    return model, "mse", np.float32, [(8, 8, 3)], [None]


def _attention():
    tokens = keras.Input(shape=(5, 8), name="tokens")
    attended = L("MultiHeadAttention")(num_heads=2, key_dim=4, name="mha")(tokens, tokens)
    x = L("LayerNormalization")()(L("Add")()([tokens, attended]))
    out = L("Dense")(2, name="out")(L("GlobalAveragePooling1D")()(x))
    return keras.Model(tokens, out, name="attention"), "mse", np.float32, [(5, 8)], [None]


def _embedding():
    model = keras.Sequential([keras.Input(shape=(7,), dtype="int32"), L("Embedding")(20, 4),
                              L("GlobalAveragePooling1D")(), L("Dense")(1, activation="sigmoid")],
                             name="embedding")
    return model, "binary_crossentropy", np.int32, [(7,)], [2]


def _recurrent():
    model = keras.Sequential([
        keras.Input(shape=(6, 3)), L("LSTM")(5, return_sequences=True),
        L("Bidirectional")(L("GRU")(4, return_sequences=True)),
        L("TimeDistributed")(L("Dense")(2)), L("SimpleRNN")(3), L("Dense")(1)], name="recurrent")
    return model, "mse", np.float32, [(6, 3)], [None]


BUILDERS = {"mlp": _mlp, "two_inputs": _two_inputs, "cnn": _cnn, "attention": _attention,
            "embedding": _embedding, "recurrent": _recurrent}

KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import keras


    def json_then_weights(base):
        model = keras.models.model_from_json(open(base + ".json").read())
        model.load_weights(base + ".weights.h5")
        return model


    def check(load, x, y, state):
        try:
            model = load()
            pred = model.predict(x, verbose=0)
            pred = pred if isinstance(pred, (list, tuple)) else [pred]
            diff = max(float(np.max(np.abs(np.asarray(p) - t))) for p, t in zip(pred, y))
            opt = getattr(model, "optimizer", None)
            out = {"diff": diff,
                   "iterations": int(opt.iterations.numpy()) if opt is not None else None}
            if opt is not None and len(opt.variables) == len(state):
                out["optimizer_diff"] = max(float(np.max(np.abs(np.asarray(v) - s)))
                                            for v, s in zip(opt.variables, state))
            return out
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}


    folder = sys.argv[1]
    results = {}
    for name in json.load(open(os.path.join(folder, "names.json"))):
        base = os.path.join(folder, name)
        with np.load(base + ".x.npz") as f:
            x = [f[k] for k in sorted(f.files)]
        with np.load(base + ".y.npz") as f:
            y = [f[k] for k in sorted(f.files)]
        with np.load(base + ".optimizer.npz") as f:
            state = [f[k] for k in sorted(f.files)]
        x = x[0] if len(x) == 1 else x
        results[name] = {
            "keras": check(lambda: keras.saving.load_model(base + ".keras"), x, y, state),
            "h5": check(lambda: keras.saving.load_model(base + ".h5"), x, y, state),
            "json+weights.h5": check(lambda: json_then_weights(base), x, y, state),
        }
    print("RESULTS" + json.dumps(results))
""")


def _save_all(folder):
    rng = np.random.default_rng(0)
    expected = {}
    for name, build in BUILDERS.items():
        model, loss, dtype, shapes, classes = build()
        if dtype is np.int32:
            x = [rng.integers(0, 20, size=(32,) + s).astype("int32") for s in shapes]
        else:
            x = [rng.normal(size=(32,) + s).astype("float32") for s in shapes]
        y = [rng.integers(0, c, size=(32,)) if c else rng.normal(size=(32,) + o.shape[1:])
             for c, o in zip(classes, model.outputs)]
        model.compile(optimizer="adam", loss=loss)
        model.fit(x if len(x) > 1 else x[0], y if len(y) > 1 else y[0], epochs=1, batch_size=8,
                  verbose=0)
        base = os.path.join(folder, name)
        model.save(base + ".keras")
        model.save(base + ".h5")
        model.save_weights(base + ".weights.h5")
        with open(base + ".json", "w") as f:
            f.write(model.to_json())
        pred = model.predict(x if len(x) > 1 else x[0], verbose=0)
        pred = pred if isinstance(pred, (list, tuple)) else [pred]
        np.savez(base + ".x.npz", **{f"{i:02d}": v for i, v in enumerate(x)})
        np.savez(base + ".y.npz", **{f"{i:02d}": np.asarray(v) for i, v in enumerate(pred)})
        np.savez(base + ".optimizer.npz",
                 **{f"{i:03d}": v for i, (_, v) in enumerate(optimizer_state(model))})
        expected[name] = model.optimizer.iterations
    with open(os.path.join(folder, "names.json"), "w") as f:
        json.dump(list(BUILDERS), f)
    return expected


@pytest.fixture(scope="module")
def keras_results(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("interop"))
    iterations = _save_all(folder)
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, folder], env=env, cwd=folder,
                          capture_output=True, text=True, timeout=300)
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULTS")]
    assert done.returncode == 0 and lines, (
        "Real Keras 3 could not run (install requirements-dev.txt, which pins keras):\n"
        + done.stderr[-3000:])
    return json.loads(lines[-1][len("RESULTS"):]), iterations


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("route", ["keras", "h5", "json+weights.h5"])
def test_real_keras_reproduces_kestrel_predictions(keras_results, name, route):
    results, iterations = keras_results
    outcome = results[name][route]
    assert "error" not in outcome, outcome.get("error")
    assert outcome["diff"] <= 1e-5
    if route != "json+weights.h5":
        assert outcome["iterations"] == iterations[name]  # optimizer state restored by Keras
    if route == "keras":  # every slot landed in the right Keras variable, in Keras layout
        assert outcome["optimizer_diff"] <= 1e-7
