"""keras.io structured-data and time-series examples, second batch (structured data from
scratch, GRN/VSN classification, wide & deep & cross, feature engineering, Boston housing,
anomaly detection, customer lifetime value, EEG, timeseries transformers and LSTMs): the same
miniature code runs with Kestrel and with real Keras (torch backend); layouts, summaries,
configs, warnings and values agree.
"""
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


def _heart_model(k):
    """structured_data_classification_from_scratch: a dict of inputs, some of them normalized
    (intermediate tensors), given in unsorted key order to a layer taking the dict."""
    layers = k.layers

    class Classifier(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(1, activation="sigmoid")

        def call(self, inputs):
            return self.dense(layers.concatenate(list(inputs.values())))

        def build(self, input_shape):
            self.built = True

    inputs = {"sex": layers.Input(name="sex", shape=(2,)),
              "age": layers.Dense(1)(layers.Input(name="age_raw", shape=(1,))),
              "cp": layers.Input(name="cp", shape=(3,))}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = k.Model(inputs, Classifier()(inputs))
    return model, [str(w.message) for w in caught]


def test_dict_inputs_with_intermediate_tensors_as_keras():
    """Keys unlike the tensors' names warn; layers, `Connected to` (dict arguments in sorted
    key order, kept Inputs on their new node) and the config's input_layers match Keras."""
    results = []
    for lib in (kestrel, keras):
        model, messages = _heart_model(_fresh(lib))
        results.append((messages, [l.name for l in model.layers], _summary(model),
                        model.get_config()["input_layers"]))
    assert len(results[1][0]) == 1 and "Received key 'age'" in results[1][0][0]
    assert "cp[1][0]" in results[1][2]
    assert results[0] == results[1]


def _gated_residual_network(k):
    """classification_with_grn_and_vsn: a GRN whose projection is used only when the input
    width differs, and a selection layer with `def build(self)` (no shape argument)."""
    layers = k.layers

    class GatedResidualNetwork(layers.Layer):
        def __init__(self, units):
            super().__init__()
            self.units = units
            self.dense = layers.Dense(units, activation="elu")
            self.project = layers.Dense(units)
            self.layer_norm = layers.LayerNormalization()

        def call(self, inputs):
            if inputs.shape[-1] != self.units:
                inputs = self.project(inputs)
            return self.layer_norm(inputs + self.dense(inputs))

    class VariableSelection(layers.Layer):
        def __init__(self, units):
            super().__init__()
            self.grns = [GatedResidualNetwork(units) for _ in range(2)]

        def call(self, inputs):
            return k.ops.stack([grn(inputs[name]) for grn, name in zip(self.grns, inputs)], 1)

        def build(self):
            self.built = True

    inputs = {"age": layers.Input(name="age", shape=(4,)),
              "wage": layers.Input(name="wage", shape=(3,))}
    return k.Model(inputs, VariableSelection(4)(inputs))


def _build_warnings(build):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = build()
    return result, [str(w.message) for w in caught if "build()" in str(w.message)]


def test_build_without_a_shape_argument_and_unbuilt_sublayer_warning_as_keras():
    """`build(self)` is called without the shape; a layer relying on the default build whose
    first call leaves a sublayer unbuilt warns, once, as Keras (symbolic and eager calls)."""
    results = []
    for lib in (kestrel, keras):
        model, messages = _build_warnings(lambda: _gated_residual_network(_fresh(lib)))
        layer = model.layers[-1].grns[0]
        fresh = type(layer)(4)
        x = np.ones((2, 4), "float32")
        _, eager = _build_warnings(lambda: (fresh(x), fresh(x)))
        results.append((messages, eager, model.count_params(), model.output.shape))
    assert len(results[1][0]) == 1 and "'gated_residual_network'" in results[1][0][0]
    assert len(results[1][1]) == 1
    assert results[0] == results[1]


def test_shape_ops_on_string_inputs_as_keras():
    """wide_deep_cross_networks: `ops.expand_dims` on a string Input before a StringLookup;
    reshape and squeeze keep the string dtype as Keras' symbolic ops do."""
    specs = []
    for lib in (kestrel, keras):
        x = _fresh(lib).Input(shape=(), dtype="string", name="soil")
        ops = lib.ops
        specs.append([(y.shape, y.dtype) for y in (
            ops.expand_dims(x, -1), ops.reshape(x, (-1, 1)),
            ops.squeeze(ops.expand_dims(x, 1), 1))])
    assert specs[0] == specs[1] == [((None, 1), "string"), ((None, 1), "string"),
                                    ((None,), "string")]


def test_string_features_run_through_a_functional_model():
    """The wide part of wide_deep_cross_networks: string features, expanded and looked up
    into a binary encoding, next to an expanded numeric feature (Kestrel keeps strings in
    NumPy, as the TensorFlow backend would run the example)."""
    layers = kestrel.layers
    inputs = {"soil": layers.Input(name="soil", shape=(), dtype="string"),
              "slope": layers.Input(name="slope", shape=(), dtype="float32")}
    lookup = layers.StringLookup(vocabulary=["x", "y", "z"], mask_token=None,
                                 num_oov_indices=0, output_mode="binary")
    wide = layers.concatenate([lookup(kestrel.ops.expand_dims(inputs["soil"], -1)),
                               kestrel.ops.expand_dims(inputs["slope"], -1)])
    model = kestrel.Model(inputs, wide)
    out = model.predict({"soil": np.array(["z", "x"]), "slope": np.array([0.5, 2.0], "float32")},
                        verbose=0)
    np.testing.assert_array_equal(out, [[0, 0, 1, 0.5], [1, 0, 0, 2.0]])


def _age_and_gender(x):
    return x[0] > 50


def test_lambda_with_an_unregistered_function_fails_to_load_as_keras(tmp_path):
    """feature_engineering_with_lambda saves Lambda layers over named functions; loading
    without them in custom_objects raises Keras' error type (TypeError)."""
    errors = []
    for lib in (kestrel, keras):
        age, sex = lib.Input(shape=(1,), name="age"), lib.Input(shape=(1,), name="sex")
        out = lib.layers.Lambda(_age_and_gender, name="age_and_gender")((age, sex))
        path = tmp_path / f"{lib.__name__}.keras"
        lib.Model({"age": age, "sex": sex}, out).save(path)
        try:
            lib.models.load_model(path)
        except Exception as error:  # noqa: BLE001 - the type is what is compared
            errors.append(type(error))
    assert errors == [TypeError, TypeError]


def test_identity_model_predicts_string_features():
    """feature_engineering_with_lambda: `Model(inputs=inputs, outputs=inputs)` over numeric
    and string Inputs predicts its inputs back, strings included, batch after batch."""
    inputs = {"age": kestrel.Input(shape=(1,), name="age"),
              "thal": kestrel.Input(shape=(1,), name="thal", dtype="string")}
    model = kestrel.Model(inputs=inputs, outputs=inputs)
    data = {"age": np.arange(5, dtype="float32")[:, None],
            "thal": np.array([["fixed"], ["normal"], ["fixed"], ["x"], ["y"]])}
    out = model.predict(data, batch_size=2, verbose=0)
    np.testing.assert_array_equal(out["age"], data["age"])
    np.testing.assert_array_equal(out["thal"], data["thal"])


def test_pandas_series_targets_and_inputs_become_columns_as_keras():
    """EEG_Signal_Classifiation fits a 68-unit regression on a pandas Series of targets: in
    fit/evaluate/predict (and validation_split) a Series is one column `(n, 1)`, which then
    broadcasts in the loss, as Keras' array adapter does; `train_on_batch` keeps it `(n,)`."""
    import pandas as pd

    results = []
    for lib in (kestrel, keras):
        model = _fresh(lib).Sequential([lib.Input((2,)), lib.layers.Dense(3)])
        model.compile("sgd", "mse")
        x = np.arange(8, dtype="float32").reshape(4, 2)
        y = pd.Series([1.0, 2.0, 3.0, 4.0])
        history = model.fit(x, y, batch_size=2, validation_split=0.5, verbose=0).history
        single = lib.Sequential([lib.Input((1,)), lib.layers.Dense(1)])
        try:
            model.train_on_batch(x, y)
        except RuntimeError:
            on_batch = "refused"
        results.append((np.round(history["loss"], 5).tolist(),
                        np.round(history["val_loss"], 5).tolist(),
                        round(model.evaluate(x, y, verbose=0), 5),
                        single.predict(pd.Series([1.0, 2.0]), verbose=0).shape, on_batch))
    assert results[0] == results[1]


def _movie_encoder(k):
    """movielens_recommendations_transformers: one embedding and one Dense encode the target
    movie `(None, 1)` and then the sequence of movies `(None, 3)`."""
    layers = k.layers
    target = layers.Input(name="target_movie_id", shape=(1,), dtype="int32")
    sequence = layers.Input(name="sequence_movie_ids", shape=(3,), dtype="int32")
    embedding = layers.Embedding(10, 3, name="movie_embedding")
    process = layers.Dense(3, activation="relu", name="process_movie_embedding")
    encoded = [process(embedding(ids)) for ids in (target, sequence)]
    return k.Model({"target_movie_id": target, "sequence_movie_ids": sequence},
                   layers.concatenate(encoded, axis=1))


def test_summary_shows_a_shared_layers_last_output_shape_as_keras():
    texts = [_summary(_movie_encoder(_fresh(lib))) for lib in (kestrel, keras)]
    assert "(None, 3, 3)" in texts[1].split("movie_embedding")[1].splitlines()[0]
    assert texts[0] == texts[1]


def test_calling_a_layer_on_read_only_arrays_does_not_warn(recwarn):
    """feature_preprocessing_layer calls its preprocessing model on `df[[name]].values`
    (read-only under pandas' copy-on-write): no torch warning about non-writable arrays."""
    data = np.arange(6, dtype="float32").reshape(3, 2)
    data.flags.writeable = False
    out = kestrel.layers.Dense(1, kernel_initializer="ones")(data)
    np.testing.assert_allclose(kestrel.ops.convert_to_numpy(out), [[1], [5], [9]])
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_raw_sample_converted_with_convert_to_tensor_feeds_a_feature_space_model():
    """feature_space_advanced / structured_data_classification_with_feature_space: the raw
    sample goes through `keras.ops.convert_to_tensor([value])`, strings included (Kestrel's
    string tensors are NumPy string arrays, as TensorFlow's string tensors in Keras)."""
    FeatureSpace = kestrel.utils.FeatureSpace
    space = FeatureSpace(
        features={"job": FeatureSpace.string_categorical(num_oov_indices=0),
                  "age": FeatureSpace.float_discretized(num_bins=2),
                  "campaign": FeatureSpace.float_normalized()},
        crosses=[FeatureSpace.cross(feature_names=("age", "job"), crossing_dim=4)],
        output_mode="concat")
    space.adapt({"job": np.array(["admin", "blue-collar", "admin", "retired"]),
                 "age": np.array([30.0, 45.0, 52.0, 61.0], "float32"),
                 "campaign": np.array([1.0, 2.0, 3.0, 1.0], "float32")})
    encoded = space.get_encoded_features()
    head = kestrel.layers.Dense(1, activation="sigmoid")
    model = kestrel.Model(space.get_inputs(), head(encoded))
    sample = {"job": "blue-collar", "age": 30, "campaign": 2}
    converted = {name: kestrel.ops.convert_to_tensor([value]) for name, value in sample.items()}
    assert converted["job"].tolist() == ["blue-collar"]
    assert converted["age"].dtype == kestrel.ops.convert_to_tensor([30]).dtype
    prediction = model.predict(converted, verbose=0)
    raw = {k: np.array([v]) for k, v in sample.items()}
    np.testing.assert_allclose(prediction, model.predict(raw, verbose=0), rtol=1e-6)
