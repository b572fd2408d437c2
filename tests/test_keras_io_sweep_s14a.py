"""keras.io vision examples not replayed elsewhere (3D image classification, AODNet, focal
modulation networks, monocular depth estimation, AdaMatch, Barlow Twins, consistency training,
Forward-Forward), condensed to tiny random data and one or two epochs, their TensorFlow parts
written with keras.ops and torch autograd, as their Keras 3 versions would. The same code runs
with real Keras 3 (torch backend) and with Kestrel: layouts, configs, summaries, histories and
predictions (after copying Keras' weights) agree.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.fresh_session import both as _both  # noqa: E402
from tests.keras_compare import as_numpy as _numpy  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These replays run many tiny ops, which extra intra-op threads only slow down on a busy
    machine; the previous thread count is restored after the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _assert_same_history(got, expected, rtol=1e-4, atol=1e-5):
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=atol, err_msg=key)


# ---------------------------------------------------------------- summary of a subclassed model
def _stateless_layers_summary(keras):
    """A subclassed model that calls stateless layers outside any graph."""
    layers = keras.layers

    class Stack(keras.Model):
        def __init__(self):
            super().__init__()
            self.parts = [layers.Flatten(), layers.Permute((2, 1)), layers.UpSampling1D(),
                          layers.ZeroPadding1D(), layers.Cropping1D(), layers.Rescaling(2.0),
                          layers.Dropout(0.1), layers.ReLU(), layers.Reshape((-1,)),
                          layers.GlobalAveragePooling1D(), layers.MaxPooling1D(2)]

        def call(self, x):
            return [part(x) for part in self.parts]

    model = Stack()
    model(np.ones((2, 4, 6), "float32"))
    return _summary(model)


def test_summary_shows_shapes_of_stateless_layers_keras_builds_on_call():
    """Keras records the build shapes of a layer without `build` that it does not build at
    construction (Flatten, Permute, UpSampling1D, ...), so the summary of a subclassed model
    shows their output shapes; Dropout, ReLU, Reshape and the poolings stay '?'."""
    expected, got = _both(_stateless_layers_summary)
    assert "(2, 24)" in got
    assert got == expected



# ---------------------------------------------------------------- compile(metrics=[])
def _empty_metrics_compiled(keras, metrics, weighted_metrics):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(loss="mse", metrics=metrics, weighted_metrics=weighted_metrics)
    before = [m.name for m in model.metrics]
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    logs = model.evaluate(np.ones((4, 3)), np.ones((4, 2)), verbose=0, return_dict=True)
    return before, [m.name for m in model.metrics], sorted(logs)


def test_compile_with_empty_metrics_list_keeps_the_compile_metrics_container():
    """forwardforward compiles with `metrics=[]`: Keras still makes the (empty)
    "compile_metrics" container, which `model.metrics` lists; None makes none."""
    for metrics, weighted_metrics in ([], None), (None, []), ({"dense": []}, None):
        expected, got = _both(_empty_metrics_compiled, metrics, weighted_metrics)
        assert got == expected
        assert "compile_metrics" in got[0]
    expected, got = _both(_empty_metrics_compiled, None, None)
    assert got == expected == (["loss"], ["loss"], ["loss"])


def _assert_same_weights(keras_model, kestrel_model, rtol=1e-4, atol=1e-5):
    assert [w.path for w in kestrel_model.weights] == [w.path for w in keras_model.weights]
    for expected, got in zip(keras_model.get_weights(), kestrel_model.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- 3D image classification
def _3d_image_classification(keras, tmp_path):
    """The example's `get_model` at its smallest input, fit on two CT-like volumes with its
    schedule, callbacks and 'acc' metric, then its best checkpoint (a legacy .h5) reloaded."""
    layers = keras.layers

    def get_model(width=128, height=128, depth=64):
        inputs = keras.Input((width, height, depth, 1))
        x = layers.Conv3D(filters=64, kernel_size=3, activation="relu")(inputs)
        x = layers.MaxPool3D(pool_size=2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Conv3D(filters=64, kernel_size=3, activation="relu")(x)
        x = layers.MaxPool3D(pool_size=2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Conv3D(filters=128, kernel_size=3, activation="relu")(x)
        x = layers.MaxPool3D(pool_size=2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Conv3D(filters=256, kernel_size=3, activation="relu")(x)
        x = layers.MaxPool3D(pool_size=2)(x)
        x = layers.BatchNormalization()(x)
        x = layers.GlobalAveragePooling3D()(x)
        x = layers.Dense(units=512, activation="relu")(x)
        x = layers.Dropout(0.3)(x)
        outputs = layers.Dense(units=1, activation="sigmoid")(x)
        return keras.Model(inputs, outputs, name="3dcnn")

    model = get_model(width=46, height=46, depth=46)
    lr_schedule = keras.optimizers.schedules.ExponentialDecay(
        0.0001, decay_steps=100000, decay_rate=0.96, staircase=True)
    model.compile(loss="binary_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=lr_schedule), metrics=["acc"])
    checkpoint = str(tmp_path / f"{keras.__name__}_3d_image_classification.h5")
    checkpoint_cb = keras.callbacks.ModelCheckpoint(checkpoint, save_best_only=True)
    early_stopping_cb = keras.callbacks.EarlyStopping(monitor="val_acc", patience=15)
    volumes = np.random.default_rng(0).random((3, 46, 46, 46, 1)).astype("float32")
    labels = np.array([1, 0, 1])
    model.fit(volumes[:2], labels[:2], validation_data=(volumes[2:], labels[2:]), batch_size=2,
              epochs=1, shuffle=True, verbose=0, callbacks=[checkpoint_cb, early_stopping_cb])
    model.load_weights(checkpoint)
    prediction = model.predict(np.expand_dims(volumes[2], axis=0), verbose=0)[0]
    return model, model.history.history, prediction


def test_3d_image_classification(tmp_path):
    """Same summary, history (which `predict` leaves on the model, as Keras) and prediction
    of the reloaded checkpoint."""
    expected, got = _both(_3d_image_classification, tmp_path)
    assert _summary(got[0]) == _summary(expected[0])
    _assert_same_history(got[1], expected[1], rtol=1e-3)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-3)


# ---------------------------------------------------------------- AODNet
def _aodnet(keras):
    """The example's subclassed AODNet, its PSNR metric written with keras.ops, built with
    `model.build`, fit with validation, then `infer`'s img_to_array and predict."""
    ops = keras.ops

    class AODNet(keras.Model):
        def __init__(self, name: str, stddev: float = 0.02, weight_decay: float = 1e-4):
            super().__init__(name=name)

            def conv(kernel_size):
                return keras.layers.Conv2D(
                    filters=3, kernel_size=kernel_size, strides=1, padding="same",
                    activation=keras.activations.relu, use_bias=True,
                    kernel_initializer=keras.initializers.RandomNormal(stddev=stddev),
                    kernel_regularizer=keras.regularizers.L2(weight_decay))

            self.conv_layer_1, self.conv_layer_2 = conv(1), conv(1)
            self.conv_layer_3, self.conv_layer_4, self.conv_layer_5 = conv(5), conv(7), conv(3)
            self.relu = keras.layers.ReLU(max_value=1.0)

        def call(self, inputs, *args, **kwargs):
            conv_1 = self.conv_layer_1(inputs)
            conv_2 = self.conv_layer_2(conv_1)
            concat_1 = ops.concatenate([conv_1, conv_2], axis=-1)
            conv_3 = self.conv_layer_3(concat_1)
            concat_2 = ops.concatenate([conv_2, conv_3], axis=-1)
            conv_4 = self.conv_layer_4(concat_2)
            concat_3 = ops.concatenate([conv_1, conv_2, conv_3, conv_4], axis=-1)
            k = self.conv_layer_5(concat_3)
            j = ops.multiply(k, inputs) - k + 1.0
            return self.relu(j)

    def peak_signal_noise_ratio(y_true, y_pred):
        mse = ops.mean(ops.square(y_pred - y_true), axis=(-3, -2, -1))
        return 20.0 * np.log10(255.0) - 10.0 * ops.log(mse) / np.log(10.0)

    model = AODNet(name="AODNet", stddev=0.02, weight_decay=1e-4)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-4),
                  loss=keras.losses.MeanSquaredError(), metrics=[peak_signal_noise_ratio])
    model.build((1, 16, 16, 3))
    rng = np.random.default_rng(0)
    hazy, clean = rng.random((2, 8, 16, 16, 3)).astype("float32")
    history = model.fit(hazy[:6], clean[:6], validation_data=(hazy[6:], clean[6:]),
                        batch_size=2, epochs=2, verbose=0)
    image = keras.preprocessing.image.img_to_array(np.uint8(hazy[0] * 255))
    image = np.expand_dims(image.astype("float32") / 255.0, axis=0)
    return model, history.history, model.predict(image, verbose=0)


