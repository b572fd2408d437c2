"""Keras 2's `keras.preprocessing` (`sequence`, `text`, `image`) and Keras 3's dataset helpers."""
from kestrel.preprocessing import image, sequence, text
from kestrel.utils.directory_datasets import (audio_dataset_from_directory,
                                              image_dataset_from_directory,
                                              text_dataset_from_directory)
from kestrel.utils.timeseries_dataset import timeseries_dataset_from_array

__all__ = ["audio_dataset_from_directory", "image", "image_dataset_from_directory", "sequence",
           "text", "text_dataset_from_directory", "timeseries_dataset_from_array"]
