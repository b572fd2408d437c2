"""keras.io vision examples (part a: ShiftViT, Swin, Zero-DCE, Reptile, SimSiam, DeiT, involution,
Perceiver, MixUp, CutMix, MIRNet, BiT): the same code runs with Kestrel and with real Keras
(torch backend); layouts, values and training behaviour agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402


# ---------------------------------------------------------------- ShiftViT: layers in lists
def _shiftvit_like(k):
    """ShiftViT's structure: stages kept in a list filled by append(), each stage building its
    blocks into another list inside build()."""

    class Block(k.layers.Layer):
        def build(self, input_shape):
            self.norm = k.layers.LayerNormalization(epsilon=1e-5)
            self.mlp = k.Sequential([k.layers.Dense(2 * input_shape[-1]),
                                     k.layers.Dense(input_shape[-1])])

        def call(self, x):
            return x + self.mlp(self.norm(x))

    class Stage(k.layers.Layer):
        def __init__(self, depth, merge, **kwargs):
            super().__init__(**kwargs)
            self.depth, self.merge = depth, merge

        def build(self, input_shape):
            self.blocks = list()
            for _ in range(self.depth):
                self.blocks.append(Block())
            if self.merge:
                self.patch_merge = k.layers.Conv2D(2 * input_shape[-1], 2, strides=2,
                                                   use_bias=False)

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return self.patch_merge(x) if self.merge else x

    class Net(k.Model):
        def __init__(self):
            super().__init__()
            self.data_augmentation = k.Sequential([k.layers.Rescaling(1 / 255.0)])
            self.patch_projection = k.layers.Conv2D(8, 2, strides=2)
            self.stages = list()
            for index, depth in enumerate([1, 2]):
                self.stages.append(Stage(depth, merge=index == 0))
            self.global_avg_pool = k.layers.GlobalAveragePooling2D()

        def call(self, images):
            x = self.patch_projection(self.data_augmentation(images))
            for stage in self.stages:
                x = stage(x)
            return self.global_avg_pool(x)

    return Net()


def test_layers_appended_to_list_attributes_are_tracked_as_keras():
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype("float32")
    models = {}
    for k in (keras, kestrel):
        model = _shiftvit_like(_fresh(k))
        model(x)
        models[k.__name__] = model
    ours, theirs = models["kestrel"], models["keras"]
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    assert len(ours.stages[1].blocks) == 2 and len(ours.trainable_weights) == 21
    assert [w.path for w in theirs.weights] == [w.path for w in ours.weights]
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_weights_file_of_subclassed_model_with_list_attributes_loads_both_ways(tmp_path):
    """Keras keys a subclassed model's weights by its `layers` list (after the attributes that
    sort before it) and a list attribute's layers by class name."""
    x = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3)).astype("float32")
    theirs = _shiftvit_like(_fresh(keras))
    theirs(x)
    ours = _shiftvit_like(_fresh(kestrel))
    ours(x)
    path = str(tmp_path / "theirs.weights.h5")
    theirs.save_weights(path)
    ours.load_weights(path)
    expected = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    back = str(tmp_path / "ours.weights.h5")
    ours.save_weights(back)
    again = _shiftvit_like(_fresh(keras))
    again(x)
    again.load_weights(back)
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_tracked_containers_follow_mutations_as_keras():
    def build(k):
        class Holder(k.layers.Layer):
            def __init__(self):
                super().__init__()
                self.items = []
                self.items.append(k.layers.Dense(2))
                self.table = {"a": k.layers.Dense(2)}
                self.table["b"] = k.layers.Dense(2)
                self.nested = [[k.layers.Dense(2)], (k.layers.Dense(2),)]
                self.items += [k.layers.Dense(2)]
                self.items.insert(0, k.layers.Dense(2))

            def call(self, x):
                used = [*self.items, *self.table.values(), self.nested[0][0], self.nested[1][0]]
                return sum(layer(x) for layer in used)

        holder = Holder()
        holder(np.ones((1, 3), "float32"))
        return holder

    ours, theirs = build(_fresh(kestrel)), build(_fresh(keras))
    assert isinstance(ours.items, list) and isinstance(ours.table, dict)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    assert len(ours.weights) == 14
    for holder in (ours, theirs):
        holder.items.pop()
    assert len(ours.weights) == len(theirs.weights) == 12
    ours.items = None  # replacing the attribute drops what it held
    assert len(ours.weights) == 8


