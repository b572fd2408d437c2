"""Keras 2's `keras.backend` tensor and variable functions, on `kestrel.ops`.

Functions whose Keras 2 signature equals a Keras 3 op are that op (table `_SAME_AS_OPS`); those
that are an op under Keras 2's argument names and defaults (`K.cumsum` runs along axis 0,
`K.tile(x, n)`) are that op behind Keras 2's signature (table `_OPS_WITH_KERAS2_ARGS`). The
others differ in meaning (`concatenate` joins on the last axis, `sqrt` clips at 0,
`hard_sigmoid` is `0.2 x + 0.5`, `argmax` is int64) and are written here once, on the ops.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import inspect

import numpy as np
import torch

from kestrel import config
from kestrel import ops
from kestrel import random as krandom
from kestrel.backend import keras2_nn
from kestrel.backend.dtypes import is_float_dtype, standardize_dtype
from kestrel.backend.scopes import name_scope  # noqa: F401 - K.name_scope
from kestrel.layers.in_place import relayout
from kestrel.layers.node import KerasTensor
from kestrel.ops.dispatch import keras_op

# K name -> kestrel.ops name, for functions with the same arguments and meaning.
_SAME_AS_OPS = {
    "abs": "absolute", "all": "all", "any": "any", "cast": "cast", "cos": "cos",
    "exp": "exp", "log": "log", "max": "max", "min": "min", "prod": "prod", "sigmoid": "sigmoid",
    "sign": "sign", "sin": "sin", "softplus": "softplus", "softsign": "softsign",
    "square": "square", "squeeze": "squeeze", "stack": "stack", "std": "std", "sum": "sum",
    "tanh": "tanh", "var": "var", "is_tensor": "is_tensor", "relu6": "relu6",
}
# K name -> (kestrel.ops name, Keras 2's parameters): the op, called positionally with the
# values of Keras 2's arguments (a `name` argument is accepted and ignored).
_OPS_WITH_KERAS2_ARGS = {
    "cumsum": ("cumsum", "x, axis=0"), "cumprod": ("cumprod", "x, axis=0"),
    "expand_dims": ("expand_dims", "x, axis=-1"), "equal": ("equal", "x, y"),
    "not_equal": ("not_equal", "x, y"), "greater": ("greater", "x, y"),
    "greater_equal": ("greater_equal", "x, y"), "less": ("less", "x, y"),
    "less_equal": ("less_equal", "x, y"), "maximum": ("maximum", "x, y"),
    "minimum": ("minimum", "x, y"), "reshape": ("reshape", "x, shape"),
    "tile": ("tile", "x, n"), "one_hot": ("one_hot", "indices, num_classes"),
    "transpose": ("transpose", "x"), "round": ("round", "x"),
    "zeros_like": ("zeros_like", "x, dtype=None, name=None"),
    "ones_like": ("ones_like", "x, dtype=None, name=None"),
}


def _with_keras2_args(op_name: str, params: str):
    """`kestrel.ops.<op_name>` behind the Keras 2 signature `params` ("x, axis=0")."""
    op = getattr(ops, op_name)
    parameters = []
    for param in params.split(","):
        name, _, default = (part.strip() for part in param.partition("="))
        parameters.append(inspect.Parameter(
            name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=ast.literal_eval(default) if default else inspect.Parameter.empty))
    signature = inspect.Signature(parameters)

    def keras2_function(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return op(*(v for k, v in bound.arguments.items() if k != "name"))

    keras2_function.__signature__ = signature
    keras2_function.__doc__ = f"`kestrel.ops.{op_name}` with Keras 2's arguments ({params})."
    return keras2_function


_LOCAL = []  # the functions written here
_k, _plain = keras2_nn.registrars(_LOCAL)


# ------------------------------------------------------------------ tensor functions
@_k
def sqrt(x):
    return ops.sqrt(ops.relu(x))


@_k
def mean(x, axis=None, keepdims=False):
    """Booleans average as floats; integers keep their dtype (truncated), as Keras 2."""
    x = ops.convert_to_tensor(x)
    if x.dtype == torch.bool:
        x = ops.cast(x, config.floatx())
    if x.is_floating_point() or x.is_complex():
        return ops.mean(x, axis=axis, keepdims=keepdims)
    total = ops.sum(x, axis=axis, keepdims=keepdims)
    count = builtins.max(x.numel() // builtins.max(total.numel(), 1), 1)
    return torch.div(total, count, rounding_mode="trunc").to(x.dtype)


@_k
def argmax(x, axis=-1):
    return ops.cast(ops.argmax(x, axis=axis), "int64")


@_k
def argmin(x, axis=-1):
    return ops.cast(ops.argmin(x, axis=axis), "int64")


@_plain
def stop_gradient(variables):
    """One tensor, or a list of them, cut off from the gradient."""
    if isinstance(variables, (list, tuple)):
        return [ops.stop_gradient(v) for v in variables]
    return ops.stop_gradient(variables)


@_k
def pow(x, a):  # noqa: A001 - Keras 2's name
    return ops.power(x, a)


@_k
def clip(x, min_value, max_value):
    min_value = -np.inf if min_value is None else min_value
    max_value = np.inf if max_value is None else np.maximum(max_value, min_value)
    return ops.clip(x, min_value, max_value)


@_k
def concatenate(tensors, axis=-1):
    return ops.concatenate(tensors, axis=axis)


@_k
def flatten(x):
    return ops.reshape(x, (-1,))


@_k
def batch_flatten(x):
    return ops.reshape(x, (ops.shape(x)[0], -1))


@_k
def permute_dimensions(x, pattern):
    return ops.transpose(x, tuple(pattern))


@_k
def repeat_elements(x, rep, axis):
    return ops.repeat(x, rep, axis=axis)


@_k
def repeat(x, n):
    """(batch, dim) -> (batch, n, dim)."""
    return ops.tile(ops.expand_dims(x, 1), (1, n, 1))


@_k
def switch(condition, then_expression, else_expression):
    then_value = then_expression() if callable(then_expression) else then_expression
    else_value = else_expression() if callable(else_expression) else else_expression
    return ops.where(condition, then_value, else_value)


@_k
def gather(reference, indices):
    return ops.take(reference, ops.cast(indices, "int64"), axis=0)


@_k
def dot(x, y):
    """Keras 2's dot: for n-D inputs, contracts x's last axis with y's second-to-last."""
    x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    if x.ndim <= 2 and y.ndim <= 2:
        return ops.matmul(x, y)
    return ops.tensordot(x, y, axes=[[x.ndim - 1], [y.ndim - 2]])


