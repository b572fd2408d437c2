"""keras.io vision examples, part 2 of the s14 sweep (handwriting recognition, GCViT, masked
image modeling, near-duplicate search, NeRF, natural-language image search, probing ViTs,
RetinaNet, super-resolution, temporal latent bottleneck, video classification, VICReg's linear
evaluation, transformer in transformer, wavelet CNN), condensed to tiny random data and one or two epochs,
their TensorFlow parts written with keras.ops and torch autograd. The same code runs with real
Keras 3 (torch backend) and with Kestrel: layouts, configs, summaries, histories and
predictions (after copying Keras' weights) agree, and so do the errors where an example no
longer runs as written.
"""
import json
import math
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import PIL  # noqa: E402
from PIL import Image  # noqa: E402

import kestrel  # noqa: E402
from tests.fresh_session import fresh as _fresh  # noqa: E402
from tests.fresh_session import both as _both  # noqa: E402
from tests.keras_compare import as_numpy as _numpy  # noqa: E402
from tests.keras_compare import summary_text as _summary  # noqa: E402


def _layout(model):
    """(class, name, parameter count, output shape) per layer."""
    return [(type(l).__name__, l.name, l.count_params(), tuple(l.output.shape))
            for l in model.layers]


def _config(model):
    return json.loads(json.dumps(model.get_config(), default=str))


