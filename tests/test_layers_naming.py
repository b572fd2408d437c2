"""Automatic layer names follow Keras' snake_case rule (they also key `.weights.h5` groups)."""
import pytest

import kestrel as keras
from kestrel.layers.naming import to_snake_case


@pytest.mark.parametrize("class_name, expected", [
    ("Conv2DTranspose", "conv2d_transpose"), ("ConvLSTM2D", "conv_lstm2d"),
    ("GlobalAveragePooling2D", "global_average_pooling2d"), ("MultiHeadAttention",
                                                             "multi_head_attention"),
    ("LSTM", "lstm"), ("UpSampling2D", "up_sampling2d"), ("RMSprop", "rm_sprop"),
])
def test_snake_case_matches_keras(class_name, expected):
    assert to_snake_case(class_name) == expected


def test_names_are_unique_and_restart_after_clear_session():
    keras.utils.clear_session()
    names = [keras.layers.Dense(1).name for _ in range(3)]
    assert names == ["dense", "dense_1", "dense_2"]
    keras.utils.clear_session()
    assert keras.layers.Dense(1).name == "dense"
