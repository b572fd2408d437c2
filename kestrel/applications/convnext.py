"""ConvNeXt Tiny to XLarge (Liu et al., 2022) with Keras' layer names and weight files.

With `include_preprocessing=True` (the default) the models normalize their input themselves:
feed pixels in [0, 255]; `preprocess_input` is the identity.
"""
from __future__ import annotations

import numpy as np

from kestrel import config, layers
from kestrel.applications import _common, imagenet_utils
from kestrel.applications._layers import LayerScale, StochasticDepth
from kestrel.models.sequential import Sequential

BASE_WEIGHTS_PATH = _common.KERAS_APPS + "convnext/"

# variant -> (depths, projection dims, top sha256, notop sha256); every default size is 224
MODEL_CONFIGS = {
    "tiny": ([3, 3, 9, 3], [96, 192, 384, 768],
             "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
             "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    "small": ([3, 3, 27, 3], [96, 192, 384, 768],
              "ce1277d8f1ee5a0ef0e171469089c18f5233860ceaf9b168049cb9263fd7483c",
              "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    "base": ([3, 3, 27, 3], [128, 256, 512, 1024],
             "52cbb006d3dadd03f6e095a8ca1aca47aecdd75acb4bc74bce1f5c695d0086e6",
             "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
    "large": ([3, 3, 27, 3], [192, 384, 768, 1536],
              "070c5ed9ed289581e477741d3b34beffa920db8cf590899d6d2c67fba2a198a6",
              "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
    "xlarge": ([3, 3, 27, 3], [256, 512, 1024, 2048],
               "c1f5ccab661354fc3a79a10fa99af82f0fbf10ec65cb894a3ae0815f17a889ee",
               "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05"),
}


def _layernorm(name=None):
    return layers.LayerNormalization(epsilon=1e-6, name=name)


def ConvNeXtBlock(projection_dim, drop_path_rate=0.0, layer_scale_init_value=1e-6, name=None):
    """A residual block: depthwise 7x7 -> LayerNorm -> MLP (x4, GELU) -> scale -> drop path."""

    def apply(inputs):
        x = layers.Conv2D(projection_dim, kernel_size=7, padding="same",
                          groups=projection_dim, name=f"{name}_depthwise_conv")(inputs)
        x = _layernorm(f"{name}_layernorm")(x)
        x = layers.Dense(4 * projection_dim, name=f"{name}_pointwise_conv_1")(x)
        x = layers.Activation("gelu", name=f"{name}_gelu")(x)
        x = layers.Dense(projection_dim, name=f"{name}_pointwise_conv_2")(x)
        if layer_scale_init_value is not None:
            x = LayerScale(layer_scale_init_value, projection_dim,
                           name=f"{name}_layer_scale")(x)
        if drop_path_rate:
            x = StochasticDepth(drop_path_rate, name=f"{name}_stochastic_depth")(x)
        else:
            x = layers.Activation("linear", name=f"{name}_identity")(x)
        return inputs + x

    return apply


@_common.pretrained
def ConvNeXt(depths, projection_dims, drop_path_rate=0.0, layer_scale_init_value=1e-6,
             default_size=224, name="convnext", include_preprocessing=True, include_top=True,
             weights=None, input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", weights_name=None):
    """A ConvNeXt with `depths[i]` blocks of `projection_dims[i]` channels in stage `i`."""
    if config.image_data_format() == "channels_first":
        raise ValueError("ConvNeXt does not support the `channels_first` image data format. "
                         "Switch to `channels_last` by editing your local config file at "
                         "~/.keras/keras.json")
    x, inputs, input_shape = _common.start(
        weights=weights, include_top=include_top, classes=classes, input_tensor=input_tensor,
        input_shape=input_shape, default_size=default_size, min_size=32)
    if include_preprocessing and input_shape[-1] == 3:
        x = layers.Normalization(
            mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
            variance=[(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2],
            name=f"{name}_prestem_normalization")(x)
    stages = [Sequential([layers.Conv2D(projection_dims[0], kernel_size=4, strides=4,
                                        name=f"{name}_stem_conv"),
                          _layernorm(f"{name}_stem_layernorm")], name=f"{name}_stem")]
    stages += [Sequential([_layernorm(f"{name}_downsampling_layernorm_{i}"),
                           layers.Conv2D(projection_dims[i + 1], kernel_size=2, strides=2,
                                         name=f"{name}_downsampling_conv_{i}")],
                          name=f"{name}_downsampling_block_{i}") for i in range(3)]
    rates = [float(r) for r in np.linspace(0.0, drop_path_rate, sum(depths))]
    done = 0
    for i, (downsample, depth) in enumerate(zip(stages, depths)):
        x = downsample(x)
        for j in range(depth):
            x = ConvNeXtBlock(projection_dims[i], rates[done + j], layer_scale_init_value,
                              name=f"{name}_stage_{i}_block_{j}")(x)
        done += depth
    if include_top:
        imagenet_utils.validate_activation(classifier_activation, weights)
        x = layers.GlobalAveragePooling2D(name=f"{name}_head_gap")(x)
        x = _layernorm(f"{name}_head_layernorm")(x)
        x = layers.Dense(classes, activation=classifier_activation,
                         name=f"{name}_head_dense")(x)
    else:
        x = _common.top(x, include_top=False, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation, weights=weights)
        x = _layernorm()(x)
    hashes = MODEL_CONFIGS[weights_name.split("convnext_")[-1]][2:] if weights_name else (
        None, None)
    if weights == "imagenet":
        _check_variant(weights_name, name, depths, projection_dims)
    files = tuple((f"{name}{suffix}.h5", f"{BASE_WEIGHTS_PATH}{name}{suffix}.h5", digest)
                  for suffix, digest in zip(("", "_notop"), hashes))
    return _common.finish_files(inputs, x, name=name, weights=weights, include_top=include_top,
                                files=files)


def _check_variant(weights_name, name, depths, projection_dims):
    """Pretrained weights need the variant's exact architecture and its name in `name`."""
    variant = weights_name.split("convnext_")[-1]
    expected_depths, expected_dims = MODEL_CONFIGS[variant][:2]
    if depths != expected_depths or projection_dims != expected_dims:
        raise ValueError(
            f"Architecture configuration does not match {weights_name} variant. When using "
            "pre-trained weights, the model architecture must match the pre-trained "
            f"configuration exactly. Expected depths: {expected_depths}, got: {depths}. "
            f"Expected projection_dims: {expected_dims}, got: {projection_dims}.")
    if weights_name not in name:
        raise ValueError(
            f'Model name "{name}" does not match weights variant "{weights_name}". When '
            "using imagenet weights, model name must contain the weights variant (e.g., "
            f'"convnext_{variant}").')


def _variant(variant: str):
    depths, dims = MODEL_CONFIGS[variant][:2]

    def build(include_top=True, include_preprocessing=True, weights="imagenet",
              input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name=f"convnext_{variant}"):
        return ConvNeXt(depths, dims, name=name, include_preprocessing=include_preprocessing,
                        include_top=include_top, weights=weights, input_tensor=input_tensor,
                        input_shape=input_shape, pooling=pooling, classes=classes,
                        classifier_activation=classifier_activation,
                        weights_name=f"convnext_{variant}")

    title = "XLarge" if variant == "xlarge" else variant.title()
    build.__name__ = build.__qualname__ = f"ConvNeXt{title}"
    build.__doc__ = (f"ConvNeXt{title}: input 224x224x3 by default (at least 32x32), pixels "
                     "in [0, 255] with `include_preprocessing`.")
    return build


ConvNeXtTiny, ConvNeXtSmall, ConvNeXtBase, ConvNeXtLarge, ConvNeXtXLarge = (
    _variant(variant) for variant in MODEL_CONFIGS)


preprocess_input = imagenet_utils.preprocessor(None)
decode_predictions = imagenet_utils.decode_predictions