def _assert_same_model(keras_model, kestrel_model, x, config=True):
    """Same layout, config, weight paths and summary; with Keras' weights copied in, the same
    predictions."""
    assert _layout(kestrel_model) == _layout(keras_model)
    if config:
        assert _config(kestrel_model) == _config(keras_model)
    assert [w.path for w in kestrel_model.weights] == [w.path for w in keras_model.weights]
    assert _summary(kestrel_model) == _summary(keras_model)
    kestrel_model.set_weights(keras_model.get_weights())
    np.testing.assert_allclose(kestrel_model.predict(x, verbose=0),
                               keras_model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def _assert_same_history(got, expected, rtol=1e-4, atol=1e-5):
    assert list(got) == list(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=rtol, atol=atol, err_msg=key)


# ---------------------------------------------------------------- handwriting recognition
_HW_WIDTH, _HW_HEIGHT, _HW_MAX_LEN = 32, 16, 6


def _handwriting_model(keras, num_classes):
    """handwriting_recognition's Keras 3 notebook model (narrower), its CTC layer written with
    `ops.ctc_loss` (Keras 3 has no `backend.ctc_batch_cost`)."""
    layers, ops = keras.layers, keras.ops

    class CTCLayer(layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)

        def call(self, y_true, y_pred):
            batch_len = ops.cast(ops.shape(y_true)[0], dtype="int64")
            input_length = ops.cast(ops.shape(y_pred)[1], dtype="int64")
            label_length = ops.cast(ops.shape(y_true)[1], dtype="int64")
            input_length = input_length * ops.ones(shape=(batch_len, 1), dtype="int64")
            label_length = label_length * ops.ones(shape=(batch_len, 1), dtype="int64")
            loss = ops.ctc_loss(ops.cast(y_true, "int32"), ops.log(y_pred + 1e-7),
                                ops.squeeze(label_length, -1), ops.squeeze(input_length, -1),
                                mask_index=0)
            self.add_loss(loss)
            return y_pred

    input_img = keras.Input(shape=(_HW_WIDTH, _HW_HEIGHT, 1), name="image")
    labels = layers.Input(name="label", shape=(None,))
    x = layers.Conv2D(8, (3, 3), activation="relu", kernel_initializer="he_normal",
                      padding="same", name="Conv1")(input_img)
    x = layers.MaxPooling2D((2, 2), name="pool1")(x)
    x = layers.Conv2D(8, (3, 3), activation="relu", kernel_initializer="he_normal",
                      padding="same", name="Conv2")(x)
    x = layers.MaxPooling2D((2, 2), name="pool2")(x)
    new_shape = ((_HW_WIDTH // 4), (_HW_HEIGHT // 4) * 8)
    x = layers.Reshape(target_shape=new_shape, name="reshape")(x)
    x = layers.Dense(16, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Bidirectional(layers.LSTM(8, return_sequences=True, dropout=0.25))(x)
    x = layers.Bidirectional(layers.LSTM(8, return_sequences=True, dropout=0.25))(x)
    x = layers.Dense(num_classes + 2, activation="softmax", name="dense2")(x)
    output = CTCLayer(name="ctc_loss")(labels, x)
    model = keras.models.Model(inputs=[input_img, labels], outputs=output,
                               name="handwriting_recognizer")
    model.compile(optimizer=keras.optimizers.Adam(), jit_compile=False)
    return model


def _handwriting_fit(keras, images, labels, num_classes):
    """The example's fit; its prediction model starts at `model.get_layer("image").output`."""
    model = _handwriting_model(keras, num_classes)
    prediction_model = keras.models.Model(model.get_layer(name="image").output,
                                          model.get_layer(name="dense2").output)
    history = model.fit({"image": images[:8], "label": labels[:8]},
                        validation_data={"image": images[8:], "label": labels[8:]},
                        epochs=1, batch_size=8, verbose=0)
    preds = prediction_model.predict(images[8:], verbose=0)
    input_len = np.ones(preds.shape[0]) * preds.shape[1]
    decoded = keras.ops.nn.ctc_decode(preds, sequence_lengths=input_len)
    return model, history.history, prediction_model, decoded


def test_handwriting_recognition():
    """Fit with the CTC endpoint layer, the prediction model cut at the image input, and the
    greedy `ops.nn.ctc_decode` of its predictions (Keras 3's default blank: class 0)."""
    rng = np.random.default_rng(0)
    images = rng.random((12, _HW_WIDTH, _HW_HEIGHT, 1)).astype("float32")
    labels = rng.integers(1, 6, (12, 4)).astype("float32")
    expected, got = _both(_handwriting_fit, images, labels, 6)
    _assert_same_history(got[1], expected[1], rtol=1e-5, atol=1e-4)
    _assert_same_model(expected[0], got[0], {"image": images[:4], "label": labels[:4]})
    _assert_same_model(expected[2], got[2], images[8:])
    assert len(got[3]) == len(expected[3]) == 2
    np.testing.assert_array_equal(_numpy(got[3][0]), _numpy(expected[3][0]))
    np.testing.assert_allclose(_numpy(got[3][1]), _numpy(expected[3][1]), rtol=1e-4)
    decoded = _numpy(got[3][0][0][:, :_HW_MAX_LEN])
    assert decoded.shape == (4, _HW_MAX_LEN) and decoded.dtype == np.int32


# ---------------------------------------------------------------- Global Context ViT
def _gcvit_class(keras, drop_kwarg="drop"):
    """The example's layers and model as written (its `ops.reshape(x, new_shape=...)` passes
    the shape by position: Keras 3.15 names it `newshape`); keras_cv's DropPath written with
    keras.random. `drop_kwarg`: the keyword `Level` passes its dropout rate to `Block` by."""
    layers, ops = keras.layers, keras.ops

    class DropPath(layers.Layer):
        def __init__(self, rate=0.5, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.rate, self.seed = rate, seed

        def call(self, x, training=None):
            if self.rate == 0.0 or not training:
                return x
            keep_prob = 1 - self.rate
            drop_map_shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
            drop_map = ops.cast(keras.random.uniform(drop_map_shape, seed=self.seed) < keep_prob,
                                x.dtype)
            return x / keep_prob * drop_map

    class SqueezeAndExcitation(layers.Layer):
        def __init__(self, output_dim=None, expansion=0.25, **kwargs):
            super().__init__(**kwargs)
            self.expansion = expansion
            self.output_dim = output_dim

        def build(self, input_shape):
            inp = input_shape[-1]
            self.output_dim = self.output_dim or inp
            self.avg_pool = layers.GlobalAvgPool2D(keepdims=True, name="avg_pool")
            self.fc = [
                layers.Dense(int(inp * self.expansion), use_bias=False, name="fc_0"),
                layers.Activation("gelu", name="fc_1"),
                layers.Dense(self.output_dim, use_bias=False, name="fc_2"),
                layers.Activation("sigmoid", name="fc_3"),
            ]
            super().build(input_shape)

        def call(self, inputs, **kwargs):
            x = self.avg_pool(inputs)
            for layer in self.fc:
                x = layer(x)
            return x * inputs

    class ReduceSize(layers.Layer):
        def __init__(self, keepdims=False, **kwargs):
            super().__init__(**kwargs)
            self.keepdims = keepdims

        def build(self, input_shape):
            embed_dim = input_shape[-1]
            dim_out = embed_dim if self.keepdims else 2 * embed_dim
            self.pad1 = layers.ZeroPadding2D(1, name="pad1")
            self.pad2 = layers.ZeroPadding2D(1, name="pad2")
            self.conv = [
                layers.DepthwiseConv2D(kernel_size=3, strides=1, padding="valid",
                                       use_bias=False, name="conv_0"),
                layers.Activation("gelu", name="conv_1"),
                SqueezeAndExcitation(name="conv_2"),
                layers.Conv2D(embed_dim, kernel_size=1, strides=1, padding="valid",
                              use_bias=False, name="conv_3"),
            ]
            self.reduction = layers.Conv2D(dim_out, kernel_size=3, strides=2, padding="valid",
                                           use_bias=False, name="reduction")
            self.norm1 = layers.LayerNormalization(-1, 1e-05, name="norm1")
            self.norm2 = layers.LayerNormalization(-1, 1e-05, name="norm2")

        def call(self, inputs, **kwargs):
            x = self.norm1(inputs)
            xr = self.pad1(x)
            for layer in self.conv:
                xr = layer(xr)
            x = x + xr
            x = self.pad2(x)
            x = self.reduction(x)
            x = self.norm2(x)
            return x

    class MLP(layers.Layer):
        def __init__(self, hidden_features=None, out_features=None, activation="gelu",
                     dropout=0.0, **kwargs):
            super().__init__(**kwargs)
            self.hidden_features = hidden_features
            self.out_features = out_features
            self.activation = activation
            self.dropout = dropout

        def build(self, input_shape):
            self.in_features = input_shape[-1]
            self.hidden_features = self.hidden_features or self.in_features
            self.out_features = self.out_features or self.in_features
            self.fc1 = layers.Dense(self.hidden_features, name="fc1")
            self.act = layers.Activation(self.activation, name="act")
            self.fc2 = layers.Dense(self.out_features, name="fc2")
            self.drop1 = layers.Dropout(self.dropout, name="drop1")
            self.drop2 = layers.Dropout(self.dropout, name="drop2")

        def call(self, inputs, **kwargs):
            x = self.fc1(inputs)
            x = self.act(x)
            x = self.drop1(x)
            x = self.fc2(x)
            x = self.drop2(x)
            return x

    class PatchEmbed(layers.Layer):
        def __init__(self, embed_dim, **kwargs):
            super().__init__(**kwargs)
            self.embed_dim = embed_dim

        def build(self, input_shape):
            self.pad = layers.ZeroPadding2D(1, name="pad")
            self.proj = layers.Conv2D(self.embed_dim, 3, 2, name="proj")
            self.conv_down = ReduceSize(keepdims=True, name="conv_down")

        def call(self, inputs, **kwargs):
            x = self.pad(inputs)
            x = self.proj(x)
            x = self.conv_down(x)
            return x

    class FeatureExtraction(layers.Layer):
        def __init__(self, keepdims=False, **kwargs):
            super().__init__(**kwargs)
            self.keepdims = keepdims

        def build(self, input_shape):
            embed_dim = input_shape[-1]
            self.pad1 = layers.ZeroPadding2D(1, name="pad1")
            self.pad2 = layers.ZeroPadding2D(1, name="pad2")
            self.conv = [
                layers.DepthwiseConv2D(3, 1, use_bias=False, name="conv_0"),
                layers.Activation("gelu", name="conv_1"),
                SqueezeAndExcitation(name="conv_2"),
                layers.Conv2D(embed_dim, 1, 1, use_bias=False, name="conv_3"),
            ]
            if not self.keepdims:
                self.pool = layers.MaxPool2D(3, 2, name="pool")
            super().build(input_shape)

        def call(self, inputs, **kwargs):
            x = inputs
            xr = self.pad1(x)
            for layer in self.conv:
                xr = layer(xr)
            x = x + xr
            if not self.keepdims:
                x = self.pool(self.pad2(x))
            return x

    class GlobalQueryGenerator(layers.Layer):
        def __init__(self, keepdims=False, **kwargs):
            super().__init__(**kwargs)
            self.keepdims = keepdims

        def build(self, input_shape):
            self.to_q_global = [FeatureExtraction(keepdims, name=f"to_q_global_{i}")
                                for i, keepdims in enumerate(self.keepdims)]
            super().build(input_shape)

        def call(self, inputs, **kwargs):
            x = inputs
            for layer in self.to_q_global:
                x = layer(x)
            return x

    class WindowAttention(layers.Layer):
        def __init__(self, window_size, num_heads, global_query, qkv_bias=True, qk_scale=None,
                     attention_dropout=0.0, projection_dropout=0.0, **kwargs):
            super().__init__(**kwargs)
            window_size = (window_size, window_size)
            self.window_size = window_size
            self.num_heads = num_heads
            self.global_query = global_query
            self.qkv_bias = qkv_bias
            self.qk_scale = qk_scale
            self.attention_dropout = attention_dropout
            self.projection_dropout = projection_dropout

        def build(self, input_shape):
            embed_dim = input_shape[0][-1]
            head_dim = embed_dim // self.num_heads
            self.scale = self.qk_scale or head_dim**-0.5
            self.qkv_size = 3 - int(self.global_query)
            self.qkv = layers.Dense(embed_dim * self.qkv_size, use_bias=self.qkv_bias,
                                    name="qkv")
            self.relative_position_bias_table = self.add_weight(
                name="relative_position_bias_table",
                shape=[(2 * self.window_size[0] - 1) * (2 * self.window_size[1] - 1),
                       self.num_heads],
                initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                trainable=True, dtype=self.dtype)
            self.attn_drop = layers.Dropout(self.attention_dropout, name="attn_drop")
            self.proj = layers.Dense(embed_dim, name="proj")
            self.proj_drop = layers.Dropout(self.projection_dropout, name="proj_drop")
            self.softmax = layers.Activation("softmax", name="softmax")
            super().build(input_shape)

        def get_relative_position_index(self):
            coords_h = ops.arange(self.window_size[0])
            coords_w = ops.arange(self.window_size[1])
            coords = ops.stack(ops.meshgrid(coords_h, coords_w, indexing="ij"), axis=0)
            coords_flatten = ops.reshape(coords, [2, -1])
            relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]
            relative_coords = ops.transpose(relative_coords, axes=[1, 2, 0])
            relative_coords_xx = relative_coords[:, :, 0] + self.window_size[0] - 1
            relative_coords_yy = relative_coords[:, :, 1] + self.window_size[1] - 1
            relative_coords_xx = relative_coords_xx * (2 * self.window_size[1] - 1)
            return relative_coords_xx + relative_coords_yy

        def call(self, inputs, **kwargs):
            if self.global_query:
                inputs, q_global = inputs
                B = ops.shape(q_global)[0]
            else:
                inputs = inputs[0]
            B_, N, C = ops.shape(inputs)
            qkv = self.qkv(inputs)
            qkv = ops.reshape(qkv, [B_, N, self.qkv_size, self.num_heads, C // self.num_heads])
            qkv = ops.transpose(qkv, [2, 0, 3, 1, 4])
            if self.global_query:
                k, v = ops.split(qkv, indices_or_sections=2, axis=0)
                q_global = ops.repeat(q_global, repeats=B_ // B, axis=0)
                q = ops.reshape(q_global, [B_, N, self.num_heads, C // self.num_heads])
                q = ops.transpose(q, axes=[0, 2, 1, 3])
            else:
                q, k, v = ops.split(qkv, indices_or_sections=3, axis=0)
                q = ops.squeeze(q, axis=0)
            k = ops.squeeze(k, axis=0)
            v = ops.squeeze(v, axis=0)
            q = q * self.scale
            attn = q @ ops.transpose(k, axes=[0, 1, 3, 2])
            relative_position_bias = ops.take(
                self.relative_position_bias_table,
                ops.reshape(self.get_relative_position_index(), [-1]))
            relative_position_bias = ops.reshape(
                relative_position_bias,
                [self.window_size[0] * self.window_size[1],
                           self.window_size[0] * self.window_size[1], -1])
            relative_position_bias = ops.transpose(relative_position_bias, axes=[2, 0, 1])
            attn = attn + relative_position_bias[None,]
            attn = self.softmax(attn)
            attn = self.attn_drop(attn)
            x = ops.transpose((attn @ v), axes=[0, 2, 1, 3])
            x = ops.reshape(x, [B_, N, C])
            x = self.proj_drop(self.proj(x))
            return x

    class Block(layers.Layer):
        def __init__(self, window_size, num_heads, global_query, mlp_ratio=4.0, qkv_bias=True,
                     qk_scale=None, dropout=0.0, attention_dropout=0.0, path_drop=0.0,
                     activation="gelu", layer_scale=None, **kwargs):
            super().__init__(**kwargs)
            self.window_size = window_size
            self.num_heads = num_heads
            self.global_query = global_query
            self.mlp_ratio = mlp_ratio
            self.qkv_bias = qkv_bias
            self.qk_scale = qk_scale
            self.dropout = dropout
            self.attention_dropout = attention_dropout
            self.path_drop = path_drop
            self.activation = activation
            self.layer_scale = layer_scale

        def build(self, input_shape):
            B, H, W, C = input_shape[0]
            self.norm1 = layers.LayerNormalization(-1, 1e-05, name="norm1")
            self.attn = WindowAttention(
                window_size=self.window_size, num_heads=self.num_heads,
                global_query=self.global_query, qkv_bias=self.qkv_bias,
                qk_scale=self.qk_scale, attention_dropout=self.attention_dropout,
                projection_dropout=self.dropout, name="attn")
            self.drop_path1 = DropPath(self.path_drop)
            self.drop_path2 = DropPath(self.path_drop)
            self.norm2 = layers.LayerNormalization(-1, 1e-05, name="norm2")
            self.mlp = MLP(hidden_features=int(C * self.mlp_ratio), dropout=self.dropout,
                           activation=self.activation, name="mlp")
            if self.layer_scale is not None:
                self.gamma1 = self.add_weight(
                    name="gamma1", shape=[C],
                    initializer=keras.initializers.Constant(self.layer_scale), dtype=self.dtype)
                self.gamma2 = self.add_weight(
                    name="gamma2", shape=[C],
                    initializer=keras.initializers.Constant(self.layer_scale), dtype=self.dtype)
            else:
                self.gamma1 = 1.0
                self.gamma2 = 1.0
            self.num_windows = int(H // self.window_size) * int(W // self.window_size)
            super().build(input_shape)

        def call(self, inputs, **kwargs):
            if self.global_query:
                inputs, q_global = inputs
            else:
                inputs = inputs[0]
            B, H, W, C = ops.shape(inputs)
            x = self.norm1(inputs)
            x = self.window_partition(x, self.window_size)
            x = ops.reshape(x, [-1, self.window_size * self.window_size, C])
            if self.global_query:
                x = self.attn([x, q_global])
            else:
                x = self.attn([x])
            x = self.window_reverse(x, self.window_size, H, W, C)
            x = inputs + self.drop_path1(x * self.gamma1)
            x = x + self.drop_path2(self.gamma2 * self.mlp(self.norm2(x)))
            return x

        def window_partition(self, x, window_size):
            B, H, W, C = ops.shape(x)
            x = ops.reshape(x, [-1, H // window_size, window_size,
                                          W // window_size, window_size, C])
            x = ops.transpose(x, axes=[0, 1, 3, 2, 4, 5])
            return ops.reshape(x, [-1, window_size, window_size, C])

        def window_reverse(self, windows, window_size, H, W, C):
            x = ops.reshape(windows, [-1, H // window_size, W // window_size,
                                                window_size, window_size, C])
            x = ops.transpose(x, axes=[0, 1, 3, 2, 4, 5])
            return ops.reshape(x, [-1, H, W, C])

    class Level(layers.Layer):
        def __init__(self, depth, num_heads, window_size, keepdims, downsample=True,
                     mlp_ratio=4.0, qkv_bias=True, qk_scale=None, drop=0.0,
                     attention_dropout=0.0, path_drop=0.0, layer_scale=None, **kwargs):
            super().__init__(**kwargs)
            self.depth = depth
            self.num_heads = num_heads
            self.window_size = window_size
            self.keepdims = keepdims
            self.downsample = downsample
            self.mlp_ratio = mlp_ratio
            self.qkv_bias = qkv_bias
            self.qk_scale = qk_scale
            self.drop = drop
            self.attention_dropout = attention_dropout
            self.path_drop = path_drop
            self.layer_scale = layer_scale

        def build(self, input_shape):
            path_drop = ([self.path_drop] * self.depth
                         if not isinstance(self.path_drop, list) else self.path_drop)
            self.blocks = [
                Block(window_size=self.window_size, num_heads=self.num_heads,
                      global_query=bool(i % 2), mlp_ratio=self.mlp_ratio,
                      qkv_bias=self.qkv_bias, qk_scale=self.qk_scale, **{drop_kwarg: self.drop},
                      attention_dropout=self.attention_dropout, path_drop=path_drop[i],
                      layer_scale=self.layer_scale, name=f"blocks_{i}")
                for i in range(self.depth)]
            self.down = ReduceSize(keepdims=False, name="downsample")
            self.q_global_gen = GlobalQueryGenerator(self.keepdims, name="q_global_gen")
            super().build(input_shape)

        def call(self, inputs, **kwargs):
            x = inputs
            q_global = self.q_global_gen(x)
            for i, blk in enumerate(self.blocks):
                if i % 2:
                    x = blk([x, q_global])
                else:
                    x = blk([x])
            if self.downsample:
                x = self.down(x)
            return x

    class GCViT(keras.Model):
        def __init__(self, window_size, embed_dim, depths, num_heads, drop_rate=0.0,
                     mlp_ratio=3.0, qkv_bias=True, qk_scale=None, attention_dropout=0.0,
                     path_drop=0.1, layer_scale=None, num_classes=1000,
                     head_activation="softmax", **kwargs):
            super().__init__(**kwargs)
            self.window_size = window_size
            self.embed_dim = embed_dim
            self.depths = depths
            self.num_heads = num_heads
            self.drop_rate = drop_rate
            self.mlp_ratio = mlp_ratio
            self.qkv_bias = qkv_bias
            self.qk_scale = qk_scale
            self.attention_dropout = attention_dropout
            self.path_drop = path_drop
            self.layer_scale = layer_scale
            self.num_classes = num_classes
            self.head_activation = head_activation
            self.patch_embed = PatchEmbed(embed_dim=embed_dim, name="patch_embed")
            self.pos_drop = layers.Dropout(drop_rate, name="pos_drop")
            path_drops = np.linspace(0.0, path_drop, sum(depths))
            keepdims = [(0, 0, 0), (0, 0), (1,), (1,)]
            self.levels = []
            for i in range(len(depths)):
                path_drop = path_drops[sum(depths[:i]): sum(depths[: i + 1])].tolist()
                level = Level(depth=depths[i], num_heads=num_heads[i],
                              window_size=window_size[i], keepdims=keepdims[i],
                              downsample=(i < len(depths) - 1), mlp_ratio=mlp_ratio,
                              qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate,
                              attention_dropout=attention_dropout, path_drop=path_drop,
                              layer_scale=layer_scale, name=f"levels_{i}")
                self.levels.append(level)
            self.norm = layers.LayerNormalization(axis=-1, epsilon=1e-05, name="norm")
            self.pool = layers.GlobalAvgPool2D(name="pool")
            self.head = layers.Dense(num_classes, name="head", activation=head_activation)

        def build(self, input_shape):
            super().build(input_shape)
            self.built = True

        def call(self, inputs, **kwargs):
            x = self.patch_embed(inputs)
            x = self.pos_drop(x)
            for level in self.levels:
                x = level(x)
            x = self.norm(x)
            x = self.pool(x)
            x = self.head(x)
            return x

        def build_graph(self, input_shape=(224, 224, 3)):
            x = keras.Input(shape=input_shape)
            return keras.Model(inputs=[x], outputs=self.call(x), name=self.name)

        def summary(self, input_shape=(224, 224, 3)):
            return self.build_graph(input_shape).summary()

    return GCViT


_GCVIT_CONFIG = {"window_size": (2, 2), "embed_dim": 8, "depths": (2, 2),
                 "num_heads": (1, 2), "mlp_ratio": 3.0, "path_drop": 0.2}


def _gcvit_replay(keras, x, y):
    """Build by a call on a float64 array, summary through the example's `build_graph`, fit."""
    model = _gcvit_class(keras, drop_kwarg="dropout")(**_GCVIT_CONFIG, num_classes=5)
    out = model(keras.ops.array(np.random.default_rng(0).uniform(size=(1, 64, 64, 3))))
    graph = model.build_graph((64, 64, 3))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    history = model.fit(x, y, validation_data=(x[:4], y[:4]), epochs=1, batch_size=8,
                        verbose=0)
    return model, out, graph, history.history


def test_gcvit_as_written_fails_in_both():
    """`Level` passes `drop=` to `Block`, whose `__init__` takes `dropout`: the unknown keyword
    reaches `Layer.__init__` when the first call builds the levels."""
    for lib in (keras, kestrel):
        model = _gcvit_class(_fresh(lib))(**_GCVIT_CONFIG, num_classes=5)
        with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Block"):
            model(np.zeros((1, 64, 64, 3), "float32"))


def test_gcvit_image_classification():
    """GCViT with `dropout=` fixed: weight paths, the example's summary, fit with DropPath
    (Kestrel's seeded draws are Keras') and predictions agree. Keras 3.15 builds a subclassed
    model's automatic config from the defaults only (its `Model.__new__` drops the arguments),
    so `get_config()` raises here; Kestrel returns the arguments given."""
    rng = np.random.default_rng(1)
    x = rng.random((8, 64, 64, 3)).astype("float32")
    y = rng.integers(0, 5, 8)
    expected, got = _both(_gcvit_replay, x, y)
    assert tuple(got[1].shape) == tuple(expected[1].shape) == (1, 5)
    assert got[1].dtype == expected[1].dtype == torch.float32
    np.testing.assert_allclose(_numpy(got[1]), _numpy(expected[1]), rtol=1e-4, atol=1e-6)
    assert [w.path for w in got[0].weights] == [w.path for w in expected[0].weights]
    assert _summary(got[2]) == _summary(expected[2])
    _assert_same_history(got[3], expected[3])
    got[0].set_weights(expected[0].get_weights())
    np.testing.assert_allclose(got[0].predict(x[:2], verbose=0),
                               expected[0].predict(x[:2], verbose=0), rtol=1e-4, atol=1e-6)
    with pytest.raises(NotImplementedError):
        expected[0].get_config()
    assert {k: v for k, v in _config(got[0]).items() if k in _GCVIT_CONFIG} == json.loads(
        json.dumps(_GCVIT_CONFIG))


def test_reshape_keeps_keras_core_keyword():
    """The example's `ops.reshape(x, new_shape=...)` (keras-core's name) is a TypeError in
    Keras 3.15 (`newshape`); Kestrel still takes it."""
    x = np.arange(12.0).reshape(3, 4)
    with pytest.raises(TypeError):
        keras.ops.reshape(x, new_shape=[2, 6])
    np.testing.assert_array_equal(_numpy(kestrel.ops.reshape(x, new_shape=[2, 6])),
                                  _numpy(keras.ops.reshape(x, [2, 6])))


# ---------------------------------------------------------------- masked image modeling
_INPUT_SHAPE = (8, 8, 3)
_IMAGE_SIZE, _PATCH_SIZE = 12, 3
_NUM_PATCHES = (_IMAGE_SIZE // _PATCH_SIZE) ** 2
_MASK_PROPORTION = 0.75
_LAYER_NORM_EPS = 1e-6
_ENC_PROJECTION_DIM, _DEC_PROJECTION_DIM = 8, 8
_ENC_NUM_HEADS = _DEC_NUM_HEADS = 2
_ENC_LAYERS = _DEC_LAYERS = 1
_ENC_TRANSFORMER_UNITS = [_ENC_PROJECTION_DIM * 2, _ENC_PROJECTION_DIM]
_DEC_TRANSFORMER_UNITS = [_DEC_PROJECTION_DIM * 2, _DEC_PROJECTION_DIM]


def _mae_parts(keras):
    """masked_image_modeling's pieces written with keras.ops (`tf.image.extract_patches`:
    `ops.image.extract_patches`; gathers with `batch_dims=1`: `ops.take_along_axis`; the
    mask token a `keras.Variable`; tfa's AdamW: Keras'), its train_step with torch autograd."""
    layers, ops = keras.layers, keras.ops

    def get_train_augmentation_model():
        return keras.Sequential([
            layers.Rescaling(1 / 255.0),
            layers.Resizing(_INPUT_SHAPE[0] + 6, _INPUT_SHAPE[0] + 6),
            layers.RandomCrop(_IMAGE_SIZE, _IMAGE_SIZE),
            layers.RandomFlip("horizontal"),
        ], name="train_data_augmentation")

    def get_test_augmentation_model():
        return keras.Sequential([layers.Rescaling(1 / 255.0),
                                 layers.Resizing(_IMAGE_SIZE, _IMAGE_SIZE)],
                                name="test_data_augmentation")

    class Patches(layers.Layer):
        def __init__(self, patch_size=_PATCH_SIZE, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size
            self.resize = layers.Reshape((-1, patch_size * patch_size * 3))

        def call(self, images):
            patches = ops.image.extract_patches(images, size=self.patch_size)
            return self.resize(patches)

        def reconstruct_from_patch(self, patch):
            num_patches = patch.shape[0]
            n = int(np.sqrt(num_patches))
            patch = ops.reshape(patch, (num_patches, self.patch_size, self.patch_size, 3))
            rows = ops.split(patch, n, axis=0)
            rows = [ops.concatenate(ops.unstack(x), axis=1) for x in rows]
            return ops.concatenate(rows, axis=0)

    class PatchEncoder(layers.Layer):
        def __init__(self, patch_size=_PATCH_SIZE, projection_dim=_ENC_PROJECTION_DIM,
                     mask_proportion=_MASK_PROPORTION, downstream=False, **kwargs):
            super().__init__(**kwargs)
            self.patch_size = patch_size
            self.projection_dim = projection_dim
            self.mask_proportion = mask_proportion
            self.downstream = downstream
            self.mask_token = keras.Variable(
                keras.random.normal([1, patch_size * patch_size * 3]), trainable=True)

        def build(self, input_shape):
            (_, self.num_patches, self.patch_area) = input_shape
            self.projection = layers.Dense(units=self.projection_dim)
            self.position_embedding = layers.Embedding(input_dim=self.num_patches,
                                                       output_dim=self.projection_dim)
            self.num_mask = int(self.mask_proportion * self.num_patches)

        def call(self, patches):
            batch_size = ops.shape(patches)[0]
            positions = ops.arange(start=0, stop=self.num_patches, step=1)
            pos_embeddings = self.position_embedding(positions[None, ...])
            pos_embeddings = ops.tile(pos_embeddings, [batch_size, 1, 1])
            patch_embeddings = self.projection(patches) + pos_embeddings
            if self.downstream:
                return patch_embeddings
            mask_indices, unmask_indices = self.get_random_indices(batch_size)
            unmasked_embeddings = ops.take_along_axis(
                patch_embeddings, unmask_indices[..., None], axis=1)
            unmasked_positions = ops.take_along_axis(
                pos_embeddings, unmask_indices[..., None], axis=1)
            masked_positions = ops.take_along_axis(
                pos_embeddings, mask_indices[..., None], axis=1)
            mask_tokens = ops.repeat(self.mask_token, repeats=self.num_mask, axis=0)
            mask_tokens = ops.repeat(mask_tokens[None, ...], repeats=batch_size, axis=0)
            masked_embeddings = self.projection(mask_tokens) + masked_positions
            return (unmasked_embeddings, masked_embeddings, unmasked_positions,
                    mask_indices, unmask_indices)

        def get_random_indices(self, batch_size):
            rand_indices = ops.argsort(
                keras.random.uniform(shape=(batch_size, self.num_patches)), axis=-1)
            mask_indices = rand_indices[:, : self.num_mask]
            unmask_indices = rand_indices[:, self.num_mask:]
            return mask_indices, unmask_indices

        def generate_masked_image(self, patches, unmask_indices):
            idx = np.random.choice(patches.shape[0])
            patch = patches[idx]
            unmask_index = unmask_indices[idx]
            new_patch = np.zeros_like(patch)
            for i in range(unmask_index.shape[0]):
                new_patch[unmask_index[i]] = patch[unmask_index[i]]
            return new_patch, idx

    def mlp(x, dropout_rate, hidden_units):
        for units in hidden_units:
            x = layers.Dense(units, activation=keras.activations.gelu)(x)
            x = layers.Dropout(dropout_rate)(x)
        return x

    def transformer_block(x, num_heads, key_dim, units):
        x1 = layers.LayerNormalization(epsilon=_LAYER_NORM_EPS)(x)
        attention_output = layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim,
                                                     dropout=0.1)(x1, x1)
        x2 = layers.Add()([attention_output, x])
        x3 = layers.LayerNormalization(epsilon=_LAYER_NORM_EPS)(x2)
        x3 = mlp(x3, hidden_units=units, dropout_rate=0.1)
        return layers.Add()([x3, x2])

    def create_encoder(num_heads=_ENC_NUM_HEADS, num_layers=_ENC_LAYERS):
        inputs = layers.Input((None, _ENC_PROJECTION_DIM))
        x = inputs
        for _ in range(num_layers):
            x = transformer_block(x, num_heads, _ENC_PROJECTION_DIM, _ENC_TRANSFORMER_UNITS)
        outputs = layers.LayerNormalization(epsilon=_LAYER_NORM_EPS)(x)
        return keras.Model(inputs, outputs, name="mae_encoder")

    def create_decoder(num_layers=_DEC_LAYERS, num_heads=_DEC_NUM_HEADS, image_size=_IMAGE_SIZE):
        inputs = layers.Input((_NUM_PATCHES, _ENC_PROJECTION_DIM))
        x = layers.Dense(_DEC_PROJECTION_DIM)(inputs)
        for _ in range(num_layers):
            x = transformer_block(x, num_heads, _DEC_PROJECTION_DIM, _DEC_TRANSFORMER_UNITS)
        x = layers.LayerNormalization(epsilon=_LAYER_NORM_EPS)(x)
        x = layers.Flatten()(x)
        pre_final = layers.Dense(units=image_size * image_size * 3, activation="sigmoid")(x)
        outputs = layers.Reshape((image_size, image_size, 3))(pre_final)
        return keras.Model(inputs, outputs, name="mae_decoder")

    class MaskedAutoencoder(keras.Model):
        def __init__(self, train_augmentation_model, test_augmentation_model, patch_layer,
                     patch_encoder, encoder, decoder, **kwargs):
            super().__init__(**kwargs)
            self.train_augmentation_model = train_augmentation_model
            self.test_augmentation_model = test_augmentation_model
            self.patch_layer = patch_layer
            self.patch_encoder = patch_encoder
            self.encoder = encoder
            self.decoder = decoder

        def calculate_loss(self, images, test=False):
            if test:
                augmented_images = self.test_augmentation_model(images)
            else:
                augmented_images = self.train_augmentation_model(images)
            patches = self.patch_layer(augmented_images)
            (unmasked_embeddings, masked_embeddings, unmasked_positions, mask_indices,
             unmask_indices) = self.patch_encoder(patches)
            encoder_outputs = self.encoder(unmasked_embeddings)
            encoder_outputs = encoder_outputs + unmasked_positions
            decoder_inputs = ops.concatenate([encoder_outputs, masked_embeddings], axis=1)
            decoder_outputs = self.decoder(decoder_inputs)
            decoder_patches = self.patch_layer(decoder_outputs)
            loss_patch = ops.take_along_axis(patches, mask_indices[..., None], axis=1)
            loss_output = ops.take_along_axis(decoder_patches, mask_indices[..., None], axis=1)
            total_loss = self.compute_loss(y=loss_patch, y_pred=loss_output)
            return total_loss, loss_patch, loss_output

        def train_step(self, images):
            self.zero_grad()
            total_loss, loss_patch, loss_output = self.calculate_loss(images)
            total_loss.backward()
            train_vars = [
                self.train_augmentation_model.trainable_variables,
                self.patch_layer.trainable_variables,
                self.patch_encoder.trainable_variables,
                self.encoder.trainable_variables,
                self.decoder.trainable_variables,
            ]
            tv_list = [(v.value.grad, v) for var in train_vars for v in var]
            with torch.no_grad():
                self.optimizer.apply_gradients(tv_list)
            return self.compute_metrics(images, loss_patch, loss_output)

        def test_step(self, images):
            total_loss, loss_patch, loss_output = self.calculate_loss(images, test=True)
            return self.compute_metrics(images, loss_patch, loss_output)

    class WarmUpCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, learning_rate_base, total_steps, warmup_learning_rate, warmup_steps):
            super().__init__()
            self.learning_rate_base = learning_rate_base
            self.total_steps = total_steps
            self.warmup_learning_rate = warmup_learning_rate
            self.warmup_steps = warmup_steps
            self.pi = np.pi

        def __call__(self, step):
            if self.total_steps < self.warmup_steps:
                raise ValueError("Total_steps must be larger or equal to warmup_steps.")
            cos_annealed_lr = ops.cos(self.pi * (ops.cast(step, "float32") - self.warmup_steps)
                                      / float(self.total_steps - self.warmup_steps))
            learning_rate = 0.5 * self.learning_rate_base * (1 + cos_annealed_lr)
            if self.warmup_steps > 0:
                slope = (self.learning_rate_base - self.warmup_learning_rate) / self.warmup_steps
                warmup_rate = slope * ops.cast(step, "float32") + self.warmup_learning_rate
                learning_rate = ops.where(step < self.warmup_steps, warmup_rate, learning_rate)
            return ops.where(step > self.total_steps, 0.0, learning_rate)

    return dict(get_train_augmentation_model=get_train_augmentation_model,
                get_test_augmentation_model=get_test_augmentation_model, Patches=Patches,
                PatchEncoder=PatchEncoder, create_encoder=create_encoder,
                create_decoder=create_decoder, MaskedAutoencoder=MaskedAutoencoder,
                WarmUpCosine=WarmUpCosine)


def _mae_replay(keras):
    """The example's demo of the patch layers, the pretraining fit (after building every part
    and the compiled loss and metrics by hand, which Keras needs for a model without `call`),
    then linear probing."""
    parts, layers = _mae_parts(keras), keras.layers
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (8,) + _INPUT_SHAPE).astype("uint8")
    y_train = rng.integers(0, 10, (8, 1))
    patch_layer = parts["Patches"]()
    augmented_images = parts["get_train_augmentation_model"]()(x_train[:2])
    patches = patch_layer(images=augmented_images)
    image = patch_layer.reconstruct_from_patch(patches[1])
    patch_encoder = parts["PatchEncoder"]()
    encoded = patch_encoder(patches=patches)
    mae_model = parts["MaskedAutoencoder"](
        train_augmentation_model=parts["get_train_augmentation_model"](),
        test_augmentation_model=parts["get_test_augmentation_model"](),
        patch_layer=parts["Patches"](), patch_encoder=parts["PatchEncoder"](),
        encoder=parts["create_encoder"](), decoder=parts["create_decoder"]())
    scheduled_lrs = parts["WarmUpCosine"](learning_rate_base=5e-3, total_steps=4,
                                          warmup_learning_rate=0.0, warmup_steps=1)
    mae_model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=scheduled_lrs, weight_decay=1e-4),
        loss=keras.losses.MeanSquaredError(), metrics=["mae"])
    result = {"augmented": augmented_images, "image": image, "encoded": encoded,
              "encoder_weights": [w.path for w in patch_encoder.weights],
              "lrs": [float(scheduled_lrs(step)) for step in range(6)]}
    mae_model.calculate_loss(x_train[:2], test=True)
    _, loss_patch, loss_output = mae_model.calculate_loss(x_train[:2])
    mae_model.compute_metrics(x_train[:2], loss_patch, loss_output)
    mae_model.built = True
    history = mae_model.fit(x_train, epochs=2, batch_size=4, validation_data=(x_train[:4],),
                            verbose=0)
    result.update(history=history.history, evaluate=mae_model.evaluate(x_train[:4], verbose=0))
    patch_encoder = mae_model.patch_encoder
    patch_encoder.downstream = True
    downstream_model = keras.Sequential(
        [layers.Input((_IMAGE_SIZE, _IMAGE_SIZE, 3)), mae_model.patch_layer, patch_encoder,
         mae_model.encoder, layers.BatchNormalization(), layers.GlobalAveragePooling1D(),
         layers.Dense(10, activation="softmax")], name="linear_probe_model")
    for layer in downstream_model.layers[:-1]:
        layer.trainable = False
    downstream_model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=parts["WarmUpCosine"](0.1, 4, 0.0, 1),
                                       momentum=0.9),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images = mae_model.test_augmentation_model(x_train)
    probe = downstream_model.fit(images, y_train, validation_data=(images, y_train), epochs=2,
                                 batch_size=4, verbose=0)
    return {**result, "summary": _summary(downstream_model), "probe": probe.history}


def test_masked_image_modeling():
    """Patches, a layer built by a call whose input is passed by keyword
    (`patch_encoder(patches=patches)`), seeded masking, the warm-up cosine schedule, the
    pretraining fit with AdamW, evaluate, and the frozen linear probe."""
    expected, got = _both(_mae_replay)
    for key in ("augmented", "image"):
        np.testing.assert_allclose(_numpy(got[key]), _numpy(expected[key]), atol=1e-6)
    np.testing.assert_array_equal(_numpy(got["image"]), _numpy(got["augmented"][1]))
    assert [str(t.dtype) for t in got["encoded"]] == [str(t.dtype) for t in expected["encoded"]]
    for got_part, expected_part in zip(got["encoded"], expected["encoded"]):
        np.testing.assert_allclose(_numpy(got_part), _numpy(expected_part), atol=1e-5)
    assert got["encoder_weights"] == expected["encoder_weights"]
    np.testing.assert_allclose(got["lrs"], expected["lrs"], rtol=1e-6)
    _assert_same_history(got["history"], expected["history"])
    np.testing.assert_allclose(got["evaluate"], expected["evaluate"], rtol=1e-4, atol=1e-6)
    assert got["summary"] == expected["summary"]
    _assert_same_history(got["probe"], expected["probe"])


def _keyword_first_argument(lib):
    """A layer whose first call passes its input by keyword builds from it."""
    class Scale(lib.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, images):
            return images * self.scale

    x = np.ones((2, 3), "float32")
    dense = lib.layers.Dense(4)
    inputs = lib.Input((3,))
    model = lib.Model(inputs, lib.layers.Dense(2)(inputs=inputs))
    return (_numpy(Scale()(images=x)), tuple(dense(inputs=x).shape),
            tuple(dense.kernel.shape), _config(model)["layers"][1]["inbound_nodes"])


def test_first_argument_given_by_keyword_builds_the_layer():
    """Eagerly it builds the layer; in a functional model the node keeps it as a keyword."""
    expected, got = _both(_keyword_first_argument)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1:] == expected[1:]
    assert got[1:3] == ((2, 4), (3, 4))


# ---------------------------------------------------------------- near-duplicate image search
_NEAR_DUP_SIZE = 16


def _near_dup_embedding_model(keras):
    """near_dup_search's embedding model, a small functional classifier standing in for the
    downloaded BiT model (`bit_model.layers[1]` is its feature extractor)."""
    layers = keras.layers
    features = keras.Sequential([layers.Input((_NEAR_DUP_SIZE, _NEAR_DUP_SIZE, 3)),
                                 layers.Conv2D(4, 3, strides=2, activation="relu"),
                                 layers.GlobalAveragePooling2D()], name="feature_extractor")
    bit_model = keras.Sequential([layers.Input((_NEAR_DUP_SIZE, _NEAR_DUP_SIZE, 3)),
                                  layers.Rescaling(1.0), features, layers.Dense(5)])
    return keras.Sequential([
        layers.Input((_NEAR_DUP_SIZE, _NEAR_DUP_SIZE, 3)),
        layers.Rescaling(scale=1.0 / 255),
        bit_model.layers[1],
        layers.Normalization(mean=0, variance=1),
    ], name="embedding_model")


def _hash_func(embedding, random_vectors):
    bools = np.dot(np.array(embedding), random_vectors) > 0
    return [sum(1 << i for i, j in enumerate(bool_vec) if j) for bool_vec in bools]


def _near_dup_lsh(embedding_model, images, labels, query, hash_size=4, dim=4, num_tables=3):
    """The example's LSH tables (Table, LSH, BuildLSHTable), condensed: each image's
    `predict` features hashed into `num_tables` tables, then the query's Jaccard counts."""
    np.random.seed(0)
    tables = [({}, np.random.randn(hash_size, dim).T) for _ in range(num_tables)]
    for id, (image, label) in enumerate(zip(images, labels)):
        features = embedding_model.predict(image[None, ...], verbose=0)
        for table, vectors in tables:
            for h in _hash_func(features, vectors):
                table.setdefault(h, []).append({"id_label": f"{id}_{label}"})
    features = embedding_model.predict(query[None, ...], verbose=0)
    counts = {}
    for table, vectors in tables:
        for h in _hash_func(features, vectors):
            for r in table.get(h, []):
                counts[r["id_label"]] = counts.get(r["id_label"], 0) + 1
    return {k: float(v) / dim for k, v in counts.items()}


def test_near_dup_search(tmp_path):
    """The embedding model (a layer taken from another model, Normalization with a given mean
    and variance), its per-image predictions hashed into LSH tables, and its `.keras` file."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (6, _NEAR_DUP_SIZE, _NEAR_DUP_SIZE, 3)).astype("float32")
    labels = rng.integers(0, 5, 6)
    expected, got = _both(_near_dup_embedding_model)
    _assert_same_model(expected, got, images)
    assert _near_dup_lsh(got, images, labels, images[2]) == _near_dup_lsh(
        expected, images, labels, images[2])
    path = str(tmp_path / "embedding_model.keras")
    got.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0),
                               expected.predict(images, verbose=0), rtol=1e-5, atol=1e-6)


def _nested_model_entries(lib):
    layers = lib.layers
    inner = lib.Sequential([layers.Input((4,)), layers.Dense(2)], name="inner")
    inputs = lib.Input((2,))
    compiled = lib.Model(inputs, layers.Dense(1)(inputs), name="compiled")
    compiled.compile(optimizer="adam", loss="mse", metrics=["mae"])
    stack = lib.Sequential([layers.Input((4,)), inner, compiled])
    x = lib.Input((4,))
    graph = lib.Model(x, compiled(inner(x)))
    return [[(list(entry), entry.get("build_config"),
              {k: v for k, v in (entry.get("compile_config") or {}).items() if k != "optimizer"})
             for entry in _config(model)["layers"]] for model in (stack, graph)]


def test_nested_models_carry_a_compile_config():
    """As Keras: a model inside a Sequential or functional config carries `compile_config`
    (`{}` when it is not compiled) after its `build_config` (`{"input_shape": None}` for a
    functional model), in Keras' key order."""
    expected, got = _both(_nested_model_entries)
    assert got == expected
    assert got[0][2][1] == {"input_shape": None} and got[0][2][2]["loss"] == "mse"
    assert got[1][2][0][-4:] == ["build_config", "compile_config", "name", "inbound_nodes"]


# ---------------------------------------------------------------- NeRF
_NERF_H = _NERF_W = 4
_NUM_SAMPLES, _POS_ENCODE_DIMS, _NERF_BATCH = 4, 2, 2


def _nerf_parts(keras):
    """nerf's ray casting, model and volume rendering written with keras.ops (`tf.math.cumprod`
    with `exclusive=True`: a cumprod shifted by one; `tf.image.psnr`: its formula), its
    train_step with torch autograd. The NeRF model gets a pass-through `call`, which Keras 3
    needs to build it at fit."""
    layers, ops = keras.layers, keras.ops

    def encode_position(x):
        positions = [x]
        for i in range(_POS_ENCODE_DIMS):
            for fn in [ops.sin, ops.cos]:
                positions.append(fn(2.0 ** i * x))
        return ops.concatenate(positions, axis=-1)

    def get_rays(height, width, focal, pose):
        i, j = ops.meshgrid(ops.arange(width, dtype="float32"),
                            ops.arange(height, dtype="float32"), indexing="xy")
        transformed_i = (i - width * 0.5) / focal
        transformed_j = (j - height * 0.5) / focal
        directions = ops.stack([transformed_i, -transformed_j, -ops.ones_like(i)], axis=-1)
        camera_matrix = pose[:3, :3]
        height_width_focal = pose[:3, -1]
        transformed_dirs = directions[..., None, :]
        camera_dirs = transformed_dirs * camera_matrix
        ray_directions = ops.sum(camera_dirs, axis=-1)
        ray_origins = ops.broadcast_to(height_width_focal, ops.shape(ray_directions))
        return (ray_origins, ray_directions)

    def render_flat_rays(ray_origins, ray_directions, near, far, num_samples, rand=False,
                         seed=None):
        t_vals = ops.linspace(near, far, num_samples)
        if rand:
            shape = list(ray_origins.shape[:-1]) + [num_samples]
            noise = keras.random.uniform(shape=shape, seed=seed) * (far - near) / num_samples
            t_vals = t_vals + noise
        rays = ray_origins[..., None, :] + (ray_directions[..., None, :] * t_vals[..., None])
        rays_flat = ops.reshape(rays, [-1, 3])
        rays_flat = encode_position(rays_flat)
        return (rays_flat, t_vals)

    def map_fn(pose, focal):
        (ray_origins, ray_directions) = get_rays(height=_NERF_H, width=_NERF_W, focal=focal,
                                                 pose=pose)
        return render_flat_rays(ray_origins=ray_origins, ray_directions=ray_directions,
                                near=2.0, far=6.0, num_samples=_NUM_SAMPLES, rand=True)

    def get_nerf_model(num_layers, num_pos):
        inputs = keras.Input(shape=(num_pos, 2 * 3 * _POS_ENCODE_DIMS + 3))
        x = inputs
        for i in range(num_layers):
            x = layers.Dense(units=8, activation="relu")(x)
            if i % 4 == 0 and i > 0:
                x = layers.concatenate([x, inputs], axis=-1)
        outputs = layers.Dense(units=4)(x)
        return keras.Model(inputs=inputs, outputs=outputs)

    def render_rgb_depth(model, rays_flat, t_vals, rand=True, train=True):
        if train:
            predictions = model(rays_flat)
        else:
            predictions = model.predict(rays_flat, verbose=0)
        predictions = ops.reshape(predictions, (_NERF_BATCH, _NERF_H, _NERF_W, _NUM_SAMPLES, 4))
        rgb = ops.sigmoid(predictions[..., :-1])
        sigma_a = ops.relu(predictions[..., -1])
        delta = t_vals[..., 1:] - t_vals[..., :-1]
        if rand:
            delta = ops.concatenate(
                [delta, ops.broadcast_to([1e10], (_NERF_BATCH, _NERF_H, _NERF_W, 1))], axis=-1)
            alpha = 1.0 - ops.exp(-sigma_a * delta)
        else:
            delta = ops.concatenate([delta, ops.broadcast_to([1e10], (_NERF_BATCH, 1))], axis=-1)
            alpha = 1.0 - ops.exp(-sigma_a * delta[:, None, None, :])
        exp_term = 1.0 - alpha
        epsilon = 1e-10
        transmittance = ops.cumprod(exp_term + epsilon, axis=-1)  # exclusive: shifted by one
        transmittance = ops.concatenate(
            [ops.ones_like(transmittance[..., :1]), transmittance[..., :-1]], axis=-1)
        weights = alpha * transmittance
        rgb = ops.sum(weights[..., None] * rgb, axis=-2)
        if rand:
            depth_map = ops.sum(weights * t_vals, axis=-1)
        else:
            depth_map = ops.sum(weights * t_vals[:, None, None], axis=-1)
        return (rgb, depth_map)

    def psnr(images, rgb, max_val=1.0):
        mse = ops.mean(ops.square(images - rgb), axis=(-3, -2, -1))
        return 20.0 * np.log10(max_val) - 10.0 * ops.log(mse) / np.log(10.0)

    class NeRF(keras.Model):
        def __init__(self, nerf_model):
            super().__init__()
            self.nerf_model = nerf_model

        def call(self, images):
            return images

        def compile(self, optimizer, loss_fn):
            super().compile()
            self.optimizer = optimizer
            self.loss_fn = loss_fn
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.psnr_metric = keras.metrics.Mean(name="psnr")

        def _step(self, inputs):
            (images, rays) = inputs
            (rays_flat, t_vals) = rays
            rgb, _ = render_rgb_depth(model=self.nerf_model, rays_flat=rays_flat,
                                      t_vals=t_vals, rand=True)
            return images, rgb, self.loss_fn(images, rgb)

        def train_step(self, inputs):
            self.zero_grad()
            images, rgb, loss = self._step(inputs)
            loss.backward()
            trainable_variables = self.nerf_model.trainable_variables
            gradients = [v.value.grad for v in trainable_variables]
            with torch.no_grad():
                self.optimizer.apply_gradients(zip(gradients, trainable_variables))
            return self._update(images, rgb, loss)

        def test_step(self, inputs):
            return self._update(*self._step(inputs))

        def _update(self, images, rgb, loss):
            self.loss_tracker.update_state(loss)
            self.psnr_metric.update_state(psnr(images, rgb, max_val=1.0))
            return {"loss": self.loss_tracker.result(), "psnr": self.psnr_metric.result()}

        @property
        def metrics(self):
            return [self.loss_tracker, self.psnr_metric]

    return dict(map_fn=map_fn, get_nerf_model=get_nerf_model,
                render_rgb_depth=render_rgb_depth, NeRF=NeRF)


def _nerf_replay(keras):
    """Rays for random poses, the NeRF MLP, fit with a callback rendering depth maps."""
    parts = _nerf_parts(keras)
    rng = np.random.default_rng(0)
    images = rng.random((6, _NERF_H, _NERF_W, 3)).astype("float32")
    rays = [parts["map_fn"](pose, 3.0) for pose in rng.normal(size=(6, 4, 4)).astype("float32")]
    rays_flat = np.stack([_numpy(r[0]) for r in rays])
    t_vals = np.stack([_numpy(r[1]) for r in rays])
    nerf_model = parts["get_nerf_model"](num_layers=6, num_pos=_NERF_H * _NERF_W * _NUM_SAMPLES)
    model = parts["NeRF"](nerf_model)
    model.compile(optimizer=keras.optimizers.Adam(), loss_fn=keras.losses.MeanSquaredError())
    depth_maps = []

    class TrainMonitor(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            depth_maps.append(_numpy(parts["render_rgb_depth"](
                model=self.model.nerf_model, rays_flat=rays_flat[:2], t_vals=t_vals[:2],
                rand=True, train=False)[1]))

    try:
        history = model.fit(images[:4], (rays_flat[:4], t_vals[:4]),
                            validation_data=(images[4:], (rays_flat[4:], t_vals[4:])),
                            batch_size=_NERF_BATCH, epochs=2, callbacks=[TrainMonitor()],
                            steps_per_epoch=2, verbose=0)
    except RuntimeError as error:
        return str(error).split("\n")[0]
    return rays_flat, t_vals, nerf_model, history.history, depth_maps


def test_nerf():
    """Seeded ray sampling, the MLP's layout and summary, the custom compile and metrics, fit
    with validation, and the callback's `predict`-based rendering."""
    expected, got = _both(_nerf_replay)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
    assert _layout(got[2]) == _layout(expected[2])
    assert _summary(got[2]) == _summary(expected[2])
    _assert_same_history(got[3], expected[3])
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- natural-language image search
_NL_SEQ, _NL_VOCAB, _NL_IMG = 6, 20, 8


def _nl_search_parts(keras, mean_loss):
    """nl_image_search's encoders (tiny stand-ins for EfficientNetV2B3 and keras_hub's BERT:
    a frozen functional CNN, a frozen functional model with dict inputs and outputs) and its
    DualEncoder as written for the torch backend (`self.train_step = self.train_step_torch`).
    `mean_loss`: `compute_loss` returns the batch mean its comment promises (as written it
    returns per-sample losses, and `loss.backward()` fails on them)."""
    layers, ops = keras.layers, keras.ops

    def project_embeddings(embeddings, num_projection_layers, projection_dims, dropout_rate):
        projected_embeddings = layers.Dense(units=projection_dims)(embeddings)
        for _ in range(num_projection_layers):
            x = ops.gelu(projected_embeddings)
            x = layers.Dense(projection_dims)(x)
            x = layers.Dropout(dropout_rate)(x)
            x = layers.Add()([projected_embeddings, x])
            projected_embeddings = layers.LayerNormalization()(x)
        return projected_embeddings

    def create_vision_encoder(num_projection_layers, projection_dims, dropout_rate,
                              trainable=False):
        base_inputs = layers.Input((_NL_IMG, _NL_IMG, 3))
        base = keras.Model(base_inputs, layers.GlobalAveragePooling2D()(
            layers.Conv2D(4, 3, activation="relu")(base_inputs)), name="efficientnet")
        for layer in base.layers:
            layer.trainable = trainable
        inputs = layers.Input(shape=(_NL_IMG, _NL_IMG, 3), name="image_input")
        embeddings = base(inputs)
        embeddings = keras.layers.Dense(8, activation="gelu")(embeddings)
        outputs = project_embeddings(embeddings, num_projection_layers, projection_dims,
                                     dropout_rate)
        return keras.Model(inputs, outputs, name="vision_encoder")

    def create_text_encoder(num_projection_layers, projection_dims, dropout_rate,
                            trainable=False):
        token_ids = layers.Input((_NL_SEQ,), dtype="int32", name="token_ids")
        padding_mask = layers.Input((_NL_SEQ,), dtype="int32", name="padding_mask")
        sequence = layers.Embedding(_NL_VOCAB, 8)(token_ids)
        mask = ops.cast(padding_mask, "float32")[..., None]
        pooled = ops.sum(sequence * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        bert = keras.Model({"token_ids": token_ids, "padding_mask": padding_mask},
                           {"sequence_output": sequence, "pooled_output": pooled}, name="BERT")
        bert.trainable = trainable
        inputs = bert.input
        embeddings = bert(inputs)["pooled_output"]
        outputs = project_embeddings(embeddings, num_projection_layers, projection_dims,
                                     dropout_rate)
        return keras.Model(inputs, outputs, name="text_encoder")

    vision_encoder = create_vision_encoder(1, 4, 0.1, trainable=False)
    text_encoder = create_text_encoder(1, 4, 0.1, trainable=False)

    class DualEncoder(keras.Model):
        def __init__(self, text_encoder, image_encoder, temperature=1.0, **kwargs):
            super().__init__(**kwargs)
            self.text_encoder = text_encoder
            self.image_encoder = image_encoder
            self.temperature = temperature
            self.loss_tracker = keras.metrics.Mean(name="loss")
            if keras.config.backend() == "torch":
                self.train_step = self.train_step_torch

        @property
        def metrics(self):
            return [self.loss_tracker]

        def call(self, features, training=False):
            caption_embeddings = text_encoder(features["caption"], training=training)
            image_embeddings = vision_encoder(features["image"], training=training)
            return caption_embeddings, image_embeddings

        def compute_loss(self, caption_embeddings, image_embeddings):
            logits = ops.divide(ops.einsum("ae,be -> ab", caption_embeddings, image_embeddings),
                                self.temperature)
            images_similarity = ops.einsum("ae,be -> ab", image_embeddings, image_embeddings)
            captions_similarity = ops.einsum("ae,be -> ab", caption_embeddings,
                                             caption_embeddings)
            targets = keras.activations.softmax(
                (captions_similarity + images_similarity) / (2 * self.temperature))
            captions_loss = keras.losses.categorical_crossentropy(
                y_true=targets, y_pred=logits, from_logits=True)
            images_loss = keras.losses.categorical_crossentropy(
                y_true=ops.transpose(targets), y_pred=ops.transpose(logits), from_logits=True)
            loss = (captions_loss + images_loss) / 2
            return ops.mean(loss) if mean_loss else loss

        def train_step_torch(self, features):
            self.zero_grad()
            caption_embeddings, image_embeddings = self(features, training=True)
            loss = self.compute_loss(caption_embeddings, image_embeddings)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

        def test_step(self, features):
            caption_embeddings, image_embeddings = self(features, training=False)
            loss = self.compute_loss(caption_embeddings, image_embeddings)
            self.loss_tracker.update_state(loss)
            return {"loss": self.loss_tracker.result()}

    return vision_encoder, text_encoder, DualEncoder


def _nl_features(n=8):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, _NL_SEQ, (n, 1))
    return {"caption": {"token_ids": rng.integers(1, _NL_VOCAB, (n, _NL_SEQ)).astype("int32"),
                        "padding_mask": (np.arange(_NL_SEQ) < lengths).astype("int32")},
            "image": rng.random((n, _NL_IMG, _NL_IMG, 3)).astype("float32")}


def _nl_search_replay(keras, mean_loss, checkpoint_path):
    """The dual encoder's fit with ReduceLROnPlateau and a best-only ModelCheckpoint, then
    the search: image embeddings by `predict`, a query's, normalized dot products, top k."""
    ops = keras.ops
    vision_encoder, text_encoder, DualEncoder = _nl_search_parts(keras, mean_loss)
    features = _nl_features()
    dual_encoder = DualEncoder(text_encoder, vision_encoder, temperature=0.05,
                               name="DualEncoder")
    dual_encoder.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=0.001, weight_decay=0.001),
        run_eagerly=False)
    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=1)
    model_checkpoint_callback = keras.callbacks.ModelCheckpoint(
        filepath=checkpoint_path, monitor="val_loss", mode="min", save_best_only=True,
        save_weights_only=checkpoint_path.endswith(".weights.h5"))
    try:
        history = dual_encoder.fit(features, epochs=3, batch_size=4,
                                   validation_data=(features,),
                                   callbacks=[reduce_lr, model_checkpoint_callback],
                                   verbose=0).history
    except (RuntimeError, NotImplementedError) as error:
        history = type(error)
    image_embeddings = vision_encoder.predict(features["image"], batch_size=4, verbose=0)
    query_embedding = text_encoder({k: v[:2] for k, v in features["caption"].items()})
    image_embeddings = ops.normalize(image_embeddings, axis=1)
    query_embedding = ops.normalize(query_embedding, axis=1)
    dot_similarity = ops.matmul(query_embedding, ops.transpose(image_embeddings))
    _, results = ops.top_k(dot_similarity, 3)
    return (history, vision_encoder, text_encoder, _numpy(dot_similarity), results.numpy(),
            float(dual_encoder.optimizer.learning_rate))


def test_nl_image_search_as_written_fails_in_both(tmp_path):
    """Its torch train step calls `backward()` on per-sample losses: the same RuntimeError."""
    expected, got = _both(_nl_search_replay, False, str(tmp_path / "ckpt.weights.h5"))
    assert got[0] is expected[0] is RuntimeError
    np.testing.assert_allclose(got[3], expected[3], rtol=1e-5, atol=1e-6)


def test_nl_image_search(tmp_path):
    """A train_step set on the instance in `__init__` is the one fit runs; the encoders'
    layouts, frozen weights, summaries, `.keras` files and the search agree with Keras'. A
    best-only `.keras` checkpoint of the DualEncoder (encoders as constructor arguments) is a
    NotImplementedError in both."""
    expected, got = _both(_nl_search_replay, True, str(tmp_path / "ckpt.weights.h5"))
    _assert_same_history(got[0], expected[0])
    for expected_encoder, got_encoder in zip(expected[1:3], got[1:3]):
        assert [w.path for w in got_encoder.trainable_weights] == [
            w.path for w in expected_encoder.trainable_weights]
        assert _summary(got_encoder) == _summary(expected_encoder)
    np.testing.assert_allclose(got[3], expected[3], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got[4], expected[4])
    assert got[5] == pytest.approx(expected[5])
    path = str(tmp_path / "vision_encoder.keras")
    got[1].save(path)
    images = _nl_features()["image"]
    np.testing.assert_allclose(keras.models.load_model(path).predict(images, verbose=0),
                               got[1].predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    errors = _both(_nl_search_replay, True, str(tmp_path / "ckpt.model.keras"))
    assert errors[0][0] is errors[1][0] is NotImplementedError


# ---------------------------------------------------------------- probing ViTs
_PROBE_RES, _PROBE_PATCH = 16, 4


def _probe_parts(keras):
    """probing_vits' preprocessing and probes as written; a small functional ViT with dict
    outputs named as the example's TFSMLayer's stands in for the downloaded models, and
    `ops.image.resize` for `cv2.resize`."""
    layers, ops = keras.layers, keras.ops
    crop_layer = layers.CenterCrop(_PROBE_RES, _PROBE_RES)
    norm_layer = layers.Normalization(
        mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
        variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2])
    rescale_layer = layers.Rescaling(scale=1.0 / 127.5, offset=-1)

    def preprocess_image(image, model_type, size=_PROBE_RES):
        image = np.array(image)
        image = ops.expand_dims(image, 0)
        if model_type == "original_vit":
            image = rescale_layer(image)
        resize_size = int((256 / 224) * size)
        image = ops.image.resize(image, (resize_size, resize_size), interpolation="bicubic")
        image = crop_layer(image)
        if model_type != "original_vit":
            image = norm_layer(image)
        return ops.convert_to_numpy(image)

    class ClassTokenAndPosition(layers.Layer):
        def build(self, input_shape):
            self.cls = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="zeros",
                                       name="cls")
            self.pos_embedding = self.add_weight(
                shape=(1, input_shape[1] + 1, input_shape[-1]), name="pos_embedding",
                initializer=keras.initializers.RandomNormal(stddev=0.5))

        def call(self, x):
            cls = ops.tile(self.cls, (ops.shape(x)[0], 1, 1))
            return ops.concatenate([cls, x], axis=1) + self.pos_embedding

    def vit_model(num_heads=2, depth=2, dim=8):
        inputs = keras.Input((_PROBE_RES, _PROBE_RES, 3))
        x = layers.Conv2D(dim, _PROBE_PATCH, strides=_PROBE_PATCH, name="conv_projection")(inputs)
        x = layers.Reshape((-1, dim))(x)
        x = ClassTokenAndPosition(name="position")(x)
        outputs = {}
        for i in range(depth):
            y = layers.LayerNormalization(epsilon=1e-6)(x)
            y, scores = layers.MultiHeadAttention(num_heads, dim // num_heads)(
                y, y, return_attention_scores=True)
            outputs[f"output_2_transformer_block_{i}_att"] = scores
            x = layers.Add()([x, y])
        outputs["output_1"] = layers.Dense(5)(x[:, 0])
        return keras.Model(inputs, outputs)

    def attention_rollout_map(image, attention_score_dict, model_type):
        num_cls_tokens = 2 if "distilled" in model_type else 1
        attn_mat = ops.stack([attention_score_dict[k] for k in attention_score_dict.keys()])
        attn_mat = ops.squeeze(attn_mat, axis=1)
        attn_mat = ops.mean(attn_mat, axis=1)
        residual_attn = ops.eye(attn_mat.shape[1])
        aug_attn_mat = attn_mat + residual_attn
        aug_attn_mat = aug_attn_mat / ops.sum(aug_attn_mat, axis=-1)[..., None]
        aug_attn_mat = ops.convert_to_numpy(aug_attn_mat)
        joint_attentions = np.zeros(aug_attn_mat.shape)
        joint_attentions[0] = aug_attn_mat[0]
        for n in range(1, aug_attn_mat.shape[0]):
            joint_attentions[n] = np.matmul(aug_attn_mat[n], joint_attentions[n - 1])
        v = joint_attentions[-1]
        grid_size = int(np.sqrt(aug_attn_mat.shape[-1]))
        mask = v[0, num_cls_tokens:].reshape(grid_size, grid_size)
        mask = ops.convert_to_numpy(ops.image.resize(  # cv2.resize
            (mask / mask.max())[..., None], image.size[::-1]))
        return (mask * np.array(image)).astype("uint8")

    def attention_heatmap(attention_score_dict, image, num_heads, model_type="dino"):
        num_tokens = 2 if "distilled" in model_type else 1
        attention_score_list = list(attention_score_dict.keys())
        attention_score_list.sort(key=lambda x: int(x.split("_")[-2]), reverse=True)
        w_featmap = image.shape[2] // _PROBE_PATCH
        h_featmap = image.shape[1] // _PROBE_PATCH
        attention_scores = attention_score_dict[attention_score_list[0]]
        attentions = attention_scores[0, :, 0, num_tokens:].reshape(num_heads, -1)
        attentions = attentions.reshape(num_heads, w_featmap, h_featmap)
        attentions = attentions.transpose((1, 2, 0))
        return ops.image.resize(attentions,
                                size=(h_featmap * _PROBE_PATCH, w_featmap * _PROBE_PATCH))

    return preprocess_image, vit_model, attention_rollout_map, attention_heatmap


def _probe_replay(keras):
    """Preprocess a PIL image both ways, predict, then the mean attention distance, the
    attention rollout, the heatmaps and the weights looked up by name."""
    ops = keras.ops
    preprocess_image, vit_model, attention_rollout_map, attention_heatmap = _probe_parts(keras)
    image = Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (20, 24, 3)).astype("uint8"))
    vit_input = preprocess_image(image, "original_vit")
    dino_input = preprocess_image(image, model_type="dino")
    model = vit_model()
    outputs = model.predict(dino_input, verbose=0)
    scores = {key[len("output_2_"):]: value for key, value in outputs.items()
              if key.startswith("output_2_")}
    rollout = attention_rollout_map(image, scores, model_type="original_vit")
    in1k_mean = np.array([0.485 * 255, 0.456 * 255, 0.406 * 255])
    in1k_std = np.array([0.229 * 255, 0.224 * 255, 0.225 * 255])
    original = ops.convert_to_numpy(ops.clip((dino_input * in1k_std + in1k_mean) / 255.0,
                                             0.0, 1.0))
    heatmaps = attention_heatmap(scores, original, num_heads=2)

    def extract_weights(model, name):
        for variable in model.weights:
            if variable.name.startswith(name):
                return variable.numpy()

    return (vit_input, dino_input, model, outputs, rollout, _numpy(heatmaps),
            extract_weights(model, "conv_projection/kernel"),
            extract_weights(model, "pos_embedding"))


def test_probing_vits():
    """As Keras 3, a variable's `name` is its own (`kernel`), so the example's lookup of
    "conv_projection/kernel" finds nothing; its `path` has the layer."""
    expected, got = _both(_probe_replay)
    for i in (0, 1):
        assert got[i].dtype == expected[i].dtype
        np.testing.assert_allclose(got[i], expected[i], rtol=1e-5, atol=1e-5)
    assert _summary(got[2]) == _summary(expected[2])
    assert list(got[3]) == list(expected[3])
    for key in expected[3]:
        np.testing.assert_allclose(got[3][key], expected[3][key], rtol=1e-4, atol=1e-6)
    assert got[4].dtype == expected[4].dtype and got[4].shape == (20, 24, 3)
    np.testing.assert_allclose(got[4].astype(int), expected[4].astype(int), atol=1)
    np.testing.assert_allclose(got[5], expected[5], rtol=1e-4, atol=1e-6)
    assert got[6] is None and expected[6] is None
    np.testing.assert_allclose(got[7], expected[7])
    assert [w.path for w in got[2].weights][:4] == [
        "conv_projection/kernel", "conv_projection/bias", "position/cls",
        "position/pos_embedding"] == [w.path for w in expected[2].weights][:4]


# ---------------------------------------------------------------- RetinaNet
_RETINA_FILTERS = 8  # the example's 256


def _retina_parts(keras):
    """retinanet's box utilities, anchors, label encoder, feature pyramid, heads, model and
    losses written with keras.ops (`tf.nn.sigmoid_cross_entropy_with_logits`:
    `binary_crossentropy(from_logits=True)` per element), a tiny three-output backbone for
    ResNet50, and the box decoding of DecodePredictions (its NMS is TensorFlow's)."""
    layers, ops = keras.layers, keras.ops

    def convert_to_xywh(boxes):
        return ops.concatenate([(boxes[..., :2] + boxes[..., 2:]) / 2.0,
                                boxes[..., 2:] - boxes[..., :2]], axis=-1)

    def convert_to_corners(boxes):
        return ops.concatenate([boxes[..., :2] - boxes[..., 2:] / 2.0,
                                boxes[..., :2] + boxes[..., 2:] / 2.0], axis=-1)

    def compute_iou(boxes1, boxes2):
        boxes1_corners = convert_to_corners(boxes1)
        boxes2_corners = convert_to_corners(boxes2)
        lu = ops.maximum(boxes1_corners[:, None, :2], boxes2_corners[:, :2])
        rd = ops.minimum(boxes1_corners[:, None, 2:], boxes2_corners[:, 2:])
        intersection = ops.maximum(0.0, rd - lu)
        intersection_area = intersection[:, :, 0] * intersection[:, :, 1]
        boxes1_area = boxes1[:, 2] * boxes1[:, 3]
        boxes2_area = boxes2[:, 2] * boxes2[:, 3]
        union_area = ops.maximum(boxes1_area[:, None] + boxes2_area - intersection_area, 1e-8)
        return ops.clip(intersection_area / union_area, 0.0, 1.0)

    class AnchorBox:
        def __init__(self):
            self.aspect_ratios = [0.5, 1.0, 2.0]
            self.scales = [2 ** x for x in [0, 1 / 3, 2 / 3]]
            self._num_anchors = len(self.aspect_ratios) * len(self.scales)
            self._strides = [2 ** i for i in range(3, 8)]
            self._areas = [x ** 2 for x in [32.0, 64.0, 128.0, 256.0, 512.0]]
            self._anchor_dims = self._compute_dims()

        def _compute_dims(self):
            anchor_dims_all = []
            for area in self._areas:
                anchor_dims = []
                for ratio in self.aspect_ratios:
                    anchor_height = ops.sqrt(area / ratio)
                    anchor_width = area / anchor_height
                    dims = ops.reshape(ops.stack([anchor_width, anchor_height], axis=-1),
                                       [1, 1, 2])
                    for scale in self.scales:
                        anchor_dims.append(scale * dims)
                anchor_dims_all.append(ops.stack(anchor_dims, axis=-2))
            return anchor_dims_all

        def _get_anchors(self, feature_height, feature_width, level):
            rx = ops.arange(feature_width, dtype="float32") + 0.5
            ry = ops.arange(feature_height, dtype="float32") + 0.5
            centers = ops.stack(ops.meshgrid(rx, ry), axis=-1) * self._strides[level - 3]
            centers = ops.expand_dims(centers, axis=-2)
            centers = ops.tile(centers, [1, 1, self._num_anchors, 1])
            dims = ops.tile(self._anchor_dims[level - 3], [feature_height, feature_width, 1, 1])
            anchors = ops.concatenate([centers, dims], axis=-1)
            return ops.reshape(anchors, [feature_height * feature_width * self._num_anchors, 4])

        def get_anchors(self, image_height, image_width):
            anchors = [self._get_anchors(int(np.ceil(image_height / 2 ** i)),
                                         int(np.ceil(image_width / 2 ** i)), i)
                       for i in range(3, 8)]
            return ops.concatenate(anchors, axis=0)

    class LabelEncoder:
        def __init__(self):
            self._anchor_box = AnchorBox()
            self._box_variance = ops.convert_to_tensor([0.1, 0.1, 0.2, 0.2], dtype="float32")

        def _match_anchor_boxes(self, anchor_boxes, gt_boxes, match_iou=0.5, ignore_iou=0.4):
            iou_matrix = compute_iou(anchor_boxes, gt_boxes)
            max_iou = ops.max(iou_matrix, axis=1)
            matched_gt_idx = ops.argmax(iou_matrix, axis=1)
            positive_mask = ops.greater_equal(max_iou, match_iou)
            negative_mask = ops.less(max_iou, ignore_iou)
            ignore_mask = ops.logical_not(ops.logical_or(positive_mask, negative_mask))
            return (matched_gt_idx, ops.cast(positive_mask, dtype="float32"),
                    ops.cast(ignore_mask, dtype="float32"))

        def _compute_box_target(self, anchor_boxes, matched_gt_boxes):
            box_target = ops.concatenate([
                (matched_gt_boxes[:, :2] - anchor_boxes[:, :2]) / anchor_boxes[:, 2:],
                ops.log(matched_gt_boxes[:, 2:] / anchor_boxes[:, 2:])], axis=-1)
            return box_target / self._box_variance

        def _encode_sample(self, image_shape, gt_boxes, cls_ids):
            anchor_boxes = self._anchor_box.get_anchors(image_shape[1], image_shape[2])
            cls_ids = ops.cast(cls_ids, dtype="float32")
            matched_gt_idx, positive_mask, ignore_mask = self._match_anchor_boxes(
                anchor_boxes, gt_boxes)
            matched_gt_boxes = ops.take(gt_boxes, matched_gt_idx, axis=0)
            box_target = self._compute_box_target(anchor_boxes, matched_gt_boxes)
            matched_gt_cls_ids = ops.take(cls_ids, matched_gt_idx, axis=0)
            cls_target = ops.where(ops.not_equal(positive_mask, 1.0), -1.0, matched_gt_cls_ids)
            cls_target = ops.where(ops.equal(ignore_mask, 1.0), -2.0, cls_target)
            cls_target = ops.expand_dims(cls_target, axis=-1)
            return ops.concatenate([box_target, cls_target], axis=-1)

        def encode_batch(self, batch_images, gt_boxes, cls_ids):
            images_shape = ops.shape(batch_images)
            labels = ops.stack([self._encode_sample(images_shape, gt_boxes[i], cls_ids[i])
                                for i in range(images_shape[0])])
            batch_images = keras.applications.resnet.preprocess_input(batch_images)
            return batch_images, labels

    def get_backbone():
        inputs = keras.Input((None, None, 3))
        c3 = layers.Conv2D(4, 8, strides=8, activation="relu", name="conv3_block4_out")(inputs)
        c4 = layers.Conv2D(4, 2, strides=2, activation="relu", name="conv4_block6_out")(c3)
        c5 = layers.Conv2D(4, 2, strides=2, activation="relu", name="conv5_block3_out")(c4)
        backbone = keras.Model(inputs, c5)
        c3_output, c4_output, c5_output = [
            backbone.get_layer(layer_name).output
            for layer_name in ["conv3_block4_out", "conv4_block6_out", "conv5_block3_out"]]
        return keras.Model(inputs=[backbone.inputs], outputs=[c3_output, c4_output, c5_output])

    class FeaturePyramid(layers.Layer):
        def __init__(self, backbone=None, **kwargs):
            super().__init__(name="FeaturePyramid", **kwargs)
            self.backbone = backbone if backbone else get_backbone()
            self.conv_c3_1x1 = layers.Conv2D(_RETINA_FILTERS, 1, 1, "same")
            self.conv_c4_1x1 = layers.Conv2D(_RETINA_FILTERS, 1, 1, "same")
            self.conv_c5_1x1 = layers.Conv2D(_RETINA_FILTERS, 1, 1, "same")
            self.conv_c3_3x3 = layers.Conv2D(_RETINA_FILTERS, 3, 1, "same")
            self.conv_c4_3x3 = layers.Conv2D(_RETINA_FILTERS, 3, 1, "same")
            self.conv_c5_3x3 = layers.Conv2D(_RETINA_FILTERS, 3, 1, "same")
            self.conv_c6_3x3 = layers.Conv2D(_RETINA_FILTERS, 3, 2, "same")
            self.conv_c7_3x3 = layers.Conv2D(_RETINA_FILTERS, 3, 2, "same")
            self.upsample_2x = layers.UpSampling2D(2)

        def call(self, images, training=False):
            c3_output, c4_output, c5_output = self.backbone(images, training=training)
            p3_output = self.conv_c3_1x1(c3_output)
            p4_output = self.conv_c4_1x1(c4_output)
            p5_output = self.conv_c5_1x1(c5_output)
            p4_output = p4_output + self.upsample_2x(p5_output)
            p3_output = p3_output + self.upsample_2x(p4_output)
            p3_output = self.conv_c3_3x3(p3_output)
            p4_output = self.conv_c4_3x3(p4_output)
            p5_output = self.conv_c5_3x3(p5_output)
            p6_output = self.conv_c6_3x3(c5_output)
            p7_output = self.conv_c7_3x3(ops.relu(p6_output))
            return p3_output, p4_output, p5_output, p6_output, p7_output

    def build_head(output_filters, bias_init):
        head = keras.Sequential([keras.Input(shape=[None, None, _RETINA_FILTERS])])
        kernel_init = keras.initializers.RandomNormal(0.0, 0.01)
        for _ in range(2):
            head.add(layers.Conv2D(_RETINA_FILTERS, 3, padding="same",
                                   kernel_initializer=kernel_init))
            head.add(layers.ReLU())
        head.add(layers.Conv2D(output_filters, 3, 1, padding="same",
                               kernel_initializer=kernel_init, bias_initializer=bias_init))
        return head

    class RetinaNet(keras.Model):
        def __init__(self, num_classes, backbone=None, **kwargs):
            super().__init__(name="RetinaNet", **kwargs)
            self.fpn = FeaturePyramid(backbone)
            self.num_classes = num_classes
            prior_probability = keras.initializers.Constant(-np.log((1 - 0.01) / 0.01))
            self.cls_head = build_head(9 * num_classes, prior_probability)
            self.box_head = build_head(9 * 4, "zeros")

        def call(self, image, training=False):
            features = self.fpn(image, training=training)
            N = ops.shape(image)[0]
            cls_outputs, box_outputs = [], []
            for feature in features:
                box_outputs.append(ops.reshape(self.box_head(feature), [N, -1, 4]))
                cls_outputs.append(ops.reshape(self.cls_head(feature), [N, -1, self.num_classes]))
            cls_outputs = ops.concatenate(cls_outputs, axis=1)
            box_outputs = ops.concatenate(box_outputs, axis=1)
            return ops.concatenate([box_outputs, cls_outputs], axis=-1)

    class RetinaNetBoxLoss(keras.losses.Loss):
        def __init__(self, delta):
            super().__init__(reduction="none", name="RetinaNetBoxLoss")
            self._delta = delta

        def call(self, y_true, y_pred):
            difference = y_true - y_pred
            absolute_difference = ops.abs(difference)
            squared_difference = difference ** 2
            loss = ops.where(ops.less(absolute_difference, self._delta),
                             0.5 * squared_difference, absolute_difference - 0.5)
            return ops.sum(loss, axis=-1)

    class RetinaNetClassificationLoss(keras.losses.Loss):
        def __init__(self, alpha, gamma):
            super().__init__(reduction="none", name="RetinaNetClassificationLoss")
            self._alpha = alpha
            self._gamma = gamma

        def call(self, y_true, y_pred):
            cross_entropy = keras.losses.binary_crossentropy(  # sigmoid_cross_entropy_with_logits
                y_true[..., None], y_pred[..., None], from_logits=True)
            probs = ops.sigmoid(y_pred)
            alpha = ops.where(ops.equal(y_true, 1.0), self._alpha, (1.0 - self._alpha))
            pt = ops.where(ops.equal(y_true, 1.0), probs, 1 - probs)
            loss = alpha * ops.power(1.0 - pt, self._gamma) * cross_entropy
            return ops.sum(loss, axis=-1)

    class RetinaNetLoss(keras.losses.Loss):
        def __init__(self, num_classes=80, alpha=0.25, gamma=2.0, delta=1.0, reduction="auto"):
            super().__init__(reduction=reduction, name="RetinaNetLoss")
            self._clf_loss = RetinaNetClassificationLoss(alpha, gamma)
            self._box_loss = RetinaNetBoxLoss(delta)
            self._num_classes = num_classes

        def call(self, y_true, y_pred):
            y_pred = ops.cast(y_pred, dtype="float32")
            box_labels = y_true[:, :, :4]
            box_predictions = y_pred[:, :, :4]
            cls_labels = ops.one_hot(ops.cast(y_true[:, :, 4], dtype="int32"),
                                     self._num_classes, dtype="float32")
            cls_predictions = y_pred[:, :, 4:]
            positive_mask = ops.cast(ops.greater(y_true[:, :, 4], -1.0), dtype="float32")
            ignore_mask = ops.cast(ops.equal(y_true[:, :, 4], -2.0), dtype="float32")
            clf_loss = self._clf_loss(cls_labels, cls_predictions)
            box_loss = self._box_loss(box_labels, box_predictions)
            clf_loss = ops.where(ops.equal(ignore_mask, 1.0), 0.0, clf_loss)
            box_loss = ops.where(ops.equal(positive_mask, 1.0), box_loss, 0.0)
            normalizer = ops.sum(positive_mask, axis=-1)
            clf_loss = ops.divide_no_nan(ops.sum(clf_loss, axis=-1), normalizer)
            box_loss = ops.divide_no_nan(ops.sum(box_loss, axis=-1), normalizer)
            return clf_loss + box_loss

    def decode_box_predictions(anchor_boxes, box_predictions, box_variance=(0.1, 0.1, 0.2, 0.2)):
        boxes = box_predictions * ops.convert_to_tensor(box_variance)
        boxes = ops.concatenate([
            boxes[:, :, :2] * anchor_boxes[:, :, 2:] + anchor_boxes[:, :, :2],
            ops.exp(boxes[:, :, 2:]) * anchor_boxes[:, :, 2:]], axis=-1)
        return convert_to_corners(boxes)

    return dict(AnchorBox=AnchorBox, LabelEncoder=LabelEncoder, get_backbone=get_backbone,
                RetinaNet=RetinaNet, RetinaNetLoss=RetinaNetLoss,
                decode_box_predictions=decode_box_predictions, convert_to_xywh=convert_to_xywh)


def _retina_replay(keras, checkpoint_dir):
    """Encode labels for boxes near anchors, compile with the piecewise schedule, fit with a
    per-epoch weights checkpoint, reload it, then the symbolic inference call and decoding."""
    parts, ops = _retina_parts(keras), keras.ops
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    anchors = _numpy(parts["AnchorBox"]().get_anchors(64, 64))
    gt_boxes = anchors[rng.choice(len(anchors), (4, 2))] * rng.uniform(0.9, 1.1, (4, 2, 4))
    images, labels = parts["LabelEncoder"]().encode_batch(
        images, gt_boxes.astype("float32"), rng.integers(0, 3, (4, 2)))
    images, labels = _numpy(images), _numpy(labels)
    model = parts["RetinaNet"](3, parts["get_backbone"]())
    learning_rate_fn = keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[1, 2], values=[1e-4, 5e-5, 1e-5])
    model.compile(loss=parts["RetinaNetLoss"](3, reduction="sum_over_batch_size"),
                  optimizer=keras.optimizers.SGD(learning_rate=learning_rate_fn, momentum=0.9))
    callbacks_list = [keras.callbacks.ModelCheckpoint(
        filepath=os.path.join(checkpoint_dir, "weights_epoch_{epoch}.weights.h5"),
        monitor="loss", save_best_only=False, save_weights_only=True)]
    history = model.fit(images, labels, validation_data=(images[:2], labels[:2]), batch_size=2,
                        epochs=2, callbacks=callbacks_list, verbose=0).history
    model.load_weights(os.path.join(checkpoint_dir, "weights_epoch_1.weights.h5"))
    with pytest.raises(RuntimeError):  # unknown height and width: no shape inference
        model(keras.Input(shape=[None, None, 3], name="image"), training=False)
    predictions = model.predict(images[:1], verbose=0)
    boxes = parts["decode_box_predictions"](ops.convert_to_tensor(anchors)[None, ...],
                                            ops.convert_to_tensor(predictions[:, :, :4]))
    return images, labels, model, history, predictions, _numpy(boxes)


def test_retinanet(tmp_path):
    """Label encoding, the subclassed RetinaNet with its FPN layer and Sequential heads, the
    combined focal and smooth-L1 loss, the schedule and per-epoch weight files. The example's
    `reduction="auto"` (tf.keras) is a ValueError in Keras 3; Kestrel keeps it as the
    default reduction for Keras 2 code."""
    (tmp_path / "keras").mkdir()
    (tmp_path / "kestrel").mkdir()
    expected = _retina_replay(_fresh(keras), str(tmp_path / "keras"))
    got = _retina_replay(_fresh(kestrel), str(tmp_path / "kestrel"))
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-5)
    assert (expected[1][..., 4] >= 0).sum() > 0
    assert [w.path for w in got[2].weights] == [w.path for w in expected[2].weights]
    assert _summary(got[2]) == _summary(expected[2])
    _assert_same_history(got[3], expected[3])
    np.testing.assert_allclose(got[4], expected[4], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[5], expected[5], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="reduction"):
        _retina_parts(keras)["RetinaNetLoss"](3)
    assert _retina_parts(kestrel)["RetinaNetLoss"](3).reduction == "sum_over_batch_size"


