"""Stateless calls, StatelessScope, stateless_compute_loss and state trees, against Keras 3."""
import os

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402


def _pair(seed=0):
    """The same Dense + BatchNormalization model in Keras and Kestrel, same weights."""
    def build(lib):
        inputs = lib.Input((3,))
        hidden = lib.layers.Dense(4, name="d", kernel_regularizer="l2")(inputs)
        return lib.Model(inputs, lib.layers.BatchNormalization(name="bn")(hidden))
    theirs, ours = build(keras), build(kestrel)
    ours.set_weights(theirs.get_weights())
    rng = np.random.default_rng(seed)
    values = [rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()]
    values[-1] = np.abs(values[-1]) + 0.5  # a moving variance
    return theirs, ours, values, rng.normal(size=(6, 3)).astype("float32")


def test_stateless_call_matches_keras_and_leaves_the_layer_unchanged():
    theirs, ours, values, x = _pair()
    before = ours.get_weights()
    n = len(ours.trainable_variables)
    out, new_state, losses = ours.stateless_call(
        [torch.tensor(v) for v in values[:n]], [torch.tensor(v) for v in values[n:]],
        torch.tensor(x), training=True, return_losses=True)
    ref_out, ref_state, ref_losses = theirs.stateless_call(
        values[:n], values[n:], x, training=True, return_losses=True)
    np.testing.assert_allclose(out.detach().numpy(), ref_out.detach().cpu().numpy(),
                               rtol=1e-5, atol=1e-5)
    for a, b in zip(new_state, ref_state):
        np.testing.assert_allclose(a.numpy(), b.detach().cpu().numpy(), rtol=1e-5, atol=1e-6)
    assert len(losses) == len(ref_losses) == 1
    np.testing.assert_allclose(float(losses[0]), float(ref_losses[0]), rtol=1e-5)
    for a, b in zip(before, ours.get_weights()):  # moving statistics included
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(new_state[0].numpy(), values[n])  # the statistics moved


def test_stateless_call_gradients_equal_those_of_a_normal_call():
    _, ours, values, x = _pair(1)
    n = len(ours.trainable_variables)
    given = [torch.tensor(v, requires_grad=True) for v in values[:n]]
    out, _ = ours.stateless_call(given, [torch.tensor(v) for v in values[n:]],
                                 torch.tensor(x), training=False)
    grads = torch.autograd.grad((out ** 2).sum(), given)
    ours.set_weights(values)
    reference = torch.autograd.grad((ours(torch.tensor(x)) ** 2).sum(),
                                    ours.trainable_variables)
    for a, b in zip(grads, reference):
        torch.testing.assert_close(a, b)


def test_stateless_call_errors_as_keras():
    _, ours, values, x = _pair()
    with pytest.raises(ValueError, match=r"Argument `trainable_variables` must be a list of "
                       r"tensors corresponding 1:1 to Functional\(\)\.trainable_variables\. "
                       r"Received list with length 1, but expected 4 variables\."):
        ours.stateless_call(values[:1], values[4:], x)
    with pytest.raises(ValueError, match="`non_trainable_variables`.*length 0, but expected 2"):
        ours.stateless_call(values[:4], [], x)
    with pytest.raises(ValueError, match="To call stateless_call, Dense must be built"):
        kestrel.layers.Dense(2).stateless_call([], [], x)


