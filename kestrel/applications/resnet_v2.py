"""ResNet50V2/101V2/152V2 (He et al., 2016): pre-activation ResNets."""
from kestrel.applications import imagenet_utils
from kestrel.applications.resnet import export

ResNet50V2 = export("ResNet50V2", "resnet50v2", "V2: pre-activation, 3, 4, 6, 3 blocks")
ResNet101V2 = export("ResNet101V2", "resnet101v2", "V2: pre-activation, 3, 4, 23, 3 blocks")
ResNet152V2 = export("ResNet152V2", "resnet152v2", "V2: pre-activation, 3, 8, 36, 3 blocks")


preprocess_input = imagenet_utils.preprocessor("tf")
decode_predictions = imagenet_utils.decode_predictions
