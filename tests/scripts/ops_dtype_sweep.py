"""Sweep keras.ops against Kestrel's ops: result dtype, shape, values and raised errors.

From the repository root: `PYTHONPATH=. python tests/scripts/ops_dtype_sweep.py [NAME_PART]`
(`--symbolic [NAME_PART]` compares KerasTensor output specs instead). Prints one line per
difference (function, inputs, what differs), then a count per function on stderr.
Functions with one or two required positional arguments are swept over a grid of dtypes,
shapes (0-d, 1-d, broadcastable 2-d), containers (torch, NumPy) and Python scalars.
"""
import collections
import inspect
import itertools
import os
import sys
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")
warnings.filterwarnings("ignore")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402

DTYPES = ["bool", "uint8", "int8", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
NAMESPACES = ["", "nn", "image", "linalg", "numpy"]
SKIP = {"cond", "fori_loop", "while_loop", "map", "scan", "associative_scan", "vectorized_map",
        "custom_gradient", "stop_gradient", "switch", "jvp", "linalg.jvp", "unstack"}
BASE = [[0.0, 1.0, 2.0], [3.0, 1.0, 0.5]]


def tensor(dtype, shape, kind="torch"):
    """A small tensor of `dtype` and a shape out of (), (3,), (2, 3)."""
    values = np.array(BASE, "float64")
    values = {(): values[1, 1], (3,): values[1], (2, 3): values}[shape]
    if kind == "numpy":
        return np.asarray(values).astype("float32" if dtype == "bfloat16" else dtype)
    t = torch.tensor(values, dtype=torch.float64)
    return t.to(getattr(torch, dtype))


def unary_inputs():
    for dtype, shape in itertools.product(DTYPES, [(), (3,), (2, 3)]):
        yield f"t_{dtype}{list(shape)}", (tensor(dtype, shape),)
    for dtype in ["float16", "bfloat16", "float32", "float64"]:
        special = torch.tensor([[-1.5, 0.0, float("nan")], [float("inf"), -0.0, -2.0]])
        yield f"t_{dtype}_special[2,3]", (special.to(getattr(torch, dtype)),)
    for dtype in ["int8", "int32", "int64"]:
        yield f"t_{dtype}_negative[3]", (torch.tensor([-3, 0, 2], dtype=getattr(torch, dtype)),)
    for dtype in DTYPES:
        if dtype != "bfloat16":
            yield f"np_{dtype}[2,3]", (tensor(dtype, (2, 3), "numpy"),)
    yield "py_int", (2,)
    yield "py_float", (1.5,)
    yield "py_bool", (True,)
    for name, value in [("np.float64", np.float64(1.5)), ("np.float32", np.float32(1.5)),
                        ("np.int64", np.int64(2)), ("np.bool", np.bool_(True)),
                        ("list_int", [[1, 2, 0], [3, 1, 2]]), ("list_float", [[1.0, 0.5, 2.0]]),
                        ("list_bool", [True, False])]:
        yield name, (value,)


def binary_inputs():
    for a, b in itertools.product(DTYPES, repeat=2):
        yield f"t_{a}[2,3],t_{b}[3]", (tensor(a, (2, 3)), tensor(b, (3,)))
        yield f"t_{a}[],t_{b}[3]", (tensor(a, ()), tensor(b, (3,)))
    for dtype in DTYPES:
        for name, scalar in [("int", 2), ("float", 1.5), ("bool", True)]:
            yield f"t_{dtype}[3],py_{name}", (tensor(dtype, (3,)), scalar)
            yield f"py_{name},t_{dtype}[3]", (scalar, tensor(dtype, (3,)))
        for name, other in [("np.float64", np.float64(1.5)), ("np.float32", np.float32(1.5)),
                            ("np.int64", np.int64(2)), ("list_int", [1, 2, 0]),
                            ("list_float", [1.0, 0.5, 2.0])]:
            yield f"t_{dtype}[3],{name}", (tensor(dtype, (3,)), other)
            yield f"{name},t_{dtype}[3]", (other, tensor(dtype, (3,)))
        if dtype != "bfloat16":
            yield f"np_{dtype}[3],np_float32[3]", (tensor(dtype, (3,), "numpy"),
                                                    tensor("float32", (3,), "numpy"))
            yield f"t_{dtype}[0-d],np_int64[3]", (tensor(dtype, ()),
                                                   tensor("int64", (3,), "numpy"))


def ternary_cases():
    """(function name, label, args) for ops of three required arguments: tensor and scalar mixes."""
    scalars = [("int", 1), ("float", 0.5), ("bool", True)]
    for dtype in DTYPES:
        x = tensor(dtype, (2, 3))
        for (a, lo), (b, hi) in itertools.product(scalars, repeat=2):
            yield "clip", f"t_{dtype}[2,3],py_{a},py_{b}", (x, lo, hi)
            yield "threshold", f"t_{dtype}[2,3],py_{a},py_{b}", (x, lo, hi)
        for other in DTYPES:
            y = tensor(other, (3,))
            yield "clip", f"t_{dtype}[2,3],t_{other}[3],py_int", (x, y, 2)
            yield "where", f"t_bool,t_{dtype}[2,3],t_{other}[3]", (x > 0, x, y)
            yield "scatter_update", f"t_{dtype}[2,3],t_{other}[1]", (x, [[0, 1]], y[:1])
            yield "slice_update", f"t_{dtype}[2,3],t_{other}[1,3]", (x, (1, 0), y[None])
        for name, scalar in scalars:
            yield "where", f"t_bool,t_{dtype}[2,3],py_{name}", (x > 0, x, scalar)
            yield "where", f"t_bool,py_{name},t_{dtype}[2,3]", (x > 0, scalar, x)
            yield "in_top_k", f"t_int32[2],t_{dtype}[2,3],py_{name}", (
                torch.tensor([0, 2], dtype=torch.int32), x, scalar)


def dtype_argument_cases():
    """(function name, label, args, kwargs) for the ops taking a `dtype` argument."""
    for dtype in DTYPES + [None]:
        kw = {"dtype": dtype}
        for name, args in [("zeros", ((2, 3),)), ("ones", ((2,),)), ("full", ((2,), 1.5)),
                           ("full", ((2,), 2)), ("full", ((2,), True)), ("eye", (3,)),
                           ("identity", (2,)), ("tri", (3,)), ("arange", (3,)),
                           ("arange", (0.5, 3)), ("arange", (1, 7, 2)), ("linspace", (0, 4, 5)),
                           ("logspace", (0, 2, 3)), ("geomspace", (1, 8, 4)),
                           ("zeros_like", (tensor("int8", (3,)),)),
                           ("ones_like", (tensor("float16", (3,)),)),
                           ("full_like", (tensor("int32", (3,)), 1.5)),
                           ("full_like", (tensor("bool", (3,)), 2)),
                           ("convert_to_tensor", ([1.5, 2.0],)),
                           ("convert_to_tensor", ([1, 2],)), ("convert_to_tensor", (True,)),
                           ("convert_to_tensor", (np.arange(3),)),
                           ("convert_to_tensor", (tensor("float64", (3,)),)),
                           ("one_hot", (tensor("int32", (3,)), 4)),
                           ("nn.one_hot", (tensor("int64", (3,)), 4)),
                           ("multi_hot", (tensor("int32", (2, 3)), 4)),
                           ("sum", (tensor("int8", (3,)),)), ("mean", (tensor("int32", (3,)),)),
                           ("cumsum", (tensor("bool", (3,)),)), ("prod", (tensor("uint8", (3,)),)),
                           ("trace", (tensor("int8", (2, 3)),))]:
            if dtype is None and name.startswith("convert"):
                continue
            yield name, f"{args!r:.40},dtype={dtype}", args, kw


def symbolic_inputs(arity, make):
    """KerasTensor arguments (built by `make(shape, dtype)`) for a symbolic sweep."""
    if arity == 1:
        for dtype in DTYPES:
            yield f"kt_{dtype}[2,3]", (make((2, 3), dtype),)
        return
    for a, b in itertools.product(DTYPES, repeat=2):
        yield f"kt_{a}[2,3],kt_{b}[3]", (make((2, 3), a), make((3,), b))
    for dtype in DTYPES:
        for name, scalar in [("int", 2), ("float", 1.5), ("bool", True)]:
            yield f"kt_{dtype}[3],py_{name}", (make((3,), dtype), scalar)
            yield f"py_{name},kt_{dtype}[3]", (scalar, make((3,), dtype))


def symbolic_sweep(pattern, counts):
    """Output specs of KerasTensor calls: dtype and shape compared, and raised errors."""
    from kestrel.layers.node import KerasTensor

    for name, theirs_fn, ours_fn, arity in functions():
        if arity not in (1, 2) or (pattern and pattern not in name):
            continue
        ours_args = list(symbolic_inputs(arity, KerasTensor))
        theirs_args = list(symbolic_inputs(arity, keras.KerasTensor))
        for (label, ours), (_, theirs) in zip(ours_args, theirs_args):
            difference = compare_specs(call(ours_fn, ours), call(theirs_fn, theirs))
            if difference:
                counts["symbolic " + name] += 1
                print(f"symbolic {name}\t{label}\t{difference}", flush=True)


def compare_specs(ours, theirs):
    if ours[0] != theirs[0] or ours[0] == "raise":
        return compare(ours, theirs)
    got, want = flat(ours[1]), flat(theirs[1])
    if len(got) != len(want):
        return f"outputs ours={len(got)} keras={len(want)}"
    for g, w in zip(got, want):
        gd, wd = getattr(g, "dtype", type(g).__name__), getattr(w, "dtype", type(w).__name__)
        if str(gd) != str(wd):
            return f"dtype ours={gd} keras={wd}"
        if tuple(getattr(g, "shape", ())) != tuple(getattr(w, "shape", ())):
            return f"shape ours={getattr(g, 'shape', None)} keras={getattr(w, 'shape', None)}"
    return None


REDUCTIONS = ["sum", "mean", "max", "min", "prod", "std", "var", "any", "all", "argmax",
              "argmin", "cumsum", "cumprod", "median", "logsumexp", "nansum", "nanmean",
              "amax", "amin", "average", "count_nonzero", "sort", "argsort", "norm", "ptp",
              "softmax", "log_softmax", "normalize", "moments", "top_k"]


def axis_cases():
    """(function name, label, args, kwargs): reductions with an axis, kept dims or not."""
    for name, dtype in itertools.product(REDUCTIONS, DTYPES):
        x = tensor(dtype, (2, 3))
        for kwargs in [{"axis": 0}, {"axis": -1}, {"axis": 1, "keepdims": True},
                       {"axis": (0, 1)}]:
            if name == "moments":
                kwargs = {"axes": kwargs["axis"], "keepdims": kwargs.get("keepdims", False)}
            if name == "top_k":
                kwargs = {"k": 2}
            yield name, f"t_{dtype}[2,3],{kwargs}", (x,), kwargs


def argument_cases():
    """(function name, label, args, kwargs): ops whose other arguments are not tensors."""
    ids = torch.tensor([0, 0, 1])
    for dtype in DTYPES:
        x, v = tensor(dtype, (2, 3)), tensor(dtype, (3,))
        cases = [
            ("segment_sum", (v, ids), {"num_segments": 2}), ("argpartition", (v, 1), {}),
            ("top_k", (v, 2), {}), ("searchsorted", (tensor(dtype, (3,)).sort()[0], v), {}),
            ("digitize", (v, [0.5, 1.5]), {}), ("quantile", (x, 0.5), {}),
            ("percentile", (x, 50), {}), ("round", (x,), {"decimals": 1}),
            ("roll", (x, 1), {"axis": 1}), ("repeat", (x, 2), {"axis": 0}), ("tile", (v, 2), {}),
            ("pad", (x, ((0, 1), (1, 0))), {"constant_values": 2}), ("expand_dims", (x, 0), {}),
            ("reshape", (x, (3, 2)), {}), ("broadcast_to", (v, (2, 3)), {}),
            ("trace", (x,), {}), ("triu", (x, 1), {}), ("rot90", (x,), {}),
            ("matmul", (x.T, x), {}), ("tensordot", (x, x), {"axes": 2}),
            ("einsum", ("ij,j->i", x, v), {}), ("einsum", ("ij,kj->ik", x, x), {}),
            ("cross", (v, v), {}), ("sparse_categorical_crossentropy", (ids[:2], x), {}),
            ("categorical_crossentropy", (x, x), {}), ("unique", (v,), {}),
            ("divide_no_nan", (x, v), {}), ("nn.normalize", (x,), {"order": 1}),
            ("nn.rms_normalization", (x,), {}), ("nn.layer_normalization", (x,), {}),
            ("nn.one_hot", (ids, 2), {"dtype": dtype}), ("average", (x,), {"weights": x}),
            ("image.resize", (x[None, :, :, None], (4, 6)), {}), ("isclose", (x, v), {}),
            ("histogram", (v,), {"bins": 3}), ("slice", (x, (0, 1), (2, 2)), {}),
            ("correlate", (v, v), {}), ("moments", (x, 0), {}),
        ]
        for name, args, kwargs in cases:
            yield name, f"{dtype},{name}", args, kwargs


def copy(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    return value


def call(fn, args):
    try:
        return "ok", fn(*[copy(a) for a in args])
    except Exception as error:  # noqa: BLE001 - the sweep records every failure
        return "raise", type(error).__name__


def flat(value):
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in flat(item)]
    return [value]


def describe(value):
    """(dtype name, shape, float64 values or None) of one output."""
    if isinstance(value, torch.Tensor):
        return str(value.dtype).split(".")[-1], tuple(value.shape), value.detach().double() \
            if value.dtype != torch.bool else value.detach()
    if isinstance(value, np.ndarray):
        return "np:" + str(value.dtype), value.shape, torch.from_numpy(value.astype("float64"))
    if isinstance(value, (bool, int, float)):
        return type(value).__name__, (), torch.tensor(float(value), dtype=torch.float64)
    return type(value).__name__, None, None


def compare(ours, theirs):
    """A short text naming the first difference, or None."""
    if ours[0] != theirs[0]:
        return f"outcome ours={ours[0]}:{ours[1] if ours[0] == 'raise' else ''} " \
               f"keras={theirs[0]}:{theirs[1] if theirs[0] == 'raise' else ''}"
    if ours[0] == "raise":
        return None if ours[1] == theirs[1] else f"error type ours={ours[1]} keras={theirs[1]}"
    got, want = flat(ours[1]), flat(theirs[1])
    if len(got) != len(want):
        return f"outputs ours={len(got)} keras={len(want)}"
    for g, w in zip(got, want):
        (gd, gs, gv), (wd, ws, wv) = describe(g), describe(w)
        if gd != wd:
            return f"dtype ours={gd} keras={wd}"
        if gs != ws:
            return f"shape ours={gs} keras={ws}"
        if gv is None or wv is None:
            continue
        half = gd in ("float16", "bfloat16")
        tol = 1e-3 if half else 1e-5
        if gv.dtype == torch.bool or wv.dtype == torch.bool:
            same = torch.equal(gv.bool(), wv.bool())
        else:
            same = torch.allclose(gv.cpu(), wv.cpu(), rtol=tol, atol=tol, equal_nan=True)
        if not same:
            return "values differ"
    return None


def functions():
    """(name, keras function, kestrel function, required positional count), deduplicated."""
    seen = set()
    for ns in NAMESPACES:
        module = getattr(keras.ops, ns) if ns else keras.ops
        for name in sorted(dir(module)):
            fn = getattr(module, name)
            full = f"{ns}.{name}" if ns else name
            if name.startswith("_") or not inspect.isfunction(fn) or full in SKIP or fn in seen:
                continue
            seen.add(fn)
            ours = kestrel.ops
            for part in full.split("."):
                ours = getattr(ours, part)
            params = inspect.signature(fn).parameters.values()
            required = [p for p in params if p.default is p.empty
                        and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            yield full, fn, ours, len(required)


def main(pattern=None):
    counts = collections.Counter()
    checked = 0
    for name, theirs_fn, ours_fn, arity in functions():
        if arity not in (1, 2) or (pattern and pattern not in name):
            continue
        checked += 1
        inputs = unary_inputs() if arity == 1 else binary_inputs()
        for label, args in inputs:
            difference = compare(call(ours_fn, args), call(theirs_fn, args))
            if difference:
                counts[name] += 1
                print(f"{name}\t{label}\t{difference}", flush=True)
    for name, label, args in ternary_cases():
        if pattern and pattern not in name:
            continue
        difference = compare(call(getattr(kestrel.ops, name), args),
                             call(getattr(keras.ops, name), args))
        if difference:
            counts[name] += 1
            print(f"{name}\t{label}\t{difference}", flush=True)
    for name, label, args, kwargs in itertools.chain(dtype_argument_cases(), axis_cases(),
                                                       argument_cases()):
        if pattern and pattern not in name:
            continue
        ours_fn, theirs_fn = kestrel.ops, keras.ops
        for part in name.split("."):
            ours_fn, theirs_fn = getattr(ours_fn, part), getattr(theirs_fn, part)
        difference = compare(call(lambda *a: ours_fn(*a, **kwargs), args),
                             call(lambda *a: theirs_fn(*a, **kwargs), args))
        if difference:
            counts[name] += 1
            print(f"{name}\t{label}\t{difference}", flush=True)
    print(f"# checked {checked} functions, then clip, threshold, where, scatter_update, "
          "slice_update, in_top_k, dtype= arguments, reductions over axes and ops with "
          "non-tensor arguments", file=sys.stderr)
    for name, n in counts.most_common():
        print(f"# {name}: {n}", file=sys.stderr)


if __name__ == "__main__":
    if "--symbolic" in sys.argv:
        sweep_counts = collections.Counter()
        symbolic_sweep(sys.argv[2] if len(sys.argv) > 2 else None, sweep_counts)
        for op_name, n in sweep_counts.most_common():
            print(f"# {op_name}: {n}", file=sys.stderr)
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else None)
