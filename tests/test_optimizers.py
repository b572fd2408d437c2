"""Optimizers against a NumPy transcription of Keras 3's update rules, plus state and config."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from kestrel import optimizers
from kestrel.optimizers import schedules

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "keras3"
SHAPES = [(4, 3), (3,), (3, 2)]


# ------------------------------------------------------------------ NumPy reference (float64)
def ref_sgd(w, g, s, lr, t, momentum=0.0, nesterov=False):
    if momentum == 0:
        return w - lr * g
    m = s["m"] = momentum * s.get("m", 0.0) - lr * g
    return w + momentum * m - lr * g if nesterov else w + m


def ref_adam(w, g, s, lr, t, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False):
    m = s["m"] = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - beta_1)
    v = s["v"] = s.get("v", 0.0) + (g * g - s.get("v", 0.0)) * (1 - beta_2)
    if amsgrad:
        v = s["vhat"] = np.maximum(s.get("vhat", 0.0), v)
    alpha = lr * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    return w - m * alpha / (np.sqrt(v) + epsilon)


def ref_rmsprop(w, g, s, lr, t, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    v = s["v"] = rho * s.get("v", 0.0) + (1 - rho) * g * g
    if centered:
        a = s["a"] = rho * s.get("a", 0.0) + (1 - rho) * g
        increment = lr * g / np.sqrt(v - a * a + epsilon)
    else:
        increment = lr * g / np.sqrt(v + epsilon)
    if momentum > 0:
        increment = s["m"] = momentum * s.get("m", 0.0) + increment
    return w - increment


def ref_adagrad(w, g, s, lr, t, initial_accumulator_value=0.1, epsilon=1e-7):
    acc = s["acc"] = s.get("acc", initial_accumulator_value) + g * g
    return w - lr * g / np.sqrt(acc + epsilon)


def ref_adadelta(w, g, s, lr, t, rho=0.95, epsilon=1e-7):
    ag = s["ag"] = rho * s.get("ag", 0.0) + (1 - rho) * g * g
    delta = -np.sqrt(s.get("ad", 0.0) + epsilon) * g / np.sqrt(ag + epsilon)
    s["ad"] = rho * s.get("ad", 0.0) + (1 - rho) * delta * delta
    return w + lr * delta


def ref_adamax(w, g, s, lr, t, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    m = s["m"] = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - beta_1)
    u = s["u"] = np.maximum(beta_2 * s.get("u", 0.0), np.abs(g))
    return w - lr * m / ((1 - beta_1 ** t) * (u + epsilon))


def ref_nadam(w, g, s, lr, t, beta_1=0.9, beta_2=0.999, epsilon=1e-7, shared=None):
    u_t = beta_1 * (1 - 0.5 * 0.96 ** t)
    u_t1 = beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
    if shared.get("t") != t:  # once per step, before the per-variable updates
        shared["t"], shared["u_product"] = t, shared.get("u_product", 1.0) * u_t
    u_product = shared["u_product"]
    m = s["m"] = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - beta_1)
    v = s["v"] = s.get("v", 0.0) + (g * g - s.get("v", 0.0)) * (1 - beta_2)
    m_hat = u_t1 * m / (1 - u_product * u_t1) + (1 - u_t) * g / (1 - u_product)
    v_hat = v / (1 - beta_2 ** t)
    return w - m_hat * lr / (np.sqrt(v_hat) + epsilon)


def ref_ftrl(w, g, s, lr, t, learning_rate_power=-0.5, initial_accumulator_value=0.1,
             l1_regularization_strength=0.0, l2_regularization_strength=0.0,
             l2_shrinkage_regularization_strength=0.0, beta=0.0):
    acc = s.get("acc", np.full_like(w, initial_accumulator_value))
    l2 = l2_regularization_strength + beta / (2.0 * lr)
    g_used = g + 2 * l2_shrinkage_regularization_strength * w
    new_acc = acc + g * g
    p = -learning_rate_power
    lin = s["lin"] = s.get("lin", 0.0) + g_used - (new_acc ** p - acc ** p) / lr * w
    quadratic = new_acc ** p / lr + 2 * l2
    s["acc"] = new_acc
    l1 = l1_regularization_strength
    return (np.clip(lin, -l1, l1) - lin) / quadratic


def ref_lion(w, g, s, lr, t, beta_1=0.9, beta_2=0.99):
    m = s.get("m", 0.0)
    w = w - lr * np.sign(m * beta_1 + g * (1 - beta_1))
    s["m"] = m * beta_2 + g * (1 - beta_2)
    return w


REFS = {"SGD": ref_sgd, "Adam": ref_adam, "AdamW": ref_adam, "RMSprop": ref_rmsprop,
        "Adagrad": ref_adagrad, "Adadelta": ref_adadelta, "Adamax": ref_adamax,
        "Nadam": ref_nadam, "Ftrl": ref_ftrl, "Lion": ref_lion}
BASE_KEYS = ("learning_rate", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm")


def keras_reference(name, config, weights, grad_steps):
    """Run Keras' update rule (base-class clipping and weight decay included) in float64."""
    cfg = {"learning_rate": optimizers.get(name).get_config()["learning_rate"], **config}
    if name == "AdamW":
        cfg.setdefault("weight_decay", 0.004)
    extra = {k: v for k, v in cfg.items() if k not in BASE_KEYS}
    if name == "Nadam":
        extra["shared"] = {}
    lr_spec = cfg["learning_rate"]
    weights = [w.astype(np.float64) for w in weights]
    states = [{} for _ in weights]
    for step, grads in enumerate(grad_steps):
        lr = float(lr_spec(step)) if callable(lr_spec) else lr_spec  # a schedule: a 0-d tensor
        grads = [g.astype(np.float64) for g in grads]
        if cfg.get("clipnorm"):
            c = cfg["clipnorm"]
            grads = [g * c / max(np.linalg.norm(g), c) for g in grads]
        elif cfg.get("global_clipnorm"):
            c = cfg["global_clipnorm"]
            norm = np.sqrt(sum((g ** 2).sum() for g in grads))
            grads = [g * c * min(1 / norm, 1 / c) for g in grads]
        elif cfg.get("clipvalue"):
            grads = [np.clip(g, -cfg["clipvalue"], cfg["clipvalue"]) for g in grads]
        if cfg.get("weight_decay") is not None:
            weights = [w - w * cfg["weight_decay"] * lr for w in weights]
        weights = [REFS[name](w, g, s, lr, step + 1, **extra)
                   for w, g, s in zip(weights, grads, states)]
    return weights


