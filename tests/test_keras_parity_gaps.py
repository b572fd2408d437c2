"""Small Keras 3 behaviours checked against real Keras (torch backend): variable paths under
the scopes open at build time, optimizer variable names, ...
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _paths(model):
    return [w.path for w in model.weights]


def _path_cases(lib):
    """(case, weight paths) for models built the ways Keras users build them."""
    lib = _fresh(lib)
    x = np.zeros((1, 3), "float32")

    class Block(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = lib.layers.Dense(2)

        def build(self, input_shape):
            self.a = self.add_weight(shape=(3,))
            self.b = self.add_weight(shape=(3,))
            self.named = self.add_weight(shape=(1,), name="named")

        def call(self, inputs):
            return self.inner(inputs)

    class Sub(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.d = lib.layers.Dense(2)

        def call(self, inputs):
            return self.d(inputs)

    out = {}
    out["seq_input"] = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    deferred = lib.Sequential([lib.layers.Dense(2)])
    deferred(x)
    out["seq_deferred"] = deferred
    inputs = lib.Input((3,))
    out["functional"] = lib.Model(inputs, lib.layers.Dense(2)(inputs))
    sub = Sub()
    sub(x)
    out["subclass"] = sub
    block = Block()
    block(x)
    out["block"] = block
    out["seq_block"] = lib.Sequential([lib.Input((3,)), Block()])
    inner = lib.Sequential([lib.layers.Dense(2)])
    inputs = lib.Input((3,))
    out["functional_of_sequential"] = lib.Model(inputs, inner(inputs))
    out["seq_of_subclass"] = lib.Sequential([lib.Input((3,)), Sub()])
    out["bidirectional"] = lib.Sequential(
        [lib.Input((2, 3)), lib.layers.Bidirectional(lib.layers.LSTM(2))])
    inputs = lib.Input((2, 3))
    out["attention"] = lib.Model(inputs, lib.layers.MultiHeadAttention(1, 2)(inputs, inputs))
    out["time_distributed"] = lib.Sequential(
        [lib.Input((2, 3)), lib.layers.TimeDistributed(lib.layers.Dense(2))])
    with lib.name_scope("outer"):
        scoped = lib.layers.Dense(2)
        scoped.build((None, 3))
    out["name_scope"] = scoped
    result = {case: _paths(model) for case, model in out.items()}
    result["layer_paths"] = [layer.path for layer in out["seq_block"].layers]
    with lib.name_scope("outer"):
        variables = [lib.Variable(np.zeros(2)), lib.Variable(np.zeros(2), name="v")]
    result["variables"] = [v.path for v in variables]
    return result


def test_weight_paths_carry_the_scopes_open_at_build_as_keras():
    ours, theirs = _path_cases(kestrel), _path_cases(keras)
    assert ours == theirs
    assert ours["seq_input"] == ["sequential/dense/kernel", "sequential/dense/bias"]
    assert ours["block"][:2] == ["block/variable", "block/variable_1"]


def test_unnamed_weights_keep_index_attributes_for_torch():
    layer = kestrel.layers.Layer()
    first, second = layer.add_weight(shape=(1,)), layer.add_weight(shape=(1,))
    assert first.name != second.name and first.name.startswith("variable")
    assert list(dict(layer.named_parameters())) == ["variable_0", "variable_1"]


def _optimizer_paths(lib):
    out = {}
    for name, kwargs in [("Adam", {}), ("SGD", {"momentum": 0.9}),
                         ("RMSprop", {"momentum": 0.9, "centered": True}),
                         ("Adam", {"use_ema": True}), ("Ftrl", {})]:
        _fresh(lib)
        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
        optimizer = getattr(lib.optimizers, name)(**kwargs)
        optimizer.build(model.trainable_variables)
        out[name, tuple(kwargs)] = [(v.name, v.path) for v in optimizer.variables]
    _fresh(lib)
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    optimizer = lib.optimizers.LossScaleOptimizer(lib.optimizers.SGD())
    optimizer.build(model.trainable_variables)
    out["loss_scale"] = [v.path for v in optimizer.variables]
    return out


def test_optimizer_variables_are_named_as_keras():
    ours = _optimizer_paths(kestrel)
    assert ours == _optimizer_paths(keras)
    assert ("sequential_dense_kernel_momentum", "adam/sequential_dense_kernel_momentum") \
        in ours["Adam", ()]


def test_optimizer_slot_variable_shares_the_live_state():
    model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(2)])
    optimizer = kestrel.optimizers.SGD(momentum=0.9)
    optimizer.build(model.trainable_variables)
    slot = optimizer.variables[2]
    slot.assign(np.ones((3, 2), "float32"))
    assert np.array_equal(optimizer.get_weights()[2], np.ones((3, 2)))


def _state_tree_and_h5(lib, path):
    lib = _fresh(lib)
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    tree = model.get_state_tree()
    model.save(path)
    import h5py

    with h5py.File(path) as file:
        names = [n.decode() if isinstance(n, bytes) else n
                 for n in file["optimizer_weights"].attrs["weight_names"]]
    return {kind: sorted(value) for kind, value in tree.items()}, \
        sorted(tree["optimizer_variables"]["adam"]), names


def test_state_tree_and_h5_optimizer_names_follow_keras_paths(tmp_path):
    ours = _state_tree_and_h5(kestrel, str(tmp_path / "k.h5"))
    assert ours == _state_tree_and_h5(keras, str(tmp_path / "r.h5"))
    assert "adam/sequential_dense_kernel_momentum" in ours[2]


def _random_draws(lib):
    """keras.random with int seeds, SeedGenerators and no seed (after set_random_seed)."""
    lib = _fresh(lib)
    lib.utils.set_random_seed(1)
    r, out = lib.random, {}
    x = lib.ops.convert_to_tensor(np.arange(24, dtype="float32").reshape(2, 3, 4))
    ones = lib.ops.ones((2, 5))
    generator = r.SeedGenerator(7)
    for kind, seed in (("int", 2**31 + 5), ("generator", generator), ("none", None)):
        draws = [r.normal((2, 3), mean=1.0, stddev=2.0, seed=seed),
                 r.normal((3,), dtype="float64", seed=seed),
                 r.uniform((3,), minval=-1, maxval=2, seed=seed), r.uniform((), seed=seed),
                 r.randint((5,), 0, 10, seed=seed), r.randint((3,), -5, 5, "int64", seed=seed),
                 r.truncated_normal((20,), mean=1.0, stddev=3.0, seed=seed),
                 r.shuffle(x, seed=seed), r.shuffle(x, axis=2, seed=seed),
                 r.categorical(np.log([[0.2, 0.3, 0.5]]), 6, seed=seed),
                 r.dropout(ones, 0.5, seed=seed),
                 r.dropout(ones, 0.5, noise_shape=(1, 5), seed=seed),
                 r.gamma((3,), 2.0, seed=seed), r.beta((3,), 2.0, 3.0, seed=seed),
                 r.binomial((3,), 10, 0.3, seed=seed)]
        out[kind] = [np.asarray(lib.ops.convert_to_numpy(d)) for d in draws]
    out["state"] = np.asarray(lib.ops.convert_to_numpy(generator.state))
    unseeded = r.SeedGenerator()
    out["unseeded_generator"] = [np.asarray(lib.ops.convert_to_numpy(
        r.normal((3,), seed=unseeded))) for _ in range(2)]
    return out


def test_random_ops_draw_the_numbers_keras_torch_backend_draws():
    ours, theirs = _random_draws(kestrel), _random_draws(keras)
    assert ours.keys() == theirs.keys()
    for key in ours:
        for a, b in zip(ours[key], theirs[key]):
            assert a.dtype == b.dtype, key
            np.testing.assert_array_equal(a, b, err_msg=key)


def test_clear_session_restarts_unseeded_draws():
    def draw(lib):
        lib.utils.set_random_seed(5)
        lib.random.normal((2,))
        lib.utils.clear_session()
        return np.asarray(lib.ops.convert_to_numpy(lib.random.uniform((4,))))

    np.testing.assert_array_equal(draw(kestrel), draw(keras))


def test_fit_evaluate_predict_defaults_match_keras(capsys):
    import inspect

    for method in ("fit", "evaluate", "predict"):
        ours = inspect.signature(getattr(kestrel.Model, method)).parameters
        theirs = inspect.signature(getattr(keras.Model, method)).parameters
        for name in ("batch_size", "verbose", "steps", "callbacks", "shuffle"):
            if name in theirs:
                assert ours[name].default == theirs[name].default, (method, name)
    model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(1)])
    capsys.readouterr()
    model.predict(np.zeros((4, 3), "float32"))
    assert "1/1" in capsys.readouterr().out  # "auto": the progress bar, as Keras


def _shuffle_warnings(lib):
    import warnings

    import torch

    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((4, 3), "float32"), np.zeros((4, 1), "float32")

    def batches():
        while True:
            yield x, y

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(4, 3), torch.zeros(4, 1)), batch_size=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(batches(), steps_per_epoch=1, verbose=0)
        model.fit(loader, verbose=0)
        model.fit(loader, verbose=0, shuffle=False)
        model.fit(x, y, verbose=0)
    return [str(w.message) for w in caught if "shuffle" in str(w.message)]


def test_fit_warns_that_generators_and_dataloaders_are_not_shuffled():
    ours = _shuffle_warnings(kestrel)
    assert ours == _shuffle_warnings(keras) and len(ours) == 2


def test_keras2_fit_generator_does_not_warn_about_shuffle():
    import warnings

    model = kestrel.Sequential([kestrel.Input((3,)), kestrel.layers.Dense(1)])
    model.compile("sgd", "mse")

    def batches():
        while True:
            yield np.zeros((2, 3), "float32"), np.zeros((2, 1), "float32")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit_generator(batches(), steps_per_epoch=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]


def _tensor_names(lib):
    lib = _fresh(lib)
    a = lib.Input((3,))
    b = lib.Input((3,), name="feat")
    c = lib.layers.Dense(2)(a)
    d = lib.ops.add(a, b)
    e = a + 1
    lstm = lib.layers.LSTM(2, return_state=True)(lib.Input((2, 3)))
    model = lib.Model(a, c)
    nested = model(lib.Input((3,)))
    seq = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    clone = lib.models.clone_model(model)
    return {"tensors": [t.name for t in (a, b, c, d, e, *lstm, nested)],
            "repr": [repr(t) for t in (a, c)],
            "model": [t.name for t in model.inputs + model.outputs],
            "sequential": [t.name for t in seq.inputs + seq.outputs],
            "clone": [layer.name for layer in clone.layers],
            "placeholder": lib.KerasTensor((None, 1)).name}


def test_symbolic_tensors_are_named_keras_tensor_n_as_keras():
    ours = _tensor_names(kestrel)
    assert ours == _tensor_names(keras)
    assert ours["tensors"][:3] == ["keras_tensor", "feat", "keras_tensor_1"]


def _noise_layer_outputs(lib):
    lib = _fresh(lib)
    x, x3 = lib.ops.ones((2, 6)), lib.ops.ones((2, 3, 4))
    layers = [(lib.layers.Dropout(0.5, seed=3), x),
              (lib.layers.Dropout(0.5, (1, None), seed=3), x),
              (lib.layers.GaussianNoise(0.1, seed=2), x), (lib.layers.GaussianNoise(0.1), x),
              (lib.layers.GaussianDropout(0.3, seed=1), x),
              (lib.layers.AlphaDropout(0.3, seed=2), x),
              (lib.layers.SpatialDropout1D(0.5, seed=2), x3)]
    return [np.asarray(lib.ops.convert_to_numpy(layer(data, training=True)))
            for layer, data in layers for _ in range(2)]


def test_seeded_noise_layers_draw_keras_numbers():
    ours, theirs = _noise_layer_outputs(kestrel), _noise_layer_outputs(keras)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_noise_layer_seed_state_stays_out_of_the_torch_state_dict():
    layer = kestrel.layers.Dropout(0.5, seed=1)
    assert isinstance(layer.seed_generator, kestrel.random.SeedGenerator)
    assert dict(layer.state_dict()) == {}
