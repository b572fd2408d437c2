"""`export_model`: save a model's inference graph as ONNX, TorchScript or a torch.export program.

The artifact holds the forward pass only (inference mode, no training state) and runs
without Kestrel: ONNX Runtime for `.onnx`, `torch.jit.load` for TorchScript,
`torch.export.load` for `.pt2`. Inputs are taken flat, in the model's input order; the
batch axis (and any other size left as None) is dynamic for ONNX and torch.export.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator

import torch

from kestrel.export import signature as sig

FORMATS = ("onnx", "torchscript", "torch_export")


@contextlib.contextmanager
def _atomic_path(filepath: str) -> Iterator[str]:
    """A temp path with the same suffix beside `filepath`, renamed onto it on success."""
    folder = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(folder, exist_ok=True)
    name = os.path.basename(filepath)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.",
                                    suffix=os.path.splitext(name)[1])
    os.close(handle)
    try:
        yield temp
        os.replace(temp, filepath)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)


@contextlib.contextmanager
def _inference_mode(flat) -> Iterator[None]:
    """Inference mode for the export; each module's own mode is restored afterwards."""
    modes = [(module, module.training) for module in flat.modules()]
    flat.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)  # torch-internal deprecations
            warnings.filterwarnings("ignore", message="`torch.jit", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*shares the same shape constraints")
            yield
    finally:
        for module, mode in modes:
            module.training = mode


def _dynamic_shapes(signature):
    """torch.export's `dynamic_shapes`: one Dim per named unknown size, shared by name."""
    dims: dict[str, torch.export.Dim] = {}
    return tuple({axis: dims.setdefault(name, torch.export.Dim(name))
                  for axis, name in axes.items()} or None
                 for axes in sig.dynamic_dims(signature))


def _explain_failure(signature, error) -> ValueError:
    while error.__cause__ is not None:  # torch.onnx wraps torch.export's own error
        error = error.__cause__
    first_line = next((line for line in str(error).splitlines() if line.strip()), "")
    return ValueError(
        f"torch.export could not trace the model ({type(error).__name__}: {first_line}). "
        "Code that branches on tensor values (e.g. `if bool(x.any())`) cannot be exported "
        f"this way. Sizes left dynamic: {sig.dynamic_dims(signature)}; if a layer needs one "
        "of them fixed (e.g. a recurrent time axis), give it in `input_signature`.")


def _export_program(flat, args, signature):
    try:
        return torch.export.export(flat, args, dynamic_shapes=(_dynamic_shapes(signature),))
    except Exception as error:  # torch raises many kinds; all mean "cannot trace this"
        raise _explain_failure(signature, error) from error


def _onnx(flat, args, signature, output_names, path, opset_version=None):
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # skip notes about optional torchvision ops
    try:
        program = torch.onnx.export(
            flat, args, dynamo=True, dynamic_shapes=(_dynamic_shapes(signature),),
            input_names=sig.input_names(signature), output_names=output_names,
            opset_version=opset_version, verbose=False)
    except Exception as error:  # noqa: BLE001 - as in _export_program
        raise _explain_failure(signature, error) from error
    finally:
        quiet.setLevel(level)
    program.save(path, external_data=False)


def export_model(model, filepath, format: str = "onnx", verbose=None, input_signature=None,
                 **kwargs) -> None:
    """Export `model`'s forward pass for inference (also `model.export(...)`).

    Args:
        model: a built Kestrel model (or any built Kestrel layer).
        filepath: destination file; `.pt2` is required for `format="torch_export"`.
        format: `"onnx"` (ONNX Runtime and other ONNX tools), `"torchscript"`
            (`torch.jit.trace`, reload with `torch.jit.load`) or `"torch_export"`
            (`torch.export`, reload with `torch.export.load`).
        verbose: print where the artifact was written (default True).
        input_signature: shapes and dtypes of the inputs when they differ from the model's
            own: a structure of shape tuples, `KerasTensor`s, `InputSpec`s with a shape, or
            example tensors/arrays. Defaults to the model's inputs.
        **kwargs: `opset_version` for ONNX.

    Example:
        >>> model.export("model.onnx")
        >>> session = onnxruntime.InferenceSession("model.onnx")
        >>> session.run(None, {"input_layer": x})
    """
    if format not in FORMATS:
        raise ValueError(f"Unrecognized export format; accepted formats are "
                         f"{', '.join(repr(f) for f in FORMATS)}. Received: format={format!r}")
    unknown = set(kwargs) - ({"opset_version"} if format == "onnx" else set())
    if unknown:
        raise ValueError(f"Unrecognized keyword arguments for format={format!r}: "
                         f"{sorted(unknown)}")
    filepath = os.fspath(filepath)
    if format == "torch_export" and not filepath.endswith(".pt2"):
        raise ValueError(f"torch.export programs are saved as `.pt2` files. "
                         f"Received: filepath={filepath}")
    if not model.built and input_signature is None:
        raise ValueError(f"Cannot export model '{model.name}': it has not been built yet. "
                         "Call it on a batch of data or `model.build(input_shape)` first, or "
                         "pass `input_signature`.")
    signature = sig.model_signature(model, input_signature)
    args = sig.example_inputs(signature, model._device())
    flat = sig.FlatModel(model, signature)
    with _inference_mode(flat):
        outputs = flat(*args)  # builds an unbuilt model; bad inputs fail here, clearly
        names = list(getattr(model, "output_names", None) or [])
        count = len(outputs) if isinstance(outputs, tuple) else 1
        names = names if len(names) == count else [f"output_{i}" for i in range(count)]
        with _atomic_path(filepath) as temp:
            if format == "onnx":
                _onnx(flat, args, signature, names, temp, **kwargs)
            elif format == "torchscript":
                torch.jit.save(torch.jit.trace(flat, args, check_trace=False), temp)
            else:
                torch.export.save(_export_program(flat, args, signature), temp)
    if verbose is None or verbose:
        print(f"Saved artifact at '{filepath}' (format={format}). Inputs: "
              f"{', '.join(sig.input_names(signature))}.")