def test_stateless_scope_maps_records_and_undoes():
    ours = kestrel.Variable(np.zeros(3, "float32"), name="a")
    other = kestrel.Variable(np.ones(2, "float32"), name="b")
    theirs = keras.Variable(np.zeros(3, "float32"), name="a")
    results = []
    for lib, v in ((kestrel, ours), (keras, theirs)):
        with lib.StatelessScope([(v, np.full(3, 2.0))]) as scope:
            seen = np.asarray(v.numpy()).copy()
            v.assign_add(np.ones(3, "float32"))
        results.append((seen, np.asarray(scope.get_current_value(v).cpu()), v.numpy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    with kestrel.StatelessScope() as scope:
        other.assign(np.full(2, 5.0, "float32"))
        assert scope.get_current_value(ours) is None
    assert scope.get_current_value(other).tolist() == [5.0, 5.0]
    assert other.numpy().tolist() == [1.0, 1.0]


def test_stateless_scope_refuses_bad_mappings():
    v = kestrel.Variable(np.zeros(3, "float32"), name="a")
    with pytest.raises(ValueError, match="all keys in argument `mapping` must be Variable"):
        kestrel.StatelessScope([(torch.zeros(3), np.zeros(3))])
    with pytest.raises(ValueError, match=r"received a value with shape \(2,\); expected \(3,\)"):
        kestrel.StatelessScope([(v, np.zeros(2))])


def test_stateless_compute_loss_matches_keras():
    theirs, ours, values, x = _pair(2)
    y = np.ones((6, 4), "float32")
    for model in (theirs, ours):
        model.compile(optimizer="sgd", loss="mse")
    n = len(ours.trainable_variables)
    given = [torch.tensor(v, requires_grad=True) for v in values[:n]]
    metrics = [v.detach().clone() for v in ours.metrics_variables]
    y_pred, _ = ours.stateless_call(given, [torch.tensor(v) for v in values[n:]], torch.tensor(x))
    loss, (tv, ntv, mv) = ours.stateless_compute_loss(
        given, [torch.tensor(v) for v in values[n:]], metrics, x=x, y=torch.tensor(y),
        y_pred=y_pred)
    ref_pred, _ = theirs.stateless_call(values[:n], values[n:], x)
    ref_loss, (_, ref_ntv, _) = theirs.stateless_compute_loss(
        values[:n], values[n:], [v.numpy() for v in theirs.metrics_variables], x=x, y=y,
        y_pred=ref_pred)
    np.testing.assert_allclose(float(loss.detach()), float(ref_loss.detach()), rtol=1e-5)
    assert tv == given and len(ntv) == len(ref_ntv) == 2 and len(mv) == len(metrics)
    assert torch.autograd.grad(loss, given[0])[0].shape == (3, 4)  # penalty included
    with pytest.raises(ValueError, match=f"`metrics_variables`.*length 0, but expected "
                                         f"{len(metrics)}"):
        ours.stateless_compute_loss(given, values[n:], [], x=x)


def test_state_tree_nesting_and_round_trip_with_keras():
    theirs, ours, _, x = _pair(3)
    y = np.ones((6, 4), "float32")
    for model, lib in ((theirs, keras), (ours, kestrel)):  # names are numbered per process
        model.compile(optimizer=lib.optimizers.Adam(name="adam"), loss="mse", metrics=["mae"])
        model.fit(x, y, epochs=1, batch_size=6, verbose=0)
    ref = theirs.get_state_tree("numpy_array")
    tree = ours.get_state_tree("numpy_array")

    def keys(t):
        return {k: keys(v) for k, v in t.items()} if isinstance(t, dict) else None
    assert keys(tree) == keys(ref)
    ours.set_state_tree(ref)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    again = ours.get_state_tree()
    assert isinstance(again["trainable_variables"]["d"]["kernel"], torch.Tensor)
    np.testing.assert_allclose(
        again["optimizer_variables"]["adam"]["d_kernel_velocity"].numpy(),
        ref["optimizer_variables"]["adam"]["d_kernel_velocity"], rtol=1e-6)
    with pytest.raises(ValueError, match="Invalid `value_format`.*Received: value_format='x'"):
        ours.get_state_tree("x")
    with pytest.raises(ValueError, match="Unknown variable name: 'weights'"):
        ours.set_state_tree({"weights": {}})


def test_layer_weights_know_their_regularizer_and_scope_collects_losses():
    dense = kestrel.layers.Dense(2, kernel_regularizer="l2", kernel_constraint="non_neg")
    dense.build((None, 3))
    assert isinstance(dense.kernel.regularizer, kestrel.regularizers.L2)
    assert isinstance(dense.kernel.constraint, kestrel.constraints.NonNeg)
    assert dense.bias.regularizer is None and dense.bias.constraint is None

    class Penalty(kestrel.layers.Layer):
        def call(self, x):
            self.add_loss(x.sum())
            return x

    with kestrel.StatelessScope(collect_losses=True) as scope:
        Penalty()(torch.ones(2, 2))
    assert [float(t) for t in scope.losses] == [4.0]
