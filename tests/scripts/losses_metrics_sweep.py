"""Sweep every class and function of `keras.losses` / `keras.metrics` against Kestrel.

Run with real Keras 3 on the torch backend installed:
    KERAS_BACKEND=torch python tests/scripts/losses_metrics_sweep.py [name-filter]

Each case builds the same object in both libraries and calls it on the same small random
inputs (fresh copies for each call: Keras' torch backend multiplies a masked loss's
`sample_weight` in place). A case where Keras itself raises is skipped (Keras' crashes are not copied); a case
where Kestrel raises, or differs in value (1e-5), dtype or shape, is printed.
"""
from __future__ import annotations

import inspect
import itertools
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import kestrel  # noqa: E402

B, T, C = 4, 3, 3
TOL = 1e-5
COUNTS = {"compared": 0, "keras raised": 0}


def make_inputs(kind: str, three_d: bool, dtype: str, seed: int = 0):
    """(y_true, y_pred) NumPy arrays of one input kind."""
    rng = np.random.default_rng(seed)
    lead = (B, T) if three_d else (B,)
    logits = rng.normal(size=lead + (C,))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, C, size=lead)
    y_pred = logits if kind.endswith("logits") else probs
    if kind.startswith("int"):
        y_true = labels
    elif kind.startswith("onehot"):
        y_true = np.eye(C)[labels]
    elif kind.startswith("binary"):
        y_true = rng.integers(0, 2, size=lead + (C,))
    else:
        y_true = rng.random(lead + (C,))
    y_true = y_true if y_true.dtype.kind == "i" else y_true.astype(dtype)
    return y_true, y_pred.astype(dtype)


def sample_weights(three_d: bool):
    """Named sample weights: none, per sample, per timestep (3-D only)."""
    rng = np.random.default_rng(1)
    out = {"sw=None": None, "sw=sample": rng.random(B).astype("float32")}
    if three_d:
        out["sw=timestep"] = rng.random((B, T)).astype("float32")
    return out


def make_mask(three_d: bool):
    """A boolean mask over the batch (and time) axes with some entries off."""
    shape = (B, T) if three_d else (B,)
    return np.arange(int(np.prod(shape))).reshape(shape) % 3 != 0


def to_numpy(x):
    """A result (tensor, variable, array, number) as a NumPy array."""
    if hasattr(x, "value") and not isinstance(x, (np.ndarray, torch.Tensor)):
        x = x.value
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.float().numpy() if x.dtype == torch.bfloat16 else x.numpy()
    return np.asarray(x)


def compare(a, b) -> str:
    """An empty string when Keras' `a` and Kestrel's `b` match, else what differs."""
    a, b = to_numpy(a), to_numpy(b)
    if a.shape != b.shape:
        return f"shape keras={a.shape} kestrel={b.shape}"
    if a.dtype != b.dtype:
        return f"dtype keras={a.dtype} kestrel={b.dtype}"
    tol = 1e-2 if a.dtype == np.float16 else TOL
    a64, b64 = a.astype("float64"), b.astype("float64")
    if not np.allclose(a64, b64, rtol=tol, atol=tol, equal_nan=True):
        return f"value keras={a64.ravel()[:4]} kestrel={b64.ravel()[:4]}"
    return ""


def run_pair(keras_fn, kestrel_fn):
    """Run both; None when Keras fails, else the mismatch text ('' when equal)."""
    try:
        expected = keras_fn()
    except Exception:  # Keras' own crash: not a case to match
        COUNTS["keras raised"] += 1
        return None
    COUNTS["compared"] += 1
    try:
        got = kestrel_fn()
    except Exception as error:
        return f"kestrel raised {type(error).__name__}: {str(error)[:150]}"
    return compare(expected, got)


def tensors(arrays, mask=None):
    """Torch tensors of `arrays`; `mask` goes on the last one as `_keras_mask`."""
    out = [None if a is None else torch.tensor(a) for a in arrays]
    if mask is not None:
        out[-1]._keras_mask = torch.as_tensor(mask)
    return out