def test_aodnet():
    """Same history, losses and prediction. Keras 3's `build(shape)` on a subclassed model
    without `build` only marks it built (its summary shows unbuilt layers); Kestrel's runs
    `call` once, as tf.keras did, so only the trained state is compared."""
    expected, got = _both(_aodnet)
    _assert_same_history(got[1], expected[1])
    assert len(got[0].losses) == len(expected[0].losses) == 5
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-4, atol=1e-5)
    _assert_same_weights(expected[0], got[0])


# ---------------------------------------------------------------- focal modulation network
def _focal_modulation_layers(keras):
    """The example's PatchEmbed, MLP, FocalModulationLayer, DropPath, FocalModulationBlock and
    BasicLayer, their tf ops written with keras.ops; the feature-map sizes go to the blocks as
    keywords (Keras 3 takes only tensors positionally)."""
    layers, ops = keras.layers, keras.ops

    class PatchEmbed(layers.Layer):
        def __init__(self, image_size=(224, 224), patch_size=(4, 4), embed_dim=96,
                     norm_layer=None, **kwargs):
            super().__init__(**kwargs)
            patch_resolution = [image_size[0] // patch_size[0], image_size[1] // patch_size[1]]
            self.image_size = image_size
            self.patch_size = patch_size
            self.embed_dim = embed_dim
            self.patch_resolution = patch_resolution
            self.num_patches = patch_resolution[0] * patch_resolution[1]
            self.proj = layers.Conv2D(filters=embed_dim, kernel_size=patch_size,
                                      strides=patch_size)
            self.flatten = layers.Reshape(target_shape=(-1, embed_dim))
            self.norm = norm_layer(epsilon=1e-7) if norm_layer is not None else None

        def call(self, x):
            x = self.proj(x)
            height, width, channels = ops.shape(x)[1], ops.shape(x)[2], ops.shape(x)[3]
            x = self.flatten(x)
            if self.norm is not None:
                x = self.norm(x)
            return x, height, width, channels

    def MLP(in_features, hidden_features=None, out_features=None,
            act_layer=keras.activations.gelu, mlp_drop_rate=0.0):
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        return keras.Sequential([layers.Dense(units=hidden_features, activation=act_layer),
                                 layers.Dense(units=out_features),
                                 layers.Dropout(rate=mlp_drop_rate)])

    class FocalModulationLayer(layers.Layer):
        def __init__(self, dim, focal_window, focal_level, focal_factor=2, proj_drop_rate=0.0,
                     **kwargs):
            super().__init__(**kwargs)
            self.dim = dim
            self.focal_window = focal_window
            self.focal_level = focal_level
            self.focal_factor = focal_factor
            self.proj_drop_rate = proj_drop_rate
            self.initial_proj = layers.Dense(units=(2 * self.dim) + (self.focal_level + 1),
                                             use_bias=True)
            self.focal_layers = list()
            self.kernel_sizes = list()
            for idx in range(self.focal_level):
                kernel_size = (self.focal_factor * idx) + self.focal_window
                depth_gelu_block = keras.Sequential([
                    layers.ZeroPadding2D(padding=(kernel_size // 2, kernel_size // 2)),
                    layers.Conv2D(filters=self.dim, kernel_size=kernel_size,
                                  activation=keras.activations.gelu, groups=self.dim,
                                  use_bias=False)])
                self.focal_layers.append(depth_gelu_block)
                self.kernel_sizes.append(kernel_size)
            self.activation = keras.activations.gelu
            self.gap = layers.GlobalAveragePooling2D(keepdims=True)
            self.modulator_proj = layers.Conv2D(filters=self.dim, kernel_size=(1, 1),
                                                use_bias=True)
            self.proj = layers.Dense(units=self.dim)
            self.proj_drop = layers.Dropout(self.proj_drop_rate)

        def call(self, x, training=None):
            x_proj = self.initial_proj(x)
            query, context, self.gates = ops.split(x_proj, [self.dim, 2 * self.dim], axis=-1)
            context = self.focal_layers[0](context)
            context_all = context * self.gates[..., 0:1]
            for idx in range(1, self.focal_level):
                context = self.focal_layers[idx](context)
                context_all += context * self.gates[..., idx: idx + 1]
            context_global = self.activation(self.gap(context))
            context_all += context_global * self.gates[..., self.focal_level:]
            self.modulator = self.modulator_proj(context_all)
            x_output = query * self.modulator
            x_output = self.proj(x_output)
            return self.proj_drop(x_output)

    class DropPath(layers.Layer):
        def __init__(self, drop_path_prob, **kwargs):
            super().__init__(**kwargs)
            self.drop_path_prob = drop_path_prob

        def call(self, x, training=False):
            if training:
                keep_prob = 1 - self.drop_path_prob
                shape = (ops.shape(x)[0],) + (1,) * (len(ops.shape(x)) - 1)
                random_tensor = ops.floor(keep_prob + keras.random.uniform(shape, 0, 1))
                return (x / keep_prob) * random_tensor
            return x

    class FocalModulationBlock(layers.Layer):
        def __init__(self, dim, input_resolution, mlp_ratio=4.0, drop=0.0, drop_path=0.0,
                     act_layer=keras.activations.gelu, norm_layer=layers.LayerNormalization,
                     focal_level=1, focal_window=3, **kwargs):
            super().__init__(**kwargs)
            self.dim = dim
            self.input_resolution = input_resolution
            self.mlp_ratio = mlp_ratio
            self.focal_level = focal_level
            self.focal_window = focal_window
            self.norm1 = norm_layer(epsilon=1e-5)
            self.modulation = FocalModulationLayer(dim=self.dim, focal_window=self.focal_window,
                                                   focal_level=self.focal_level,
                                                   proj_drop_rate=drop)
            self.drop_path = (DropPath(drop_path_prob=drop_path) if drop_path > 0.0
                              else layers.Activation("linear"))
            self.mlp = MLP(in_features=self.dim, hidden_features=int(self.dim * self.mlp_ratio),
                           act_layer=act_layer, mlp_drop_rate=drop)

        def call(self, x, height, width, channels):
            shortcut = x
            x = ops.reshape(x, (-1, height, width, channels))
            x = self.modulation(x)
            x = ops.reshape(x, (-1, height * width, channels))
            x = shortcut + self.drop_path(x)
            return x + self.drop_path(self.mlp(self.norm1(x)))

    class BasicLayer(layers.Layer):
        def __init__(self, dim, out_dim, input_resolution, depth, mlp_ratio=4.0, drop=0.0,
                     drop_path=0.0, norm_layer=layers.LayerNormalization, downsample=None,
                     focal_level=1, focal_window=1, **kwargs):
            super().__init__(**kwargs)
            self.dim = dim
            self.input_resolution = input_resolution
            self.depth = depth
            self.blocks = [FocalModulationBlock(
                dim=dim, input_resolution=input_resolution, mlp_ratio=mlp_ratio, drop=drop,
                drop_path=drop_path[i] if isinstance(drop_path, list) else drop_path,
                norm_layer=norm_layer, focal_level=focal_level, focal_window=focal_window)
                for i in range(self.depth)]
            self.downsample = (downsample(image_size=input_resolution, patch_size=(2, 2),
                                          embed_dim=out_dim)
                               if downsample is not None else None)

        def call(self, x, height, width, channels):
            for block in self.blocks:
                x = block(x, height=height, width=width, channels=channels)
            if self.downsample is not None:
                x = ops.reshape(x, (-1, height, width, channels))
                x, height_o, width_o, channels_o = self.downsample(x)
            else:
                height_o, width_o, channels_o = height, width, channels
            return x, height_o, width_o, channels_o

    return PatchEmbed, BasicLayer


def _focal_modulation_network(keras):
    """The FocalModulationNetwork model, the WarmUpCosine schedule with AdamW, the augmentation
    Sequentials and the TrainMonitor callback reading the gates and modulator, at a tiny size."""
    layers, ops = keras.layers, keras.ops
    PatchEmbed, BasicLayer = _focal_modulation_layers(keras)

    class FocalModulationNetwork(keras.Model):
        def __init__(self, image_size=(48, 48), patch_size=(4, 4), num_classes=10,
                     embed_dim=256, depths=[2, 3, 2], mlp_ratio=4.0, drop_rate=0.1,
                     drop_path_rate=0.1, norm_layer=layers.LayerNormalization,
                     focal_levels=[2, 2, 2], focal_windows=[3, 3, 3], **kwargs):
            super().__init__(**kwargs)
            self.num_layers = len(depths)
            embed_dim = [embed_dim * (2**i) for i in range(self.num_layers)]
            self.num_classes = num_classes
            self.embed_dim = embed_dim
            self.num_features = embed_dim[-1]
            self.mlp_ratio = mlp_ratio
            self.patch_embed = PatchEmbed(image_size=image_size, patch_size=patch_size,
                                          embed_dim=embed_dim[0], norm_layer=norm_layer)
            patches_resolution = self.patch_embed.patch_resolution
            self.patches_resolution = patches_resolution
            self.pos_drop = layers.Dropout(drop_rate)
            dpr = [x for x in np.linspace(start=0, stop=drop_path_rate, num=sum(depths))]
            self.basic_layers = list()
            for i_layer in range(self.num_layers):
                last = i_layer == self.num_layers - 1
                self.basic_layers.append(BasicLayer(
                    dim=embed_dim[i_layer], out_dim=None if last else embed_dim[i_layer + 1],
                    input_resolution=(patches_resolution[0] // (2**i_layer),
                                      patches_resolution[1] // (2**i_layer)),
                    depth=depths[i_layer], mlp_ratio=self.mlp_ratio, drop=drop_rate,
                    drop_path=dpr[sum(depths[:i_layer]): sum(depths[: i_layer + 1])],
                    norm_layer=norm_layer, downsample=None if last else PatchEmbed,
                    focal_level=focal_levels[i_layer], focal_window=focal_windows[i_layer]))
            self.norm = norm_layer(epsilon=1e-7)
            self.avgpool = layers.GlobalAveragePooling1D()
            self.flatten = layers.Flatten()
            self.head = layers.Dense(self.num_classes, activation="softmax")

        def forward_features(self, x):
            x, height, width, channels = self.patch_embed(x)
            x = self.pos_drop(x)
            for layer in self.basic_layers:
                x, height, width, channels = layer(x, height=height, width=width,
                                                   channels=channels)
            return self.flatten(self.avgpool(self.norm(x)))

        def call(self, x):
            return self.head(self.forward_features(x))

    class WarmUpCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, learning_rate_base, total_steps, warmup_learning_rate, warmup_steps):
            super().__init__()
            self.learning_rate_base = learning_rate_base
            self.total_steps = total_steps
            self.warmup_learning_rate = warmup_learning_rate
            self.warmup_steps = warmup_steps
            self.pi = np.pi

        def __call__(self, step):
            step = ops.cast(step, "float32")
            cos_annealed_lr = ops.cos(self.pi * (step - self.warmup_steps)
                                      / float(self.total_steps - self.warmup_steps))
            learning_rate = 0.5 * self.learning_rate_base * (1 + cos_annealed_lr)
            slope = (self.learning_rate_base - self.warmup_learning_rate) / self.warmup_steps
            warmup_rate = slope * step + self.warmup_learning_rate
            learning_rate = ops.where(step < self.warmup_steps, warmup_rate, learning_rate)
            return ops.where(step > self.total_steps, 0.0, learning_rate)

    image_size = 16
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (8, 12, 12, 3)).astype("uint8")
    y_train = rng.integers(0, 10, (8, 1))
    train_aug = keras.Sequential([layers.Rescaling(1 / 255.0), layers.Resizing(20, 20),
                                  layers.RandomCrop(image_size, image_size),
                                  layers.RandomFlip("horizontal")], name="train_data_augmentation")
    test_aug = keras.Sequential([layers.Rescaling(1 / 255.0),
                                 layers.Resizing(image_size, image_size)],
                                name="test_data_augmentation")
    x_aug, test_images = _numpy(train_aug(x_train)), _numpy(test_aug(x_train))
    upsampler = layers.UpSampling2D(size=(4, 4), interpolation="bilinear")
    monitored = []

    class TrainMonitor(keras.callbacks.Callback):
        def __init__(self, epoch_interval=None):
            self.epoch_interval = epoch_interval

        def on_epoch_end(self, epoch, logs=None):
            if self.epoch_interval and epoch % self.epoch_interval == 0:
                _ = self.model(test_images)
                modulation = self.model.basic_layers[1].blocks[-1].modulation
                monitored.append((_numpy(upsampler(modulation.gates)),
                                  _numpy(upsampler(modulation.modulator))))

    focal_mod_net = FocalModulationNetwork(image_size=(image_size, image_size), embed_dim=8,
                                           depths=[1, 2, 1])
    scheduled_lrs = WarmUpCosine(learning_rate_base=1e-4, total_steps=4,
                                 warmup_learning_rate=0.0, warmup_steps=1)
    optimizer = keras.optimizers.AdamW(learning_rate=scheduled_lrs, weight_decay=1e-4)
    focal_mod_net.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
    history = focal_mod_net.fit(x_aug, y_train, batch_size=4, epochs=2,
                                validation_data=(test_images, y_train),
                                callbacks=[TrainMonitor(epoch_interval=1)], verbose=0)
    return focal_mod_net, x_aug, history.history, monitored, test_images


def test_focal_modulation_network():
    """Same augmentations, history, gates and modulator seen by the callback, weights, summary
    (Flatten's output shape included) and predictions."""
    expected, got = _both(_focal_modulation_network)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-6)
    _assert_same_history(got[2], expected[2])
    for (gates, modulator), (expected_gates, expected_modulator) in zip(got[3], expected[3]):
        assert gates.shape == expected_gates.shape == (8, 8, 8, 3)
        np.testing.assert_allclose(gates, expected_gates, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(modulator, expected_modulator, rtol=1e-3, atol=1e-5)
    assert _summary(got[0]) == _summary(expected[0])
    _assert_same_weights(expected[0], got[0])
    np.testing.assert_allclose(got[0].predict(got[4], verbose=0),
                               expected[0].predict(got[4], verbose=0), rtol=1e-4, atol=1e-6)


def test_positional_int_arguments_to_a_layer_call():
    """The example passes the feature-map sizes positionally (`block(x, height, width,
    channels)`); Keras 3 refuses non-tensors there, Kestrel takes them, as tf.keras did."""
    _, kestrel_basic_layer = _focal_modulation_layers(_fresh(kestrel))
    _, keras_basic_layer = _focal_modulation_layers(_fresh(keras))
    x = np.random.default_rng(0).random((2, 4, 8)).astype("float32")
    with np.testing.assert_raises_regex(ValueError, "Only input tensors may be passed"):
        keras_basic_layer(dim=8, out_dim=None, input_resolution=(2, 2), depth=1)(x, 2, 2, 8)
    out = kestrel_basic_layer(dim=8, out_dim=None, input_resolution=(2, 2), depth=1)(x, 2, 2, 8)
    assert tuple(out[0].shape) == (2, 4, 8) and out[1:] == (2, 2, 8)


# ---------------------------------------------------------------- monocular depth estimation
def _depth_data_generator(keras):
    """The example's DataGenerator (a Sequence that skips `super().__init__()` and shrinks its
    batch size at the last batch), reading arrays instead of files. Its float64 `np.empty`
    batches are float32 here: Keras 3 hands a PyDataset's float64 batches over unconverted
    (the depth loss then fails in a float32 convolution), Kestrel converts them to floatx."""

    class DataGenerator(keras.utils.Sequence):
        def __init__(self, data, batch_size=6, dim=(768, 1024), n_channels=3, shuffle=True):
            self.data = data
            self.indices = list(range(len(data["image"])))
            self.dim = dim
            self.n_channels = n_channels
            self.batch_size = batch_size
            self.shuffle = shuffle
            self.min_depth = 0.1
            self.on_epoch_end()

        def __len__(self):
            return int(np.ceil(len(self.data["image"]) / self.batch_size))

        def __getitem__(self, index):
            if (index + 1) * self.batch_size > len(self.indices):
                self.batch_size = len(self.indices) - index * self.batch_size
            index = self.indices[index * self.batch_size: (index + 1) * self.batch_size]
            batch = [self.indices[k] for k in index]
            return self.data_generation(batch)

        def on_epoch_end(self):
            self.index = np.arange(len(self.indices))
            if self.shuffle:
                np.random.shuffle(self.index)

        def load(self, image_, depth_map, mask):
            depth_map = depth_map.squeeze()
            mask = mask > 0
            max_depth = min(300, np.percentile(depth_map, 99))
            depth_map = np.clip(depth_map, self.min_depth, max_depth)
            depth_map = np.log(depth_map, where=mask)
            depth_map = np.ma.masked_where(~mask, depth_map)
            depth_map = np.clip(depth_map, 0.1, np.log(max_depth))
            return image_, np.expand_dims(depth_map, axis=2)

        def data_generation(self, batch):
            x = np.empty((self.batch_size, *self.dim, self.n_channels), dtype="float32")
            y = np.empty((self.batch_size, *self.dim, 1), dtype="float32")
            for i, batch_id in enumerate(batch):
                x[i,], y[i,] = self.load(self.data["image"][batch_id],
                                         self.data["depth"][batch_id],
                                         self.data["mask"][batch_id])
            return x, y

    return DataGenerator


def _depth_blocks(keras):
    """DownscaleBlock, UpscaleBlock and BottleNeckBlock as written (LeakyReLU's `alpha` is
    `negative_slope` in Keras 3)."""
    layers = keras.layers

    def convs_and_relus(block, filters, kernel_size, strides, padding):
        block.convA = layers.Conv2D(filters, kernel_size, strides, padding)
        block.convB = layers.Conv2D(filters, kernel_size, strides, padding)
        block.reluA = layers.LeakyReLU(negative_slope=0.2)
        block.reluB = layers.LeakyReLU(negative_slope=0.2)

    class DownscaleBlock(layers.Layer):
        def __init__(self, filters, kernel_size=(3, 3), padding="same", strides=1, **kwargs):
            super().__init__(**kwargs)
            convs_and_relus(self, filters, kernel_size, strides, padding)
            self.bn2a = layers.BatchNormalization()
            self.bn2b = layers.BatchNormalization()
            self.pool = layers.MaxPool2D((2, 2), (2, 2))

        def call(self, input_tensor):
            d = self.convA(input_tensor)
            x = self.reluA(self.bn2a(d))
            x = self.reluB(self.bn2b(self.convB(x)))
            x += d
            return x, self.pool(x)

    class UpscaleBlock(layers.Layer):
        def __init__(self, filters, kernel_size=(3, 3), padding="same", strides=1, **kwargs):
            super().__init__(**kwargs)
            self.us = layers.UpSampling2D((2, 2))
            convs_and_relus(self, filters, kernel_size, strides, padding)
            self.bn2a = layers.BatchNormalization()
            self.bn2b = layers.BatchNormalization()
            self.conc = layers.Concatenate()

        def call(self, x, skip):
            concat = self.conc([self.us(x), skip])
            x = self.reluA(self.bn2a(self.convA(concat)))
            return self.reluB(self.bn2b(self.convB(x)))

    class BottleNeckBlock(layers.Layer):
        def __init__(self, filters, kernel_size=(3, 3), padding="same", strides=1, **kwargs):
            super().__init__(**kwargs)
            convs_and_relus(self, filters, kernel_size, strides, padding)

        def call(self, x):
            return self.reluB(self.convB(self.reluA(self.convA(x))))

    return DownscaleBlock, UpscaleBlock, BottleNeckBlock


def _depth_losses(keras, max_val):
    """tf.image.image_gradients and tf.image.ssim (Gaussian window) with keras.ops."""
    ops = keras.ops

    def image_gradients(image):
        dy = ops.pad(image[:, 1:] - image[:, :-1], [[0, 0], [0, 1], [0, 0], [0, 0]])
        dx = ops.pad(image[:, :, 1:] - image[:, :, :-1], [[0, 0], [0, 0], [0, 1], [0, 0]])
        return dy, dx

    def ssim(a, b, filter_size, k1, k2, filter_sigma=1.5):
        coords = np.arange(filter_size, dtype="float32") - (filter_size - 1) / 2.0
        gauss = np.exp(-(coords**2) / (2 * filter_sigma**2))
        window = np.outer(gauss, gauss) / gauss.sum() ** 2
        window = ops.convert_to_tensor(window[:, :, None, None].astype("float32"))

        def blur(t):
            return ops.conv(t, window, padding="valid")

        c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
        mu_a, mu_b = blur(a), blur(b)
        var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
        covariance = blur(a * b) - mu_a * mu_b
        index = ((2 * mu_a * mu_b + c1) * (2 * covariance + c2)) / (
            (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        return ops.mean(index, axis=(1, 2, 3))

    return image_gradients, ssim


def _depth_estimation(keras):
    """The DepthEstimationModel with its own train_step (torch autograd) and test_step, fit on
    the DataGenerator with validation, then predict."""
    layers, ops = keras.layers, keras.ops
    height = width = 16
    DataGenerator = _depth_data_generator(keras)
    DownscaleBlock, UpscaleBlock, BottleNeckBlock = _depth_blocks(keras)
    image_gradients, ssim = _depth_losses(keras, max_val=width)

    class DepthEstimationModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.ssim_loss_weight = 0.85
            self.l1_loss_weight = 0.1
            self.edge_loss_weight = 0.9
            self.loss_metric = keras.metrics.Mean(name="loss")
            f = [4, 4, 8, 8, 8]
            self.downscale_blocks = [DownscaleBlock(f[0]), DownscaleBlock(f[1]),
                                     DownscaleBlock(f[2]), DownscaleBlock(f[3])]
            self.bottle_neck_block = BottleNeckBlock(f[4])
            self.upscale_blocks = [UpscaleBlock(f[3]), UpscaleBlock(f[2]), UpscaleBlock(f[1]),
                                   UpscaleBlock(f[0])]
            self.conv_layer = layers.Conv2D(1, (1, 1), padding="same", activation="tanh")

        def calculate_loss(self, target, pred):
            dy_true, dx_true = image_gradients(target)
            dy_pred, dx_pred = image_gradients(pred)
            weights_x = ops.exp(ops.mean(ops.abs(dx_true)))
            weights_y = ops.exp(ops.mean(ops.abs(dy_true)))
            depth_smoothness_loss = (ops.mean(abs(dx_pred * weights_x))
                                     + ops.mean(abs(dy_pred * weights_y)))
            ssim_loss = ops.mean(1 - ssim(target, pred, filter_size=7, k1=0.01**2, k2=0.03**2))
            l1_loss = ops.mean(ops.abs(target - pred))
            return ((self.ssim_loss_weight * ssim_loss) + (self.l1_loss_weight * l1_loss)
                    + (self.edge_loss_weight * depth_smoothness_loss))

        @property
        def metrics(self):
            return [self.loss_metric]

        def train_step(self, batch_data):
            input, target = batch_data
            self.zero_grad()
            loss = self.calculate_loss(target, self(input, training=True))
            loss.backward()
            gradients = [v.value.grad for v in self.trainable_variables]
            with torch.no_grad():
                self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
            self.loss_metric.update_state(loss)
            return {"loss": self.loss_metric.result()}

        def test_step(self, batch_data):
            input, target = batch_data
            loss = self.calculate_loss(target, self(input, training=False))
            self.loss_metric.update_state(loss)
            return {"loss": self.loss_metric.result()}

        def call(self, x):
            c1, p1 = self.downscale_blocks[0](x)
            c2, p2 = self.downscale_blocks[1](p1)
            c3, p3 = self.downscale_blocks[2](p2)
            c4, p4 = self.downscale_blocks[3](p3)
            bn = self.bottle_neck_block(p4)
            u1 = self.upscale_blocks[0](bn, c4)
            u2 = self.upscale_blocks[1](u1, c3)
            u3 = self.upscale_blocks[2](u2, c2)
            u4 = self.upscale_blocks[3](u3, c1)
            return self.conv_layer(u4)

    rng = np.random.default_rng(0)
    data = {"image": list(rng.random((10, height, width, 3)).astype("float32")),
            "depth": list(rng.random((10, height, width, 1)) * 20 + 0.05),
            "mask": list(np.ones((10, height, width)))}

    def subset(start, stop):
        return {key: value[start:stop] for key, value in data.items()}

    optimizer = keras.optimizers.Adam(learning_rate=0.0002, amsgrad=False)
    model = DepthEstimationModel()
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    model.compile(optimizer, loss=cross_entropy)
    train_loader = DataGenerator(data=subset(0, 6), batch_size=4, dim=(height, width))
    validation_loader = DataGenerator(data=subset(6, 10), batch_size=4, dim=(height, width))
    history = model.fit(train_loader, epochs=2, validation_data=validation_loader, verbose=0)
    test_loader = next(iter(DataGenerator(data=subset(4, 10), batch_size=6, dim=(height, width))))
    return model, history.history, model.predict(test_loader[0], verbose=0)


def test_depth_estimation():
    """Same history (the generator's shrinking batches and fit's shuffled order included),
    weights, summary and predictions."""
    expected, got = _both(_depth_estimation)
    _assert_same_history(got[1], expected[1])
    _assert_same_weights(expected[0], got[0], rtol=1e-3, atol=1e-4)
    assert _summary(got[0]) == _summary(expected[0])
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-3, atol=1e-3)


# ---------------------------------------------------------------- AdaMatch
def _wide_resnet(keras, depth, width_mult, weight_decay=0.0005, init="he_normal"):
    """AdaMatch's `get_network` (Wide-ResNet-depth-width_mult) as written."""
    layers, regularizers = keras.layers, keras.regularizers

    def conv(filters, kernel, strides):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same",
                             kernel_initializer=init,
                             kernel_regularizer=regularizers.l2(weight_decay), use_bias=False)

    def wide_basic(x, n_input_plane, n_output_plane, stride):
        conv_params = [[3, 3, stride, "same"], [3, 3, (1, 1), "same"]]
        for i, v in enumerate(conv_params):
            if i == 0:
                if n_input_plane != n_output_plane:
                    x = layers.BatchNormalization()(x)
                    x = layers.Activation("relu")(x)
                    convs = x
                else:
                    convs = layers.BatchNormalization()(x)
                    convs = layers.Activation("relu")(convs)
            else:
                convs = layers.BatchNormalization()(convs)
                convs = layers.Activation("relu")(convs)
            convs = conv(n_output_plane, (v[0], v[1]), v[2])(convs)
        shortcut = conv(n_output_plane, (1, 1), stride)(x) \
            if n_input_plane != n_output_plane else x
        return layers.Add()([convs, shortcut])

    def block_series(x, n_input_plane, n_output_plane, count, stride):
        x = wide_basic(x, n_input_plane, n_output_plane, stride)
        for _ in range(2, int(count + 1)):
            x = wide_basic(x, n_output_plane, n_output_plane, stride=1)
        return x

    def get_network(image_size=32, num_classes=10):
        n = (depth - 4) / 6
        n_stages = [16, 16 * width_mult, 32 * width_mult, 64 * width_mult]
        inputs = keras.Input(shape=(image_size, image_size, 3))
        x = layers.Rescaling(scale=1.0 / 255)(inputs)
        x = conv(n_stages[0], (3, 3), 1)(x)
        x = block_series(x, n_input_plane=n_stages[0], n_output_plane=n_stages[1], count=n,
                         stride=(1, 1))
        x = block_series(x, n_input_plane=n_stages[1], n_output_plane=n_stages[2], count=n,
                         stride=(2, 2))
        x = block_series(x, n_input_plane=n_stages[2], n_output_plane=n_stages[3], count=n,
                         stride=(2, 2))
        x = layers.Activation("relu")(layers.BatchNormalization()(x))
        x = layers.GlobalAveragePooling2D()(x)
        outputs = layers.Dense(num_classes,
                               kernel_regularizer=regularizers.l2(weight_decay))(x)
        return keras.Model(inputs, outputs)

    return get_network


def _adamatch_trainer(keras):
    """The AdaMatch model: two forward passes, random logit interpolation, distribution
    alignment and relative confidence thresholding, its train_step with torch autograd."""
    ops = keras.ops

    def compute_loss_source(source_labels, logits_source_w, logits_source_s):
        loss_func = keras.losses.CategoricalCrossentropy(from_logits=True)
        return loss_func(source_labels, logits_source_w) + loss_func(source_labels,
                                                                     logits_source_s)

    def compute_loss_target(target_pseudo_labels_w, logits_target_s, mask):
        loss_func = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="none")
        target_loss = loss_func(ops.stop_gradient(target_pseudo_labels_w), logits_target_s)
        target_loss *= ops.cast(mask, target_loss.dtype)
        return ops.mean(target_loss, 0)

    class AdaMatch(keras.Model):
        def __init__(self, model, total_steps, tau=0.9):
            super().__init__()
            self.model = model
            self.tau = tau
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.total_steps = total_steps
            self.current_step = keras.Variable(0, dtype="int64", trainable=False)

        @property
        def metrics(self):
            return [self.loss_tracker]

        def compute_mu(self):
            pi = ops.convert_to_tensor(np.pi, dtype="float32")
            step = ops.cast(self.current_step, dtype="float32")
            return 0.5 - ops.cos(ops.minimum(pi, (2 * pi * step) / self.total_steps)) / 2

        def train_step(self, data):
            source_ds, target_ds = data
            (source_w, source_labels), (source_s, _) = source_ds
            (target_w, _), (target_s, _) = target_ds
            combined_images = ops.concatenate([source_w, source_s, target_w, target_s], 0)
            combined_source = ops.concatenate([source_w, source_s], 0)
            total_source = ops.shape(combined_source)[0]
            n_source_w, n_target_w = ops.shape(source_w)[0], ops.shape(target_w)[0]
            self.zero_grad()
            combined_logits = self.model(combined_images, training=True)
            z_d_prime_source = self.model(combined_source, training=False)
            z_prime_source = combined_logits[:total_source]
            lambd = keras.random.uniform((total_source, 10), 0, 1)
            final_source_logits = (lambd * z_prime_source) + ((1 - lambd) * z_d_prime_source)
            y_hat_source_w = ops.softmax(final_source_logits[:n_source_w])
            logits_target = combined_logits[total_source:]
            y_hat_target_w = ops.softmax(logits_target[:n_target_w])
            expectation_ratio = ops.mean(y_hat_source_w) / ops.mean(y_hat_target_w)
            y_tilde_target_w = ops.normalize(y_hat_target_w * expectation_ratio, axis=1)
            c_tau = self.tau * ops.mean(ops.max(y_hat_source_w, axis=-1), 0)
            mask = ops.max(y_tilde_target_w, axis=-1) >= c_tau
            source_loss = compute_loss_source(source_labels, final_source_logits[:n_source_w],
                                              final_source_logits[n_source_w:])
            target_loss = compute_loss_target(y_tilde_target_w, logits_target[n_target_w:], mask)
            total_loss = source_loss + (self.compute_mu() * target_loss)
            self.current_step.assign_add(1)
            total_loss.backward()
            gradients = [v.value.grad for v in self.model.trainable_variables]
            with torch.no_grad():
                self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
            self.loss_tracker.update_state(total_loss)
            return {"loss": self.loss_tracker.result()}

    return AdaMatch


def _adamatch(keras):
    """Fit on zipped weak/strong source and target batches (target batches 3x larger), then
    the trained network recompiled with only an accuracy metric and evaluated. Keras 3 cannot
    build a model without `call` from a batch, so the trainer is marked built (Kestrel needs
    neither)."""
    image_size, epochs, steps = 8, 2, 2

    class ZippedBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()

        def __len__(self):
            return steps

        def __getitem__(self, index):
            rng = np.random.default_rng(index)

            def images(n):
                return (rng.random((n, image_size, image_size, 3)) * 255).astype("float32")

            source_labels = np.eye(10, dtype="float32")[rng.integers(0, 10, 2)]
            target_labels = rng.integers(0, 10, 6)
            return (((images(2), source_labels), (images(2), source_labels)),
                    ((images(6), target_labels), (images(6), target_labels)))

    wrn_model = _wide_resnet(keras, depth=10, width_mult=2)(image_size=image_size)
    reduce_lr = keras.optimizers.schedules.CosineDecay(0.03, epochs * steps, 0.25)
    adamatch_trainer = _adamatch_trainer(keras)(model=wrn_model, total_steps=epochs * steps)
    adamatch_trainer.compile(optimizer=keras.optimizers.Adam(reduce_lr))
    adamatch_trainer.built = True
    history = adamatch_trainer.fit(ZippedBatches(), epochs=epochs, verbose=0)
    adamatch_trained_model = adamatch_trainer.model
    adamatch_trained_model.compile(metrics=[keras.metrics.SparseCategoricalAccuracy()])
    rng = np.random.default_rng(5)
    images = (rng.random((6, image_size, image_size, 3)) * 255).astype("float32")
    scores = adamatch_trained_model.evaluate(images, rng.integers(0, 10, 6), batch_size=3,
                                             verbose=0)
    return adamatch_trainer, history.history, scores, wrn_model.count_params()


def test_adamatch():
    """Same parameter count, history, step counter, evaluate scores (the regularization
    losses as the loss) and weights (Adam at the example's rate 0.03 turns float noise in
    near-zero gradients into steps of its size, hence the tolerance)."""
    expected, got = _both(_adamatch)
    assert got[3] == expected[3]
    _assert_same_history(got[1], expected[1], rtol=1e-3)
    assert int(got[0].current_step.numpy()) == int(expected[0].current_step.numpy()) == 4
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-3)
    _assert_same_weights(expected[0], got[0], rtol=1e-3, atol=1e-2)