def make_problem(steps=5, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    grads = [[(rng.normal(size=s) * scale).astype(np.float32) for s in SHAPES]
             for _ in range(steps)]
    return weights, grads


def run_kestrel(optimizer, weights, grad_steps, dtype=torch.float32, fused=None):
    params = [torch.nn.Parameter(torch.tensor(w, dtype=dtype)) for w in weights]
    optimizer.build(params)
    if fused is not None:
        assert optimizer._fusable
        optimizer._fusable = fused
    for grads in grad_steps:
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=dtype)
        optimizer.step()
    return [p.detach().numpy() for p in params]


CASES = [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.5, "nesterov": True}),
    ("SGD", {"momentum": 0.9, "weight_decay": 0.1, "clipnorm": 1.0}),
    ("Adam", {}), ("Adam", {"amsgrad": True}), ("Adam", {"weight_decay": 0.05}),
    ("Adam", {"clipvalue": 0.5}), ("Adam", {"global_clipnorm": 1.5, "learning_rate": 0.01}),
    ("AdamW", {}), ("AdamW", {"amsgrad": True, "weight_decay": 0.1, "clipnorm": 0.7}),
    ("RMSprop", {}), ("RMSprop", {"momentum": 0.5, "centered": True}),
    ("RMSprop", {"weight_decay": 0.02, "global_clipnorm": 1.0}),
    ("Adagrad", {}), ("Adagrad", {"clipvalue": 0.3, "weight_decay": 0.1}),
    ("Adadelta", {"learning_rate": 1.0}), ("Adamax", {}), ("Adamax", {"weight_decay": 0.1}),
    ("Nadam", {}), ("Nadam", {"clipnorm": 0.5}),
    ("Ftrl", {"learning_rate": 0.1}),
    ("Ftrl", {"learning_rate": 0.1, "l1_regularization_strength": 0.01,
              "l2_regularization_strength": 0.05, "l2_shrinkage_regularization_strength": 0.1,
              "beta": 0.2, "learning_rate_power": -0.7}),
    ("Lion", {}), ("Lion", {"weight_decay": 0.5, "clipnorm": 1.0}),
]