# ---------------------------------------------------------------- super-resolution (ESPCN)
_ESPCN_CROP, _ESPCN_UP = 12, 3


def _espcn_parts(keras):
    """super_resolution_sub_pixel's model (`tf.nn.depth_to_space` as the DepthToSpace layer
    of its Keras 3 version), its luminance input/target processing written with keras.ops
    (the y row of `tf.image.rgb_to_yuv`) and `upscale_image`; narrower convolutions."""
    layers, ops = keras.layers, keras.ops

    class DepthToSpace(layers.Layer):
        def __init__(self, block_size):
            super().__init__()
            self.block_size = block_size

        def call(self, input):
            batch, height, width, depth = ops.shape(input)
            depth = depth // (self.block_size**2)
            x = ops.reshape(input, [batch, height, width, self.block_size, self.block_size,
                                    depth])
            x = ops.transpose(x, [0, 1, 3, 2, 4, 5])
            return ops.reshape(x, [batch, height * self.block_size,
                                   width * self.block_size, depth])

    def get_model(upscale_factor=3, channels=1):
        conv_args = {"activation": "relu", "kernel_initializer": "orthogonal",
                     "padding": "same"}
        inputs = keras.Input(shape=(None, None, channels))
        x = layers.Conv2D(8, 5, **conv_args)(inputs)
        x = layers.Conv2D(8, 3, **conv_args)(x)
        x = layers.Conv2D(4, 3, **conv_args)(x)
        x = layers.Conv2D(channels * (upscale_factor**2), 3, **conv_args)(x)
        outputs = DepthToSpace(upscale_factor)(x)
        return keras.Model(inputs, outputs)

    def rgb_to_y(input):  # the y of tf.image.rgb_to_yuv
        return ops.sum(ops.multiply(input, [0.299, 0.587, 0.114]), axis=-1,
                       keepdims=True)

    def process_input(input, crop_size, upscale_factor):
        y = rgb_to_y(input)
        crop_size = crop_size // upscale_factor
        return ops.image.resize(y, [crop_size, crop_size], interpolation="area")

    def upscale_image(model, img):
        ycbcr = img.convert("YCbCr")
        y, cb, cr = ycbcr.split()
        y = keras.utils.img_to_array(y)
        y = y.astype("float32") / 255.0
        input = np.expand_dims(y, axis=0)
        out = model.predict(input, verbose=0)
        out_img_y = out[0]
        out_img_y *= 255.0
        out_img_y = out_img_y.clip(0, 255)
        out_img_y = out_img_y.reshape((np.shape(out_img_y)[0], np.shape(out_img_y)[1]))
        out_img_y = PIL.Image.fromarray(np.uint8(out_img_y), mode="L")
        out_img_cb = cb.resize(out_img_y.size, PIL.Image.BICUBIC)
        out_img_cr = cr.resize(out_img_y.size, PIL.Image.BICUBIC)
        return PIL.Image.merge("YCbCr", (out_img_y, out_img_cb, out_img_cr)).convert("RGB")

    return get_model, process_input, rgb_to_y, upscale_image