@_k
def batch_dot(x, y, axes=None):
    """Per-sample dot product over `axes` (default: x's last, y's second-to-last or last)."""
    x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    if axes is None:
        axes = [x.ndim - 1, y.ndim - 2 if y.ndim > 2 else y.ndim - 1]
    if isinstance(axes, int):
        axes = [axes, axes]
    ax, ay = [a % t.ndim for a, t in zip(axes, (x, y))]
    if x.shape[ax] != y.shape[ay]:
        raise ValueError(
            f"Can not do batch_dot on inputs with shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)} with axes={list(axes)}. x.shape[{axes[0]}] != "
            f"y.shape[{axes[1]}] ({x.shape[ax]} != {y.shape[ay]}). Keras 2.3+ (and Kestrel) "
            "keep every non-contracted axis of x and y; Keras <= 2.2 treated leading axes "
            "as batch axes.")
    xm = torch.movedim(x, ax, -1)
    ym = torch.movedim(y, ay, 1)
    rest_x, rest_y = xm.shape[1:-1], ym.shape[2:]
    out = torch.bmm(xm.reshape(x.shape[0], -1, xm.shape[-1]),
                    ym.reshape(y.shape[0], ym.shape[1], -1))
    out = out.reshape(x.shape[0], *rest_x, *rest_y)
    return out.unsqueeze(1) if out.ndim == 1 else out