@pytest.mark.parametrize("name,config", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_matches_keras_update_rule(name, config):
    weights, grads = make_problem()
    expected = keras_reference(name, config, weights, grads)
    got = run_kestrel(optimizers.get({"class_name": name, "config": config}), weights, grads)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,config", [("SGD", {"momentum": 0.9, "nesterov": True}),
                                         ("Adam", {}), ("Adam", {"weight_decay": 0.01})])
def test_sgd_and_adam_equal_keras_over_many_steps(name, config):
    """In float64 the maths agree to 1e-12; in float32 to float32 rounding (~1 ulp per step)."""
    weights, grads = make_problem(steps=200, seed=1, scale=0.1)
    expected = keras_reference(name, config, weights, grads)
    optimizer = optimizers.get({"class_name": name, "config": config})
    got = run_kestrel(optimizer, weights, grads, dtype=torch.float64)
    assert max(np.abs(e - g).max() for e, g in zip(expected, got)) < 1e-12
    got = run_kestrel(optimizers.get({"class_name": name, "config": config}), weights, grads)
    assert max(np.abs(e - g).max() for e, g in zip(expected, got)) < 4e-6


@pytest.mark.parametrize("config", [{}, {"amsgrad": True, "weight_decay": 0.1}])
def test_fused_adam_kernel_equals_foreach_formula(config):
    weights, grads = make_problem(steps=50)
    a = run_kestrel(optimizers.Adam(**config), weights, grads, fused=True)
    b = run_kestrel(optimizers.Adam(**config), weights, grads, fused=False)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_schedule_is_evaluated_at_the_iteration_count():
    schedule = schedules.ExponentialDecay(0.01, decay_steps=2, decay_rate=0.5)
    weights, grads = make_problem()
    expected = keras_reference("Adam", {"learning_rate": schedule}, weights, grads)
    optimizer = optimizers.Adam(learning_rate=schedule)
    got = run_kestrel(optimizer, weights, grads)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    assert optimizer.learning_rate == pytest.approx(float(schedule(5)))


def test_callable_learning_rate_of_the_step():
    weights, grads = make_problem()
    expected = keras_reference("SGD", {"learning_rate": lambda s: 0.1 / (s + 1)}, weights, grads)
    got = run_kestrel(optimizers.SGD(learning_rate=lambda step: 0.1 / (step + 1)), weights, grads)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_learning_rate_setter_takes_effect_on_next_step():
    p = torch.nn.Parameter(torch.zeros(2))
    optimizer = optimizers.SGD(learning_rate=0.1)
    optimizer.build([p])
    optimizer.learning_rate = 0.5
    assert optimizer.learning_rate == 0.5
    p.grad = torch.ones(2)
    optimizer.step()
    np.testing.assert_allclose(p.detach().numpy(), [-0.5, -0.5])
    assert optimizer.get_weights()[1] == np.float32(0.5)
    scheduled = optimizers.SGD(learning_rate=schedules.InverseTimeDecay(0.1, 1, 1.0))
    with pytest.raises(TypeError, match="not settable"):
        scheduled.learning_rate = 0.3


