"""keras.io vision examples not replayed elsewhere (third part of the folder), condensed to tiny
random data and one or two epochs, their TensorFlow parts written with keras.ops. The same code
runs with real Keras 3 (torch backend) and with Kestrel: histories, predictions, summaries,
weight paths and saved-model reloads agree.
"""
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread spares these replays thread contention on a busy
    machine; the previous setting is restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _both(replay, *args):
    """`replay(lib, *args)` with real Keras, then with Kestrel, each in a fresh seeded session."""
    return replay(_fresh(keras), *args), replay(_fresh(kestrel), *args)


def _numpy(x):
    return np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype="float64")


def _assert_close(got, expected, rtol=1e-4, atol=1e-5):
    """Nested dicts (same keys, same order) / lists / tuples of numbers and strings agree,
    numbers approximately."""
    if isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            _assert_close(got[key], expected[key], rtol, atol)
    elif isinstance(expected, (list, tuple)) and any(
            isinstance(e, (str, dict, list, tuple, np.ndarray)) for e in expected):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _assert_close(g, e, rtol, atol)
    elif isinstance(expected, str):
        assert got == expected
    else:
        np.testing.assert_allclose(_numpy(got), _numpy(expected), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- xray_classification_with_tpus
def _xray(k, folder):
    """xray_classification_with_tpus (its Keras parts): unnamed Sequential blocks nested in a
    Sequential, SeparableConv2D, boolean labels with `class_weight`, Precision/Recall, fits with
    `steps_per_epoch`/`validation_steps`, then ModelCheckpoint(save_best_only), EarlyStopping
    (restore_best_weights) and an exponential LearningRateScheduler; the checkpoint reloads."""
    layers = k.layers

    def conv_block(filters):
        return k.Sequential([
            layers.SeparableConv2D(filters, 3, activation="relu", padding="same"),
            layers.SeparableConv2D(filters, 3, activation="relu", padding="same"),
            layers.BatchNormalization(), layers.MaxPool2D()])

    def dense_block(units, dropout_rate):
        return k.Sequential([layers.Dense(units, activation="relu"),
                             layers.BatchNormalization(), layers.Dropout(dropout_rate)])

    model = k.Sequential([
        k.Input(shape=(16, 16, 3)),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.MaxPool2D(), conv_block(8), conv_block(8), layers.Dropout(0.2),
        layers.Flatten(), dense_block(16, 0.7), dense_block(8, 0.3),
        layers.Dense(1, activation="sigmoid")])
    rng = np.random.default_rng(0)
    images, labels = rng.random((24, 16, 16, 3), dtype="float32"), rng.random(24) > 0.3
    val_data = (images[:8], labels[:8])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["accuracy", k.metrics.Precision(name="precision"),
                           k.metrics.Recall(name="recall")])
    count_normal, count_pneumonia = int((~labels).sum()), int(labels.sum())
    class_weight = {0: 24 / count_normal / 2.0, 1: 24 / count_pneumonia / 2.0}
    fit_args = dict(batch_size=8, steps_per_epoch=2, validation_data=val_data,
                    validation_steps=1, class_weight=class_weight, verbose=0)
    first = model.fit(images, labels, epochs=1, **fit_args)

    def exponential_decay(lr0, s):
        def exponential_decay_fn(epoch):
            return lr0 * 0.1 ** (epoch / s)
        return exponential_decay_fn

    path = os.path.join(folder, "xray_model.keras")
    callbacks = [k.callbacks.ModelCheckpoint(path, save_best_only=True),
                 k.callbacks.EarlyStopping(patience=10, restore_best_weights=True),
                 k.callbacks.LearningRateScheduler(exponential_decay(0.01, 20))]
    second = model.fit(images, labels, epochs=2, callbacks=callbacks, **fit_args)
    return {"summary": _summary(model), "first": first.history, "second": second.history,
            "evaluate": model.evaluate(*val_data, verbose=0),
            "predict": model.predict(val_data[0], verbose=0),
            "reloaded": k.models.load_model(path).predict(val_data[0], verbose=0),
            "weights": [w.path for w in model.weights]}


def test_xray_classification_matches_keras(tmp_path):
    expected, got = _both(_xray, str(tmp_path))
    _assert_close(got, expected)