def test_an_int_variable_cannot_be_trainable():
    """AdaMatch's `keras.Variable(0, dtype="int64")` (trainable by default) fails alike."""
    for lib in keras, kestrel:
        with np.testing.assert_raises_regex(RuntimeError, "floating point and complex dtype"):
            lib.Variable(0, dtype="int64")


# ---------------------------------------------------------------- Barlow Twins
def _barlow_augmentor(keras):
    """RandomAugmentor with the example's crop, flip, grayscale and solarize layers (tf.image
    ops written with keras.ops; color jitter and the tfa blur left out)."""
    ops = keras.ops

    class Augmentation(keras.layers.Layer):
        def __init__(self):
            super().__init__()

        def random_execute(self, prob):
            return keras.random.uniform([], minval=0, maxval=1) < prob

    class RandomToGrayscale(Augmentation):
        def call(self, x):
            if self.random_execute(0.2):
                x = ops.tile(ops.image.rgb_to_grayscale(x), [1, 1, 3])
            return x

    class RandomFlip(Augmentation):
        def call(self, x):
            if self.random_execute(0.5):
                x = ops.flip(x, axis=1)
            return x

    class RandomResizedCrop(Augmentation):
        def __init__(self, image_size):
            super(Augmentation, self).__init__()
            self.image_size = image_size

        def call(self, x):
            rand_size = int(keras.random.randint([], minval=int(0.75 * self.image_size),
                                                 maxval=1 * self.image_size))
            crop = x[:rand_size, :rand_size, :]
            return ops.image.resize(crop, (self.image_size, self.image_size))

    class RandomSolarize(Augmentation):
        def call(self, x):
            if self.random_execute(0.2):
                x = ops.where(x < 10, x, 255 - x)
            return x

    class RandomAugmentor(keras.Model):
        def __init__(self, image_size):
            super().__init__()
            self.image_size = image_size
            self.random_resized_crop = RandomResizedCrop(image_size)
            self.random_flip = RandomFlip()
            self.random_to_grayscale = RandomToGrayscale()
            self.random_solarize = RandomSolarize()

        def call(self, x):
            x = self.random_resized_crop(x)
            x = self.random_flip(x)
            x = self.random_to_grayscale(x)
            x = self.random_solarize(x)
            return ops.clip(x, 0, 1)

    return RandomAugmentor