def test_parameters_without_grad_are_skipped():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    optimizer = optimizers.Adam(learning_rate=0.1, weight_decay=0.5)
    optimizer.build([a, b])
    a.grad = torch.ones(3)
    optimizer.step()
    assert torch.equal(b.detach(), torch.ones(2))
    assert not torch.equal(a.detach(), torch.ones(3))
    assert all(not t.any() for i, _, t in optimizer.slot_variables() if i == 1)
    assert optimizer.iterations == 1


def test_apply_builds_lazily_and_leaves_given_gradients_untouched():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    grad = torch.tensor([10.0, -10.0])
    optimizer = optimizers.SGD(learning_rate=0.1, clipvalue=1.0)
    optimizer.apply([grad], [w])
    assert optimizer.built and optimizer.iterations == 1
    np.testing.assert_allclose(w.detach().numpy(), [0.9, 2.1], rtol=1e-6)
    assert grad.tolist() == [10.0, -10.0]
    assert optimizer.apply_gradients([(np.array([1.0, 1.0], np.float32), w)]) == 2
    optimizer.apply([torch.ones(2)])
    assert optimizer.iterations == 3
    with pytest.raises(ValueError, match="Unknown variable"):
        optimizer.apply([torch.ones(1)], [torch.nn.Parameter(torch.ones(1))])


def test_loss_scale_factor_divides_gradients():
    w = torch.nn.Parameter(torch.zeros(1))
    optimizer = optimizers.SGD(learning_rate=1.0, loss_scale_factor=4.0)
    assert optimizer.scale_loss(torch.tensor(2.0)).item() == 8.0
    optimizer.apply([torch.tensor([8.0])], [w])
    assert w.item() == -2.0


def test_zero_grad():
    w = torch.nn.Parameter(torch.ones(2))
    optimizer = optimizers.SGD()
    optimizer.build([w])
    w.grad = torch.ones(2)
    optimizer.zero_grad(set_to_none=False)
    assert torch.equal(w.grad, torch.zeros(2))
    optimizer.zero_grad()
    assert w.grad is None


# ------------------------------------------------------------------ state and weights
def test_adam_weights_follow_keras_file_order():
    with h5py.File(FIXTURES / "seq_mlp.weights.h5", "r") as f:
        group = f["optimizer"]["vars"]
        stored = [group[str(i)][()] for i in range(len(group))]
        layer_shapes = [f["layers"][name]["vars"][i].shape
                        for name in ("dense", "dense_1") for i in ("0", "1")]
    params = [torch.nn.Parameter(torch.zeros(s)) for s in layer_shapes]
    optimizer = optimizers.Adam()
    optimizer.build(params)
    assert [w.shape for w in optimizer.get_weights()] == [w.shape for w in stored]
    names = [(i, name) for i, name, _ in optimizer.slot_variables()]
    assert names == [(i, n) for i in range(4) for n in ("momentum", "velocity")]
    optimizer.set_weights(stored)
    assert optimizer.iterations == int(stored[0]) > 0
    for got, want in zip(optimizer.get_weights(), stored):
        np.testing.assert_array_equal(got, want)
    assert optimizer.get_weights()[0].dtype == stored[0].dtype


