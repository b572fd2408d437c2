"""`kestrel.applications`: Keras' pretrained image architectures, built from Kestrel layers.

    from kestrel import applications
    model = applications.ResNet50(weights=None, input_shape=(64, 64, 3), include_top=False)

Names and modules are Keras' (`applications.resnet50.preprocess_input`, ...). Modules are
imported on first use, so `import kestrel` stays fast.
"""
import importlib

_MODULES = ("convnext", "densenet", "efficientnet", "efficientnet_v2", "imagenet_utils",
            "inception_resnet_v2", "inception_v3", "mobilenet", "mobilenet_v2", "mobilenet_v3",
            "nasnet", "resnet", "resnet50", "resnet_v2", "vgg16", "vgg19", "xception")

# module -> the model functions it defines
_FAMILIES = {
    "convnext": [f"ConvNeXt{s}" for s in ("Base", "Large", "Small", "Tiny", "XLarge")],
    "densenet": ["DenseNet121", "DenseNet169", "DenseNet201"],
    "efficientnet": [f"EfficientNetB{i}" for i in range(8)],
    "efficientnet_v2": [f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "L", "M", "S")],
    "inception_resnet_v2": ["InceptionResNetV2"],
    "inception_v3": ["InceptionV3"],
    "mobilenet": ["MobileNet"],
    "mobilenet_v2": ["MobileNetV2"],
    "mobilenet_v3": ["MobileNetV3Large", "MobileNetV3Small"],
    "nasnet": ["NASNetLarge", "NASNetMobile"],
    "resnet": ["ResNet50", "ResNet101", "ResNet152"],
    "resnet_v2": ["ResNet50V2", "ResNet101V2", "ResNet152V2"],
    "vgg16": ["VGG16"],
    "vgg19": ["VGG19"],
    "xception": ["Xception"],
}
_MODELS = {name: module for module, names in _FAMILIES.items() for name in names}

__all__ = sorted(list(_MODELS) + list(_MODULES))


def __getattr__(name: str):
    if name in _MODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _MODELS:
        value = getattr(importlib.import_module(f"{__name__}.{_MODELS[name]}"), name)
    else:
        raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__():
    return __all__