def _barlow_loss(keras):
    """BarlowLoss as written (tf.linalg.set_diag / diag_part and reduce_std with keras.ops)."""
    ops = keras.ops

    class BarlowLoss(keras.losses.Loss):
        def __init__(self, batch_size):
            super().__init__()
            self.lambda_amt = 5e-3
            self.batch_size = batch_size

        def get_off_diag(self, c):
            return c * (1 - ops.eye(ops.shape(c)[-1]))

        def cross_corr_matrix_loss(self, c):
            c_diff = ops.power(ops.diagonal(c) - 1, 2)
            off_diag = ops.power(self.get_off_diag(c), 2) * self.lambda_amt
            return ops.sum(c_diff) + ops.sum(off_diag)

        def normalize(self, output):
            return (output - ops.mean(output, axis=0)) / ops.std(output, axis=0)

        def cross_corr_matrix(self, z_a_norm, z_b_norm):
            return (ops.transpose(z_a_norm) @ z_b_norm) / self.batch_size

        def call(self, z_a, z_b):
            c = self.cross_corr_matrix(self.normalize(z_a), self.normalize(z_b))
            return self.cross_corr_matrix_loss(c)

    return BarlowLoss


def _resnet34(keras, shape, filter_size, block_layers):
    """The example's ResNet34 encoder; its filter count and block repeats are parameters."""
    layers = keras.layers

    def identity_block(x, filter):
        x_skip = x
        x = layers.Conv2D(filter, (3, 3), padding="same")(x)
        x = layers.Activation("relu")(layers.BatchNormalization(axis=3)(x))
        x = layers.BatchNormalization(axis=3)(layers.Conv2D(filter, (3, 3), padding="same")(x))
        return layers.Activation("relu")(layers.Add()([x, x_skip]))

    def convolutional_block(x, filter):
        x_skip = x
        x = layers.Conv2D(filter, (3, 3), padding="same", strides=(2, 2))(x)
        x = layers.Activation("relu")(layers.BatchNormalization(axis=3)(x))
        x = layers.BatchNormalization(axis=3)(layers.Conv2D(filter, (3, 3), padding="same")(x))
        x_skip = layers.Conv2D(filter, (1, 1), strides=(2, 2))(x_skip)
        return layers.Activation("relu")(layers.Add()([x, x_skip]))

    x_input = layers.Input(shape)
    x = layers.ZeroPadding2D((3, 3))(x_input)
    x = layers.Conv2D(filter_size, kernel_size=7, strides=2, padding="same")(x)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    x = layers.MaxPool2D(pool_size=3, strides=2, padding="same")(x)
    for i in range(4):
        if i == 0:
            for _ in range(block_layers[i]):
                x = identity_block(x, filter_size)
        else:
            filter_size = filter_size * 2
            x = convolutional_block(x, filter_size)
            for _ in range(block_layers[i] - 1):
                x = identity_block(x, filter_size)
    x = layers.Flatten()(layers.AveragePooling2D((2, 2), padding="same")(x))
    return keras.models.Model(inputs=x_input, outputs=x, name="ResNet34")