def test_variable_order_and_counts_match_keras():
    params = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]

    def order(optimizer):
        optimizer.build(params)
        return [(i, name) for i, name, _ in optimizer.slot_variables()]

    assert order(optimizers.RMSprop(momentum=0.9, centered=True)) == (
        [(i, "velocity") for i in range(3)] + [(i, "momentum") for i in range(3)]
        + [(i, "average_gradient") for i in range(3)])
    assert order(optimizers.Adam(amsgrad=True))[-3:] == [(i, "velocity_hat") for i in range(3)]
    assert order(optimizers.Ftrl())[:2] == [(0, "accumulator"), (0, "linear")]
    assert order(optimizers.SGD()) == []
    assert order(optimizers.Nadam())[-1] == (None, "u_product")
    nadam = optimizers.Nadam()
    nadam.build(params)
    assert len(nadam.variables) == 2 + 2 * 3 + 1
    scheduled = optimizers.SGD(schedules.ExponentialDecay(0.1, 10, 0.9), momentum=0.9)
    scheduled.build(params)
    assert len(scheduled.get_weights()) == 1 + 3  # no learning_rate variable with a schedule
    adagrad = optimizers.Adagrad(initial_accumulator_value=0.3)
    adagrad.build(params)
    assert all(float(t.min()) == pytest.approx(0.3) for _, _, t in adagrad.slot_variables())


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Nadam", "Ftrl", "Lion"])
def test_set_weights_round_trip_continues_identically(name):
    config = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    weights, grads = make_problem(steps=6)
    first = optimizers.get({"class_name": name, "config": config})
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    first.build(params)
    for step_grads in grads[:3]:
        first.apply([torch.tensor(g) for g in step_grads])
    second = optimizers.get({"class_name": name, "config": config})
    clones = [torch.nn.Parameter(p.detach().clone()) for p in params]
    second.build(clones)
    second.set_weights(first.get_weights())
    assert second.iterations == 3
    for step_grads in grads[3:]:
        first.apply([torch.tensor(g) for g in step_grads])
        second.apply([torch.tensor(g) for g in step_grads])
    for a, b in zip(params, clones):
        assert torch.equal(a, b)


def test_state_dict_round_trip_through_torch_save(tmp_path):
    weights, grads = make_problem(steps=4)
    first = optimizers.Nadam(learning_rate=0.01)
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    first.build(params)
    for step_grads in grads[:2]:
        first.apply([torch.tensor(g) for g in step_grads])
    first.learning_rate = 0.02
    torch.save(first.state_dict(), tmp_path / "opt.pt")
    second = optimizers.Nadam(learning_rate=0.01)
    second.load_state_dict(torch.load(tmp_path / "opt.pt", weights_only=True))  # before build
    clones = [torch.nn.Parameter(p.detach().clone()) for p in params]
    second.build(clones)
    assert second.iterations == 2 and second.learning_rate == pytest.approx(0.02)
    for step_grads in grads[2:]:
        first.apply([torch.tensor(g) for g in step_grads])
        second.apply([torch.tensor(g) for g in step_grads])
    for a, b in zip(params, clones):
        assert torch.equal(a, b)


def test_set_weights_checks_build_count_and_shapes():
    optimizer = optimizers.Adam()
    with pytest.raises(ValueError, match="not yet been built"):
        optimizer.set_weights([])
    optimizer.build([torch.nn.Parameter(torch.zeros(2))])
    with pytest.raises(ValueError, match="has 4 variables"):
        optimizer.set_weights([0, 0.1])
    with pytest.raises(ValueError, match="shape"):
        optimizer.set_weights([0, 0.1, np.zeros(3), np.zeros(2)])


def test_iterations_setter_and_step_before_build():
    optimizer = optimizers.Adam()
    with pytest.raises(ValueError, match="must be built"):
        optimizer.step()
    optimizer.iterations = 7
    optimizer.build([torch.nn.Parameter(torch.zeros(2))])
    assert optimizer.iterations == 7 and optimizer._step_t.item() == 7


# ------------------------------------------------------------------ config and lookup
@pytest.mark.parametrize("name", sorted(REFS))
def test_config_round_trip(name):
    optimizer = optimizers.get(name)
    config = optimizer.get_config()
    assert config["name"] == optimizer.name
    json.dumps(config)
    rebuilt = type(optimizer).from_config(config)
    assert rebuilt.get_config() == config
    again = optimizers.deserialize(json.loads(json.dumps(optimizers.serialize(optimizer))))
    assert type(again) is type(optimizer) and again.get_config() == config


def test_keras_defaults_and_serialized_form():
    adam = optimizers.Adam()
    assert (adam.beta_1, adam.beta_2, adam.epsilon) == (0.9, 0.999, 1e-7)
    assert adam.learning_rate == float(np.float32(0.001))  # a float32 variable, as in Keras
    assert adam.get_config()["learning_rate"] == 0.0010000000474974513  # Keras' own value
    assert optimizers.SGD().learning_rate == pytest.approx(0.01)
    assert optimizers.AdamW().weight_decay == 0.004
    assert optimizers.Adadelta().rho == 0.95
    assert optimizers.Lion().beta_2 == 0.99
    ftrl = optimizers.Ftrl()
    assert (ftrl.learning_rate_power, ftrl.initial_accumulator_value) == (-0.5, 0.1)
    assert optimizers.serialize(adam) == {
        "module": "keras.optimizers", "class_name": "Adam", "config": adam.get_config(),
        "registered_name": None}