def test_class_weight_accepts_boolean_labels():
    """Binary labels given as numpy booleans weight each sample by its class, as in Keras."""
    def weighted_loss(k):
        model = k.Sequential([k.Input((2,)), k.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer="sgd", loss="binary_crossentropy")
        x, y = np.ones((4, 2), "float32"), np.array([True, False, False, False])
        return model.fit(x, y, class_weight={0: 1.0, 1: 3.0}, verbose=0).history["loss"]
    expected, got = _both(weighted_loss)
    _assert_close(got, expected)


# ---------------------------------------------------------------- trans_unet (multi-organ)
def _transunet_layers(k):
    """The example's registered PatchEmbedding and TransformerBlock layers."""
    ops = k.ops

    @k.saving.register_keras_serializable(package="Trans-UNET")
    class PatchEmbedding(k.layers.Layer):
        def __init__(self, patch_size, embedding_dim, num_patches, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size
            self.embedding_dim = embedding_dim
            self.num_patches = num_patches
            self.projection = k.layers.Conv2D(embedding_dim, patch_size, strides=patch_size,
                                              padding="valid")

        def build(self, input_shape):
            self.position_embeddings = self.add_weight(
                name="position_embeddings", shape=(1, self.num_patches, self.embedding_dim),
                initializer="random_normal")

        def call(self, inputs):
            patches = self.projection(inputs)
            batch_size = ops.shape(patches)[0]
            return (ops.reshape(patches, [batch_size, -1, self.embedding_dim])
                    + self.position_embeddings)

        def get_config(self):
            keys = ["patch_size", "embedding_dim", "num_patches"]
            return {**super().get_config(), **{key: getattr(self, key) for key in keys}}

    @k.saving.register_keras_serializable(package="Trans-UNET")
    class TransformerBlock(k.layers.Layer):
        def __init__(self, embedding_dim, num_heads, hidden_dim, dropout_rate=0.1, **kwargs):
            super().__init__(**kwargs)
            self.embedding_dim = embedding_dim
            self.num_heads = num_heads
            self.hidden_dim = hidden_dim
            self.dropout_rate = dropout_rate
            self.norm1 = k.layers.LayerNormalization(epsilon=1e-6)
            self.norm2 = k.layers.LayerNormalization(epsilon=1e-6)
            self.attn = k.layers.MultiHeadAttention(
                num_heads=num_heads, key_dim=embedding_dim // num_heads, dropout=dropout_rate)
            self.mlp = k.Sequential([
                k.layers.Dense(hidden_dim, activation="gelu"), k.layers.Dropout(dropout_rate),
                k.layers.Dense(embedding_dim), k.layers.Dropout(dropout_rate)])

        def call(self, inputs, training=False):
            hidden = inputs + self.attn(self.norm1(inputs), self.norm1(inputs),
                                        training=training)
            return hidden + self.mlp(self.norm2(hidden), training=training)

        def get_config(self):
            keys = ["embedding_dim", "num_heads", "hidden_dim", "dropout_rate"]
            return {**super().get_config(), **{key: getattr(self, key) for key in keys}}

    return PatchEmbedding, TransformerBlock


def _transunet_model(k, image_size):
    """The example's TransUNet, with a four-convolution stand-in for the ImageNet ResNet-50
    (same output layer names, same `preprocess_input` on the input) and smaller decoder
    filters (still a multiple of the 32 GroupNormalization groups)."""
    ops, layers = k.ops, k.layers
    PatchEmbedding, TransformerBlock = _transunet_layers(k)

    def _build_resnet_encoder():
        inputs = k.Input(shape=(image_size, image_size, 3))
        x = k.applications.resnet50.preprocess_input(inputs)
        outputs = []
        names = ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out")
        for i, name in enumerate(names):
            x = layers.Conv2D(8 * (i + 1), 3, strides=2, padding="same", activation="relu",
                              name=name)(x)
            outputs.append(x)
        return k.Model(inputs=inputs, outputs=outputs)

    @k.saving.register_keras_serializable(package="Trans-UNET")
    class TransUNet(k.Model):
        def __init__(self, image_size=(224, 224, 3), patch_size=1, embedding_dim=64,
                     num_heads=4, n_layers=6, hidden_dim=512, dropout_rate=0.1, num_classes=9,
                     **kwargs):
            super().__init__(**kwargs)
            self.image_size = image_size
            self.patch_size = patch_size
            self.embedding_dim = embedding_dim
            self.num_heads = num_heads
            self.n_layers = n_layers
            self.hidden_dim = hidden_dim
            self.dropout_rate = dropout_rate
            self.num_classes = num_classes
            feature_map_size = image_size[0] // 16
            self.cnn_backbone = _build_resnet_encoder()
            self.patch_embedding = PatchEmbedding(patch_size, embedding_dim,
                                                  (feature_map_size // patch_size) ** 2)
            self.transformer_blocks = [
                TransformerBlock(embedding_dim, num_heads, hidden_dim, dropout_rate)
                for _ in range(n_layers)]
            self.encoder_norm = layers.LayerNormalization(epsilon=1e-6)
            decoder_filters = [64, 32, 32, 32]
            self.upsamplers = [layers.UpSampling2D(2, interpolation="bilinear")
                               for _ in decoder_filters]
            self.concats = [layers.Concatenate() for _ in decoder_filters[:3]]
            self.convs = [layers.Conv2D(f, 3, padding="same", use_bias=False)
                          for f in decoder_filters]
            self.gnorms = [layers.GroupNormalization(groups=32) for _ in decoder_filters]
            self.acts = [layers.Activation("relu") for _ in decoder_filters]
            self.segmentation_head = layers.Conv2D(num_classes, 1, padding="same",
                                                   activation="softmax")

        def call(self, inputs, training=False):
            skip1, skip2, skip3, features = self.cnn_backbone(inputs, training=training)
            skips = [skip3, skip2, skip1]
            tokens = self.patch_embedding(features)
            for block in self.transformer_blocks:
                tokens = block(tokens, training=training)
            tokens = self.encoder_norm(tokens)
            fmap_size = self.image_size[0] // 16 // self.patch_size
            decoded = ops.reshape(tokens, (-1, fmap_size, fmap_size, self.embedding_dim))
            for i in range(4):
                decoded = self.upsamplers[i](decoded)
                if i < 3:
                    decoded = self.concats[i]([decoded, skips[i]])
                decoded = self.acts[i](self.gnorms[i](self.convs[i](decoded), training=training))
            return self.segmentation_head(decoded)

        def get_config(self):
            keys = ["image_size", "patch_size", "embedding_dim", "num_heads", "n_layers"]
            keys += ["hidden_dim", "dropout_rate", "num_classes"]
            return {**super().get_config(), **{key: getattr(self, key) for key in keys}}

    return TransUNet


def _combined_loss(k, flatten):
    """The example's cross-entropy + soft Dice loss. `flatten` feeds the cross-entropy
    (pixels, classes) instead of the example's (batch, height, width, classes): Keras' torch
    backend cannot backpropagate the 4-D form (torch: "grad_input must be contiguous")."""
    ops = k.ops

    def combined_loss(y_true, y_pred, smooth=1e-6):
        y_true = ops.squeeze(y_true, -1)
        if flatten:
            ce = ops.mean(k.losses.sparse_categorical_crossentropy(
                ops.reshape(y_true, (-1,)), ops.reshape(y_pred, (-1, ops.shape(y_pred)[-1]))))
        else:
            ce = ops.mean(k.losses.sparse_categorical_crossentropy(y_true, y_pred))
        y_true_oh = ops.one_hot(ops.cast(y_true, "int32"), num_classes=ops.shape(y_pred)[-1])
        y_pred = ops.clip(y_pred, 1e-6, 1.0)
        intersection = ops.sum(y_true_oh * y_pred, axis=[1, 2])
        union = ops.sum(y_true_oh + y_pred, axis=[1, 2])
        dice_loss = 1 - ops.mean((2.0 * intersection + smooth) / (union + smooth))
        return 0.5 * ce + 0.5 * dice_loss

    return k.saving.register_keras_serializable(package="Trans-UNET")(combined_loss)


def _mean_iou_wrapper(k):
    ops = k.ops

    @k.saving.register_keras_serializable(package="Trans-UNET")
    class MeanIoUWrapper(k.metrics.MeanIoU):
        def __init__(self, num_classes, name="mean_io_u_wrapper", **kwargs):
            for key in ("ignore_class", "sparse_y_true", "sparse_y_pred"):
                kwargs.pop(key, None)
            super().__init__(num_classes, name=name, sparse_y_true=True, sparse_y_pred=False,
                             **kwargs)
            self._num_classes = num_classes

        def update_state(self, y_true, y_pred, sample_weight=None):
            return super().update_state(ops.squeeze(y_true, axis=-1), y_pred, sample_weight)

        def get_config(self):
            return {"num_classes": self._num_classes, "name": self.name}

        @classmethod
        def from_config(cls, config):
            return cls(**config)

    return MeanIoUWrapper


def _segmentation_data(size=32, classes=3):
    rng = np.random.default_rng(0)
    images = rng.random((8, size, size, 3), dtype="float32") * 255
    labels = rng.integers(0, classes, (8, size, size, 1)).astype("uint8")
    return images, labels


def _transunet(k, folder):
    """trans_unet_multi_organ_segmentation: the seeded joint augmentation Sequential, a
    subclassed Model holding a Functional backbone and lists of registered custom layers,
    a registered loss function, a MeanIoU subclass, AdamW, ReduceLROnPlateau and
    EarlyStopping, then `.keras` save and reload of the whole model."""
    ops, size, classes = k.ops, 32, 3
    aug_kw = dict(fill_mode="nearest", interpolation="nearest", seed=42)
    joint_augment = k.Sequential([k.layers.RandomRotation(factor=5 / 360.0, **aug_kw),
                                  k.layers.RandomZoom(height_factor=(-0.1, 0.1), **aug_kw)])
    images, labels = _segmentation_data(size, classes)
    combined = ops.concatenate([images[:2], ops.cast(labels[:2], "float32")], axis=-1)
    augmented = joint_augment(combined, training=True)
    model = _transunet_model(k, size)(
        image_size=(size, size, 3), embedding_dim=16, num_heads=4, n_layers=2, hidden_dim=32,
        dropout_rate=0.1, num_classes=classes)
    model.compile(optimizer=k.optimizers.AdamW(learning_rate=1e-4, weight_decay=1e-3),
                  loss=_combined_loss(k, flatten=True),
                  metrics=[_mean_iou_wrapper(k)(num_classes=classes)])
    callbacks = [k.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=5,
                                               min_lr=1e-7),
                 k.callbacks.EarlyStopping(monitor="val_loss", patience=10,
                                           restore_best_weights=True)]
    history = model.fit(images, labels, batch_size=4, validation_data=(images[:4], labels[:4]),
                        epochs=2, callbacks=callbacks, verbose=0)
    path = os.path.join(folder, "transunet.keras")
    model.save(path)
    return {"augmented": [ops.convert_to_numpy(augmented[..., :3]),
                          ops.convert_to_numpy(ops.cast(augmented[..., 3:], "uint8"))],
            "summary": _summary(model), "history": history.history,
            "predict": model.predict(images[:2], verbose=0),
            "reloaded": k.models.load_model(path).predict(images[:2], verbose=0),
            "weights": [w.path for w in model.weights], "config": model.get_config()}


def test_trans_unet_segmentation_matches_keras(tmp_path):
    expected, got = _both(_transunet, str(tmp_path))
    _assert_close(got, expected)


def test_four_d_sparse_cross_entropy_trains_like_flattened_keras():
    """The example's own 4-D cross-entropy: Kestrel trains it (Keras' torch backend fails in
    backward) to the losses Keras reaches with the pixels flattened."""
    def fit_losses(k, flatten):
        images, labels = _segmentation_data(8)
        model = k.Sequential([k.Input((8, 8, 3)), k.layers.Rescaling(1 / 255),
                              k.layers.Conv2D(3, 3, padding="same", activation="softmax")])
        model.compile(optimizer="adam", loss=_combined_loss(k, flatten))
        return model.fit(images, labels, batch_size=4, epochs=2, verbose=0).history["loss"]
    expected = fit_losses(_fresh(keras), flatten=True)
    _assert_close(fit_losses(_fresh(kestrel), flatten=False), expected)


def test_subclassed_model_overriding_get_config_gets_only_base_keys():
    """A subclassed Model writing its own `get_config` gets name/trainable/dtype from
    `super().get_config()`, not its constructor arguments (so the override orders the keys)."""
    def config(k):
        class Net(k.Model):
            def __init__(self, units=2, rate=0.5, **kwargs):
                super().__init__(**kwargs)
                self.units, self.rate, self.dense = units, rate, k.layers.Dense(units)

            def call(self, x):
                return self.dense(x)

            def get_config(self):
                return {**super().get_config(), "rate": self.rate, "units": self.units}
        return Net(units=3, rate=0.1, name="net").get_config()
    expected, got = _both(config)
    assert list(got) == list(expected) == ["name", "trainable", "dtype", "rate", "units"]
    assert got == expected


# ---------------------------------------------------------------- cswin_transformer
def _cswin(keras):
    """cswin_transformer, its `tf` ops written with keras.ops (`tf.nn.gelu` as `ops.gelu`):
    an adapted Normalization and random augmentation Sequential inside a Functional model,
    cross-shaped window attention on a stacked (3, batch, tokens, channels) tensor, grouped
    Conv2D, a block holding a never-called Dropout, AdamW with label smoothing and top-5
    accuracy. Small: 16x16 images resized to 32, one block per stage."""
    layers, ops = keras.layers, keras.ops
    num_classes, input_shape, image_size = 10, (16, 16, 3), 32
    rng = np.random.default_rng(0)
    x_train = rng.random((16,) + input_shape, dtype="float32") * 255
    y_train = keras.utils.to_categorical(rng.integers(0, num_classes, 16), num_classes)
    data_augmentation = keras.Sequential([
        layers.Normalization(), layers.Resizing(image_size, image_size),
        layers.RandomFlip("horizontal"), layers.RandomRotation(factor=0.1),
        layers.RandomContrast(factor=0.1), layers.RandomZoom(height_factor=0.2, width_factor=0.2),
    ], name="data_augmentation")
    data_augmentation.layers[0].adapt(x_train)

    class MLP(layers.Layer):
        def __init__(self, hidden_dim=None, out_dim=None, act_layer=ops.gelu, drop=0):
            super().__init__()
            self.fc1 = layers.Dense(hidden_dim)
            self.act = act_layer
            self.fc2 = layers.Dense(out_dim)
            self.drop = layers.Dropout(drop)

        def call(self, x):
            return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    def image_to_window(image, height_split, width_split):
        _, channel, height, width = image.shape
        image_reshape = ops.reshape(image, (-1, channel, height // height_split, height_split,
                                            width // width_split, width_split))
        image_reshape = ops.transpose(image_reshape, axes=(0, 2, 4, 3, 5, 1))
        return ops.reshape(image_reshape, (-1, height_split * width_split, channel))

    def window_to_image(image_split, height_split, width_split, height, width):
        channel = image_split.shape[2]
        image = ops.reshape(image_split, (-1, height // height_split, width // width_split,
                                          height_split, width_split, channel))
        image = ops.transpose(image, axes=(0, 1, 3, 2, 4, 5))
        return ops.reshape(image, (-1, height, width, channel))

    class CSWinAttention(layers.Layer):
        def __init__(self, in_dim, resolution, idx, split_size=7, out_dim=None, num_heads=8,
                     attention_dropout=0, projection_dropout=0):
            super().__init__()
            self.in_dim = in_dim
            self.out_dim = out_dim or in_dim
            self.resolution = resolution
            self.split_size = split_size
            self.num_heads = num_heads
            head_dim = in_dim // num_heads
            self.scale = head_dim ** -0.5
            if idx == -1:
                height_split, width_split = self.resolution, self.resolution
            elif idx == 0:
                height_split, width_split = self.resolution, self.split_size
            elif idx == 1:
                width_split, height_split = self.resolution, self.split_size
            self.height_split = height_split
            self.width_split = width_split
            self.get_value = layers.Conv2D(in_dim, kernel_size=3, strides=1, padding="same",
                                           groups=in_dim)
            self.attention_dropout = layers.Dropout(attention_dropout)

        def image_to_cswindow(self, x):
            _, num_patches, channel = x.shape
            height = width = int(np.sqrt(num_patches))
            x = ops.transpose(x, axes=(0, 2, 1))
            x = ops.reshape(x, (-1, channel, height, width))
            x = image_to_window(x, self.height_split, self.width_split)
            x = ops.reshape(x, (-1, self.height_split * self.width_split, self.num_heads,
                                channel // self.num_heads))
            return ops.transpose(x, axes=(0, 2, 1, 3))

        def get_local_enhanced_position_embedding(self, x, function):
            _, num_patches, channel = x.shape
            height = width = int(np.sqrt(num_patches))
            x = ops.transpose(x, axes=(0, 2, 1))
            x = ops.reshape(x, (-1, channel, height, width))
            height_split, width_split = self.height_split, self.width_split
            x = ops.reshape(x, (-1, channel, height // height_split, height_split,
                                width // width_split, width_split))
            x = ops.transpose(x, axes=(0, 2, 4, 1, 3, 5))
            x = ops.reshape(x, (-1, height_split, width_split, channel))
            lepe = function(x)
            lepe = ops.reshape(lepe, (-1, self.num_heads, channel // self.num_heads,
                                      height_split * width_split))
            lepe = ops.transpose(lepe, axes=(0, 1, 3, 2))
            x = ops.reshape(x, (-1, self.num_heads, channel // self.num_heads,
                                self.height_split * self.width_split))
            x = ops.transpose(x, axes=(0, 1, 3, 2))
            return x, lepe

        def call(self, qkv):
            query, key, value = qkv[0], qkv[1], qkv[2]
            height = width = self.resolution
            _, num_patches, channel = query.shape
            assert num_patches == height * width
            query = self.image_to_cswindow(query)
            key = self.image_to_cswindow(key)
            value, lepe = self.get_local_enhanced_position_embedding(value, self.get_value)
            query = query * self.scale
            key = ops.transpose(key, axes=(0, 1, 3, 2))
            attention = query @ key
            attention = ops.softmax(attention, axis=-1)
            attention = self.attention_dropout(attention)
            x = (attention @ value) + lepe
            x = ops.transpose(x, axes=(0, 2, 1, 3))
            x = ops.reshape(x, (-1, self.height_split * self.width_split, channel))
            x = window_to_image(x, self.height_split, self.width_split, height, width)
            return ops.reshape(x, (-1, height * width, channel))

    class CSWinBlock(layers.Layer):
        def __init__(self, embedding_dim, resolution, num_heads, split_size=7, mlp_ratio=4.0,
                     drop=0.0, attention_dropout=0.0, act_layer=ops.gelu,
                     norm_layer=layers.LayerNormalization, last_stage=False):
            super().__init__()
            self.embedding_dim = embedding_dim
            self.num_heads = num_heads
            self.patches_resolution = resolution
            self.split_size = split_size
            self.mlp_ratio = mlp_ratio
            self.qkv = layers.Dense(embedding_dim * 3)
            self.norm1 = norm_layer()
            if self.patches_resolution == split_size:
                last_stage = True
            self.branch_num = 1 if last_stage else 2
            self.projection = layers.Dense(embedding_dim)
            self.projection_dropout = layers.Dropout(drop)
            if last_stage:
                self.attentions = [
                    CSWinAttention(embedding_dim, resolution=self.patches_resolution, idx=-1,
                                   split_size=split_size, num_heads=num_heads,
                                   out_dim=embedding_dim, attention_dropout=attention_dropout,
                                   projection_dropout=drop)
                    for i in range(self.branch_num)]
            else:
                self.attentions = [
                    CSWinAttention(embedding_dim // 2, resolution=self.patches_resolution, idx=i,
                                   split_size=split_size, num_heads=num_heads // 2,
                                   out_dim=embedding_dim // 2,
                                   attention_dropout=attention_dropout, projection_dropout=drop)
                    for i in range(self.branch_num)]
            self.mlp = MLP(hidden_dim=int(embedding_dim * mlp_ratio), out_dim=embedding_dim,
                           act_layer=act_layer, drop=drop)
            self.norm2 = norm_layer()

        def call(self, x):
            height = width = self.patches_resolution
            _, num_patches, channel = x.shape
            assert num_patches == height * width
            image = self.norm1(x)
            qkv = self.qkv(image)
            qkv = ops.reshape(qkv, (-1, num_patches, 3, channel))
            qkv = ops.transpose(qkv, axes=(2, 0, 1, 3))
            if self.branch_num == 2:
                x1 = self.attentions[0](qkv[:, :, :, : channel // 2])
                x2 = self.attentions[1](qkv[:, :, :, channel // 2:])
                attention_x = ops.concatenate([x1, x2], 2)
            else:
                attention_x = self.attentions[0](qkv)
            attention_x = self.projection(attention_x)
            x = x + attention_x
            return x + self.mlp(self.norm2(x))

    class MergeBlock(layers.Layer):
        def __init__(self, dim, norm_layer=layers.LayerNormalization):
            super().__init__()
            self.conv = layers.Conv2D(dim, 3, 2, padding="same")
            self.norm = norm_layer()

        def call(self, x):
            _, new_num_patches, channel = x.shape
            height = width = int(np.sqrt(new_num_patches))
            x = ops.reshape(x, (-1, height, width, channel))
            x = self.conv(x)
            channel = x.shape[3]
            x = ops.reshape(x, (-1, channel, height // 2 * width // 2))
            x = ops.transpose(x, axes=(0, 2, 1))
            return self.norm(x)

    def get_model(embedding_dim=8, num_transformer_layers=[1, 1, 1, 1], split_sizes=[1, 2, 2, 1],
                  num_heads=[2, 4, 4, 2], mlp_ratio=4.0, drop_rate=0.7, attention_dropout=0.7,
                  norm_layer=layers.LayerNormalization):
        inputs = layers.Input(shape=input_shape)
        x = data_augmentation(inputs)
        x = layers.Conv2D(embedding_dim, 7, 4, padding="same")(x)
        _, height, width, channel = x.shape
        x = ops.reshape(x, (-1, (image_size // 4) * (image_size // 4), channel))
        kw = dict(mlp_ratio=mlp_ratio, drop=drop_rate, attention_dropout=attention_dropout,
                  norm_layer=norm_layer)
        for i in range(num_transformer_layers[0]):
            x = CSWinBlock(embedding_dim=embedding_dim, num_heads=num_heads[0],
                           resolution=image_size // 4, split_size=split_sizes[0], **kw)(x)
        merge1 = MergeBlock(embedding_dim * 2)(x)
        embedding_dim *= 2
        for i in range(num_transformer_layers[1]):
            x = CSWinBlock(embedding_dim=embedding_dim, num_heads=num_heads[1],
                           resolution=image_size // 8, split_size=split_sizes[1], **kw)(merge1)
        merge2 = MergeBlock(embedding_dim * 2)(x)
        embedding_dim *= 2
        for i in range(num_transformer_layers[2]):
            x = CSWinBlock(embedding_dim=embedding_dim, num_heads=num_heads[2],
                           resolution=image_size // 16, split_size=split_sizes[2], **kw)(merge2)
        merge3 = MergeBlock(embedding_dim * 2)(x)
        embedding_dim *= 2
        for i in range(num_transformer_layers[3]):
            x = CSWinBlock(embedding_dim=embedding_dim, num_heads=num_heads[3],
                           resolution=image_size // 32, split_size=split_sizes[-1],
                           last_stage=True, **kw)(merge3)
        x = layers.GlobalAvgPool1D()(x)
        outputs = layers.Dense(num_classes, activation="softmax")(x)
        return keras.Model(inputs=inputs, outputs=outputs)

    model = get_model()
    summary = _summary(model)
    model.compile(loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  optimizer=keras.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                           keras.metrics.TopKCategoricalAccuracy(5, name="top-5-accuracy")])
    history = model.fit(x_train, y_train, batch_size=8, epochs=1, validation_split=0.25, verbose=0)
    return {"summary": summary, "history": history.history,
            "evaluate": model.evaluate(x_train, y_train, verbose=0),
            "predict": model.predict(x_train[:4], verbose=0),
            "weights": [w.path for w in model.weights]}



def test_cswin_transformer_matches_keras():
    expected, got = _both(_cswin)
    _assert_close(got, expected)


def test_unused_dropout_sublayer_gives_no_unbuilt_state_warning():
    """Keras builds Dropout at construction, so a block that never calls its Dropout is not
    warned about as holding unbuilt state."""
    def warned(k):
        class Block(k.layers.Layer):
            def __init__(self):
                super().__init__()
                self.dense, self.unused = k.layers.Dense(2), k.layers.Dropout(0.5)

            def call(self, x):
                return self.dense(x)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Block()(np.ones((1, 3), "float32"))
        return [str(w.message) for w in caught if "build()" in str(w.message)]
    assert _both(warned) == ([], [])


def test_softmax_over_an_axis_of_size_one_warns_as_keras():
    def warned(k):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            k.ops.softmax(k.ops.ones((2, 1)))
            k.layers.Dense(1, activation="softmax")(np.ones((2, 3), "float32"))
        return [str(w.message) for w in caught if "softmax" in str(w.message)]
    expected, got = _both(warned)
    assert got == expected and len(got) == 2


# ---------------------------------------------------------------- image_compression
def _image_compression(k, shape):
    """image_compression: named Functional encoder and decoder with LeakyReLU outputs, nested
    in an autoencoder Functional; shuffled fit with validation data, predict through each
    half. `shape(n)` gives the example's bare int `(n)` (tf.keras 2 style) or a tuple."""
    layers, size = k.layers, 64

    def get_encoder_model():
        x = layers.Input(shape=shape(size), name="encoder_input")
        hidden = layers.LeakyReLU(name="encoder_leakyrelu_1")(
            layers.Dense(units=12, name="encoder_dense_1")(x))
        output = layers.LeakyReLU(name="encoder_output")(
            layers.Dense(units=2, name="encoder_dense_2")(hidden))
        return k.Model(x, output, name="encoder_model")

    def get_decoder_model():
        decoder_input = layers.Input(shape=shape(2), name="decoder_input")
        hidden = layers.LeakyReLU(name="decoder_leakyrelu_1")(
            layers.Dense(units=12, name="decoder_dense_1")(decoder_input))
        output = layers.LeakyReLU(name="decoder_output")(
            layers.Dense(units=size, name="decoder_dense_2")(hidden))
        return k.Model(decoder_input, output, name="decoder_model")

    encoder, decoder = get_encoder_model(), get_decoder_model()
    ae_input = layers.Input(shape=shape(size), name="autoencoder_input")
    autoencoder = k.Model(ae_input, decoder(encoder(ae_input)), name="autoencoder")
    autoencoder.compile(loss="mse", optimizer=k.optimizers.Adam(learning_rate=0.0005))
    rng = np.random.default_rng(0)
    x_train, x_test = rng.random((32, size), dtype="float32"), rng.random((8, size), "float32")
    history = autoencoder.fit(x_train, x_train, epochs=2, batch_size=8, shuffle=True,
                              validation_data=(x_test, x_test), verbose=0)
    encoded = encoder.predict(x_train, verbose=0)
    return {"summaries": [_summary(m) for m in (encoder, decoder, autoencoder)],
            "history": history.history, "encoded": encoded,
            "decoded": decoder.predict(encoded, verbose=0)}


def test_image_compression_matches_keras():
    """Keras 3 refuses the example's `Input(shape=(784))` (a bare int); Kestrel takes it as
    tf.keras 2 did, and gives what Keras gives for `(784,)`."""
    with pytest.raises(ValueError, match="Cannot convert"):
        keras.layers.Input(shape=64)
    expected = _image_compression(_fresh(keras), lambda n: (n,))
    _assert_close(_image_compression(_fresh(kestrel), lambda n: n), expected)


# ---------------------------------------------------------------- densenet_cspnet_variants
def _densenet_cspnet(k):
    """densenet_cspnet_variants: mish written with `keras.activations` on KerasTensors,
    positional Conv2D arguments, channel slices of KerasTensors, dense and cross-stage partial
    blocks, a network-in-network head, from_logits cross-entropy and a LearningRateScheduler
    taking `(epoch, lr)`. Small: 16x16 images, two convolutions per block."""
    layers, act, num_clas = k.layers, k.activations, 4

    def mish(x):
        return x * (act.tanh(act.softplus(x)))

    def conv_block(inps, convs):
        x = inps
        for conv in convs:
            x = layers.Conv2D(conv["filter"], conv["kernel"], conv["strides"], conv["padding"],
                              name="conv_" + str(conv["layer_ids"]))(x)
            x = mish(x)
        return x

    def nin_block(inps, filter, ker):
        x = mish(layers.Conv2D(filter, ker, padding="same", name="nin_" + str(0))(inps))
        x = mish(layers.Conv2D(filter, 1, padding="same", name="nin_" + str(1))(x))
        return mish(layers.Conv2D(filter, 1, padding="same", name="nin_" + str(2))(x))

    def dense_block(inps, filter, times):
        for _ in range(times):
            part2 = mish(layers.Conv2D(filter[0], 1, padding="same")(inps))
            part2 = mish(layers.Conv2D(filter[1], 3, padding="same")(part2))
            inps = layers.Concatenate()([inps, part2])
        return inps

    def dense_block_cspnet(inps, partition, filter, times):
        features = inps.shape[3] - partition
        part1, part2 = inps[:, :, :, 0:features], inps[:, :, :, features:]
        for _ in range(times):
            part2 = mish(layers.Conv2D(filter[0], 1, padding="same")(part2))
            part2 = mish(layers.Conv2D(filter[1], 3, padding="same")(part2))
        part2 = mish(layers.Conv2D(filter[2], 1, padding="same")(part2))
        return layers.Concatenate()([part1, part2])

    def network(block):
        input_image = layers.Input(shape=(16, 16, 3))
        x = conv_block(input_image, [{"filter": 8, "kernel": 7, "padding": "same", "strides": 2,
                                      "layer_ids": 0}])
        x = layers.MaxPool2D(pool_size=(2, 2), strides=(2, 2))(x)
        x = layers.BatchNormalization()(layers.Dropout(0.5)(block(x)))
        x = conv_block(x, [{"filter": 8, "kernel": 1, "strides": 1, "padding": "same",
                            "layer_ids": 2}])
        x = layers.AveragePooling2D(pool_size=(2, 2), strides=2)(x)
        x = layers.GlobalAveragePooling2D()(nin_block(x, num_clas, 3))
        x = layers.Flatten()(layers.Reshape((1, 1, num_clas))(x))
        return k.Model(inputs=input_image, outputs=x)

    def lr_scheduler(epoch, lr):
        return 0.001 if epoch == 1 else lr

    rng = np.random.default_rng(0)
    images = rng.random((16, 16, 16, 3), dtype="float32")
    labels = k.utils.to_categorical(rng.integers(0, num_clas, 16), num_clas)
    results = {}
    for name, block in [("densenet", lambda x: dense_block(x, [8, 8], 2)),
                        ("cspnet", lambda x: dense_block_cspnet(x, 4, [8, 8, 8], 2))]:
        model = network(block)
        model.compile(optimizer=k.optimizers.Adam(learning_rate=0.01),
                      loss=k.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        history = model.fit(images, labels, epochs=2, batch_size=8, verbose=0,
                            validation_data=(images[:8], labels[:8]),
                            callbacks=[k.callbacks.LearningRateScheduler(lr_scheduler)])
        results[name] = {"summary": _summary(model), "history": history.history,
                         "evaluate": model.evaluate(images, labels, verbose=0)}
    return results


def test_densenet_cspnet_variants_match_keras():
    expected, got = _both(_densenet_cspnet)
    _assert_close(got, expected)


# ---------------------------------------------------------------- image_enhancer
def _image_enhancer(k, folder):
    """image_enhancer: a U-Net decoder on ResNet50V2 feature taps (`get_layer(...).output`,
    untrained weights, 32x64 images), sub-pixel upsampling (`tf.nn.depth_to_space` written with
    keras.ops), Nadam with an mae metric, EarlyStopping and a best-only weights checkpoint;
    the checkpoint loads back into the trained model."""
    layers, ops = k.layers, k.ops

    def depth_to_space(x, block_size):
        _, height, width, channels = x.shape
        depth = channels // block_size ** 2
        x = ops.reshape(x, (-1, height, width, block_size, block_size, depth))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, height * block_size, width * block_size, depth))

    def conv_unit(x, filters=64, padding="same"):
        x = layers.Conv2D(filters=filters, kernel_size=3, padding=padding)(x)
        return layers.Activation("relu")(layers.BatchNormalization()(x))

    def subpixel_upsample(x, target_channels, upscale_ratio):
        x = layers.Conv2D(target_channels * (upscale_ratio ** 2), 3, padding="same")(x)
        x = layers.LeakyReLU(0.2)(layers.BatchNormalization()(x))
        return depth_to_space(x, block_size=upscale_ratio)

    def upscale_unit(previous_input, current_input, target_channels=3, upscale_ratio=2):
        previous_low_scale = subpixel_upsample(previous_input, target_channels, upscale_ratio)
        current_high_scale = conv_unit(current_input, filters=target_channels)
        concat_scales = ops.concatenate((previous_low_scale, current_high_scale), axis=-1)
        return conv_unit(concat_scales, filters=target_channels)

    base_model = k.applications.ResNet50V2(include_top=False, weights=None,
                                           input_shape=(32, 64, 3))
    d0 = base_model.get_layer("input_layer").output  # the example's "input_1" (Keras 2 name)
    d1 = base_model.get_layer("conv1_conv").output
    d2 = base_model.get_layer("conv2_block3_1_relu").output
    d3 = base_model.get_layer("conv3_block4_1_relu").output
    decode1 = upscale_unit(previous_input=d3, current_input=d2, target_channels=8)
    decode2 = upscale_unit(previous_input=decode1, current_input=d1, target_channels=8)
    decode3 = upscale_unit(previous_input=decode2, current_input=d0, target_channels=4)
    out_conv = layers.Conv2D(3, 5, padding="same", activation="sigmoid")(decode3)
    denoiser_net = k.Model(base_model.input, out_conv, name="denoiser")
    denoiser_net.compile(optimizer=k.optimizers.Nadam(1e-4), loss="mse", metrics=["mae"])
    path = os.path.join(folder, "weight_epoch{epoch}.weights.h5")
    callbacks = [k.callbacks.EarlyStopping(patience=7),
                 k.callbacks.ModelCheckpoint(path, save_best_only=True, save_weights_only=True)]
    rng = np.random.default_rng(0)
    source = k.applications.resnet_v2.preprocess_input(rng.random((8, 32, 64, 3)) * 255)
    target = rng.random((8, 32, 64, 3), dtype="float32")
    history = denoiser_net.fit(source, target, validation_data=(source[:4], target[:4]),
                               batch_size=4, epochs=2, callbacks=callbacks, verbose=0)
    prediction = denoiser_net.predict(source[:2], verbose=0)
    denoiser_net.load_weights(path.format(epoch=1))
    return {"summary": _summary(denoiser_net), "history": history.history,
            "prediction": prediction,
            "epoch_1": denoiser_net.predict(source[:2], verbose=0),
            "files": sorted(os.listdir(folder))}


def test_image_enhancer_matches_keras(tmp_path):
    expected = _image_enhancer(_fresh(keras), str(tmp_path / "keras"))
    got = _image_enhancer(_fresh(kestrel), str(tmp_path / "kestrel"))
    _assert_close(got, expected)


# ---------------------------------------------------------------- segmentation_transformer
def _setr(k):
    """segmentation_transformer (SETR, progressive upsampling): `tf.image.extract_patches`
    as `ops.image.extract_patches`, a patch embedding adding an Embedding of `ops.arange`,
    functional transformer layers, bilinear UpSampling2D, logits cross-entropy on float
    (batch, height, width, 1) masks with "accuracy". Small: 32x32 images, 8x8 patches."""
    layers, ops = k.layers, k.ops
    image_size, patch_size, dim, num_classes = 32, 8, 8, 4

    class PatchExtract(layers.Layer):
        def __init__(self, patch_size, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size

        def call(self, images):
            batch_size = ops.shape(images)[0]
            patches = ops.image.extract_patches(images, self.patch_size, padding="valid")
            patch_dim, patch_num = patches.shape[-1], patches.shape[1]
            return ops.reshape(patches, (batch_size, patch_num * patch_num, patch_dim))

    class PatchEmbedding(layers.Layer):
        def __init__(self, num_patch, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.num_patch = num_patch
            self.proj = layers.Dense(embed_dim)
            self.pos_embed = layers.Embedding(input_dim=num_patch, output_dim=embed_dim)

        def call(self, patch):
            pos = ops.arange(start=0, stop=self.num_patch, step=1)
            return self.proj(patch) + self.pos_embed(pos)

    def transformer_layer(x, dim, num_heads, mlp_ratio=4, attention_dropout=0):
        residual_1 = x
        x = layers.LayerNormalization(epsilon=1e-5)(x)
        x = layers.MultiHeadAttention(num_heads=num_heads, key_dim=dim,
                                      dropout=attention_dropout)(x, x)
        residual_2 = x = layers.add([x, residual_1])
        x = layers.LayerNormalization(epsilon=1e-5)(x)
        x = layers.Dense(dim * mlp_ratio, activation=ops.gelu)(x)
        x = layers.Dense(dim)(layers.Dropout(0)(x))
        return layers.add([x, residual_2])

    inputs = layers.Input(shape=(image_size, image_size, 3))
    x = PatchEmbedding((image_size // patch_size) ** 2, dim)(PatchExtract(patch_size)(inputs))
    for _ in range(2):
        x = transformer_layer(x, dim, num_heads=2, attention_dropout=0.2)
    x = ops.reshape(x, (-1, image_size // patch_size, image_size // patch_size, dim))
    for _ in range(3):
        x = layers.Conv2D(dim, kernel_size=3, strides=1, padding="same", activation="relu")(x)
        x = layers.UpSampling2D(size=(2, 2), interpolation="bilinear")(x)
    outputs = layers.Conv2D(num_classes, kernel_size=1, strides=1, padding="same")(x)
    model = k.Model(inputs=inputs, outputs=outputs)
    model.compile(loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=k.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001),
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    images = rng.random((4, image_size, image_size, 3), dtype="float32")
    masks = rng.integers(0, num_classes, (4, image_size, image_size, 1)).astype("float32")
    history = model.fit(images, masks, batch_size=2, epochs=1, verbose=0,
                        validation_data=(images[:2], masks[:2]))
    predictions = np.argmax(np.squeeze(model.predict(images[:1], verbose=0)), axis=2)
    return {"summary": _summary(model), "history": history.history,
            "predictions": predictions}


def test_segmentation_transformer_matches_keras():
    expected, got = _both(_setr)
    _assert_close(got, expected)


# ---------------------------------------------------------------- ensemble_of_modified_unets
def _unet_ensemble(k):
    """ensemble_of_modified_unets: U-Net decoders on ResNet50, DenseNet121 and MobileNetV2
    feature taps (untrained, 32x32 inputs, small decoder filters), renamed through the private
    `_name` the example sets, softmax outputs under a from_logits loss as written, MeanIoU of
    argmax masks and a weighted ensemble of the three predictions. DenseNet121's "conv1/relu"
    is "conv1_relu" in Keras 3."""
    layers = k.layers
    loss = k.losses.SparseCategoricalCrossentropy(from_logits=True)

    def conv_block(input, num_filters):
        x = layers.Activation("relu")(layers.BatchNormalization()(
            layers.Conv2D(num_filters, 3, padding="same")(input)))
        return layers.Activation("relu")(layers.BatchNormalization()(
            layers.Conv2D(num_filters, 3, padding="same")(x)))

    def decoder_block(input, skip_features, num_filters):
        x = layers.Conv2DTranspose(num_filters, (2, 2), strides=2, padding="same")(input)
        return conv_block(layers.Concatenate()([x, skip_features]), num_filters)

    def build_unet(application, taps, name, n=3, lr=0.0001):
        inputs = layers.Input((32, 32, 3))
        encoder = application(include_top=False, weights=None, input_tensor=inputs)
        encoder.layers[0]._name = "input_1"
        encoder._name = name
        s1 = encoder.get_layer(encoder.layers[0].name).output
        s2, s3, s4, b1 = (encoder.get_layer(tap).output for tap in taps)
        d = decoder_block(b1, s4, 16)
        for skip, filters in ((s3, 8), (s2, 8), (s1, 8)):
            d = decoder_block(d, skip, filters)
        outputs = layers.Conv2D(n, 1, padding="same", activation="softmax")(d)
        model = k.Model(inputs, outputs, name=name + "_U-Net")
        model.compile(optimizer=k.optimizers.Adam(learning_rate=lr), loss=loss,
                      metrics=["accuracy"])
        return model

    apps = k.applications
    models = [
        build_unet(apps.ResNet50, ("conv1_relu", "conv2_block3_out", "conv3_block4_out",
                                   "conv4_block6_out"), "Resnet50"),
        build_unet(apps.DenseNet121, ("conv1_relu", "pool2_relu", "pool3_relu", "pool4_relu"),
                   "Densenet121"),
        build_unet(apps.MobileNetV2, ("block_1_expand_relu", "block_3_expand_relu",
                                      "block_6_expand_relu", "block_13_expand_relu"),
                   "Mobilenetv2")]
    rng = np.random.default_rng(0)
    images = rng.random((4, 32, 32, 3), dtype="float32")
    masks = rng.integers(0, 3, (4, 32, 32, 1)).astype("float32")
    histories, scores = [], []
    for model in models:
        histories.append(model.fit(images, masks, batch_size=2, epochs=1, verbose=0,
                                   validation_data=(images[:2], masks[:2])).history)
        iou = k.metrics.MeanIoU(num_classes=3)
        iou.update_state(masks, np.argmax(model.predict(images, verbose=0), axis=-1)[..., None])
        scores.append(iou.result())
    preds = np.array([model.predict(images, verbose=0) for model in models])
    weighted = np.argmax(np.tensordot(preds, [0.3, 0.9, 0.5], axes=((0), (0))), axis=3)
    ensemble_iou = k.metrics.MeanIoU(num_classes=3)
    ensemble_iou.update_state(masks[..., 0], weighted)
    with pytest.raises(ValueError) as renamed:
        models[0].get_layer("input_1")
    return {"names": [m.name for m in models], "histories": histories, "scores": scores,
            "ensemble": ensemble_iou.result(), "error": str(renamed.value)[:60],
            "params": [m.count_params() for m in models]}


def test_ensemble_of_modified_unets_matches_keras():
    expected, got = _both(_unet_ensemble)
    _assert_close(got, expected)


# ---------------------------------------------------------------- metric_learning_similarity
def _metric_learning_similarity(k):
    """metric_learning_similarity (Keras 3 version): a class-balanced PyDataset sampler with
    its own numpy generator, a convnet ending in UnitNormalization, a registered
    MultiSimilarityLoss (`ops.eye` of the batch size), validation_steps on a PyDataset, then
    cosine lookups of an index. Small: 8x8 images, 4 classes, 3 steps an epoch."""
    ops, layers = k.ops, k.layers

    class SimilarityDataset(k.utils.PyDataset):
        def __init__(self, x, y, classes_per_batch, examples_per_class, steps_per_epoch=4,
                     seed=42, **kwargs):
            super().__init__(**kwargs)
            self.x, self.y = x.astype("float32"), y.flatten()
            self.classes_per_batch = classes_per_batch
            self.examples_per_class = examples_per_class
            self.steps_per_epoch = steps_per_epoch
            self.rng = np.random.default_rng(seed)
            self.class_indices = [np.where(self.y == c)[0] for c in np.unique(self.y)]

        def __len__(self):
            return self.steps_per_epoch

        def __getitem__(self, idx):
            x_batch, y_batch = [], []
            for cls_idx in self.rng.choice(len(self.class_indices), self.classes_per_batch,
                                           replace=False):
                indices = self.rng.choice(self.class_indices[cls_idx], self.examples_per_class,
                                          replace=False)
                x_batch.append(self.x[indices])
                y_batch.append(self.y[indices])
            return np.concatenate(x_batch), np.concatenate(y_batch)

    @k.saving.register_keras_serializable()
    class MultiSimilarityLoss(k.losses.Loss):
        def __init__(self, alpha=2.0, beta=40.0, base=0.5, **kwargs):
            super().__init__(**kwargs)
            self.alpha, self.beta, self.base = alpha, beta, base

        def call(self, y_true, y_pred):
            sim_mat = ops.matmul(y_pred, ops.transpose(y_pred))
            y_true = ops.reshape(y_true, [-1, 1])
            adj = ops.cast(ops.equal(y_true, ops.transpose(y_true)), "float32")
            mask = 1.0 - ops.eye(ops.shape(y_true)[0])
            pos_m, neg_m = adj * mask, (1.0 - adj) * mask
            pos_l = (1.0 / self.alpha) * ops.log(1.0 + ops.sum(
                ops.exp(-self.alpha * (sim_mat - self.base)) * pos_m, axis=1))
            neg_l = (1.0 / self.beta) * ops.log(1.0 + ops.sum(
                ops.exp(self.beta * (sim_mat - self.base)) * neg_m, axis=1))
            return ops.mean(pos_l + neg_l)

    rng = np.random.default_rng(0)
    x_raw = (rng.random((64, 8, 8, 3)) * 255).astype("uint8")
    y_raw = rng.integers(0, 4, (64, 1))
    train_ds = SimilarityDataset(x_raw, y_raw, classes_per_batch=3, examples_per_class=2,
                                 steps_per_epoch=3)
    val_ds = SimilarityDataset(x_raw[:32], y_raw[:32], classes_per_batch=2,
                               examples_per_class=2, steps_per_epoch=2)
    inputs = layers.Input((8, 8, 3))
    x = layers.Rescaling(scale=1.0 / 255)(inputs)
    x = layers.BatchNormalization()(layers.Conv2D(8, 3, activation="relu")(x))
    x = layers.MaxPool2D((2, 2))(x)
    x = layers.GlobalMaxPool2D()(layers.Conv2D(8, 3, activation="relu")(x))
    outputs = layers.UnitNormalization(axis=1)(layers.Dense(16)(x))
    model = k.Model(inputs, outputs)
    model.compile(optimizer=k.optimizers.Adam(0.002), loss=MultiSimilarityLoss())
    history = model.fit(train_ds, epochs=2, validation_data=val_ds, validation_steps=2,
                        verbose=0)
    embeddings = model.predict(x_raw[:16].astype("float32"), verbose=0)
    query = model.predict(x_raw[16:20].astype("float32"), verbose=0)
    sims = ops.convert_to_numpy(ops.matmul(query, ops.transpose(embeddings)))
    return {"summary": _summary(model), "history": history.history, "sims": sims,
            "nearest": np.argsort(sims, axis=1)[:, ::-1][:, :3]}


def test_metric_learning_similarity_matches_keras():
    expected, got = _both(_metric_learning_similarity)
    _assert_close(got, expected)


# ---------------------------------------------------------------- classification_to_detection
def _classification_to_detection(k, folder, metrics):
    """classification_to_detection: a MobileNetV2 Sequential ending in a softmax Conv2D,
    Reshape and a second softmax, SGD on an ExponentialDecay schedule, a loss function calling
    `losses.sparse_categorical_crossentropy`, a best-only weights checkpoint, then the same
    weights in a fully convolutional model on larger images (sliding windows). Small: 64x64
    training images (2x2 features, kernel 2), 96x96 detection images. `metrics` is the
    example's bare "accuracy" (tf.keras 2 style) or a list. One training step only: Keras'
    batch statistics (E[x^2] - E[x]^2) and torch's batch_norm differ in the last float bits,
    and 52 batch-normalized layers on a batch of 8 grow that to percent-level gradient
    differences, so longer training is no comparison."""
    layers = k.layers

    def network(size, top):
        return k.Sequential([k.applications.MobileNetV2(input_shape=(size, size, 3),
                                                        include_top=False, weights=None,
                                                        alpha=0.35),
                             layers.BatchNormalization(),
                             layers.Conv2D(filters=3, kernel_size=2, activation="softmax"),
                             *top])

    model = network(64, [layers.Reshape((1, 3)), layers.Activation("softmax")])
    lr_schedule = k.optimizers.schedules.ExponentialDecay(0.001, decay_steps=50,
                                                          decay_rate=0.96, staircase=False)

    def loss(labels, logits):
        return k.losses.sparse_categorical_crossentropy(labels, logits)

    model.compile(optimizer=k.optimizers.SGD(learning_rate=lr_schedule), loss=loss,
                  metrics=metrics)
    checkpoint = k.callbacks.ModelCheckpoint(
        filepath=os.path.join(folder, "ckpt_{epoch}.weights.h5"), save_weights_only=True,
        save_best_only=True)
    rng = np.random.default_rng(0)
    images = rng.random((8, 64, 64, 3), dtype="float32") * 255
    labels = rng.integers(0, 3, (8, 1))  # (batch, 1), as the (batch, 1, 3) outputs need
    history = model.fit(images, labels, validation_data=(images[:4], labels[:4]), epochs=1,
                        batch_size=8, callbacks=[checkpoint], verbose=0)
    final_model = network(96, [])
    final_model.set_weights(model.get_weights())
    result = final_model.predict(rng.random((1, 96, 96, 3), dtype="float32") * 255, verbose=0)
    windows = np.where(np.max(result[0], axis=-1) > 0.9, np.argmax(result[0], axis=-1), -1)
    return {"summaries": [_summary(model), _summary(final_model)], "history": history.history,
            "result": result, "windows": windows, "files": sorted(os.listdir(folder))}


def test_classification_to_detection_matches_keras(tmp_path):
    """Keras 3 wants `metrics` as a list; Kestrel also takes the example's bare "accuracy"."""
    expected = _classification_to_detection(_fresh(keras), str(tmp_path / "keras"),
                                            ["accuracy"])
    got = _classification_to_detection(_fresh(kestrel), str(tmp_path / "kestrel"), "accuracy")
    _assert_close(got, expected)


# ---------------------------------------------------------------- mlpmixer_image_classification
def _mlp_mixer(k, preprocessing):
    """mlpmixer_image_classification (its tf.keras 2 version): augmentation from
    `preprocessing` (the example's `layers.experimental.preprocessing`, which Keras 3 dropped,
    or `layers`), patches via `ops.image.extract_patches`, a mixer layer whose `__init__`
    forwards `*args`, `matrix_transpose` as `ops.transpose`, AdamW, ReduceLROnPlateau and
    EarlyStopping on a validation split. Small: 16x16 images resized to 32, 8x8 patches."""
    layers, ops = k.layers, k.ops
    num_classes, image_size, patch_size, hidden_units = 5, 32, 8, 16
    num_patches = (image_size // patch_size) ** 2
    rng = np.random.default_rng(0)
    x_train = rng.random((20, 16, 16, 3), dtype="float32") * 255
    y_train = rng.integers(0, num_classes, (20, 1))
    data_augmentation = k.Sequential([
        preprocessing.Normalization(), preprocessing.Resizing(image_size, image_size),
        preprocessing.RandomFlip("horizontal"),
        preprocessing.RandomZoom(height_factor=0.2, width_factor=0.2)],
        name="data_augmentation")
    data_augmentation.layers[0].adapt(x_train)

    def create_mlp(hidden_units, dropout_rate):
        return k.Sequential([layers.Dense(units=hidden_units, activation=k.activations.gelu),
                             layers.Dense(units=hidden_units),
                             layers.Dropout(rate=dropout_rate)])

    class Patches(layers.Layer):
        def __init__(self, patch_size, num_patches):
            super().__init__()
            self.patch_size, self.num_patches = patch_size, num_patches

        def call(self, images):
            batch_size = ops.shape(images)[0]
            patches = ops.image.extract_patches(images, self.patch_size, padding="valid")
            return ops.reshape(patches, [batch_size, num_patches, patches.shape[-1]])

    class MLPMixerLayer(layers.Layer):
        def __init__(self, num_patches, hidden_units, dropout_rate=0.2, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.mlp1 = create_mlp(num_patches, dropout_rate)
            self.mlp2 = create_mlp(hidden_units, dropout_rate)
            self.normalize = layers.LayerNormalization(epsilon=1e-6)

        def call(self, inputs):
            x_channels = ops.transpose(self.normalize(inputs), (0, 2, 1))
            x = ops.transpose(self.mlp1(x_channels), (0, 2, 1)) + inputs
            return x + self.mlp2(self.normalize(x))

    inputs = layers.Input(shape=(16, 16, 3))
    x = layers.Dense(units=hidden_units)(Patches(patch_size, num_patches)(
        data_augmentation(inputs)))
    for _ in range(2):
        x = MLPMixerLayer(num_patches, hidden_units, 0.2)(x)
    logits = layers.Dense(num_classes)(layers.Dropout(rate=0.2)(
        layers.GlobalAveragePooling1D()(x)))
    model = k.Model(inputs=inputs, outputs=logits)
    model.compile(optimizer=k.optimizers.AdamW(learning_rate=0.005, weight_decay=0.0001),
                  loss=k.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[k.metrics.SparseCategoricalAccuracy(name="acc"),
                           k.metrics.SparseTopKCategoricalAccuracy(5, name="top5-acc")])
    callbacks = [k.callbacks.EarlyStopping(monitor="val_loss", patience=10,
                                           restore_best_weights=True),
                 k.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=5)]
    history = model.fit(x=x_train, y=y_train, batch_size=8, epochs=2, validation_split=0.2,
                        callbacks=callbacks, verbose=0)
    return {"summary": _summary(model), "history": history.history,
            "evaluate": model.evaluate(x_train, y_train, verbose=0)}


def test_mlpmixer_image_classification_matches_keras():
    """Kestrel keeps tf.keras 2's `layers.experimental.preprocessing` names; Keras 3 has
    them directly under `layers`."""
    assert not hasattr(keras.layers, "experimental")
    expected = _mlp_mixer(_fresh(keras), keras.layers)
    got = _mlp_mixer(_fresh(kestrel), kestrel.layers.experimental.preprocessing)
    _assert_close(got, expected)


# ---------------------------------------------------------------- attention_mll_classification
def _attention_mll(k, folder):
    """attention_mll_classification (the tf.keras 2 version of attention MIL): a layer that sets
    its attributes before `super().__init__()`, builds from a list of shapes without calling
    `super().build`, returns a list, and regularizes its weights; a list-input Functional
    model with multiply/concatenate, class weights, batch_size=1, EarlyStopping and a
    best-only weights checkpoint reloaded after fit."""
    layers, ops, bag_size = k.layers, k.ops, 3

    class AttentionLayer(layers.Layer):
        def __init__(self, l_dim, output_dim, kernel_initializer="glorot_uniform",
                     kernel_regularizer=None, use_gated=False, **kwargs):
            self.l_dim, self.output_dim, self.use_gated = l_dim, output_dim, use_gated
            self.kernel_initializer = k.initializers.get(kernel_initializer)
            self.kernel_regularizer = k.regularizers.get(kernel_regularizer)
            super().__init__(**kwargs)

        def build(self, input_shape):
            assert isinstance(input_shape, list)
            input_dim = input_shape[0][1]
            weight = dict(initializer=self.kernel_initializer, trainable=True,
                          regularizer=self.kernel_regularizer)
            self.v = self.add_weight(shape=(input_dim, self.l_dim), name="v", **weight)
            self.w = self.add_weight(shape=(self.l_dim, 1), name="w", **weight)
            self.u = self.add_weight(shape=(input_dim, self.l_dim), name="u", **weight) \
                if self.use_gated else None
            self.input_built = True

        def call(self, x, mask=None):
            def compute(x):
                ac_x = ops.tanh(ops.tensordot(x, self.v, axes=1))
                if self.use_gated:
                    ac_x = ac_x * ops.sigmoid(ops.tensordot(x, self.u, axes=1))
                return ops.tensordot(ac_x, self.w, axes=1)

            alpha = ops.softmax(ops.stack([compute(instance) for instance in x]), axis=0)
            return [alpha[i] for i in range(alpha.shape[0])]

        def compute_output_shape(self, input_shapes):
            return [(shape[0], self.output_dim) for shape in input_shapes]

    inputs, embeddings = [], []
    for _ in range(bag_size):
        inp = layers.Input((6, 6))
        x = layers.Dense(8, activation="relu")(layers.Dense(12, activation="relu")(
            layers.Flatten()(inp)))
        inputs.append(inp)
        embeddings.append(x)
    alpha = AttentionLayer(l_dim=16, output_dim=1, kernel_regularizer=k.regularizers.l2(0.01),
                           use_gated=True, name="alpha")(embeddings)
    concat = layers.concatenate([layers.multiply([alpha[i], embeddings[i]])
                                 for i in range(len(alpha))], axis=1)
    model = k.Model(inputs, layers.Dense(2, activation="softmax")(concat))
    rng = np.random.default_rng(0)
    bags = [rng.random((12, 6, 6), dtype="float32") for _ in range(bag_size)]
    labels = np.array([[1], [0], [0], [1], [0], [0], [0], [1], [0], [0], [0], [0]])
    neg, pos = int((labels == 0).sum()), int((labels == 1).sum())
    class_weight = {0: (1 / neg) * (12 / 2), 1: (1 / pos) * (12 / 2)}
    file_path = os.path.join(folder, "best.weights.h5")
    callbacks = [k.callbacks.EarlyStopping(monitor="val_loss", patience=10, mode="min"),
                 k.callbacks.ModelCheckpoint(file_path, monitor="val_loss", mode="min",
                                             save_best_only=True, save_weights_only=True)]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(bags, labels, validation_data=([b[:4] for b in bags], labels[:4]),
                        epochs=2, class_weight=class_weight, batch_size=1,
                        callbacks=callbacks, verbose=0)
    model.load_weights(file_path)
    return {"summary": _summary(model), "history": history.history,
            "predict": model.predict(bags, verbose=0),
            "losses": [float(loss) for loss in model.losses]}


def test_attention_mll_classification_matches_keras(tmp_path):
    expected = _attention_mll(_fresh(keras), str(tmp_path / "keras"))
    got = _attention_mll(_fresh(kestrel), str(tmp_path / "kestrel"))
    _assert_close(got, expected)


# ---------------------------------------------------------------- Planets_and_Moons_Dataset_AI_in_Space
def _planet_folders(root):
    """Three class folders of three small PNGs each, for `flow_from_directory`."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for name in ("earth", "mars", "moon"):
        os.makedirs(os.path.join(root, name))
        for i in range(3):
            pixels = (rng.random((12, 12, 3)) * 255).astype("uint8")
            Image.fromarray(pixels).save(os.path.join(root, name, f"{i}.png"))


def _planets(k, datagen_class, root, folder):
    """Planets_and_Moons_Dataset_AI_in_Space: an ImageDataGenerator (rescale, featurewise
    options without `fit`, validation_split) flowing lanczos-resized images from class folders
    into a Conv2D / SpatialDropout2D model, full-model `.h5` checkpoints every epoch, predict
    and evaluate on the validation subset. The example's `activation='ReLU'` is rejected by
    Keras 3 and Kestrel alike (tf.keras 2 took layer names there), so 'relu' here."""
    layers = k.layers
    datagen = datagen_class(featurewise_center=True, featurewise_std_normalization=True,
                            fill_mode="nearest", rescale=1.0 / 255.0, validation_split=0.4)
    flow = dict(target_size=(32, 32), batch_size=4, class_mode="categorical",
                interpolation="lanczos", shuffle=False)
    train_generator = datagen.flow_from_directory(root, subset="training", **flow)
    test_generator = datagen.flow_from_directory(root, subset="validation", **flow)
    inp = layers.Input(shape=(32, 32, 3))
    x = layers.Conv2D(8, (2, 2), strides=(2, 2), padding="same", activation="relu")(inp)
    x = layers.SpatialDropout2D(0.2)(layers.BatchNormalization()(x))
    x = layers.MaxPooling2D(pool_size=(2, 2), strides=(2, 2), padding="same")(x)
    x = layers.Conv2D(8, (2, 2), strides=(2, 2), padding="same", activation="relu")(x)
    x = layers.Dense(8, activation="relu")(layers.Flatten()(layers.SpatialDropout2D(0.2)(x)))
    model = k.Model(inputs=inp, outputs=layers.Dense(3, activation="softmax")(x))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    callbacks = [k.callbacks.ModelCheckpoint(os.path.join(folder, "model_{epoch}.h5"))]
    history = model.fit(train_generator, validation_data=test_generator, epochs=2,
                        callbacks=callbacks, verbose=0)
    return {"batch": train_generator[0], "classes": train_generator.class_indices,
            "history": history.history, "files": sorted(os.listdir(folder)),
            "predict": model.predict(test_generator, verbose=0),
            "evaluate": model.evaluate(test_generator, verbose=0)}


def test_planets_and_moons_matches_keras(tmp_path):
    from keras.src.legacy.preprocessing.image import ImageDataGenerator
    _planet_folders(str(tmp_path / "planets"))
    os.makedirs(tmp_path / "keras")
    os.makedirs(tmp_path / "kestrel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # featurewise options without `fit`: both warn
        expected = _planets(_fresh(keras), ImageDataGenerator, str(tmp_path / "planets"),
                            str(tmp_path / "keras"))
        got = _planets(_fresh(kestrel), kestrel.preprocessing.image.ImageDataGenerator,
                       str(tmp_path / "planets"), str(tmp_path / "kestrel"))
    # Adam turns last-bit differences of near-zero gradients (BatchNormalization's batch
    # statistics are computed differently) into whole steps: outputs agree to ~1e-4 after
    # four steps, so predictions are compared to 1e-3
    for key in ("predict", "evaluate"):
        _assert_close(got.pop(key), expected.pop(key), rtol=1e-3, atol=1e-3)
    _assert_close(got, expected)
    for k in (keras, kestrel):
        with pytest.raises(ValueError):
            k.layers.Dense(2, activation="ReLU")


# ---------------------------------------------------------------- image_classification_with_convmixer
def _convmixer_tf2(k):
    """image_classification_with_convmixer (the tf.keras 2 version): an adapted augmentation
    Sequential applied to the input but left out of the model (the example feeds `inputs`,
    not its output, to the patch embedding), DepthwiseConv2D with a 9x9 kernel, gelu
    Activations, residual adds, label smoothing and top-5 accuracy."""
    layers = k.layers
    rng = np.random.default_rng(0)
    x_train = rng.random((16, 8, 8, 3), dtype="float32") * 255
    y_train = k.utils.to_categorical(rng.integers(0, 6, 16), 6)
    data_augmentation = k.Sequential([
        layers.Normalization(), layers.RandomFlip("horizontal"),
        layers.RandomRotation(factor=0.1), layers.RandomContrast(factor=0.1),
        layers.RandomZoom(height_factor=0.2, width_factor=0.2)], name="data_augmentation")
    data_augmentation.layers[0].adapt(x_train)
    inputs = layers.Input(shape=(8, 8, 3))
    data_augmentation(inputs)  # as written: the augmented tensor is not used
    x = layers.Conv2D(8, kernel_size=2, strides=2)(inputs)
    previous_block_activation = x = layers.BatchNormalization()(layers.Activation("gelu")(x))
    for _ in range(2):
        x = layers.DepthwiseConv2D(kernel_size=9, padding="same")(x)
        x = layers.BatchNormalization()(layers.Activation("gelu")(x))
        x = layers.add([x, previous_block_activation])
        x = layers.Conv2D(8, kernel_size=1, padding="same")(x)
        previous_block_activation = x = layers.BatchNormalization()(layers.Activation("gelu")(x))
    x = layers.GlobalAveragePooling2D()(x)
    model = k.Model(inputs, layers.Dense(6, activation="softmax")(x))
    model.compile(loss=k.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  optimizer=k.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0001),
                  metrics=[k.metrics.CategoricalAccuracy(name="accuracy"),
                           k.metrics.TopKCategoricalAccuracy(5, name="top-5-accuracy")])
    history = model.fit(x_train, y_train, batch_size=8, epochs=1, validation_split=0.25,
                        verbose=0)
    return {"summary": _summary(model), "layers": [layer.name for layer in model.layers],
            "history": history.history}


def test_image_classification_with_convmixer_matches_keras():
    expected, got = _both(_convmixer_tf2)
    _assert_close(got, expected)
    assert "data_augmentation" not in got["layers"]