def _espcn_replay(keras, inputs, targets, checkpoint_path):
    """Fit with the PSNR callback (reading `logs["loss"]` of each test batch), EarlyStopping
    and a best-only weights checkpoint, reload it, then upscale a PIL image of another size."""
    get_model, _, _, upscale_image = _espcn_parts(keras)
    model = get_model(upscale_factor=_ESPCN_UP, channels=1)
    psnr = []

    class ESPCNCallback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.psnr = []

        def on_epoch_end(self, epoch, logs=None):
            psnr.append(np.mean(self.psnr))

        def on_test_batch_end(self, batch, logs=None):
            self.psnr.append(10 * math.log10(1 / logs["loss"]))

    callbacks = [ESPCNCallback(), keras.callbacks.EarlyStopping(monitor="loss", patience=10),
                 keras.callbacks.ModelCheckpoint(
                     filepath=checkpoint_path, save_weights_only=True, monitor="loss",
                     mode="min", save_best_only=True)]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
                  loss=keras.losses.MeanSquaredError())
    history = model.fit(inputs, targets, epochs=2, batch_size=4, callbacks=callbacks,
                        validation_data=(inputs[:4], targets[:4]), verbose=0).history
    model.load_weights(checkpoint_path)
    image = Image.fromarray(
        np.random.default_rng(1).integers(0, 256, (7, 10, 3)).astype("uint8"))
    return model, history, psnr, np.asarray(upscale_image(model, image))