def _barlow_twins(keras):
    """build_twin and BarlowModel (train_step with torch autograd) trained with Lamb on two
    augmented views, then the linear evaluation: the frozen twin under a Dense softmax."""
    layers, ops = keras.layers, keras.ops
    image_size, batch_size, n_dense_neurons = 16, 4, 16

    def build_twin():
        resnet = _resnet34(keras, (image_size, image_size, 3), filter_size=8,
                           block_layers=[1, 2, 1, 1])
        x = resnet.layers[-1].output
        for i in range(2):
            x = layers.Dense(n_dense_neurons, name=f"projector_dense_{i}")(x)
            x = layers.BatchNormalization(name=f"projector_bn_{i}")(x)
            x = layers.ReLU(name=f"projector_relu_{i}")(x)
        x = layers.Dense(n_dense_neurons, name="projector_dense_2")(x)
        return keras.Model(resnet.input, x)

    class BarlowModel(keras.Model):
        def __init__(self):
            super().__init__()
            self.model = build_twin()
            self.loss_tracker = keras.metrics.Mean(name="loss")

        @property
        def metrics(self):
            return [self.loss_tracker]

        def train_step(self, batch):
            y_a, y_b = batch
            self.zero_grad()
            z_a, z_b = self.model(y_a, training=True), self.model(y_b, training=True)
            loss = self.loss(z_a, z_b)
            loss.backward()
            grads_model = [v.value.grad for v in self.model.trainable_variables]
            with torch.no_grad():
                self.optimizer.apply_gradients(zip(grads_model, self.model.trainable_variables))
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

    rng = np.random.default_rng(0)
    train_features = rng.random((8, image_size, image_size, 3)).astype("float32")
    train_labels = rng.integers(0, 10, (8, 1))
    bt_augmentor = _barlow_augmentor(keras)(image_size)
    views = [np.stack([_numpy(bt_augmentor(image)) for image in train_features])
             for _ in range(2)]
    bm = BarlowModel()
    bm.compile(optimizer=keras.optimizers.Lamb(), loss=_barlow_loss(keras)(batch_size))
    # Keras 3 builds a model without `call`, and its compiled loss, from no batch
    bm.built = True
    bm.compute_loss(y=ops.ones((batch_size, n_dense_neurons)),
                    y_pred=ops.ones((batch_size, n_dense_neurons)))
    history = bm.fit(views[0], views[1], batch_size=batch_size, epochs=2, verbose=0)
    model = keras.models.Sequential([bm.model, keras.layers.Dense(
        10, activation="softmax", kernel_regularizer=keras.regularizers.l2(0.02))])
    model.layers[0].trainable = False
    model.compile(optimizer=keras.optimizers.Lamb(), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    linear_history = model.fit(train_features, train_labels, batch_size=batch_size, epochs=2,
                               validation_data=(train_features, train_labels), verbose=0)
    return views, history.history, model, linear_history.history


def test_barlow_twins():
    """Same augmented views, summary and linear-evaluation history; the Barlow loss history
    to 1e-2 (Lamb's trust ratio of the zero-initialized biases before batch normalization,
    whose gradients are float noise, makes full-size steps of that noise)."""
    expected, got = _both(_barlow_twins)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-6)
    _assert_same_history(got[1], expected[1], rtol=1e-2)
    assert _summary(got[2]) == _summary(expected[2])
    _assert_same_history(got[3], expected[3], rtol=1e-3)


