"""kestrel.random: shapes, dtypes, ranges, distributions and Keras 3 seeding semantics."""
import numpy as np
import pytest
import torch

import kestrel
from kestrel import random
from kestrel.layers import Layer
from tests.ops_harness import keras

N = 20000


@pytest.mark.parametrize("name, args, kwargs, mean, std", [
    ("normal", (), {"mean": 1.0, "stddev": 2.0}, 1.0, 2.0),
    ("uniform", (), {"minval": 2.0, "maxval": 5.0}, 3.5, 3 / 12 ** 0.5),
    ("truncated_normal", (), {"mean": 1.0, "stddev": 2.0}, 1.0, 2 * 0.8796),
    ("gamma", (0.5,), {}, 0.5, 0.5 ** 0.5), ("gamma", (3.0,), {}, 3.0, 3.0 ** 0.5),
    ("beta", (2.0, 5.0), {}, 2 / 7, (10 / (49 * 8)) ** 0.5),
    ("binomial", (10, 0.3), {}, 3.0, 2.1 ** 0.5),
])
def test_distribution_moments(name, args, kwargs, mean, std):
    sample = getattr(random, name)((N,), *args, seed=11, **kwargs)
    reference = getattr(keras().random, name)((N,), *args, seed=11, **kwargs)
    assert sample.shape == reference.shape == (N,) and sample.dtype == reference.dtype
    assert abs(float(sample.mean()) - mean) < 4 * std / N ** 0.5
    assert abs(float(sample.std()) - std) < 0.03 * std


def test_ranges_and_dtypes():
    t = random.truncated_normal((N,), mean=1.0, stddev=2.0, seed=1)
    assert float(t.min()) > -3.0 and float(t.max()) < 5.0
    u = random.uniform((2, 3), 2, 5, dtype="float16", seed=2)
    assert u.dtype == torch.float16 and float(u.min()) >= 2 and float(u.max()) < 5
    r = random.randint((N,), 3, 7, seed=1)
    assert r.dtype == keras().random.randint((2,), 3, 7).dtype
    assert set(r.tolist()) == {3, 4, 5, 6}
    assert random.randint((2,), 0, 3, dtype="int64").dtype == torch.int64
    b = random.beta((100,), 0.5, 0.5, dtype="float64", seed=3)
    assert b.dtype == torch.float64 and 0 <= float(b.min()) and float(b.max()) <= 1
    assert random.normal(3).shape == (3,)


def test_categorical_follows_the_logits():
    logits = torch.log(torch.tensor([[0.1, 0.9], [0.5, 0.5]]))
    draws = random.categorical(logits, N, seed=1)
    assert draws.shape == (2, N) and draws.dtype == keras().random.categorical(logits, 2).dtype
    torch.testing.assert_close(draws.float().mean(1), torch.tensor([0.9, 0.5]), atol=0.02,
                               rtol=0)


def test_dropout_and_shuffle():
    x = torch.ones(1000, 10)
    for seed in (1, None, random.SeedGenerator(4)):
        out = random.dropout(x, 0.3, seed=seed)
        assert abs(float((out == 0).float().mean()) - 0.3) < 0.02
        torch.testing.assert_close(out[out != 0], torch.full_like(out[out != 0], 1 / 0.7))
    rows = random.dropout(x, 0.5, noise_shape=(None, 1), seed=2)
    assert bool(((rows == 0).all(1) | (rows != 0).all(1)).all())
    assert torch.equal(random.dropout(x, 0.0), x) and not random.dropout(x, 1.0).any()
    shuffled = random.shuffle(torch.arange(12).reshape(3, 4), axis=1, seed=3)
    # as Keras' torch backend: each row gets its own order
    assert torch.equal(shuffled.sort(1).values, torch.arange(12).reshape(3, 4))


def test_int_seeds_repeat_and_seed_generators_advance():
    torch.testing.assert_close(random.normal((5,), seed=7), random.normal((5,), seed=7))
    assert not torch.equal(random.normal((5,), seed=7), random.normal((5,), seed=8))
    gen = random.SeedGenerator(42)
    first, second = random.uniform((5,), seed=gen), random.uniform((5,), seed=gen)
    assert not torch.equal(first, second) and gen.state.tolist() == [42, 2]
    again = random.SeedGenerator(42)
    torch.testing.assert_close(random.uniform((5,), seed=again), first)
    assert gen.get_config() == {"seed": 42, "name": gen.name}
    assert random.SeedGenerator.from_config(gen.get_config()).state.tolist() == [42, 0]
    with pytest.raises(ValueError, match="seed"):
        random.normal((2,), seed="7")
    with pytest.raises(ValueError, match="integer"):
        random.SeedGenerator(seed=1.5)


def test_set_random_seed_makes_unseeded_draws_reproducible():
    def draw():
        kestrel.utils.set_random_seed(123)
        gen = random.SeedGenerator()
        return [random.normal((4,)), random.gamma((4,), 2.0), random.dropout(torch.ones(8), 0.5),
                random.normal((4,), seed=gen), random.shuffle(torch.arange(6))]

    for a, b in zip(draw(), draw()):
        torch.testing.assert_close(a, b)


class Noisy(Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = random.SeedGenerator(5)

    def call(self, x):
        return x + random.normal(tuple(x.shape), seed=self.seed_generator)


def test_a_layer_keeps_its_seed_state_with_its_torch_state():
    layer = Noisy()
    layer(torch.zeros(2))
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    assert state["seed_generator.state"].tolist() == [5, 1]
    assert layer.weights == []  # as in Keras, seeds are state but not weights
    expected = layer(torch.zeros(2))
    restored = Noisy()
    restored.load_state_dict(state)
    torch.testing.assert_close(restored(torch.zeros(2)), expected)
    restored.to(torch.float64)
    assert restored.seed_generator.state.dtype == torch.int32  # Keras' seed dtype


def test_bad_dtypes_and_logits_are_refused():
    with pytest.raises(ValueError, match="floating point"):
        random.uniform((2,), dtype="int32")
    with pytest.raises(ValueError, match="integer"):
        random.randint((2,), 0, 3, dtype="float32")
    with pytest.raises(ValueError, match="2-D"):
        random.categorical(torch.ones(3), 2)


@pytest.mark.parametrize("noise_shape", [(None, 1, 1, 1), (None, 1, 1, 5), None])
def test_seeded_dropout_equals_keras_bit_for_bit(noise_shape):
    """Same kept positions and the same `x / keep` values as Keras' torch backend, with a
    broadcast mask (EfficientNet's drop-connect) as with a full one; the gradient is the
    mask over `keep`."""
    reference = keras()
    x = torch.tensor(np.random.RandomState(0).randn(16, 3, 3, 5).astype("float32"))
    for seed, rate in ((7, 0.3), (123, 0.0125)):
        expected = reference.ops.convert_to_numpy(
            reference.random.dropout(x, rate, noise_shape, seed))
        np.testing.assert_array_equal(random.dropout(x, rate, noise_shape, seed).numpy(),
                                      expected)
    leaf = x.clone().requires_grad_()
    out = random.dropout(leaf, 0.3, noise_shape, seed=3)
    out.sum().backward()
    torch.testing.assert_close(leaf.grad, (out != 0).float() / 0.7)