KIND_NAMES = ("float", "binary", "onehot", "int", "onehot_logits", "int_logits", "binary_logits")
CONSTRUCTOR_GRID = {
    "from_logits": [True],
    "label_smoothing": [0.1],
    "axis": [1, 0],
    "ignore_class": [1],
    "reduction": ["sum", "mean", None, "none", "mean_with_sample_weight"],
    "delta": [0.5],
    "gamma": [0.5],
    "alpha": [0.4],
    "apply_class_balancing": [True],
    "q": [0.3],
    "beta": [0.3],
    "k": [2],
    "threshold": [0.3],
    "thresholds": [[0.2, 0.6]],
    "top_k": [2],
    "class_id": [1],
    "average": [None, "micro", "macro", "weighted"],
    "curve": ["PR"],
    "summation_method": ["minoring", "majoring"],
    "multi_label": [True],
    "num_thresholds": [5],
    "class_aggregation": ["variance_weighted_average", "uniform_average"],
    "num_regressors": [1],
    "dtype": ["float64", "float16"],
}
REQUIRED = {
    "num_classes": C, "target_class_ids": [0, 2], "recall": 0.5, "precision": 0.5,
    "specificity": 0.5, "sensitivity": 0.5, "fn": "mean_squared_error",
}


def variants(keras_cls):
    """Constructor kwargs: the defaults (plus required ones), then one option changed."""
    params = inspect.signature(keras_cls.__init__).parameters
    base = {k: v for k, v in REQUIRED.items() if k in params}
    if keras_cls.__name__ in ("MeanMetricWrapper",):
        base["fn"] = keras.metrics.mean_squared_error
    yield base
    for key, values in CONSTRUCTOR_GRID.items():
        if key in params:
            for value in values:
                yield {**base, key: value}


def kestrel_kwargs(kwargs: dict) -> dict:
    """The same kwargs for Kestrel (functions looked up by name)."""
    out = dict(kwargs)
    if callable(out.get("fn")):
        out["fn"] = getattr(kestrel.metrics, out["fn"].__name__)
    return out


def sweep_loss_classes(report, pattern):
    """Every `keras.losses` class over input kinds, options, weights, masks and dtypes."""
    for name in sorted(n for n in dir(keras.losses) if n[0].isupper()):
        if name in ("Loss", "CTC") or pattern not in name:
            continue
        keras_cls, kestrel_cls = getattr(keras.losses, name), getattr(kestrel.losses, name)
        for kwargs, kind, three_d, dtype in itertools.product(
                list(variants(keras_cls)), KIND_NAMES, (False, True),
                ("float16", "float32", "float64")):
            y_true, y_pred = make_inputs(kind, three_d, dtype)
            masks = {"mask=None": None, "mask": make_mask(three_d)}
            for (sw_name, sw), (mask_name, mask) in itertools.product(
                    sample_weights(three_d).items(), masks.items()):
                def call(module, cls, kw):
                    obj = cls(**kw)
                    return lambda: obj(*tensors([y_true, y_pred], mask),
                                       sample_weight=None if sw is None else torch.tensor(sw))
                diff = run_pair(call(keras, keras_cls, kwargs), call(kestrel, kestrel_cls, kwargs))
                if diff:
                    report(f"losses.{name}({kwargs}) {kind} 3d={three_d} {dtype} "
                           f"{sw_name} {mask_name}: {diff}")
        for kwargs in variants(keras_cls):
            check_config(report, f"losses.{name}({kwargs})", keras_cls, kestrel_cls, kwargs)


def check_config(report, label, keras_cls, kestrel_cls, kwargs):
    """get_config equal, from_config round trip, and Keras' config loads in Kestrel."""
    try:
        expected = keras_cls(**kwargs).get_config()
    except Exception:
        return
    try:
        got = kestrel_cls(**kestrel_kwargs(kwargs)).get_config()
        kestrel_cls.from_config(got)
        if "fn" not in expected:
            kestrel_cls.from_config(dict(expected))
    except Exception as error:
        report(f"{label} config: kestrel raised {type(error).__name__}: {error}")
        return
    expected.pop("name", None), got.pop("name", None)
    if set(expected) != set(got):
        report(f"{label} config keys: keras-only={set(expected) - set(got)} "
               f"kestrel-only={set(got) - set(expected)}")
    for key in set(expected) & set(got):
        if key != "fn" and expected[key] != got[key]:
            report(f"{label} config[{key!r}]: keras={expected[key]!r} kestrel={got[key]!r}")


