"""More classic Keras 2 scripts (`examples/` and common tutorials), with `keras` renamed to
`kestrel`: what each relies on that tests/test_keras2_examples.py does not already cover.

Keras 2 semantics are the reference here, where they differ from Keras 3 (noted per test).
"""
import numpy as np
import pytest

import kestrel
from kestrel.layers import (BatchNormalization, Conv2D, Dense, Flatten, Input, LeakyReLU,
                            Reshape, UpSampling2D)
from kestrel.models import Model, Sequential
from kestrel.optimizers import Adam

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _seed():
    kestrel.utils.clear_session()
    kestrel.utils.set_random_seed(0)


def _values(weights):
    return [np.array(kestrel.ops.convert_to_numpy(w)) for w in weights]


def _changed(before, weights):
    return [not np.array_equal(a, b) for a, b in zip(before, _values(weights))]


def test_gan_frozen_discriminator_in_combined_model_with_one_shared_optimizer():
    """Keras-GAN / mnist_acgan: `discriminator.trainable = False` between the two compiles.

    As in Keras 2 (and Keras' documented compile contract), the discriminator's own
    `train_on_batch` still trains it; the combined model trains only the generator; both
    share one Adam instance. (Keras 3 trains nothing in the discriminator here, and refuses
    the shared optimizer.)"""
    latent_dim = 4
    optimizer = Adam(0.01, 0.5)
    discriminator = Sequential([Conv2D(4, 3, strides=2, padding="same", input_shape=(4, 4, 1)),
                                LeakyReLU(alpha=0.2), Flatten(), Dense(1, activation="sigmoid")])
    discriminator.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    generator = Sequential([Dense(8, activation="relu", input_dim=latent_dim),
                            Reshape((2, 2, 2)), UpSampling2D(), BatchNormalization(momentum=0.8),
                            Conv2D(1, 3, padding="same", activation="tanh")])
    z = Input(shape=(latent_dim,))
    discriminator.trainable = False
    combined = Model(z, discriminator(generator(z)))
    combined.compile(loss="binary_crossentropy", optimizer=optimizer)
    assert len(combined.trainable_weights) == 6 and not discriminator.trainable_weights

    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (8, 4, 4, 1)).astype("float32")
    ones, zeros = np.ones((8, 1)), np.zeros((8, 1))
    for _ in range(2):
        noise = rng.normal(size=(8, latent_dim)).astype("float32")
        fake = generator.predict(noise, verbose=0)
        before = _values(discriminator.weights)
        d_loss = 0.5 * np.add(discriminator.train_on_batch(real, ones),
                              discriminator.train_on_batch(fake, zeros))
        assert all(_changed(before, discriminator.weights)), "the discriminator must train"
        assert d_loss.shape == (2,) and np.isfinite(d_loss).all()

        d_before, g_before = _values(discriminator.weights), _values(generator.trainable_weights)
        g_loss = combined.train_on_batch(noise, ones)
        assert np.isfinite(g_loss)
        assert not any(_changed(d_before, discriminator.weights)), "frozen in the combined model"
        assert all(_changed(g_before, generator.trainable_weights)), "the generator must train"
    assert discriminator.trainable is False  # the user's flag is left as set
    assert optimizer.iterations == 6
