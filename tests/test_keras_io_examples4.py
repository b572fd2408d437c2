"""keras.io examples (part 4: generative, NLP, structured data, time series): the same code runs
with Kestrel and with real Keras (torch backend); layouts, values and training behaviour agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import copy_weights as _copy_weights, layout as _layout  # noqa: E402


def test_text_dataset_pipeline_chains_like_tf_data(tmp_path):
    """text_classification_from_scratch: map / take / cache / prefetch / cardinality."""
    rng = np.random.default_rng(0)
    words = "the movie was great bad awful fine good plot actor scene".split()
    for label in ("neg", "pos"):
        (tmp_path / label).mkdir()
        for i in range(10):
            (tmp_path / label / f"{i}.txt").write_text(" ".join(rng.choice(words, 8)))
    k = _fresh(kestrel)
    raw_train_ds, raw_val_ds = k.utils.text_dataset_from_directory(
        str(tmp_path), batch_size=4, validation_split=0.2, subset="both", seed=1337)
    assert raw_train_ds.cardinality() == 4 and raw_val_ds.cardinality() == 1
    (text_batch, label_batch), = list(raw_train_ds.take(1))
    assert text_batch.shape == (4,) and isinstance(text_batch[0], str)

    vectorize_layer = k.layers.TextVectorization(max_tokens=50, output_sequence_length=8)
    vectorize_layer.adapt(raw_train_ds.map(lambda x, y: x))
    assert set(vectorize_layer.get_vocabulary()[2:]) <= set(words)

    def vectorize_text(text, label):
        return vectorize_layer(np.expand_dims(text, -1)), label

    train_ds = raw_train_ds.map(vectorize_text).cache().prefetch(buffer_size=10)
    first = [x.clone() for x, _ in train_ds]
    again = [x for x, _ in train_ds]  # the cache replays the first pass
    assert len(first) == 4 and all(torch.equal(a, b) for a, b in zip(first, again))
    assert first[0].shape == (4, 8)

    inputs = k.Input(shape=(8,), dtype="int64")
    x = k.layers.Embedding(50, 4)(inputs)
    outputs = k.layers.Dense(1, activation="sigmoid")(k.layers.GlobalMaxPooling1D()(x))
    model = k.Model(inputs, outputs)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(train_ds, validation_data=raw_val_ds.map(vectorize_text), epochs=1,
                        verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(list(raw_train_ds.take(-1))) == 4 and len(raw_train_ds.take(9)) == 4


def _wgan_critic(k):
    """wgan_gp: a small critic (ZeroPadding2D, strided convs, LeakyReLU, Dropout)."""
    img_input = k.layers.Input(shape=(12, 12, 1))
    x = k.layers.ZeroPadding2D((2, 2))(img_input)
    for filters in (4, 8):
        x = k.layers.Conv2D(filters, (5, 5), strides=(2, 2), padding="same")(x)
        x = k.layers.LeakyReLU(0.2)(x)
        x = k.layers.Dropout(0.3)(x)
    x = k.layers.Dense(1)(k.layers.Flatten()(x))
    return k.models.Model(img_input, x, name="discriminator")


def test_wgan_gradient_penalty_double_backward_matches_keras():
    """The torch way of wgan_gp's penalty: autograd.grad(create_graph=True), then backward."""
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (4, 12, 12, 1)).astype("float32")
    fake = rng.uniform(-1, 1, (4, 12, 12, 1)).astype("float32")
    alpha = rng.random((4, 1, 1, 1)).astype("float32")
    results, source = {}, None
    for k in (keras, kestrel):
        d_model = _wgan_critic(_fresh(k))
        if source is None:
            source = d_model
        else:
            assert _layout(d_model) == _layout(source)
            _copy_weights(source, d_model)
        interpolated = torch.tensor(real + alpha * (fake - real), requires_grad=True)
        pred = d_model(interpolated, training=False)
        grads = torch.autograd.grad(pred.sum(), interpolated, create_graph=True)[0]
        norm = k.ops.sqrt(k.ops.sum(k.ops.square(grads), axis=[1, 2, 3]))
        gp = k.ops.mean((norm - 1.0) ** 2)
        gp.backward()
        grad_norms = [float(v.value.grad.norm()) if v.value.grad is not None else None
                      for v in d_model.trainable_weights]  # norms: torch and Keras layouts alike
        assert grad_norms[-1] is None  # the penalty does not depend on the last bias
        results[k.__name__] = [gp.detach().numpy()] + grad_norms[:-1]
    for a, b in zip(results["keras"], results["kestrel"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_train_step_returning_a_loss_with_gradients_logs_it_without_a_warning():
    import warnings

    import kestrel

    class Step(kestrel.Model):
        def train_step(self, data):
            x, y = data
            loss = ((self(x, training=True) - y) ** 2).mean()   # still attached to the graph
            loss.backward()
            return {"d_loss": loss}

    inputs = kestrel.Input((3,))
    model = Step(inputs, kestrel.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        history = model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), verbose=0)
    assert isinstance(history.history["d_loss"][0], float)
