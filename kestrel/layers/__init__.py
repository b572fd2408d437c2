"""Kestrel layers: each one a `torch.nn.Module` with Keras' arguments, shapes and weights."""
from kestrel.layers.core.dense import Dense
from kestrel.layers.core.input_layer import Input, InputLayer
from kestrel.layers.input_spec import InputSpec
from kestrel.layers.layer import Layer
from kestrel.layers.ops_layer import TensorOp
