"""Export models for inference outside Kestrel: ONNX, TorchScript and torch.export."""
from kestrel.export.export_lib import FORMATS, export_model
from kestrel.export.signature import TensorSpec
from kestrel.other_backends import ExportArchive

__all__ = ["ExportArchive", "FORMATS", "TensorSpec", "export_model"]
