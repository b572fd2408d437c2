"""Keras names whose machinery belongs to another backend (JAX, TensorFlow, Orbax).

They exist so that `keras.layers.JaxLayer` & co. resolve, and creating one raises a
`NotImplementedError` that names what it needs and what to use on torch instead.
"""
from __future__ import annotations

# name: (what it needs, what to use with Kestrel instead)
_NAMES = {
    "JaxLayer": ("the JAX backend", "wrap a torch.nn.Module with keras.layers.TorchModuleWrapper"),
    "FlaxLayer": ("the JAX backend and Flax",
                  "wrap a torch.nn.Module with keras.layers.TorchModuleWrapper"),
    "TFSMLayer": ("TensorFlow (it runs a TF SavedModel)",
                  "load a `.keras` file with keras.saving.load_model, or an exported ONNX file "
                  "with onnxruntime"),
    "OrbaxCheckpoint": ("Orbax, a JAX checkpointing library",
                        "keras.callbacks.ModelCheckpoint or BackupAndRestore"),
    "ExportArchive": ("TensorFlow (it writes a TF SavedModel)",
                      "model.export(path, format='onnx' | 'torchscript' | 'torch_export')"),
}


def _unavailable_class(name: str) -> type:
    needs, instead = _NAMES[name]

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"keras {name} needs {needs}; Kestrel runs on torch only. "
                                  f"Instead: {instead}.")

    return type(name, (), {"__init__": __init__, "__module__": __name__,
                           "__doc__": f"Unavailable on torch (needs {needs}): {instead}."})


JaxLayer, FlaxLayer, TFSMLayer, OrbaxCheckpoint, ExportArchive = (
    _unavailable_class(name) for name in _NAMES)