# ---------------------------------------------------------------- consistency training
def _self_trainer(keras):
    """SelfTrainer as the Keras 3 version of the example writes it: `compute_metrics` for
    Keras 2's `compiled_metrics.update_state`, and a `call` (the student) so Keras can build
    its metrics at an evaluate."""
    ops = keras.ops

    class SelfTrainer(keras.Model):
        def __init__(self, student, teacher):
            super().__init__()
            self.student = student
            self.teacher = teacher

        def compile(self, optimizer, metrics, student_loss_fn, distillation_loss_fn,
                    temperature=3):
            super().compile(optimizer=optimizer, metrics=metrics)
            self.student_loss_fn = student_loss_fn
            self.distillation_loss_fn = distillation_loss_fn
            self.temperature = temperature

        def call(self, x):
            return self.student(x)

        def train_step(self, data):
            clean_ds, noisy_ds = data
            clean_images, _ = clean_ds
            noisy_images, y = noisy_ds
            teacher_predictions = self.teacher(clean_images, training=False)
            self.zero_grad()
            student_predictions = self.student(noisy_images, training=True)
            student_loss = self.student_loss_fn(y, student_predictions)
            distillation_loss = self.distillation_loss_fn(
                ops.softmax(teacher_predictions / self.temperature, axis=1),
                ops.softmax(student_predictions / self.temperature, axis=1))
            total_loss = (student_loss + distillation_loss) / 2
            trainable_vars = self.student.trainable_variables
            total_loss.backward()
            gradients = [v.value.grad for v in trainable_vars]
            with torch.no_grad():
                self.optimizer.apply_gradients(zip(gradients, trainable_vars))
            results = self.compute_metrics(noisy_images, y,
                                           ops.softmax(student_predictions, axis=1))
            results.update({"total_loss": total_loss})
            return results

        def test_step(self, data):
            x, y = data
            return self.compute_metrics(x, y, ops.softmax(self.student(x, training=False),
                                                          axis=1))

    return SelfTrainer