@_k
def l2_normalize(x, axis=None):
    squares = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return ops.multiply(x, ops.rsqrt(ops.maximum(squares, 1e-12)))


@_k
def relu(x, alpha=0.0, max_value=None, threshold=0.0):
    x = ops.convert_to_tensor(x)
    out = torch.where(x > threshold, x, alpha * (x - threshold) if alpha else torch.zeros_like(x))
    return out if max_value is None else torch.clamp(out, max=max_value)


@_k
def elu(x, alpha=1.0):
    return ops.elu(x, alpha=alpha)


@_k
def hard_sigmoid(x):
    return ops.clip(ops.add(ops.multiply(x, 0.2), 0.5), 0.0, 1.0)


@_k
def softmax(x, axis=-1):
    return ops.softmax(x, axis=axis)


@_k
def binary_crossentropy(target, output, from_logits=False):
    return ops.binary_crossentropy(target, output, from_logits=from_logits)


@_k
def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    return ops.categorical_crossentropy(target, output, from_logits=from_logits, axis=axis)


@_k
def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1,
                                    ignore_class=None):
    """Per-sample loss; samples whose target is `ignore_class` get 0."""
    if ignore_class is None:
        return ops.sparse_categorical_crossentropy(target, output, from_logits=from_logits,
                                                   axis=axis)
    target = ops.convert_to_tensor(target)
    valid = ops.not_equal(target, ignore_class)
    loss = ops.sparse_categorical_crossentropy(ops.where(valid, target, 0), output,
                                               from_logits=from_logits, axis=axis)
    return ops.where(ops.reshape(valid, ops.shape(loss)), loss, 0.0)


@_k
def binary_focal_crossentropy(target, output, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False):
    """Elementwise binary crossentropy scaled by `(1 - p_t) ** gamma` (and, with class
    balancing, by `alpha` for positives and `1 - alpha` for negatives)."""
    probs = ops.sigmoid(output) if from_logits else output
    p_t = ops.add(ops.multiply(target, probs), ops.multiply(ops.subtract(1.0, target),
                                                            ops.subtract(1.0, probs)))
    loss = ops.multiply(ops.power(ops.subtract(1.0, p_t), gamma),
                        ops.binary_crossentropy(target, output, from_logits=from_logits))
    if apply_class_balancing:
        weight = ops.add(ops.multiply(target, alpha),
                         ops.multiply(ops.subtract(1.0, target), 1.0 - alpha))
        loss = ops.multiply(weight, loss)
    return loss


@_k
def categorical_focal_crossentropy(target, output, alpha=0.25, gamma=2.0, from_logits=False,
                                   axis=-1):
    """Categorical crossentropy with each class term scaled by `alpha * (1 - p) ** gamma`."""
    probs = ops.softmax(output, axis=axis) if from_logits else output
    probs = ops.divide(probs, ops.sum(probs, axis=axis, keepdims=True))
    eps = config.epsilon()
    probs = ops.clip(probs, eps, 1.0 - eps)
    terms = ops.multiply(ops.multiply(ops.power(ops.subtract(1.0, probs), gamma), alpha),
                         ops.negative(ops.multiply(target, ops.log(probs))))
    return ops.sum(terms, axis=axis)


@_k
def dropout(x, level, noise_shape=None, seed=None):
    return krandom.dropout(x, level, noise_shape=noise_shape, seed=seed)


# ------------------------------------------------------------------ random tensors
@_plain
def random_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return krandom.normal(shape, mean=mean, stddev=stddev, dtype=dtype, seed=seed)