def test_super_resolution_sub_pixel(tmp_path):
    """Keras' torch backend has no `interpolation="area"` for `ops.image.resize` (the example's
    input downscaling); Kestrel's is the block mean TensorFlow's area resize gives, so its
    inputs feed both runs."""
    _, process_input, rgb_to_y, _ = _espcn_parts(kestrel)
    images = np.random.default_rng(0).uniform(0, 1, (8, 12, 12, 3)).astype("float32")
    with pytest.raises(ValueError, match="interpolation"):
        _espcn_parts(keras)[1](images, _ESPCN_CROP, _ESPCN_UP)
    inputs = _numpy(process_input(images, _ESPCN_CROP, _ESPCN_UP))
    targets = _numpy(rgb_to_y(images))
    np.testing.assert_allclose(
        inputs, targets.reshape(8, 4, 3, 4, 3, 1).mean(axis=(2, 4)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_numpy(_espcn_parts(keras)[2](images)), targets, rtol=1e-6)
    expected = _espcn_replay(_fresh(keras), inputs, targets, str(tmp_path / "k.weights.h5"))
    got = _espcn_replay(_fresh(kestrel), inputs, targets, str(tmp_path / "c.weights.h5"))
    assert _summary(got[0]) == _summary(expected[0])
    _assert_same_history(got[1], expected[1])
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-5)
    assert got[3].shape == expected[3].shape == (21, 30, 3)
    np.testing.assert_allclose(got[3].astype(int), expected[3].astype(int), atol=1)