def _consistency_training(keras, tmp_path):
    """The teacher (initial weights saved and reloaded) fit with ReduceLROnPlateau and
    EarlyStopping, then the student self-trained on zipped clean/noisy batches. A small CNN
    stands in for ResNet50V2 (whose Keras parity the applications tests check)."""
    layers = keras.layers
    crop_to = 8

    def get_training_model(num_classes=10):
        backbone = keras.Sequential([layers.Conv2D(4, 3, activation="relu"),
                                     layers.BatchNormalization()], name="backbone")
        return keras.Sequential([layers.Input((crop_to, crop_to, 3)),
                                 layers.Rescaling(scale=1.0 / 127.5, offset=-1), backbone,
                                 layers.GlobalAveragePooling2D(), layers.Dense(num_classes)])

    rng = np.random.default_rng(0)
    x = (rng.random((12, crop_to, crop_to, 3)) * 255).astype("float32")
    y = rng.integers(0, 10, (12, 1))
    noisy = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype("float32")
    weights = str(tmp_path / f"{keras.__name__}_initial_teacher_model.weights.h5")
    get_training_model().save_weights(weights)
    teacher_model = get_training_model()
    teacher_model.load_weights(weights)
    teacher_model.compile(optimizer=keras.optimizers.Adam(),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
    teacher_history = teacher_model.fit(
        x[:8], y[:8], batch_size=4, epochs=2, validation_data=(x[8:], y[8:]), verbose=0,
        callbacks=[keras.callbacks.ReduceLROnPlateau(patience=3),
                   keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)])
    teacher_scores = teacher_model.evaluate(x[8:], y[8:], verbose=0)

    class ZippedBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()

        def __len__(self):
            return 2

        def __getitem__(self, index):
            rows = slice(4 * index, 4 * index + 4)
            return (x[rows], y[rows]), (noisy[rows], y[rows])

    self_trainer = _self_trainer(keras)(student=get_training_model(), teacher=teacher_model)
    self_trainer.compile(
        optimizer="adam", metrics=["accuracy"],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=keras.losses.KLDivergence(), temperature=10)
    self_trainer.evaluate(x[8:], y[8:], verbose=0)
    history = self_trainer.fit(
        ZippedBatches(), epochs=2, validation_data=(x[8:], y[8:]), verbose=0,
        callbacks=[keras.callbacks.ReduceLROnPlateau(patience=3, factor=0.5,
                                                     monitor="val_accuracy"),
                   keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True,
                                                 monitor="val_accuracy")])
    return (teacher_history.history, teacher_scores, history.history,
            self_trainer.evaluate(x[8:], y[8:], verbose=0), self_trainer)