@_plain
def random_uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Floats in `[minval, maxval)`; for an integer `dtype`, integers in that range."""
    if dtype is not None and not is_float_dtype(standardize_dtype(dtype)):
        return krandom.randint(shape, minval, maxval, dtype=dtype, seed=seed)
    return krandom.uniform(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed)


@_plain
def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    return krandom.truncated_normal(shape, mean=mean, stddev=stddev, dtype=dtype, seed=seed)


@_plain
def random_bernoulli(shape, p=0.0, dtype=None, seed=None):
    """1 with probability `p`, else 0, in `dtype` (default `floatx()`)."""
    draws = krandom.uniform(shape, dtype=dtype, seed=seed)
    return ops.cast(ops.less(draws, p), dtype or config.floatx())


@_plain
def random_binomial(shape, p=0.0, dtype=None, seed=None):
    """Keras 2's older name of `random_bernoulli`."""
    return random_bernoulli(shape, p=p, dtype=dtype, seed=seed)



# ------------------------------------------------------------------ shapes and dtypes
@_plain
def int_shape(x):
    """The static shape as a tuple (None for unknown sizes)."""
    return tuple(x.shape) if isinstance(x, (KerasTensor, torch.Tensor)) else np.shape(x)


def _runtime_shape(x):
    return torch.tensor(tuple(x.shape), dtype=torch.int32, device=x.device)


_runtime_shape.output_spec = lambda x: KerasTensor((len(x.shape),), "int32")
_symbolic_shape = keras_op(_runtime_shape, name="shape", prefix="backend.")


@_plain
def shape(x):
    """The shape; of a symbolic tensor with unknown sizes, a symbolic int32 tensor (as Keras
    2), so that `K.prod(K.cast(K.shape(x), "float32"))` can be recorded."""
    if isinstance(x, KerasTensor) and None in x.shape:
        return _symbolic_shape(x)
    return ops.shape(x)


@_plain
def ndim(x):
    return len(int_shape(x))


@_plain
def dtype(x):
    return standardize_dtype(x.dtype)


@_plain
def is_keras_tensor(x):
    return isinstance(x, KerasTensor)


@_plain
def count_params(x):
    return np.prod(int_shape(x))


# ------------------------------------------------------------------ variables
@_plain
def variable(value, dtype=None, name=None, constraint=None):
    from kestrel.variables import Variable

    dtype = standardize_dtype(dtype or config.floatx())
    return Variable(value, dtype=dtype, trainable=is_float_dtype(dtype),
                    name=name or "variable")


@_plain
def constant(value, dtype=None, shape=None, name=None):
    tensor = ops.convert_to_tensor(value, dtype=dtype or config.floatx())
    return torch.broadcast_to(tensor, tuple(shape)).clone() if shape is not None else tensor


@_plain
def zeros(shape, dtype=None, name=None):
    return variable(np.zeros(shape), dtype=dtype or config.floatx(), name=name)


@_plain
def ones(shape, dtype=None, name=None):
    return variable(np.ones(shape), dtype=dtype or config.floatx(), name=name)


@_plain
def eye(size, dtype=None, name=None):
    return variable(np.eye(size), dtype=dtype or config.floatx(), name=name)


@_plain
def get_value(x):
    """A NumPy copy of the value (later updates of `x` do not change it)."""
    return np.array(ops.convert_to_numpy(x), copy=True)


@_plain
def eval(x):  # noqa: A001 - Keras 2's name
    return get_value(x)


@_plain
def batch_get_value(tensors):
    return [get_value(t) for t in tensors]


@_plain
def set_value(x, value):
    x.assign(np.asarray(value))


@_plain
def batch_set_value(tuples):
    for x, value in tuples:
        set_value(x, value)


@_plain
def update(x, new_x):
    """`x` assigned `new_x`; a symbolic `new_x` gives the `(x, new_x)` pair (Keras 2's assign
    op) that `K.function(..., updates=[...])` assigns after each call."""
    if isinstance(new_x, KerasTensor):
        return x, new_x
    return x.assign(new_x)


@_plain
def update_add(x, increment):
    if isinstance(increment, KerasTensor):
        return x, x + increment
    return x.assign_add(increment)


@_plain
def update_sub(x, decrement):
    if isinstance(decrement, KerasTensor):
        return x, x - decrement
    return x.assign_sub(decrement)


