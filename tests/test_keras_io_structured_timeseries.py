"""keras.io examples on structured data and time series (TabTransformer, FeatureSpace,
imbalanced classification, decision forests, collaborative filtering, weather/traffic
forecasting, EEG, time-series classification and anomaly detection): the same code runs with
Kestrel and with real Keras (torch backend); layouts, summaries and values agree.
"""
import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


def _tabular_inputs(k):
    """tabtransformer: one scalar Input per feature, categorical ones embedded."""
    inputs = {n: k.layers.Input(name=n, shape=(), dtype="float32") for n in ("age", "race")}
    race = k.layers.Embedding(input_dim=3, output_dim=4)(inputs["race"])
    age = k.ops.expand_dims(inputs["age"], -1)
    features = k.layers.concatenate([race, age])
    return k.Model(inputs, k.layers.Dense(1, activation="sigmoid", name="sigmoid")(features))


def test_summary_writes_one_dimensional_shapes_as_keras(tmp_path):
    """tabtransformer: scalar-feature Inputs show `(None)` in the summary, as Keras prints."""
    texts = [_summary(_tabular_inputs(_fresh(lib))) for lib in (kestrel, keras)]
    assert "│ (None)   " in texts[1]
    assert texts[0] == texts[1]


def test_loading_a_graph_does_not_take_op_names(tmp_path):
    """tabtransformer saves the baseline, then builds the next model: its ops are numbered as
    if the load had not happened (a loaded op keeps its saved name)."""
    names = []
    for lib in (kestrel, keras):
        model = _tabular_inputs(_fresh(lib))
        model.save(tmp_path / f"{lib.__name__}.keras")
        loaded = lib.models.load_model(tmp_path / f"{lib.__name__}.keras")
        again = _tabular_inputs(lib)
        names.append(([op.name for op in loaded.operations], [op.name for op in again.operations]))
    assert names[0] == names[1]
    assert "expand_dims_1" in names[0][1]


