"""compile / fit / evaluate / predict against hand-written torch references."""
import numpy as np
import pytest
import torch

import kestrel as keras
from kestrel.layers import Dense, Input
from kestrel.models import Model, Sequential


def _data(n=64, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = rng.integers(0, classes, size=(n,)).astype("int64")
    return x, y


def _mlp(d=6, classes=3):
    keras.utils.set_random_seed(1)
    return Sequential([Input(shape=(d,)), Dense(8, activation="tanh"), Dense(classes)])


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_fit_matches_hand_written_torch_loop(opt_name):
    x, y = _data()
    model = _mlp()
    reference = _mlp()
    reference.set_weights(model.get_weights())
    optimizer = (keras.optimizers.SGD(learning_rate=0.1) if opt_name == "sgd"
                 else keras.optimizers.Adam(learning_rate=0.01))
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)

    params = list(reference.parameters())
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    reference.train()
    step = 0
    for _ in range(3):
        for start in range(0, len(x), 16):
            step += 1
            for p in params:
                p.grad = None
            loss = torch.nn.functional.cross_entropy(reference(xt[start:start + 16]),
                                                     yt[start:start + 16])
            loss.backward()
            with torch.no_grad():  # Keras' update rules, written out by hand
                for p, (m, v) in zip(params, moments):
                    if opt_name == "sgd":
                        p -= 0.1 * p.grad
                        continue
                    m.mul_(0.9).add_(0.1 * p.grad)
                    v.mul_(0.999).add_(0.001 * p.grad ** 2)
                    lr_t = 0.01 * (1 - 0.999 ** step) ** 0.5 / (1 - 0.9 ** step)
                    p -= lr_t * m / (v.sqrt() + 1e-7)
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_history_validation_split_and_metrics():
    x, y = _data(n=100)
    model = _mlp()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    # Make the last 20% distinguishable: the validation split must take exactly those.
    history = model.fit(x, y, epochs=2, validation_split=0.2, verbose=0, batch_size=10)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == [0, 1]
    val_loss, val_acc = model.evaluate(x[80:], y[80:], verbose=0)
    assert val_loss == pytest.approx(history.history["val_loss"][-1], rel=1e-5)
    assert val_acc == pytest.approx(history.history["val_accuracy"][-1], rel=1e-5)
    assert model.metrics_names == ["loss", "accuracy"]
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}


def test_evaluate_scalar_and_predict_numpy():
    x, y = _data()
    model = _mlp()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    logits = model.predict(x, batch_size=7)
    assert isinstance(logits, np.ndarray) and logits.shape == (64, 3)
    expected = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
    assert loss == pytest.approx(float(expected), rel=1e-5)


def test_multi_output_names_weights_and_dict_targets():
    keras.utils.set_random_seed(0)
    a = Input(shape=(4,), name="a")
    h = Dense(6, activation="relu")(a)
    out1, out2 = Dense(1, name="reg")(h), Dense(3, activation="softmax", name="cls")(h)
    model = Model(a, [out1, out2])
    model.compile("sgd", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  loss_weights={"reg": 2.0, "cls": 0.5}, metrics={"cls": ["accuracy"]})
    x = np.random.rand(32, 4).astype("float32")
    y_reg = np.random.rand(32, 1).astype("float32")
    y_cls = np.random.randint(0, 3, (32,))
    # batches of 10, 10, 10, 2: every loss is a mean over samples (batch-size weighted)
    results = model.evaluate(x, {"reg": y_reg, "cls": y_cls}, verbose=0, batch_size=10)
    assert model.metrics_names == ["loss", "reg_loss", "cls_loss", "cls_accuracy"]
    total, reg, cls, accuracy = results
    assert total == pytest.approx(2.0 * reg + 0.5 * cls, rel=1e-5)
    p_reg, p_cls = model.predict(x)
    assert reg == pytest.approx(float(np.mean((p_reg - y_reg) ** 2)), rel=1e-5)
    picked = np.clip(p_cls[np.arange(32), y_cls], 1e-7, 1 - 1e-7)
    assert cls == pytest.approx(float(-np.log(picked).mean()), rel=1e-5)
    assert accuracy == pytest.approx(float(np.mean(p_cls.argmax(1) == y_cls)))
    with pytest.raises(ValueError, match="name no output"):
        model.fit(x, {"regression": y_reg, "cls": y_cls}, verbose=0)


def test_sample_weight_and_class_weight_change_the_loss_as_keras_defines():
    x, y = _data(n=32)
    model = _mlp()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    weights = np.linspace(0.0, 2.0, 32).astype("float32")
    logits = torch.from_numpy(model.predict(x))
    per_sample = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y), reduction="none")
    expected = float((per_sample * torch.from_numpy(weights)).sum() / 32)
    got = model.evaluate(x, y, sample_weight=weights, batch_size=32, verbose=0)
    assert got == pytest.approx(expected, rel=1e-5)
    first = model.train_on_batch(x, y, class_weight={0: 0.0, 1: 0.0, 2: 0.0})
    assert first == pytest.approx(0.0, abs=1e-7)


