"""keras.io vision examples (part f: BASNet segmentation, fully convolutional network, IIC
clustering; checked clean without a test here: 3D image classification, EANet, AdaIN, AOD-Net,
AlexNet, gradient centralization, FGSM, forward-forward, focal modulation, DenseNet/CSPNet,
GoogleNet, FixRes, ensemble of U-Nets): the same miniature code runs with Kestrel and with real
Keras (torch backend); graphs, configs, values and training behaviour agree.
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


def _kinds(value):
    return type(value).__name__ if not isinstance(value, (list, tuple, dict)) else \
        (type(value).__name__, [_kinds(v) for v in (value.values() if isinstance(value, dict)
                                                     else value)])


def test_functional_input_and_output_keep_the_constructor_structure():
    """basnet_segmentation: `Model(inputs=[x], ...)` keeps `model.input` a list (Keras 3 does
    not unwrap it), so `model.input[0]` is the Input itself; shapes unwrap one tensor."""
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        x = k.Input((3,))
        y = k.layers.Dense(2)(x)
        cases = {"lists": ([x], [y]), "tensors": (x, y), "tuple": ((x,), (y,)), "dict": (x, {"a": y})}
        got[lib] = {}
        for name, (i, o) in cases.items():
            model = k.Model(i, o)
            got[lib][name] = (_kinds(model.input), _kinds(model.output), model.input_shape,
                              model.output_shape)
        model = k.Model([x], [y])
        head = k.Model(model.input[0], k.layers.Dense(1)(model.output[0]))
        got[lib]["sliced"] = [w.shape for w in head.weights]
    assert got[kestrel] == got[keras]


def test_metrics_list_longer_than_the_targets_pairs_with_the_first_outputs():
    """basnet_segmentation: four outputs, one target and a `compute_loss` override; Keras pairs
    the per-output metrics with the flat targets, so only the first output gets its metric."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 3)).astype("float32")
    y = rng.uniform(size=(4, 2)).astype("float32")
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)

        class Net(k.Model):
            def compute_loss(self, x, y, y_pred, sample_weight=None, training=False):
                return sum(k.ops.mean(k.ops.square(y - p)) for p in y_pred)

        inputs = k.Input((3,))
        outputs = [k.layers.Dense(2, name=f"out_{i}")(inputs) for i in range(4)]
        model = Net(inputs, outputs)
        model.compile(optimizer="sgd",
                      metrics=[k.metrics.MeanAbsoluteError(name="mae") for _ in model.outputs])
        history = model.fit(x, y, batch_size=2, epochs=1, validation_data=(x, y), verbose=0)
        got[lib] = history.history
    assert sorted(got[kestrel]) == sorted(got[keras]) == [
        "loss", "out_0_mae", "val_loss", "val_out_0_mae"]
    for name, values in got[keras].items():
        np.testing.assert_allclose(got[kestrel][name], values, rtol=1e-5)


def test_changing_the_list_a_call_returned_leaves_the_graph_as_keras():
    """fully_convolutional_network: `x = backbone(inputs); x[-1] = head(x[-1])` replaces an
    item of the returned list; the backbone's node keeps its own outputs, so the summary
    shows its real output shapes, as Keras'."""
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        layers = k.layers
        inputs = k.Input((4,))
        backbone = k.Model(inputs, [layers.Dense(2)(inputs), layers.Dense(3)(inputs)])
        x_in = k.Input((4,))
        x = backbone(x_in)
        x[-1] = layers.Dense(5)(x[-1])
        branches = [x_in, x_in]
        joined = layers.Concatenate()(branches)
        branches.append(x[0])
        model = k.Model(x_in, x + [joined])
        printed = []
        model.summary(print_fn=printed.append)
        got[lib] = ("\n".join(printed).splitlines(), [tuple(t.shape) for t in model.outputs],
                    [w.shape for w in model.weights])
    assert got[kestrel] == got[keras]


def test_nested_list_outputs_config_round_trip():
    """IIC_cluster: `Model(inputs, [main_heads, aux_heads])` has nested `output_layers` in its
    config, as Keras'; Kestrel rebuilds Keras' config with the same nested predictions."""
    x = np.random.default_rng(0).uniform(size=(2, 3)).astype("float32")
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        inputs = k.Input((3,))
        heads = [k.layers.Dense(2, activation="softmax")(inputs) for _ in range(2)]
        aux = [k.layers.Dense(4, activation="softmax")(inputs) for _ in range(2)]
        model = k.Model(inputs, [heads, aux])
        config = model.get_config()
        got[lib] = (model, config["output_layers"], _kinds(model.predict(x, verbose=0)))
    assert got[kestrel][1:] == got[keras][1:]
    rebuilt = kestrel.Model.from_config(json.loads(json.dumps(got[keras][0].get_config())))
    rebuilt.set_weights(got[keras][0].get_weights())
    predicted = rebuilt.predict(x, verbose=0)
    expected = got[keras][0].predict(x, verbose=0)
    assert _kinds(predicted) == _kinds(expected)
    for a, b in zip(kestrel.tree.flatten(predicted), keras.tree.flatten(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_evaluate_builds_the_optimizer_as_keras():
    """fully_convolutional_network: a summary printed after `evaluate` counts the optimizer's
    variables, as Keras builds a compiled model's optimizer at evaluate; no step is taken."""
    x = np.random.default_rng(0).uniform(size=(4, 3)).astype("float32")
    got = {}
    for lib in (keras, kestrel):
        k = _fresh(lib)
        inputs = k.Input((3,))
        model = k.Model(inputs, k.layers.Dense(2)(inputs))
        model.compile(optimizer=k.optimizers.AdamW(1e-3), loss="mse")
        before = model.optimizer.built
        model.evaluate(x, x[:, :2], verbose=0)
        printed = []
        model.summary(print_fn=printed.append)
        got[lib] = (before, model.optimizer.built, int(model.optimizer.iterations),
                    "\n".join(printed).splitlines()[-1])
    assert got[kestrel] == got[keras]