def test_consistency_training(tmp_path):
    expected, got = _both(_consistency_training, tmp_path)
    _assert_same_history(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-4)
    _assert_same_history(got[2], expected[2])
    np.testing.assert_allclose(got[3], expected[3], rtol=1e-4)
    _assert_same_weights(expected[4].student, got[4].student)


# ---------------------------------------------------------------- Forward-Forward
def _ff_dense(keras):
    """FFDense as written; its GradientTape loop is torch autograd on the dense weights."""
    ops = keras.ops

    class FFDense(keras.layers.Layer):
        def __init__(self, units, init_optimizer, loss_metric, num_epochs=50, use_bias=True,
                     kernel_initializer="glorot_uniform", bias_initializer="zeros",
                     kernel_regularizer=None, bias_regularizer=None, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(
                units=units, use_bias=use_bias, kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                bias_regularizer=bias_regularizer)
            self.relu = keras.layers.ReLU()
            self.optimizer = init_optimizer()
            self.loss_metric = loss_metric
            self.threshold = 1.5
            self.num_epochs = num_epochs

        def call(self, x):
            x_norm = ops.norm(x, ord=2, axis=1, keepdims=True) + 1e-4
            return self.relu(self.dense(x / x_norm))

        def forward_forward(self, x_pos, x_neg):
            for _ in range(self.num_epochs):
                with torch.enable_grad():
                    g_pos = ops.mean(ops.power(self.call(x_pos), 2), 1)
                    g_neg = ops.mean(ops.power(self.call(x_neg), 2), 1)
                    loss = ops.log(1 + ops.exp(ops.concatenate(
                        [-g_pos + self.threshold, g_neg - self.threshold], 0)))
                    mean_loss = ops.cast(ops.mean(loss), dtype="float32")
                    self.loss_metric.update_state([mean_loss])
                    gradients = torch.autograd.grad(
                        mean_loss, [v.value for v in self.dense.trainable_weights])
                with torch.no_grad():
                    self.optimizer.apply_gradients(zip(gradients,
                                                       self.dense.trainable_weights))
            return (ops.stop_gradient(self.call(x_pos)), ops.stop_gradient(self.call(x_neg)),
                    self.loss_metric.result())

    return FFDense


def _ff_network(keras):
    """FFNetwork as written: xla.dynamic_update_slice is ops.slice_update, the vectorized maps
    are loops over the samples, and `ops.sum(goodness, keepdims=True)` sums a stack on axis 0
    (Keras' torch backend drops `keepdims` when `axis` is None)."""
    ops = keras.ops
    FFDense = _ff_dense(keras)

    class FFNetwork(keras.Model):
        def __init__(self, dims,
                     init_layer_optimizer=lambda: keras.optimizers.Adam(learning_rate=0.03),
                     **kwargs):
            super().__init__(**kwargs)
            self.init_layer_optimizer = init_layer_optimizer
            self.loss_var = keras.Variable(0.0, trainable=False, dtype="float32")
            self.loss_count = keras.Variable(0.0, trainable=False, dtype="float32")
            self.layer_list = [keras.Input(shape=(dims[0],))]
            self.metrics_built = False
            for d in range(len(dims) - 1):
                self.layer_list += [FFDense(dims[d + 1], init_optimizer=self.init_layer_optimizer,
                                            loss_metric=keras.metrics.Mean(), num_epochs=5)]

        def overlay_y_on_x(self, data):
            X_sample, y_sample = data
            max_sample = ops.cast(ops.amax(X_sample, axis=0, keepdims=True), dtype="float64")
            X_update = ops.slice_update(ops.zeros([10], dtype="float64"), [y_sample], max_sample)
            X_sample = ops.slice_update(X_sample, [0], ops.cast(X_update, X_sample.dtype))
            return X_sample, y_sample

        def predict_one_sample(self, x):
            goodness_per_label = []
            x = ops.reshape(x, [ops.shape(x)[0] * ops.shape(x)[1]])
            for label in range(10):
                h, label = self.overlay_y_on_x(data=(x, label))
                h = ops.reshape(h, [-1, ops.shape(h)[0]])
                goodness = []
                for layer in self.layer_list[1:]:
                    h = layer(h)
                    goodness += [ops.mean(ops.power(h, 2), 1)]
                goodness_per_label += [ops.expand_dims(
                    ops.sum(ops.stack(goodness), axis=0, keepdims=True), 1)]
            goodness_per_label = ops.concatenate(goodness_per_label, 1)
            return ops.cast(ops.argmax(goodness_per_label, 1), dtype="float64")

        def predict(self, data):
            preds = ops.stack([self.predict_one_sample(sample) for sample in data])
            return np.asarray(ops.convert_to_numpy(preds), dtype=int)

        def overlay_all(self, x, y):
            pairs = [self.overlay_y_on_x((sample, label)) for sample, label in zip(x, y)]
            return ops.stack([p[0] for p in pairs]), ops.stack([p[1] for p in pairs])

        def train_step(self, data):
            x, y = data
            if not self.metrics_built:
                for metric in self.metrics:
                    if hasattr(metric, "build"):
                        metric.build(y, y)
                self.metrics_built = True
            x = ops.reshape(x, [-1, ops.shape(x)[1] * ops.shape(x)[2]])
            x_pos, y = self.overlay_all(x, y)
            x_neg, y = self.overlay_all(x, keras.random.shuffle(y))
            h_pos, h_neg = x_pos, x_neg
            for layer in self.layers:
                if isinstance(layer, FFDense):
                    h_pos, h_neg, loss = layer.forward_forward(h_pos, h_neg)
                    self.loss_var.assign_add(loss)
                    self.loss_count.assign_add(1.0)
                else:
                    x = layer(x)
            return {"FinalLoss": ops.divide(self.loss_var, self.loss_count)}

    return FFNetwork


def _forward_forward(keras):
    """Fit on 4x4 'images' (the label overlaid on the first 10 pixels) and the overridden
    predict. Keras 3 needs the FFDense layers, the compiled loss and metrics built before fit
    (a model without `call` cannot be built from a batch); the example's own metric-building
    loop runs here, before fit."""
    ops = keras.ops
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (8, 4, 4)).astype(float) / 255
    y_train = rng.integers(0, 10, 8)
    model = _ff_network(keras)(dims=[16, 8, 8])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.03), loss="mse",
                  jit_compile=False, metrics=[])
    metric_names = [m.name for m in model.metrics]
    model.built = True
    hidden = ops.convert_to_tensor(x_train.reshape(8, 16), "float32")
    for layer in model.layer_list[1:]:
        hidden = layer(hidden)
    labels = ops.convert_to_tensor(y_train.astype("float32"))
    model.compute_loss(y=labels, y_pred=labels)
    for metric in model.metrics:
        if hasattr(metric, "build"):
            metric.build(labels, labels)
    model.metrics_built = True
    history = model.fit(x_train, y_train, batch_size=8, epochs=2, verbose=0)
    preds = model.predict(ops.convert_to_tensor(x_train[:3]))
    return (metric_names, [type(layer).__name__ for layer in model.layers], history.history,
            preds, model)


def test_forward_forward():
    """Same metrics (the compile_metrics container of `metrics=[]`, the layers' loss
    metrics), tracked layers, FinalLoss history, predictions and weights."""
    expected, got = _both(_forward_forward)
    assert got[0] == expected[0] == ["loss", "compile_metrics", "mean", "mean"]
    assert got[1] == expected[1] == ["FFDense", "FFDense"]
    _assert_same_history(got[2], expected[2])
    np.testing.assert_array_equal(got[3], expected[3])
    _assert_same_weights(expected[4], got[4])


def test_sum_of_a_list_keeps_dims_as_numpy():
    """forwardforward's `ops.sum(goodness, keepdims=True)`: Kestrel keeps the dims as NumPy
    (and Keras' TensorFlow backend) do; Keras' torch backend returns a scalar."""
    goodness = [np.ones((1,), "float32"), np.full((1,), 2.0, "float32")]
    expected = np.sum(goodness, keepdims=True)
    np.testing.assert_array_equal(_numpy(kestrel.ops.sum(goodness, keepdims=True)), expected)
    assert tuple(keras.ops.sum(goodness, keepdims=True).shape) == ()