def _heart_py_dataset(lib, rows, batch_size=4, labels=None):
    """structured_data_classification_with_feature_space: batches of feature dicts."""

    class HeartBatches(lib.utils.PyDataset):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.calls = []

        def __len__(self):
            return -(-len(rows["age"]) // batch_size)

        def __getitem__(self, index):
            window = slice(index * batch_size, (index + 1) * batch_size)  # never an IndexError
            batch = {name: values[window] for name, values in rows.items()}
            return batch if labels is None else (batch["age"][:, None], labels[window])

        def on_epoch_begin(self):
            self.calls.append("begin")

        def on_epoch_end(self):
            self.calls.append("end")

    return HeartBatches()


def test_py_dataset_iterates_its_batches_and_adapts_a_feature_space():
    """Iterating a PyDataset stops after `num_batches` (a `__getitem__` that never raises
    IndexError used to loop for ever), and FeatureSpace.adapt takes one."""
    rows = {"age": np.arange(10, dtype="float32"), "sex": np.arange(10) % 2}
    for lib in (kestrel, keras):
        dataset = _heart_py_dataset(lib, rows)
        assert dataset.num_batches == 3 and len(list(itertools.islice(dataset, 5))) == 3
        assert dataset.workers == 1 and dataset.max_queue_size == 10
    feature_space = kestrel.utils.FeatureSpace(
        {"age": "float_normalized", "sex": "integer_categorical"}, output_mode="concat")
    feature_space.adapt(_heart_py_dataset(kestrel, rows))
    encoded = feature_space({"age": np.array([4.5]), "sex": np.array([1])})
    # age normalized (mean 4.5), then sex one-hot over [OOV, 1, 0] (ties: larger token first)
    np.testing.assert_allclose(encoded.numpy(), [[0.0, 0.0, 1.0, 0.0]], atol=1e-6)


def test_fit_calls_py_dataset_epoch_hooks_as_keras():
    rows = {"age": np.arange(8, dtype="float32")}
    calls = []
    for lib in (kestrel, keras):
        model = lib.Sequential([lib.Input((1,)), lib.layers.Dense(1)])
        model.compile("sgd", "mse")
        dataset = _heart_py_dataset(lib, rows, labels=np.zeros((8, 1), "float32"))
        model.fit(dataset, epochs=2, verbose=0)
        calls.append(dataset.calls)
    assert calls[0] == calls[1] == ["begin", "end"] * 3  # the first pass reads a build batch


def test_endless_py_dataset_runs_steps_per_epoch():
    class Endless(kestrel.utils.PyDataset):
        num_batches = None

        def __getitem__(self, index):
            return np.full((2, 1), index, "float32"), np.zeros((2, 1), "float32")

    model = kestrel.Sequential([kestrel.Input((1,)), kestrel.layers.Dense(1)])
    model.compile("sgd", "mse")
    history = model.fit(Endless(), steps_per_epoch=3, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_read_only_arrays_convert_without_a_torch_warning(recwarn):
    """pandas' `.values` are read-only: fit, ops, adapt and FeatureSpace copy them quietly."""
    column = np.arange(8, dtype="float64")
    column.flags.writeable = False
    model = kestrel.Sequential([kestrel.Input((1,)), kestrel.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(column[:, None], column, epochs=1, verbose=0)
    assert kestrel.ops.convert_to_tensor(column).dtype == kestrel.ops.convert_to_tensor(
        column.copy()).dtype
    kestrel.layers.IntegerLookup()(column.astype("int64"))
    kestrel.utils.FeatureSpace({"a": "float_normalized"}).adapt({"a": column})
    list(kestrel.utils.timeseries_dataset_from_array(column, None, 3))
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def _recorded_structure_warnings(call):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if "structure of `inputs`" in str(w.message)]


def test_inputs_nested_unlike_the_model_warn_as_keras():
    """eeg_signal_classification predicts on `[array]` for its one-input model: Keras warns
    (and still runs); lists and tuples of the right length do not warn."""
    x = np.ones((4, 3), "float32")
    seen = []
    for lib in (kestrel, keras):
        a, b = lib.Input((3,), name="a"), lib.Input((3,), name="b")
        single = lib.Model(a, lib.layers.Dense(2)(a))
        pair = lib.Model([a, b], lib.layers.Add()([a, b]))
        seen.append([
            _recorded_structure_warnings(lambda: single.predict([x], verbose=0)),
            _recorded_structure_warnings(lambda: single.predict(x, verbose=0)),
            _recorded_structure_warnings(lambda: pair((x, x))),
            len(_recorded_structure_warnings(lambda: pair([[x, x]]))),
        ])
    assert seen[0] == seen[1]
    assert seen[0][0] == ["The structure of `inputs` doesn't match the expected structure.\n"
                          "Expected: a\nReceived: inputs=['Tensor(shape=torch.Size([4, 3]))']"]
    assert seen[0][3] == 1


def test_none_for_an_input_is_a_clear_error():
    messages = []
    for lib in (kestrel, keras):
        a = lib.Input((3,), name="a")
        model = lib.Model(a, lib.layers.Dense(2)(a))
        try:
            model(None)
        except ValueError as error:
            messages.append(str(error))
    assert len(messages) == 2 and messages[0] == messages[1]
    assert "The input 'a' is not optional, but None was passed" in messages[0]


def test_loading_a_model_with_sequential_blocks_numbers_later_models_as_keras(tmp_path):
    """tabtransformer saves a model holding Sequential MLP blocks, loads it, then builds the
    next model: its automatic name is the same as in Keras (which rebuilds each loaded
    Sequential after every added layer, taking a `functional` name each time)."""
    names = []
    for lib in (kestrel, keras):
        _fresh(lib)
        inputs = lib.Input((3,))
        block = lib.Sequential([lib.layers.LayerNormalization(), lib.layers.Dense(3),
                                lib.layers.Dropout(0.2)], name="feedforward_0")
        model = lib.Model(inputs, block(inputs))
        model.save(tmp_path / f"{lib.__name__}.keras")
        lib.models.load_model(tmp_path / f"{lib.__name__}.keras")
        names.append(lib.Model(inputs, inputs).name)
    assert names[0] == names[1] == "functional_5"


def test_py_dataset_without_super_init_warns_and_takes_defaults_as_keras():
    import warnings

    seen = []
    for lib in (kestrel, keras):
        class Batches(lib.utils.PyDataset):
            def __init__(self):  # no super().__init__()
                self.size = 2

            def __len__(self):
                return self.size

            def __getitem__(self, index):
                return np.ones((2, 1), "float32"), np.zeros((2, 1), "float32")

        model = lib.Sequential([lib.Input((1,)), lib.layers.Dense(1)])
        model.compile("sgd", "mse")
        dataset = Batches()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(dataset, epochs=1, verbose=0)
        messages = [str(w.message) for w in caught if "super().__init__" in str(w.message)]
        seen.append((messages[:1], dataset.workers, dataset.use_multiprocessing,
                     dataset.max_queue_size))
    assert seen[0] == seen[1] and seen[0][0]
