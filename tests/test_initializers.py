import doctest
import json
import math

import numpy as np
import pytest
import torch

from kestrel import config, initializers
from kestrel.initializers import initializer as initializer_module

TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated at +-2
CONV_SHAPE = (3, 3, 64, 96)  # fan_in 576, fan_out 864
DENSE_SHAPE = (500, 300)


@pytest.mark.parametrize("shape,fans", [
    ((), (1, 1)), ((7,), (7, 7)), ((4, 9), (4, 9)), ((5, 16, 32), (80, 160)),
    ((3, 3, 8, 16), (72, 144)), ((2, 3, 3, 4, 5), (72, 90)),
])
def test_compute_fans_matches_keras(shape, fans):
    assert initializers.compute_fans(shape) == fans


def test_compute_fans_with_explicit_axes():
    assert initializers.compute_fans((4, 5, 6), input_axes=[0], output_axes=[1, 2]) == (4, 30)


# (class, shape, distribution, expected stddev of the untruncated distribution or limit)
PRESETS = [
    (initializers.GlorotUniform, DENSE_SHAPE, "uniform", math.sqrt(6 / 800)),
    (initializers.GlorotNormal, DENSE_SHAPE, "normal", math.sqrt(2 / 800)),
    (initializers.HeUniform, CONV_SHAPE, "uniform", math.sqrt(6 / 576)),
    (initializers.HeNormal, CONV_SHAPE, "normal", math.sqrt(2 / 576)),
    (initializers.LecunUniform, CONV_SHAPE, "uniform", math.sqrt(3 / 576)),
    (initializers.LecunNormal, DENSE_SHAPE, "normal", math.sqrt(1 / 500)),
]


@pytest.mark.parametrize("cls,shape,distribution,value", PRESETS)
def test_presets_follow_keras_formulas(cls, shape, distribution, value):
    w = cls(seed=1)(shape)
    assert w.shape == shape and w.dtype == torch.float32
    w = w.double()
    assert abs(w.mean()) < 0.02 * value
    if distribution == "uniform":
        assert w.abs().max() <= value and w.abs().max() > 0.99 * value
        assert w.std() == pytest.approx(value / math.sqrt(3), rel=0.02)
    else:
        # The truncated draw is rescaled so that its stddev after truncation is `value`.
        assert w.std() == pytest.approx(value, rel=0.02)
        bound = 2 * value / TRUNC_STD
        assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound


@pytest.mark.parametrize("mode,fan", [("fan_in", 576), ("fan_out", 864), ("fan_avg", 720)])
def test_variance_scaling_modes_and_untruncated_normal(mode, fan):
    init = initializers.VarianceScaling(scale=3.0, mode=mode,
                                        distribution="untruncated_normal", seed=2)
    w = init(CONV_SHAPE).double()
    stddev = math.sqrt(3.0 / fan)
    assert w.std() == pytest.approx(stddev, rel=0.02)
    assert w.abs().max() > 3 * stddev  # not truncated


def test_random_normal_uniform_and_truncated_statistics():
    w = initializers.RandomNormal(mean=1.0, stddev=2.0, seed=3)((400, 500)).double()
    assert w.mean() == pytest.approx(1.0, abs=0.02)
    assert w.std() == pytest.approx(2.0, rel=0.01)
    w = initializers.RandomUniform(minval=-1.0, maxval=3.0, seed=3)((400, 500)).double()
    assert w.min() >= -1.0 and w.max() < 3.0
    assert w.mean() == pytest.approx(1.0, abs=0.02)
    w = initializers.TruncatedNormal(mean=0.5, stddev=0.1, seed=3)((400, 500)).double()
    assert (w - 0.5).abs().max() <= 0.2 and (w - 0.5).abs().max() > 0.199
    assert w.std() == pytest.approx(0.1 * TRUNC_STD, rel=0.01)


def test_keras_default_arguments():
    assert initializers.RandomNormal().get_config() == {"seed": None, "mean": 0.0,
                                                        "stddev": 0.05}
    assert initializers.RandomUniform().get_config() == {"seed": None, "minval": -0.05,
                                                         "maxval": 0.05}
    assert initializers.TruncatedNormal().stddev == 0.05
    assert initializers.VarianceScaling().get_config() == {
        "seed": None, "scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal",
        "input_axes": None, "output_axes": None}
    assert initializers.Orthogonal().get_config() == {"seed": None, "gain": 1.0}
    assert initializers.Constant().get_config() == {"value": 0.0}
    assert initializers.Identity().get_config() == {"gain": 1.0}
    assert initializers.GlorotUniform().get_config() == {"seed": None, "input_axes": None,
                                                         "output_axes": None}