@_plain
def placeholder(shape=None, ndim=None, dtype=None, sparse=False, name=None, ragged=False):
    """A symbolic input of `shape` (batch included), as `keras.Input(batch_shape=shape)`."""
    from kestrel.layers import Input

    if ragged:
        raise ValueError("K.placeholder: ragged tensors do not exist in torch; pad the "
                         "sequences instead. Received: ragged=True")

    if shape is None:
        if ndim is None:
            raise ValueError("K.placeholder needs `shape` or `ndim`. Received: shape=None, "
                             "ndim=None")
        shape = (None,) * ndim
    return Input(batch_shape=tuple(shape), dtype=dtype or config.floatx(), sparse=sparse,
                 name=name)


def _grad(loss, variable, create_graph: bool):
    """d sum(loss) / d variable, or None where unconnected. A channels-last layer output is
    a view that later layers may read through its base (see `kestrel.layers.in_place`): the
    gradient is then taken at the base and viewed as `variable`."""
    if not loss.requires_grad:
        raise ValueError(
            "K.gradients: the loss does not depend on anything that requires a gradient (an "
            "input fed to K.function, a trainable variable, or a layer output while "
            f"training). Received: loss with shape={tuple(loss.shape)}")
    base = getattr(variable, "_base", None)
    layout = None if base is None or not base.requires_grad else relayout(variable, base)
    target = variable if layout is None else base
    (grad,) = torch.autograd.grad(loss.sum(), [target], create_graph=create_graph,
                                  retain_graph=True, allow_unused=True)
    return grad if grad is None or layout is None else layout[1](grad)


def _gradient(loss, variable):
    """The symbolic gradient's value: differentiable, a zero tensor where unconnected."""
    grad = _grad(loss, variable, create_graph=True)
    return torch.zeros_like(variable) if grad is None else grad


_gradient.output_spec = lambda loss, variable: KerasTensor(tuple(variable.shape),
                                                           standardize_dtype(variable.dtype))
_symbolic_gradient = keras_op(_gradient, name="gradient", prefix="backend.")


@_plain
def gradients(loss, variables):
    """Gradients of `loss` (summed) with respect to each of `variables`.

    On a symbolic loss (built from `Input`s or `model.input`), each gradient is a symbolic
    tensor for `K.function`, as Keras 2's graph gradients; on a real loss, real tensors.
    """
    from kestrel.layers.core.activation import note_gradients_taken

    variables = list(variables) if isinstance(variables, (list, tuple)) else [variables]
    if isinstance(loss, KerasTensor):
        return [_symbolic_gradient(loss, v) for v in variables]
    note_gradients_taken()
    return [_grad(loss, v, create_graph=False) for v in variables]


# ------------------------------------------------------------------ Keras 2.0's image format
@_plain
def image_dim_ordering():
    """`"th"` for channels_first, `"tf"` for channels_last (Keras 2's legacy getter)."""
    return "th" if config.image_data_format() == "channels_first" else "tf"


@_plain
def set_image_dim_ordering(dim_ordering):
    if dim_ordering not in ("tf", "th"):
        raise ValueError(f"Unknown dim_ordering. Expected 'tf' or 'th'. Received: "
                         f"dim_ordering={dim_ordering!r}")
    config.set_image_data_format("channels_first" if dim_ordering == "th" else "channels_last")


@_plain
def normalize_data_format(value=None):
    """`value` lower-cased, checked, or the global image data format for None (Keras 2.2)."""
    return config.standardize_data_format(value)


# ------------------------------------------------------------------ learning phase
_LEARNING_PHASE = {"value": 0}


@_plain
def learning_phase():
    """0 (inference) unless `set_learning_phase(1)`: Keras layers read `training=` instead."""
    return _LEARNING_PHASE["value"]


@_plain
def set_learning_phase(value):
    if value not in (0, 1):
        raise ValueError(f"Expected learning phase to be 0 or 1. Received: value={value!r}")
    _LEARNING_PHASE["value"] = value


