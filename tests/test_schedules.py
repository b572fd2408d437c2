"""Learning-rate schedules against Keras 3's formulas, for Python and tensor steps."""
import json
import math

import numpy as np
import pytest
import torch

from kestrel.optimizers import schedules

STEPS = [0, 1, 3, 7, 10, 15, 20, 33, 100]


def keras_cosine_restarts(step, lr0, first, t_mul, m_mul, alpha):
    fraction = step / first
    if t_mul == 1.0:
        restart = math.floor(fraction)
        fraction -= restart
    else:
        restart = math.floor(math.log(1 - fraction * (1 - t_mul)) / math.log(t_mul))
        done = (1 - t_mul ** restart) / (1 - t_mul)
        fraction = (fraction - done) / t_mul ** restart
    cosine = 0.5 * m_mul ** restart * (1 + math.cos(math.pi * fraction))
    return lr0 * ((1 - alpha) * cosine + alpha)


def keras_polynomial(step, lr0, decay_steps, end, power, cycle):
    if cycle:
        decay_steps = decay_steps * (1 if step == 0 else math.ceil(step / decay_steps))
    else:
        step = min(step, decay_steps)
    return (lr0 - end) * (1 - step / decay_steps) ** power + end


def keras_cosine(step, lr0, decay_steps, alpha, target, warmup):
    def decay(s, start):
        return start * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha)

    if target is None:
        return decay(min(step, decay_steps), lr0)
    step = min(step, decay_steps + warmup)
    if step < warmup:
        return (target - lr0) * step / warmup + lr0
    return decay(step - warmup, target)


CASES = [
    (schedules.ExponentialDecay(0.1, 10, 0.5), lambda s: 0.1 * 0.5 ** (s / 10)),
    (schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True),
     lambda s: 0.1 * 0.5 ** math.floor(s / 10)),
    (schedules.PiecewiseConstantDecay([3, 15], [1.0, 0.5, 0.1]),
     lambda s: 1.0 if s <= 3 else 0.5 if s <= 15 else 0.1),
    (schedules.PolynomialDecay(0.1, 20), lambda s: keras_polynomial(s, 0.1, 20, 1e-4, 1.0, False)),
    (schedules.PolynomialDecay(0.1, 15, 0.01, power=2.0, cycle=True),
     lambda s: keras_polynomial(s, 0.1, 15, 0.01, 2.0, True)),
    (schedules.InverseTimeDecay(0.1, 5, 0.5), lambda s: 0.1 / (1 + 0.5 * s / 5)),
    (schedules.InverseTimeDecay(0.1, 5, 0.5, staircase=True),
     lambda s: 0.1 / (1 + 0.5 * math.floor(s / 5))),
    (schedules.CosineDecay(0.1, 20, alpha=0.1),
     lambda s: keras_cosine(s, 0.1, 20, 0.1, None, 0)),
    (schedules.CosineDecay(0.0, 20, warmup_target=0.2, warmup_steps=10),
     lambda s: keras_cosine(s, 0.0, 20, 0.0, 0.2, 10)),
    (schedules.CosineDecayRestarts(0.1, 5),
     lambda s: keras_cosine_restarts(s, 0.1, 5, 2.0, 1.0, 0)),
    (schedules.CosineDecayRestarts(0.1, 5, t_mul=1.0, m_mul=0.5, alpha=0.1),
     lambda s: keras_cosine_restarts(s, 0.1, 5, 1.0, 0.5, 0.1)),
]
IDS = [f"{type(s).__name__}-{i}" for i, (s, _) in enumerate(CASES)]


@pytest.mark.parametrize("schedule,formula", CASES, ids=IDS)
def test_values_match_keras_formula(schedule, formula):
    """The optimizer's per-step read is a Python float; the public call a float32 tensor."""
    got = [schedules.rate_at(schedule, step) for step in STEPS]
    assert all(isinstance(v, float) for v in got)
    np.testing.assert_allclose(got, [formula(step) for step in STEPS], rtol=1e-12, atol=1e-15)
    called = [schedule(step) for step in STEPS]
    assert all(v.dtype == torch.float32 and v.shape == () for v in called)
    np.testing.assert_allclose([v.item() for v in called], got, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("schedule,formula", CASES, ids=IDS)
def test_tensor_step_gives_the_same_values(schedule, formula):
    for step in STEPS:
        value = schedule(torch.tensor(float(step)))
        assert isinstance(value, torch.Tensor)
        np.testing.assert_allclose(value.item(), formula(step), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("schedule", [s for s, _ in CASES], ids=IDS)
def test_config_round_trip(schedule):
    config = schedule.get_config()
    rebuilt = type(schedule).from_config(json.loads(json.dumps(config)))
    assert rebuilt.get_config() == config
    serialized = schedules.serialize(schedule)
    assert serialized["module"] == "keras.optimizers.schedules"
    assert serialized["class_name"] == type(schedule).__name__
    again = schedules.deserialize(json.loads(json.dumps(serialized)))
    assert [again(s) for s in STEPS] == [schedule(s) for s in STEPS]


def test_keras_defaults():
    assert schedules.PolynomialDecay(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "end_learning_rate": 0.0001,
        "power": 1.0, "cycle": False, "name": "PolynomialDecay"}
    assert schedules.CosineDecay(0.1, 10).get_config() == {
        "initial_learning_rate": 0.1, "decay_steps": 10, "alpha": 0.0, "name": "CosineDecay",
        "warmup_target": None, "warmup_steps": 0}
    assert schedules.PiecewiseConstantDecay([1], [1.0, 0.5]).name == "PiecewiseConstant"
    assert schedules.CosineDecayRestarts(0.1, 10).get_config()["t_mul"] == 2.0


def test_argument_errors():
    with pytest.raises(ValueError, match="decay_steps=0"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="decay_steps=-1"):
        schedules.CosineDecay(0.1, -1)
    with pytest.raises(ValueError, match="1 less than"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.5])
    with pytest.raises(ValueError, match="first_decay_steps"):
        schedules.CosineDecayRestarts(0.1, 0)
    with pytest.raises(ValueError, match="schedule 'Nope'"):
        schedules.deserialize({"class_name": "Nope", "config": {}})


def test_custom_schedule_subclass():
    class Halving(schedules.LearningRateSchedule):
        def __call__(self, step):
            return 1.0 / 2 ** step

    assert Halving()(3) == 0.125
    with pytest.raises(NotImplementedError, match="get_config"):
        Halving().get_config()
    with pytest.raises(NotImplementedError, match="__call__"):
        schedules.LearningRateSchedule()(0)


@pytest.mark.parametrize("schedule,formula", CASES, ids=IDS)
def test_tensor_path_traces_into_one_graph(schedule, formula):
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(lambda step: schedule(step), backend=backend, fullgraph=True)
    for step in STEPS:
        np.testing.assert_allclose(compiled(torch.tensor(float(step))).item(), formula(step),
                                   rtol=1e-6, atol=1e-9)
    assert len(graphs) == 1
    torch._dynamo.reset()