# ---------------------------------------------------------------- temporal latent bottleneck
_TLB = dict(image_size=8, patch_size=2, embed_dim=8, chunk_size=4, r=1, num_layers=1,
            ffn_drop=0.2, attn_drop=0.2, num_heads=2)


def _tlb_parts(keras):
    """temporal_latent_bottleneck's layers and model as written, with keras.ops for tf ops;
    the cell's `tf.TensorShape` state and output sizes become lists, and it gets the
    `get_initial_state` a Keras 3 RNN needs for a (chunk, dims) state."""
    layers, ops = keras.layers, keras.ops

    class PatchEmbedding(layers.Layer):
        def __init__(self, image_size, patch_size, embed_dim, chunk_size, **kwargs):
            super().__init__(**kwargs)
            patch_resolution = [image_size[0] // patch_size[0],
                                image_size[1] // patch_size[1]]
            self.image_size = image_size
            self.patch_size = patch_size
            self.embed_dim = embed_dim
            self.patch_resolution = patch_resolution
            self.num_patches = patch_resolution[0] * patch_resolution[1]
            self.positions = ops.arange(start=0, stop=self.num_patches, step=1)
            self.projection = layers.Conv2D(filters=embed_dim, kernel_size=patch_size,
                                            strides=patch_size, name="projection")
            self.flatten = layers.Reshape(target_shape=(-1, embed_dim), name="flatten")
            self.position_embedding = layers.Embedding(input_dim=self.num_patches,
                                                       output_dim=embed_dim,
                                                       name="position_embedding")
            self.layernorm = keras.layers.LayerNormalization(epsilon=1e-5, name="layernorm")
            self.chunking_layer = layers.Reshape(
                target_shape=(self.num_patches // chunk_size, chunk_size, embed_dim),
                name="chunking_layer")

        def call(self, inputs):
            x = self.projection(inputs)
            x = self.flatten(x)
            x = x + self.position_embedding(self.positions)
            x = self.layernorm(x)
            return self.chunking_layer(x)

    class FeedForwardNetwork(layers.Layer):
        def __init__(self, dims, dropout, **kwargs):
            super().__init__(**kwargs)
            self.ffn = keras.Sequential([
                layers.Dense(units=4 * dims, activation=keras.activations.gelu),
                layers.Dense(units=dims),
                layers.Dropout(rate=dropout)], name="ffn")
            self.layernorm = layers.LayerNormalization(epsilon=1e-5, name="layernorm")

        def call(self, inputs):
            x = self.layernorm(inputs)
            return inputs + self.ffn(x)

    class BaseAttention(layers.Layer):
        def __init__(self, num_heads, key_dim, dropout, **kwargs):
            super().__init__(**kwargs)
            self.multi_head_attention = layers.MultiHeadAttention(
                num_heads=num_heads, key_dim=key_dim, dropout=dropout, name="mha")
            self.query_layernorm = layers.LayerNormalization(epsilon=1e-5,
                                                             name="q_layernorm")
            self.key_layernorm = layers.LayerNormalization(epsilon=1e-5, name="k_layernorm")
            self.value_layernorm = layers.LayerNormalization(epsilon=1e-5,
                                                             name="v_layernorm")
            self.attention_scores = None

        def call(self, input_query, key, value):
            query = self.query_layernorm(input_query)
            key = self.key_layernorm(key)
            value = self.value_layernorm(value)
            (attention_outputs, attention_scores) = self.multi_head_attention(
                query=query, key=key, value=value, return_attention_scores=True)
            self.attention_scores = attention_scores
            return input_query + attention_outputs

    class AttentionWithFFN(layers.Layer):
        def __init__(self, ffn_dims, ffn_dropout, num_heads, key_dim, attn_dropout,
                     **kwargs):
            super().__init__(**kwargs)
            self.attention = BaseAttention(num_heads=num_heads, key_dim=key_dim,
                                           dropout=attn_dropout, name="base_attn")
            self.ffn = FeedForwardNetwork(dims=ffn_dims, dropout=ffn_dropout, name="ffn")
            self.attention_scores = None

        def call(self, query, key, value):
            x = self.attention(query, key, value)
            self.attention_scores = self.attention.attention_scores
            return self.ffn(x)

    class CustomRecurrentCell(layers.Layer):
        def __init__(self, chunk_size, r, num_layers, ffn_dims, ffn_dropout, num_heads,
                     key_dim, attn_dropout, **kwargs):
            super().__init__(**kwargs)
            self.chunk_size = chunk_size
            self.r = r
            self.num_layers = num_layers
            self.ffn_dims = ffn_dims
            self.ffn_droput = ffn_dropout
            self.num_heads = num_heads
            self.key_dim = key_dim
            self.attn_dropout = attn_dropout
            self.state_size = [chunk_size, ffn_dims]
            self.output_size = [chunk_size, ffn_dims]
            self.get_attention_scores = False
            self.attention_scores = []
            perceptual_module = list()
            for layer_idx in range(num_layers):
                perceptual_module.append(AttentionWithFFN(
                    ffn_dims=ffn_dims, ffn_dropout=ffn_dropout, num_heads=num_heads,
                    key_dim=key_dim, attn_dropout=attn_dropout,
                    name=f"pm_self_attn_{layer_idx}"))
                if layer_idx % r == 0:
                    perceptual_module.append(AttentionWithFFN(
                        ffn_dims=ffn_dims, ffn_dropout=ffn_dropout, num_heads=num_heads,
                        key_dim=key_dim, attn_dropout=attn_dropout,
                        name=f"pm_cross_attn_ffn_{layer_idx}"))
            self.perceptual_module = perceptual_module
            self.tlb_module = AttentionWithFFN(
                ffn_dims=ffn_dims, ffn_dropout=ffn_dropout, num_heads=num_heads,
                key_dim=key_dim, attn_dropout=attn_dropout, name="tlb_cross_attn_ffn")

        def get_initial_state(self, batch_size):
            return [ops.zeros((batch_size, self.chunk_size, self.ffn_dims))]

        def call(self, inputs, states):
            slow_stream = states[0]
            fast_stream = inputs
            for layer_idx, layer in enumerate(self.perceptual_module):
                fast_stream = layer(query=fast_stream, key=fast_stream, value=fast_stream)
                if layer_idx % self.r == 0:
                    fast_stream = layer(query=fast_stream, key=slow_stream, value=slow_stream)
            slow_stream = self.tlb_module(query=slow_stream, key=fast_stream,
                                          value=fast_stream)
            if self.get_attention_scores:
                self.attention_scores.append(self.tlb_module.attention_scores)
            return fast_stream, [slow_stream]

    class TemporalLatentBottleneckModel(keras.Model):
        def __init__(self, patch_layer, custom_cell, **kwargs):
            super().__init__(**kwargs)
            self.patch_layer = patch_layer
            self.rnn = layers.RNN(custom_cell, name="rnn")
            self.gap = layers.GlobalAveragePooling1D(name="gap")
            self.head = layers.Dense(10, activation="softmax", dtype="float32", name="head")

        def call(self, inputs):
            x = self.patch_layer(inputs)
            x = self.rnn(x)
            x = self.gap(x)
            return self.head(x)

    return PatchEmbedding, CustomRecurrentCell, TemporalLatentBottleneckModel


def _tlb_replay(keras):
    """Build, compile with AdamW, fit, then the attention-map visualization: the cell's saved
    TLB attention scores (one per chunk, and one of the discarded first step Keras' loop
    runs), reduced and upsampled; the example's reads of `get_attn_scores`/`attn_scores`
    name attributes the cell does not have."""
    ops, layers = keras.ops, keras.layers
    PatchEmbedding, CustomRecurrentCell, TemporalLatentBottleneckModel = _tlb_parts(keras)
    config = _TLB
    patch_layer = PatchEmbedding(image_size=(config["image_size"],) * 2,
                                 patch_size=(config["patch_size"],) * 2,
                                 embed_dim=config["embed_dim"], chunk_size=config["chunk_size"])
    custom_rnn_cell = CustomRecurrentCell(
        chunk_size=config["chunk_size"], r=config["r"], num_layers=config["num_layers"],
        ffn_dims=config["embed_dim"], ffn_dropout=config["ffn_drop"],
        num_heads=config["num_heads"], key_dim=config["embed_dim"],
        attn_dropout=config["attn_drop"])
    model = TemporalLatentBottleneckModel(patch_layer=patch_layer, custom_cell=custom_rnn_cell)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    images = rng.random((8, 8, 8, 3)).astype("float32")
    labels = rng.integers(0, 10, (8, 1))
    history = model.fit(images, labels, epochs=1, batch_size=8,
                        validation_data=(images[:4], labels[:4]), verbose=0).history
    model.rnn.cell.get_attention_scores = True
    outputs = model(images[:4])
    list_chunk_scores = model.rnn.cell.attention_scores
    list_chunk_viz = [ops.mean(ops.max(x, axis=-2), axis=1) for x in list_chunk_scores]
    chunk_viz = ops.reshape(ops.concatenate(list_chunk_viz[1:], axis=-1), (4, 4, 4, 1))
    upsampled_heat_map = layers.UpSampling2D(size=(4, 4), interpolation="bilinear",
                                             dtype="float32")(chunk_viz)
    model.rnn.cell.get_attn_scores = True
    with pytest.raises(AttributeError):
        model.rnn.cell.attn_scores
    return (history, ops.convert_to_numpy(outputs), len(list_chunk_scores),
            ops.convert_to_numpy(upsampled_heat_map), [w.path for w in model.weights])


def test_temporal_latent_bottleneck():
    """A custom RNN cell with a (chunk, dims) state over 4-D chunked input, keyword calls of
    its attention blocks, attention dropout inside the recurrence. As Keras' torch loop, the
    RNN runs a custom cell once more on the first step and discards it (its side effects and
    random draws stay). Left out: `model.summary()` raises "output_size must be an integer"
    in Keras (the cell's output is not (batch, units)); Kestrel's summary shows "?"."""
    expected, got = _both(_tlb_replay)
    _assert_same_history(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-4, atol=1e-6)
    assert got[2] == expected[2] == 5
    np.testing.assert_allclose(got[3], expected[3], rtol=1e-4, atol=1e-6)
    assert got[4] == expected[4]


def _rnn_cell_calls(lib):
    calls = []

    class Cell(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.state_size = self.output_size = 3
            self.dense, self.dropout = lib.layers.Dense(3), lib.layers.Dropout(0.5)

        def call(self, x, states, training=None):
            calls.append(training)
            h = self.dropout(self.dense(x), training=training) + states[0]
            return h, [h]

    x = np.ones((2, 4, 3), "float32")
    rnn = lib.layers.RNN(Cell(), go_backwards=True)
    outputs = [rnn(x), rnn(x, training=True), lib.layers.RNN(Cell(), unroll=True)(x)]
    return calls, [lib.ops.convert_to_numpy(o) for o in outputs]


def test_rnn_runs_a_custom_cell_once_more_first_as_keras():
    expected, got = _both(_rnn_cell_calls)
    assert got[0] == expected[0] == [False] * 5 + [True] * 5 + [False] * 4
    for g, e in zip(got[1], expected[1]):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def _cell_output_size_error(lib):
    class Cell(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.state_size, self.output_size = [2, 3], [2, 3]

        def call(self, x, states):
            return x, states

    with pytest.raises(ValueError) as error:
        lib.layers.RNN(Cell()).compute_output_shape((None, 4, 2, 3))
    return str(error.value)


def test_rnn_output_size_must_be_an_integer():
    expected, got = _both(_cell_output_size_error)
    assert "output_size must be an integer" in expected and "output_size must be an integer" in got


# ---------------------------------------------------------------- video classification
_VIDEO_IMG, _VIDEO_MAX_SEQ, _VIDEO_FEATURES = 8, 5, 4


def _video_feature_extractor(keras):
    """video_classification's `build_feature_extractor`: `inception_v3.preprocess_input` on
    the symbolic input, then a small pooled CNN for the downloaded InceptionV3."""
    layers = keras.layers
    feature_extractor = keras.Sequential(
        [keras.Input((_VIDEO_IMG, _VIDEO_IMG, 3)), layers.Conv2D(_VIDEO_FEATURES, 3),
         layers.GlobalAveragePooling2D()], name="inception_v3")
    preprocess_input = keras.applications.inception_v3.preprocess_input
    inputs = keras.Input((_VIDEO_IMG, _VIDEO_IMG, 3))
    preprocessed = preprocess_input(inputs)
    outputs = feature_extractor(preprocessed)
    return keras.Model(inputs, outputs, name="feature_extractor")


def _prepare_videos(feature_extractor, videos):
    """`prepare_all_videos` as written: per-frame `predict` features and frame masks."""
    frame_masks = np.zeros(shape=(len(videos), _VIDEO_MAX_SEQ), dtype="bool")
    frame_features = np.zeros(shape=(len(videos), _VIDEO_MAX_SEQ, _VIDEO_FEATURES),
                              dtype="float32")
    for idx, frames in enumerate(videos):
        length = min(_VIDEO_MAX_SEQ, frames.shape[0])
        for j in range(length):
            frame_features[idx, j, :] = feature_extractor.predict(frames[None, j, :],
                                                                  verbose=0)
        frame_masks[idx, :length] = 1
    return frame_features, frame_masks


def _video_classification(keras, videos, labels, checkpoint_path):
    feature_extractor = _video_feature_extractor(keras)
    features, masks = _prepare_videos(feature_extractor, videos)
    layers = keras.layers
    frame_features_input = keras.Input((_VIDEO_MAX_SEQ, _VIDEO_FEATURES))
    mask_input = keras.Input((_VIDEO_MAX_SEQ,), dtype="bool")
    x = layers.GRU(16, return_sequences=True)(frame_features_input, mask=mask_input)
    x = layers.GRU(8)(x)
    x = layers.Dropout(0.4)(x)
    x = layers.Dense(8, activation="relu")(x)
    output = layers.Dense(3, activation="softmax")(x)
    seq_model = keras.Model([frame_features_input, mask_input], output)
    seq_model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                      metrics=["accuracy"])
    checkpoint = keras.callbacks.ModelCheckpoint(checkpoint_path, save_weights_only=True,
                                                 save_best_only=True, verbose=0)
    history = seq_model.fit([features, masks], labels, validation_split=0.3, epochs=2,
                            callbacks=[checkpoint], verbose=0).history
    seq_model.load_weights(checkpoint_path)
    return (feature_extractor, features, masks, seq_model, history,
            seq_model.evaluate([features, masks], labels, verbose=0),
            seq_model.predict([features[:1], masks[:1]], verbose=0))


def test_video_classification(tmp_path):
    """Videos of different lengths (masked frames), the per-frame feature extractor, the
    masked GRU stack, validation_split, a best-only weights checkpoint, evaluate, predict.
    StringLookup needs TensorFlow in Keras: Kestrel's encodes the tags."""
    rng = np.random.default_rng(0)
    videos = [rng.uniform(0, 255, (n, _VIDEO_IMG, _VIDEO_IMG, 3)).astype("float32")
              for n in (3, 5, 7, 4, 6, 2, 5, 3, 6, 4)]
    tags = np.array(["Punch", "Archery", "Punch", "TennisSwing", "Archery"] * 2)
    label_processor = kestrel.layers.StringLookup(num_oov_indices=0,
                                                  vocabulary=np.unique(tags))
    assert label_processor.get_vocabulary() == ["Archery", "Punch", "TennisSwing"]
    labels = kestrel.ops.convert_to_numpy(label_processor(tags[..., None]))
    assert labels.shape == (10, 1) and labels[:, 0].tolist() == [1, 0, 1, 2, 0] * 2
    expected = _video_classification(_fresh(keras), videos, labels, str(tmp_path / "k.weights.h5"))
    got = _video_classification(_fresh(kestrel), videos, labels, str(tmp_path / "c.weights.h5"))
    assert _config(got[0]) == _config(expected[0])
    assert _summary(got[0]) == _summary(expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[2], expected[2])
    assert _summary(got[3]) == _summary(expected[3])
    _assert_same_history(got[4], expected[4])
    np.testing.assert_allclose(got[5], expected[5], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[6], expected[6], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- VICReg (linear evaluation)
def _vicreg_evaluation(keras, images, labels):
    """vicreg's projector and linear evaluator (TensorFlow Similarity's ResNet18Sim and
    ContrastiveModel, the augmenter and its VicReg loss are out; a small backbone stands in):
    two frozen models and an L2-regularized head in a Sequential, trained with LAMB."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    backbone = keras.Model(inputs, layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(inputs)),
                           name="resnet18sim")

    def projector_layers(input_size, n_dense_neurons):
        input_layer = keras.layers.Input((input_size,))
        n_layers = 2
        for i in range(n_layers):
            dense = keras.layers.Dense(n_dense_neurons, name=f"projector_dense_{i}")
            x = dense(input_layer) if i == 0 else dense(x)
            x = keras.layers.BatchNormalization(name=f"projector_bn_{i}")(x)
            x = keras.layers.ReLU(name=f"projector_relu_{i}")(x)
        x = keras.layers.Dense(n_dense_neurons, name=f"projector_dense_{n_layers}")(x)
        return keras.Model(input_layer, x)

    projector = projector_layers(backbone.output.shape[-1], n_dense_neurons=6)
    evaluator = keras.models.Sequential([
        backbone, projector,
        keras.layers.Dense(10, activation="softmax",
                           kernel_regularizer=keras.regularizers.l2(0.02))])
    evaluator.layers[0].trainable = False
    evaluator.layers[1].trainable = False
    evaluator.compile(optimizer=keras.optimizers.Lamb(), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    history = evaluator.fit(images, labels, batch_size=4, epochs=2, verbose=0).history
    return evaluator, history, evaluator.evaluate(images, labels, verbose=0)


def test_vicreg_linear_evaluation():
    rng = np.random.default_rng(0)
    images = rng.random((8, 8, 8, 3)).astype("float32")
    labels = rng.integers(0, 10, (8, 1))
    expected, got = _both(_vicreg_evaluation, images, labels)
    assert _summary(got[0]) == _summary(expected[0])
    assert _config(got[0]) == _config(expected[0])
    _assert_same_history(got[1], expected[1])
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got[0].predict(images, verbose=0),
                               expected[0].predict(images, verbose=0), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- transformer in transformer
def _tnt_model(keras, num_classes=5):
    """transformer_in_transformer's functional TNT, its tf ops written with keras.ops
    (`tf.image.extract_patches`: `ops.image.extract_patches`; `tf.reshape`: `ops.reshape` on
    the KerasTensors), smaller sizes."""
    layers, ops = keras.layers, keras.ops
    input_shape, image_size, patch_size = (8, 8, 3), (16, 16), (8, 8)

    def data_augmentation(inputs):
        x = layers.Rescaling(scale=1.0 / 255)(inputs)
        x = layers.Resizing(image_size[0], image_size[1])(x)
        x = layers.RandomFlip("horizontal")(x)
        x = layers.RandomRotation(factor=0.1)(x)
        x = layers.RandomContrast(factor=0.1)(x)
        return layers.RandomZoom(height_factor=0.2, width_factor=0.2)(x)

    class PatchEncoder(layers.Layer):
        def __init__(self, num_patches, projection_dim):
            super().__init__()
            self.num_patches = num_patches
            self.projection = layers.Dense(units=projection_dim)
            self.position_embedding = layers.Embedding(input_dim=num_patches,
                                                       output_dim=projection_dim)

        def call(self, patch):
            positions = ops.arange(start=0, stop=self.num_patches)
            return self.projection(patch) + self.position_embedding(positions)

    def pixel_embed(x, in_dim, stride):
        num_patches = (image_size[0] // patch_size[0]) * (image_size[1] // patch_size[1])
        inner_patch_size = [math.ceil(ps / stride) for ps in patch_size]
        x = layers.Conv2D(in_dim, kernel_size=7, strides=stride, padding="same")(x)
        x = ops.image.extract_patches(x, (inner_patch_size[0], inner_patch_size[1]),
                                      padding="valid")
        x = ops.reshape(x, (-1, inner_patch_size[0] * inner_patch_size[1], in_dim))
        x = PatchEncoder(inner_patch_size[0] * inner_patch_size[1], in_dim)(x)
        return x, num_patches, inner_patch_size

    def mlp(x, hidden_dim, output_dim, drop_rate=0.2):
        x = layers.Dense(hidden_dim, activation=keras.activations.gelu)(x)
        x = layers.Dropout(drop_rate)(x)
        x = layers.Dense(output_dim)(x)
        return layers.Dropout(drop_rate)(x)

    def tnt_block(pixel_embedding, patch_embedding, out_dim, in_dim, num_pixels):
        residual_in_1 = pixel_embedding
        pixel_embedding = layers.LayerNormalization(epsilon=1e-5)(pixel_embedding)
        pixel_embedding = layers.MultiHeadAttention(num_heads=1, key_dim=in_dim, dropout=0.5)(
            pixel_embedding, pixel_embedding)
        pixel_embedding = layers.add([pixel_embedding, residual_in_1])
        residual_in_2 = pixel_embedding
        pixel_embedding = layers.LayerNormalization(epsilon=1e-5)(pixel_embedding)
        pixel_embedding = mlp(pixel_embedding, in_dim * 4, in_dim)
        pixel_embedding = layers.add([pixel_embedding, residual_in_2])
        _, num_patches, channel = patch_embedding.shape
        fused_embedding = ops.reshape(pixel_embedding, (-1, num_patches, in_dim * num_pixels))
        fused_embedding = layers.LayerNormalization(epsilon=1e-5)(fused_embedding)
        fused_embedding = layers.Dense(out_dim)(fused_embedding)
        patch_embedding = layers.add([patch_embedding, fused_embedding])
        residual_out_1 = patch_embedding
        patch_embedding = layers.LayerNormalization(epsilon=1e-5)(patch_embedding)
        patch_embedding = layers.MultiHeadAttention(num_heads=2, key_dim=out_dim, dropout=0.5)(
            patch_embedding, patch_embedding)
        patch_embedding = layers.add([patch_embedding, residual_out_1])
        residual_out_2 = patch_embedding
        patch_embedding = layers.LayerNormalization(epsilon=1e-5)(patch_embedding)
        patch_embedding = mlp(patch_embedding, out_dim * 4, out_dim)
        return pixel_embedding, layers.add([patch_embedding, residual_out_2])

    inputs = layers.Input(shape=input_shape)
    x = data_augmentation(inputs)
    pixel_embedding, num_patches, inner_patch_size = pixel_embed(x, 4, 4)
    num_pixels = inner_patch_size[0] * inner_patch_size[1]
    patch_embedding = ops.reshape(pixel_embedding, (-1, num_patches, 4 * num_pixels))
    patch_embedding = layers.LayerNormalization(epsilon=1e-5)(patch_embedding)
    patch_embedding = layers.Dense(8)(patch_embedding)
    patch_embedding = layers.LayerNormalization(epsilon=1e-5)(patch_embedding)
    patch_embedding = PatchEncoder(num_patches, 8)(patch_embedding)
    patch_embedding = layers.Dropout(0.5)(patch_embedding)
    pixel_embedding, patch_embedding = tnt_block(pixel_embedding, patch_embedding, 8, 4,
                                                 num_pixels)
    patch_embedding = layers.LayerNormalization(epsilon=1e-5)(patch_embedding)
    x = layers.GlobalAvgPool1D()(patch_embedding)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


def _tnt_replay(keras, images, labels):
    model = _tnt_model(keras)
    model.compile(loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  optimizer=keras.optimizers.AdamW(learning_rate=0.001, weight_decay=0.0002),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy"),
                           keras.metrics.TopKCategoricalAccuracy(5, name="top-5-accuracy")])
    history = model.fit(images, labels, batch_size=4, epochs=2, validation_split=0.2,
                        verbose=0).history
    return model, history, model.evaluate(images, labels, verbose=0)


def test_transformer_in_transformer():
    """Augmentation layers inside the graph, ops on KerasTensors, pixel and patch encoders,
    label smoothing, top-5 accuracy and validation_split."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 8, 8, 3)).astype("float32")
    labels = keras.utils.to_categorical(rng.integers(0, 5, 10), 5)
    expected, got = _both(_tnt_replay, images, labels)
    assert _layout(got[0]) == _layout(expected[0])
    assert _config(got[0]) == _config(expected[0])
    assert _summary(got[0]) == _summary(expected[0])
    assert [w.path for w in got[0].weights] == [w.path for w in expected[0].weights]
    _assert_same_history(got[1], expected[1])
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-4, atol=1e-6)
    got[0].set_weights(expected[0].get_weights())
    np.testing.assert_allclose(got[0].predict(images, verbose=0),
                               expected[0].predict(images, verbose=0), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- wavelet CNN
def _wavelet(ops):
    """wavelet_cnn's Haar wavelet transform, its `keras.backend` calls written with keras.ops,
    two levels of the example's four."""

    def axis_y(batch):
        odd, even = batch[:, 0::2], batch[:, 1::2]
        return (odd + even) / 2.0, ops.abs(odd - even)

    def axis_x(batch):  # torch slices take no negative step: `[:, :, ::-1]` as ops.flip
        net = ops.flip(ops.transpose(batch, [0, 2, 1]), axis=2)
        lpf, hpf = axis_y(net)
        return (ops.flip(ops.transpose(lpf, [0, 2, 1]), axis=1),
                ops.flip(ops.transpose(hpf, [0, 2, 1]), axis=1))

    def division(channels):
        parts = []
        for channel in channels:
            low, high = axis_y(channel)
            parts += [*axis_x(low), *axis_x(high)]
        return parts

    def wavelet(batch):
        batch_image = ops.transpose(batch, [0, 3, 1, 2])
        first = division([batch_image[:, 0], batch_image[:, 1], batch_image[:, 2]])
        second = division(first[0::4])  # each channel's low-low part
        return [ops.transpose(ops.stack(d, axis=1), [0, 2, 3, 1]) for d in (first, second)]

    return wavelet


def _wavelet_model(keras):
    layers = keras.layers
    input_layer = keras.Input((8, 8, 3))
    wavelet = layers.Lambda(_wavelet(keras.ops),
                            lambda shape: [(None, 4, 4, 12), (None, 2, 2, 12)])
    input1, input2 = wavelet(input_layer)
    conv_1 = layers.Conv2D(4, 3, padding="same", activation="relu")(input1)
    norm_1 = layers.BatchNormalization()(conv_1)
    conv_1_2 = layers.Conv2D(4, 3, strides=(2, 2), padding="same", activation="relu")(norm_1)
    norm_1_2 = layers.BatchNormalization()(conv_1_2)
    conv_2 = layers.Conv2D(4, 3, padding="same", activation="relu")(input2)
    norm_2 = layers.BatchNormalization()(conv_2)
    concat_1 = layers.concatenate([norm_1_2, norm_2])
    pool = layers.AveragePooling2D(2, padding="same")(concat_1)  # 5 in the example
    flatten = layers.Flatten()(pool)
    drop = layers.Dropout(0.5)(layers.BatchNormalization()(layers.Dense(8, activation="relu")(
        flatten)))
    output_layer = layers.Dense(3, activation="softmax")(drop)
    model = keras.models.Model(inputs=input_layer, outputs=output_layer)
    lr_schedule = keras.optimizers.schedules.ExponentialDecay(
        0.0001, decay_steps=100000, decay_rate=0.96, staircase=True)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr_schedule),
                  loss="categorical_crossentropy", metrics=["acc"])
    return model


def _wavelet_replay(keras, images, labels, checkpoint_path):
    model = _wavelet_model(keras)
    callbacks = [keras.callbacks.ModelCheckpoint(checkpoint_path, save_best_only=True),
                 keras.callbacks.EarlyStopping(monitor="val_acc", patience=15)]
    history = model.fit(images, labels, validation_data=(images[:4], labels[:4]), epochs=2,
                        batch_size=4, callbacks=callbacks, verbose=0).history
    return model, history, model.predict(images, verbose=0)


def test_wavelet_cnn(tmp_path):
    """A Lambda returning two tensors with an output_shape function, the Haar transform on
    KerasTensors, the multi-resolution CNN, the "acc" metric and best-only `.keras`
    checkpoints. Left out: the example first compiles with `loss=''`, which Keras accepts
    until fit and Kestrel rejects at compile (both with a ValueError); and its
    `AveragePooling2D(5, padding="same")` on a smaller map: Keras' torch backend pads
    unevenly with edge copies and averages them, Kestrel averages the real entries only (as
    Keras' other backends), so the pooling here is 2."""
    rng = np.random.default_rng(0)
    images = rng.random((8, 8, 8, 3)).astype("float32")
    labels = keras.utils.to_categorical(rng.integers(0, 3, 8), 3)
    expected = _wavelet_replay(_fresh(keras), images, labels, str(tmp_path / "k.keras"))
    got = _wavelet_replay(_fresh(kestrel), images, labels, str(tmp_path / "c.keras"))
    assert [w.path for w in got[0].weights] == [w.path for w in expected[0].weights]
    assert _summary(got[0]) == _summary(expected[0])
    _assert_same_history(got[1], expected[1])
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-4, atol=1e-6)
    transformed = _wavelet(kestrel.ops)(images)
    np.testing.assert_allclose(_numpy(transformed[1]), _numpy(_wavelet(keras.ops)(images)[1]),
                               rtol=1e-6)