def test_schedule_in_config_round_trips():
    schedule = schedules.PolynomialDecay(0.1, 100, end_learning_rate=0.01, power=2.0)
    config = optimizers.SGD(learning_rate=schedule).get_config()
    assert config["learning_rate"]["class_name"] == "PolynomialDecay"
    assert config["learning_rate"]["module"] == "keras.optimizers.schedules"
    rebuilt = optimizers.SGD.from_config(json.loads(json.dumps(config)))
    assert isinstance(rebuilt._learning_rate, schedules.PolynomialDecay)
    assert rebuilt.get_config() == config


def test_reads_keras_written_optimizer_config():
    model = json.loads((FIXTURES / "seq_mlp.json").read_text())
    optimizer = optimizers.get(model["compile_config"]["optimizer"])
    assert isinstance(optimizer, optimizers.Adam)
    assert optimizer.name == "adam" and optimizer.learning_rate == pytest.approx(0.001)


def test_get_resolves_names_case_insensitively():
    for name, cls in [("sgd", optimizers.SGD), ("Adam", optimizers.Adam),
                      ("ADAMW", optimizers.AdamW), ("rmsprop", optimizers.RMSprop),
                      ("adagrad", optimizers.Adagrad), ("adadelta", optimizers.Adadelta),
                      ("adamax", optimizers.Adamax), ("nadam", optimizers.Nadam),
                      ("ftrl", optimizers.Ftrl), ("lion", optimizers.Lion)]:
        assert type(optimizers.get(name)) is cls
    instance = optimizers.SGD()
    assert optimizers.get(instance) is instance
    assert optimizers.get(None) is None
    sgd = optimizers.get({"class_name": "SGD", "config": {"momentum": 0.5}})
    assert sgd.momentum == 0.5
    with pytest.raises(ValueError, match="'nosuchopt'"):
        optimizers.get("nosuchopt")


def test_default_names_are_unique_snake_case():
    first, second = optimizers.RMSprop(), optimizers.RMSprop()
    assert first.name.startswith("rm_sprop") and first.name != second.name  # Keras' snake case
    assert optimizers.Adam(name="mine").name == "mine"


def test_argument_errors():
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)
    with pytest.raises(ValueError, match="weight_decay=None"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.Adam(bogus=1)
    with pytest.raises(ValueError, match="learning_rate='fast'"):
        optimizers.Adam(learning_rate="fast")
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(ValueError, match="learning_rate_power"):
        optimizers.Ftrl(learning_rate_power=0.5)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Lion(beta_1=0.0)


# ------------------------------------------------------------------ torch.compile
@pytest.mark.parametrize("name,config", [
    ("Adam", {"learning_rate": schedules.CosineDecay(0.01, 4, warmup_target=0.05,
                                                     warmup_steps=2)}),
    ("Nadam", {"global_clipnorm": 1.0, "weight_decay": 0.1}),
    ("Ftrl", {"beta": 0.1, "l1_regularization_strength": 0.01}),
])
def test_step_traces_into_one_graph_matching_eager(name, config):
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    weights, grads = make_problem(steps=5)
    eager = run_kestrel(optimizers.get({"class_name": name, "config": config}), weights, grads)
    optimizer = optimizers.get({"class_name": name, "config": config})
    params = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    optimizer.build(params)
    step = torch.compile(optimizer.step, backend=backend, fullgraph=True)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        step()
    assert len(graphs) == 1
    assert optimizer.iterations == 5
    for e, p in zip(eager, params):
        np.testing.assert_allclose(p.detach().numpy(), e, atol=2e-6)
    torch._dynamo.reset()