def test_errors_are_clear():
    x, y = _data()
    model = _mlp()
    with pytest.raises(ValueError, match="compile"):
        model.fit(x, y, verbose=0)
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="cardinality"):
        model.fit(x, y[:10], verbose=0)
    with pytest.raises(ValueError, match="expected last dimension"):
        model.fit(x[:, :4], y, verbose=0)
    with pytest.raises(ValueError, match="Unknown"):
        model.compile("sgd", "not_a_loss")
    with pytest.raises(ValueError, match="Unknown"):
        model.compile("not_an_optimizer", "mse")


class SimpleMLP(keras.Model):
    def __init__(self, use_dp=False, num_classes=3):
        super(SimpleMLP, self).__init__(name="mlp")
        self.use_dp = use_dp
        self.num_classes = num_classes
        self.dense1 = keras.layers.Dense(16, activation="relu")
        self.dense2 = keras.layers.Dense(num_classes, activation="softmax")
        if use_dp:
            self.dp = keras.layers.Dropout(0.5)

    def call(self, inputs):
        x = self.dense1(inputs)
        if self.use_dp:
            x = self.dp(x)
        return self.dense2(x)


def test_subclassed_model_trains_and_dropout_sees_training_flag():
    x, y = _data(n=128)
    model = SimpleMLP(use_dp=True)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not model.training  # back in inference mode after fit
    a, b = model.predict(x[:4]), model.predict(x[:4])
    np.testing.assert_array_equal(a, b)  # dropout off in predict
    t = torch.from_numpy(x[:4])
    assert not torch.equal(model(t, training=True), model(t, training=True))
    config = model.get_config()
    clone = SimpleMLP.from_config(config)
    assert clone.use_dp and clone.num_classes == 3


def test_subclass_with_non_plain_args_cannot_serialize():
    class Wrapper(keras.Model):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, x):
            return self.inner(x)

    with pytest.raises(NotImplementedError, match="get_config"):
        Wrapper(Dense(2)).get_config()


def test_generators_datasets_and_pydatasets():
    x, y = _data(n=40)
    model = _mlp()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def gen():
        while True:
            for s in range(0, 40, 10):
                yield x[s:s + 10], y[s:s + 10]

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return x[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10]

    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=10)
    reference = model.evaluate(x, y, batch_size=10, verbose=0)
    assert model.evaluate(gen(), steps=4, verbose=0) == pytest.approx(reference, rel=1e-5)
    assert model.evaluate(Batches(), verbose=0) == pytest.approx(reference, rel=1e-5)
    assert model.evaluate(loader, verbose=0) == pytest.approx(reference, rel=1e-5)
    assert model.evaluate(dataset, batch_size=10, verbose=0) == pytest.approx(reference, rel=1e-5)
    history = model.fit(gen(), steps_per_epoch=4, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_add_loss_and_regularization_join_the_total_loss():
    class WithPenalty(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = Dense(1, kernel_regularizer=keras.regularizers.L2(0.5))

        def call(self, x):
            out = self.dense(x)
            self.add_loss(out.abs().mean())
            return out

    x = np.random.rand(8, 3).astype("float32")
    y = np.zeros((8, 1), "float32")
    model = WithPenalty()
    model.compile("sgd", "mse")
    loss = model.evaluate(x, y, batch_size=8, verbose=0)
    pred = model.predict(x)
    kernel = model.dense.get_weights()[0]
    expected = np.mean(pred ** 2) + np.abs(pred).mean() + 0.5 * np.sum(kernel ** 2)
    assert loss == pytest.approx(expected, rel=1e-5)


def test_temporal_sample_weights():
    keras.utils.set_random_seed(0)
    inputs = Input(shape=(5, 3))
    model = Model(inputs, Dense(1)(inputs))
    model.compile("sgd", "mse", sample_weight_mode="temporal")
    x = np.random.rand(4, 5, 3).astype("float32")
    y = np.random.rand(4, 5, 1).astype("float32")
    weights = np.zeros((4, 5), "float32")
    weights[:, :2] = 1.0
    pred = model.predict(x)
    per_step = ((pred - y) ** 2).mean(axis=-1)
    expected = (per_step * weights).sum() / per_step.size
    got = model.evaluate(x, y, sample_weight=weights, batch_size=4, verbose=0)
    assert got == pytest.approx(float(expected), rel=1e-5)


def test_target_tensors_are_used_when_y_is_omitted():
    x, y = _data(n=16)
    model = _mlp()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  target_tensors=y)
    assert model.evaluate(x, verbose=0, batch_size=16) == pytest.approx(
        model.evaluate(x, y, verbose=0, batch_size=16), rel=1e-6)
    history = model.fit(x, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1