@_plain
@contextlib.contextmanager
def learning_phase_scope(value):
    """`K.learning_phase()` is `value` (0 or 1) inside the `with` block."""
    previous = learning_phase()
    set_learning_phase(value)
    try:
        yield
    finally:
        _LEARNING_PHASE["value"] = previous


@_plain
def function(inputs, outputs, updates=None, name=None, **kwargs):
    """A callable over values for symbolic `inputs`, returning the `outputs` as NumPy arrays.

    `K.learning_phase()` may be one of the inputs: its value (0 or 1) is then passed as the
    model's `training` flag. Outputs made by `K.gradients` are computed with autograd.
    `updates` are applied after each call, as Keras 2 did: `(variable, symbolic value)` pairs
    are assigned, `optimizer.get_updates(loss, params)` takes an optimizer step.
    """
    from kestrel.models.model import Model

    single = not isinstance(outputs, (list, tuple))
    outputs = [outputs] if single else list(outputs)
    steps, assignments = _updates(updates or [])
    extra = [g for step in steps for g in step.gradients] + [value for _, value in assignments]
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    phase = [i for i, x in enumerate(inputs) if not isinstance(x, KerasTensor)]
    model = Model(inputs=[x for i, x in enumerate(inputs) if i not in phase],
                  outputs=outputs + extra if extra else (outputs[0] if single else outputs))
    differentiates = builtins.any(getattr(op, "function", None) == _symbolic_gradient.op_name
                         for op in model.operations)

    def run(values):
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if len(values) != len(inputs):
            raise ValueError(f"This K.function takes {len(inputs)} input values. Received: "
                             f"{len(values)} values")
        training = bool(values[phase[0]]) if phase else False
        values = [_fed(v, differentiates) for i, v in enumerate(values) if i not in phase]
        with torch.enable_grad() if differentiates else torch.no_grad():
            result = model(values[0] if len(values) == 1 else values, training=training)
        result = [result] if isinstance(result, torch.Tensor) else list(result)
        result, rest = result[:len(outputs)], [r.detach() for r in result[len(outputs):]]
        for step in steps:
            step.apply(rest[:len(step.params)])
            rest = rest[len(step.params):]
        for (variable, _), value in zip(assignments, rest):
            variable.assign(value)
        return [ops.convert_to_numpy(r.detach()) for r in result]

    return run


def _updates(updates) -> tuple[list, list]:
    """`K.function`'s updates: the optimizer steps and the `(variable, symbolic value)` pairs."""
    from kestrel.optimizers.keras2_updates import GradientUpdate

    steps = [u for u in updates if isinstance(u, GradientUpdate)]
    assignments = [tuple(u) for u in updates if not isinstance(u, GradientUpdate)]
    for pair in assignments:
        if len(pair) != 2 or not isinstance(pair[1], KerasTensor):
            raise ValueError("K.function's updates are `optimizer.get_updates(loss, params)` "
                             "or `(variable, new_value)` pairs whose new value is symbolic. "
                             f"Received: {pair!r}")
    return steps, assignments


def _fed(value, differentiates: bool):
    """An input value as a tensor; a float one requires grad where gradients are asked for."""
    tensor = ops.convert_to_tensor(value)
    if differentiates and tensor.is_floating_point() and not tensor.requires_grad:
        tensor = tensor.detach().requires_grad_(True)
    return tensor


def _from_ops(name):
    return getattr(ops, name)


globals().update({k: _from_ops(v) for k, v in _SAME_AS_OPS.items()})
for _name, (_op, _params) in _OPS_WITH_KERAS2_ARGS.items():
    globals()[_name] = _with_keras2_args(_op, _params)
    globals()[_name].__name__ = globals()[_name].__qualname__ = _name
globals().update({k: getattr(keras2_nn, k) for k in keras2_nn.__all__})
__all__ = sorted({*_SAME_AS_OPS, *_OPS_WITH_KERAS2_ARGS, *_LOCAL, *keras2_nn.__all__, "name_scope"})