# ---------------------------------------------------------------- augmentation and training mode
def test_augmentation_called_on_its_own_augments_as_keras():
    """Keras' image layers default to `training=True`: `augment(images)` outside fit augments
    (e.g. in a data pipeline); predict / evaluate / an explicit training=False do not."""
    x = np.random.default_rng(0).random((32, 8, 8, 3)).astype("float32")
    for k in (keras, kestrel):
        k = _fresh(k)
        flip = k.Sequential([k.layers.RandomFlip("horizontal", seed=1)])
        changed = lambda y: bool(np.abs(k.ops.convert_to_numpy(y) - x).max() > 0)  # noqa: E731
        assert changed(flip(x)) and changed(flip.layers[0](x)), k.__name__
        assert not changed(flip(x, training=False))
        inputs = k.Input((8, 8, 3))
        model = k.Model(inputs, k.layers.RandomFlip("horizontal", seed=1)(inputs))
        assert changed(model(x)) and not changed(model.predict(x, verbose=0))
        model.compile(loss="mse")
        assert model.evaluate(x, x, verbose=0) == 0.0
        assert model.fit(x, x, epochs=1, verbose=0).history["loss"][0] > 0


def test_super_train_step_trains_in_training_mode_as_keras():
    """A train_step that calls super().train_step() trains as Keras' `self(x, training=True)`."""
    losses = {}
    for k in (keras, kestrel):
        k = _fresh(k)

        class Model(k.Model):
            def train_step(self, data):
                return super().train_step(data)

        inputs = k.Input((4,))
        dense = k.layers.Dense(4, kernel_initializer="ones")(inputs)
        model = Model(inputs, k.layers.Dropout(0.999, seed=1)(dense))
        model.compile(loss="mse", optimizer="sgd")
        history = model.fit(np.ones((8, 4), "float32"), np.full((8, 4), 4.0, "float32"),
                            batch_size=8, epochs=1, verbose=0)
        losses[k.__name__] = history.history["loss"][0]
    assert losses["kestrel"] == losses["keras"] == 16.0  # dropout drops (nearly) everything