def test_constant_zeros_ones_identity_values_and_dtypes():
    assert torch.equal(initializers.Zeros()((2, 3)), torch.zeros(2, 3))
    assert torch.equal(initializers.Ones()((4,), dtype="int32"),
                       torch.ones(4, dtype=torch.int32))
    assert torch.equal(initializers.Constant(2.5)((2, 2), dtype=torch.float64),
                       torch.full((2, 2), 2.5, dtype=torch.float64))
    assert torch.equal(initializers.Constant([1.0, 2.0])((3, 2)),
                       torch.tensor([[1.0, 2.0]] * 3))
    assert torch.equal(initializers.Identity(gain=3.0)((2, 3)), 3.0 * torch.eye(2, 3))
    with pytest.raises(ValueError, match="2D.*shape=\\(2, 2, 2\\)"):
        initializers.Identity()((2, 2, 2))


def test_default_dtype_follows_floatx():
    config.set_floatx("float64")
    try:
        assert initializers.HeNormal()((3, 4)).dtype == torch.float64
        assert initializers.Zeros()((3,)).dtype == torch.float64
    finally:
        config.set_floatx("float32")
    assert initializers.HeNormal()((3, 4)).dtype == torch.float32


def test_half_precision_draws_in_that_dtype_as_keras():
    init = initializers.GlorotUniform(seed=5)
    half = init((8, 8), dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    assert not torch.equal(half, init((8, 8)).to(torch.bfloat16))  # not float32's, rounded
    assert initializers.Orthogonal(seed=5)((4, 3), dtype="float16").dtype == torch.float16


@pytest.mark.parametrize("shape,gain", [((6, 4), 1.0), ((4, 6), 2.0), ((3, 3, 4, 8), 0.5)])
def test_orthogonal_is_orthogonal(shape, gain):
    w = initializers.Orthogonal(gain=gain, seed=7)(shape, dtype="float64")
    assert w.shape == shape
    matrix = w.reshape(-1, shape[-1])
    gram = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
    np.testing.assert_allclose(gram.numpy(), gain ** 2 * np.eye(gram.shape[0]), atol=1e-12)
    with pytest.raises(ValueError, match="rank 2 or more"):
        initializers.Orthogonal()((5,))


ALL_RANDOM = [
    initializers.RandomNormal, initializers.RandomUniform, initializers.TruncatedNormal,
    initializers.VarianceScaling, initializers.Orthogonal, *(p[0] for p in PRESETS),
]


@pytest.mark.parametrize("cls", ALL_RANDOM)
def test_seeded_initializers_are_deterministic(cls):
    a, b, c = cls(seed=42), cls(seed=42), cls(seed=43)
    assert torch.equal(a((16, 8)), b((16, 8)))
    assert torch.equal(a((16, 8)), a((16, 8)))
    assert not torch.equal(a((16, 8)), c((16, 8)))


def test_unseeded_initializers_take_a_seed_from_python_random():
    from kestrel.utils import set_random_seed

    set_random_seed(0)
    init = initializers.GlorotNormal()
    first = init((16, 8))
    torch.manual_seed(1)  # torch's global generator plays no part
    assert torch.equal(init((16, 8)), first)
    assert not torch.equal(initializers.GlorotNormal()((16, 8)), first)
    set_random_seed(0)
    assert torch.equal(initializers.GlorotNormal()((16, 8)), first)


@pytest.mark.parametrize("make,match", [
    (lambda: initializers.RandomNormal(stddev=0.0), "stddev=0.0"),
    (lambda: initializers.TruncatedNormal(stddev=-1.0), "stddev=-1.0"),
    (lambda: initializers.RandomUniform(minval=1.0, maxval=0.0), "minval=1.0"),
    (lambda: initializers.VarianceScaling(scale=0.0), "scale=0.0"),
    (lambda: initializers.VarianceScaling(mode="fan_max"), "mode='fan_max'"),
    (lambda: initializers.VarianceScaling(distribution="cauchy"), "distribution='cauchy'"),
    (lambda: initializers.HeNormal(seed="1"), "seed='1'"),
])
def test_invalid_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_random_initializers_refuse_integer_dtypes():
    with pytest.raises(ValueError, match="dtype=int32"):
        initializers.RandomNormal()((2,), dtype="int32")


def test_normal_distribution_alias_means_truncated():
    assert initializers.VarianceScaling(distribution="Normal").distribution == "truncated_normal"


ALL_CLASSES = [initializers.Zeros, initializers.Ones, initializers.Constant,
               initializers.Identity, *ALL_RANDOM]


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_config_round_trip(cls):
    kwargs = {"seed": 9} if cls in ALL_RANDOM else {}
    init = cls(**kwargs)
    saved = json.loads(json.dumps(initializers.serialize(init)))
    assert saved == {"module": "keras.initializers", "class_name": cls.__name__,
                     "config": init.get_config(), "registered_name": None}
    restored = initializers.deserialize(saved)
    assert type(restored) is cls and restored.get_config() == init.get_config()
    assert torch.equal(restored((4, 4)), init((4, 4)))
    assert type(cls.from_config(init.get_config())) is cls


def test_reads_keras3_and_keras2_configs():
    keras3 = {"module": "keras.initializers", "class_name": "GlorotUniform",
              "config": {"seed": None, "input_axes": None, "output_axes": None},
              "registered_name": None}
    assert type(initializers.get(keras3)) is initializers.GlorotUniform
    orth = initializers.get({"module": "keras.initializers", "class_name": "Orthogonal",
                             "config": {"seed": None, "gain": 1.0}, "registered_name": None})
    assert isinstance(orth, initializers.Orthogonal)
    keras2 = {"class_name": "VarianceScaling",
              "config": {"scale": 2.0, "mode": "fan_out", "distribution": "normal", "seed": 1}}
    restored = initializers.get(keras2)
    assert (restored.scale, restored.mode, restored.distribution) == (2.0, "fan_out",
                                                                      "truncated_normal")


@pytest.mark.parametrize("name,cls", [
    ("zeros", initializers.Zeros), ("ones", initializers.Ones),
    ("constant", initializers.Constant), ("random_normal", initializers.RandomNormal),
    ("random_uniform", initializers.RandomUniform),
    ("truncated_normal", initializers.TruncatedNormal),
    ("variance_scaling", initializers.VarianceScaling),
    ("glorot_uniform", initializers.GlorotUniform), ("glorot_normal", initializers.GlorotNormal),
    ("he_uniform", initializers.HeUniform), ("he_normal", initializers.HeNormal),
    ("lecun_uniform", initializers.LecunUniform), ("lecun_normal", initializers.LecunNormal),
    ("orthogonal", initializers.Orthogonal), ("OrthogonalInitializer", initializers.Orthogonal),
    ("identity", initializers.Identity), ("IdentityInitializer", initializers.Identity),
    ("uniform", initializers.RandomUniform), ("normal", initializers.RandomNormal),
    ("GlorotUniform", initializers.GlorotUniform),
])
def test_get_by_name_gives_a_fresh_instance(name, cls):
    first, second = initializers.get(name), initializers.get(name)
    assert type(first) is cls and first is not second


def test_get_accepts_classes_instances_callables_and_arrays():
    assert type(initializers.get(initializers.HeNormal)) is initializers.HeNormal
    instance = initializers.Ones()
    assert initializers.get(instance) is instance
    assert initializers.get(None) is None

    def custom(shape, dtype=None):
        return torch.full(shape, 7.0)

    assert initializers.get(custom) is custom
    values = np.arange(6.0).reshape(2, 3)
    init = initializers.get(values)
    np.testing.assert_array_equal(init((2, 3)).numpy(), values)
    assert init((2, 3)).dtype == torch.float32
    with pytest.raises(ValueError, match="shape=\\(3, 2\\)"):
        init((3, 2))


def test_get_rejects_unknown_identifiers():
    with pytest.raises(ValueError, match="Unknown initializer 'glorot_unifrom'"):
        initializers.get("glorot_unifrom")
    with pytest.raises(ValueError, match="identifier=1.5"):
        initializers.get(1.5)


def test_custom_initializer_round_trips_through_custom_objects():
    class Twos(initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return torch.full(tuple(shape), 2.0)

    saved = initializers.serialize(Twos())
    restored = initializers.deserialize(saved, custom_objects={"Twos": Twos})
    assert torch.equal(restored((2,)), torch.full((2,), 2.0))


def test_clone_copies_configuration():
    init = initializers.RandomNormal(mean=1.0, stddev=0.5, seed=3)
    clone = init.clone()
    assert clone is not init and clone.get_config() == init.get_config()


def test_docstring_examples():
    result = doctest.testmod(initializer_module)
    assert result.attempted > 0 and result.failed == 0