def sweep_functions(report, module_name, pattern):
    """Every lower-case function of the module over input kinds and dtypes."""
    keras_module = getattr(keras, module_name)
    kestrel_module = getattr(kestrel, module_name)
    skip = {"get", "serialize", "deserialize", "ctc"}
    for name in sorted(n for n in dir(keras_module) if n[0].islower() and n not in skip):
        if pattern not in name:
            continue
        keras_fn, kestrel_fn = getattr(keras_module, name), getattr(kestrel_module, name, None)
        if kestrel_fn is None:
            report(f"{module_name}.{name}: missing in kestrel")
            continue
        params = inspect.signature(keras_fn).parameters
        extra = [{}] + [{k: v} for k, vs in CONSTRUCTOR_GRID.items() if k in params
                        and k != "reduction" for v in vs]
        for kw, kind, three_d, dtype in itertools.product(
                extra, KIND_NAMES, (False, True), ("float16", "float32", "float64")):
            y_true, y_pred = make_inputs(kind, three_d, dtype)
            diff = run_pair(lambda: keras_fn(*tensors([y_true, y_pred]), **kw),
                            lambda: kestrel_fn(*tensors([y_true, y_pred]), **kw))
            if diff:
                report(f"{module_name}.{name}({kw}) {kind} 3d={three_d} {dtype}: {diff}")


def sweep_metric_classes(report, pattern):
    """Every metric class: two update_state calls, result, reset_state, config."""
    skip = {"Metric"}
    for name in sorted(n for n in dir(keras.metrics) if n[0].isupper() and n not in skip):
        if pattern not in name:
            continue
        keras_cls, kestrel_cls = getattr(keras.metrics, name), getattr(kestrel.metrics, name)
        for kwargs, kind, three_d, dtype in itertools.product(
                list(variants(keras_cls)), KIND_NAMES, (False, True), ("float32", "float64")):
            batches = [make_inputs(kind, three_d, dtype, seed) for seed in (0, 1)]
            for (sw_name, sw), mask in itertools.product(
                    sample_weights(three_d).items(), (None, make_mask(three_d))):
                def run(cls, kw):
                    def go():
                        metric = cls(**kw)
                        for y_true, y_pred in batches:
                            args = [y_pred] if name in ("Mean", "Sum") else [y_true, y_pred]
                            metric.update_state(*tensors(args, mask), sample_weight=None
                                                if sw is None else torch.tensor(sw))
                        first = to_numpy(metric.result()).copy()
                        metric.reset_state()
                        return np.concatenate([first.ravel(), to_numpy(metric.result()).ravel()])
                    return go
                diff = run_pair(run(keras_cls, kwargs), run(kestrel_cls, kestrel_kwargs(kwargs)))
                if diff:
                    report(f"metrics.{name}({kwargs}) {kind} 3d={three_d} {dtype} {sw_name} "
                           f"mask={mask is not None}: {diff}")
        for kwargs in variants(keras_cls):
            check_config(report, f"metrics.{name}({kwargs})", keras_cls, kestrel_cls, kwargs)


def main():
    """Run the sweep; print one line per mismatch, then the count."""
    pattern = sys.argv[1] if len(sys.argv) > 1 else ""
    seen = []

    def report(line):
        seen.append(line)
        print(line, flush=True)

    sweep_loss_classes(report, pattern)
    sweep_functions(report, "losses", pattern)
    sweep_functions(report, "metrics", pattern)
    sweep_metric_classes(report, pattern)
    print(f"{len(seen)} mismatches; cases: {COUNTS}")


if __name__ == "__main__":
    main()