# ---------------------------------------------------------------- Swin Transformer
def _window_attention(k, window=2, heads=2, dim=8):
    """Swin's window attention: a relative position index kept in an int Variable
    (`dtype="int"`), gathered from a bias table, and patches from `ops.image.extract_patches`."""
    ops = k.ops

    class WindowAttention(k.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.qkv = k.layers.Dense(dim * 3)
            self.table = self.add_weight(shape=((2 * window - 1) ** 2, heads),
                                         initializer="random_normal")
            coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
            flat = coords.reshape(2, -1)
            rel = (flat[:, :, None] - flat[:, None, :]).transpose([1, 2, 0]) + window - 1
            index = rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]
            self.index = k.Variable(initializer=index, shape=index.shape, dtype="int",
                                    trainable=False)

        def call(self, x):
            size = x.shape[1]
            qkv = ops.transpose(ops.reshape(self.qkv(x), (-1, size, 3, heads, dim // heads)),
                                (2, 0, 3, 1, 4))
            attn = qkv[0] @ ops.transpose(qkv[1], (0, 1, 3, 2))
            bias = ops.take(self.table, ops.reshape(self.index, (-1,)), axis=0)
            attn = attn + ops.transpose(ops.reshape(bias, (size, size, -1)), (2, 0, 1))[None]
            out = ops.transpose(k.activations.softmax(attn, axis=-1) @ qkv[2], (0, 2, 1, 3))
            return ops.reshape(out, (-1, size, dim))

    inputs = k.Input((4, 4, 2))
    patches = ops.image.extract_patches(ops.roll(inputs, shift=[-1, -1], axis=[1, 2]), 2)
    tokens = k.layers.Dense(dim)(ops.reshape(patches, (-1, 4, 8)))
    return k.Model(inputs, WindowAttention()(tokens))


def test_swin_window_attention_int_variable_matches_keras():
    x = np.random.default_rng(0).random((3, 4, 4, 2)).astype("float32")
    theirs, ours = _window_attention(_fresh(keras)), _window_attention(_fresh(kestrel))
    attention = ours.layers[-1]
    assert attention.index.dtype == torch.int32 and not attention.index.requires_grad
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    for dtype in ("int", int, float, bool):
        assert kestrel.ops.zeros((2,), dtype=dtype).dtype == keras.ops.zeros((2,), dtype=dtype).dtype


# ---------------------------------------------------------------- Zero-DCE
def _spatial_consistency_loss(k):
    ops = k.ops

    class SpatialConsistencyLoss(k.losses.Loss):
        def __init__(self, **kwargs):
            super().__init__(reduction="none")
            self.left = ops.array([[[[0, 0, 0]], [[-1, 1, 0]], [[0, 0, 0]]]], dtype="float32")
            self.down = ops.array([[[[0, 0, 0]], [[0, 1, 0]], [[0, -1, 0]]]], dtype="float32")

        def call(self, y_true, y_pred):
            pools = [ops.average_pool(ops.mean(y, 3, keepdims=True), 4, 4, padding="valid")
                     for y in (y_true, y_pred)]
            return sum(ops.square(ops.conv(pools[0], kernel, 1, padding="same")
                                  - ops.conv(pools[1], kernel, 1, padding="same"))
                       for kernel in (self.left, self.down))

    return SpatialConsistencyLoss


def test_zero_dce_custom_loss_names_and_values_match_keras():
    """A Loss subclass without a name gets a unique snake-case name, as Keras' auto names."""
    rng = np.random.default_rng(0)
    a, b = rng.random((2, 16, 16, 3)).astype("float32"), rng.random((2, 16, 16, 3)).astype("float32")
    results = {}
    for k in (keras, kestrel):
        cls = _spatial_consistency_loss(_fresh(k))
        first, second = cls(), cls(reduction="none")
        results[k.__name__] = ([first.name, second.name, cls(name="x").name], second.get_config(),
                               k.ops.convert_to_numpy(first(a, b)))
    assert results["kestrel"][:2] == results["keras"][:2]
    assert results["kestrel"][0][1:] == ["spatial_consistency_loss_1", "spatial_consistency_loss_2"]
    np.testing.assert_allclose(results["kestrel"][2], results["keras"][2], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- involution
def test_multi_output_layer_output_is_a_list_and_feeds_a_model_as_keras():
    """Involution returns (output, kernel); the example builds a model from
    `[model.get_layer(name).output]`, which returns both tensors."""
    x = np.ones((2, 3), "float32")
    results = {}
    for k in (keras, kestrel):
        k = _fresh(k)

        class Two(k.layers.Layer):
            def call(self, inputs):
                return inputs * 2, inputs + 2

        inputs = k.Input((3,))
        a, b = Two(name="two")(inputs)
        model = k.Model(inputs, k.layers.Add()([a, b]))
        output = model.get_layer("two").output
        vis = k.Model(model.input, [output])
        results[k.__name__] = (type(output).__name__, len(output), len(vis.outputs),
                               [np.asarray(t).tolist() for t in vis.predict(x, verbose=0)])
    assert results["kestrel"] == results["keras"]
    assert results["kestrel"][:3] == ("list", 2, 2)
