"""The Layer base class: a `torch.nn.Module` with Keras' lifecycle.

`__init__` takes hyperparameters, `build(input_shape)` creates weights with `add_weight` on the
first call, `call` computes. Calling a layer on symbolic `KerasTensor`s records a graph node and
infers output shapes on torch's meta device, without computing real data.
"""
from __future__ import annotations

import collections
import functools
import inspect
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from kestrel import config, dtype_policies
from kestrel.dtype_policies import DTypePolicy, DTypePolicyMap
import kestrel.backend.rebinding as rebinding
from kestrel.backend.scopes import current_path, name_scope
from kestrel.layers import auto_config, initialization, remat, stateless
from kestrel.layers import naming, tracking, training_mode
from kestrel.layers import call_masks, keras1_args, node_arguments, shape_inference
from kestrel.layers import symbolic_masks
from kestrel.layers.input_spec import InputSpec, check_input_shapes
from kestrel.layers.masks import mask_of, set_mask
from kestrel.layers.node import (KerasTensor, Node, flatten, is_string_array, is_symbolic,
                                 map_structure, shape_of)
from kestrel.layers.weights import assign_keras_value, keras_value
from kestrel.registry import object_registry
from kestrel.registry.bounds import short_repr
from kestrel.variables import Variable, discarding_assignments, wrap as wrap_variable

MAX_WEIGHT_ELEMENTS = 2**34  # larger weights are refused before any allocation
_BASE_KWARGS = {"input_shape", "batch_input_shape", "batch_size", "input_dim"}
# Keys that configs written by other Keras versions carry and Kestrel does not need; dropped
# from a config when the class does not take them (any other unknown key is refused).
_IGNORED_CONFIG_KEYS = {"quantization_config", "time_major", "implementation", "ragged",
                        "sparse", "lora_rank", "lora_alpha", "optional", "synchronized",
                        "query_shape", "key_shape", "value_shape", "softmax_robust_masking",
                        "groups"}  # tf-keras MultiHeadAttention, Keras 2 DepthwiseConv2D


def _weight_shape(layer, name, shape) -> tuple:
    """`shape` of a new weight as a tuple of ints; other entries are a ValueError, as Keras."""
    dims = () if shape is None else tuple(shape) if hasattr(shape, "__iter__") else None
    if dims is None or any(isinstance(d, (str, float)) or not hasattr(d, "__index__")
                           for d in dims):
        raise ValueError(
            f"Layer '{layer.name}' ({type(layer).__name__}) cannot create weight '{name}': its "
            f"shape must be a tuple of integers. Received: shape={shape!r}")
    return tuple(int(d) for d in dims)


def resolve_policy(dtype) -> DTypePolicy:
    """The dtype policy of a `dtype` argument: None (the global policy), a name, a torch or
    NumPy dtype, a policy, a `DTypePolicyMap`, or the config of one."""
    if isinstance(dtype, dict) and "class_name" not in dtype:  # a bare `{"config": ...}`
        dtype = dtype.get("config", {}).get("name")
    return dtype_policies.get(dtype)


_KERAS_WEIGHT_ARGS = ("shape", "initializer", "dtype", "trainable", "autocast", "regularizer",
                      "constraint", "aggregation", "overwrite_with_gradient", "name")
_OWN_WEIGHT_ARGS = ("name", "shape", "initializer", "dtype", "trainable", "regularizer",
                    "constraint")


def _name_traced_outputs(outputs) -> None:
    """Take the KerasTensor names Keras gives the outputs of the trace that builds a layer
    (see `Layer._keras_traces_to_build`)."""
    for tensor in flatten(outputs):
        if isinstance(tensor, (torch.Tensor, KerasTensor)):
            naming.unique_name("keras_tensor")


_GRAPH_PROPERTIES = frozenset({"input", "output", "input_shape", "output_shape"})
_MODULE_GETATTR = nn.Module.__getattr__


class Layer(nn.Module):
    """Base class of every Kestrel layer; a real `torch.nn.Module`.

    Args:
        trainable: whether the layer's weights are updated by training.
        name: unique name; generated from the class name when omitted (`dense`, `dense_1`).
        dtype: dtype of the weights (e.g. `"float32"`, `"float64"`).
        activity_regularizer: regularizer applied to the layer's output.
    """

    _call_accepts_training = False
    _fills_training = False  # a `call` from outside Kestrel that takes `training` (see __call__)
    # the non-None `training` default of Keras' `call` signature for this layer: its
    # functional node records it (node_arguments) and Keras hands it on to the layers called
    # after it (training_mode.claim_default)
    _keras_training_default: bool | None = None
    _call_accepts_mask = False
    _call_named_masks = frozenset()  # `<name>_mask` arguments of `call` (see call_masks)
    _unmasked_in_unmasked_out = True  # compute_mask returns None when no input has a mask
    _records_mask_ops = False  # compute_mask runs on KerasTensors (see symbolic_masks)
    _keras_builds_at_init = False  # see _keras_builds_at_init
    _closes_over_graph = False  # its `call` reads graph tensors it is not given (graph_closures)
    _convert_input_args = True  # floating inputs cast to the layer's dtypes (models: False)
    _keras_converts_inputs = True  # Keras' `__call__` converts inputs (see node_arguments)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._read_call_signature()
        if "build" in cls.__dict__:
            cls.build = _marks_built(cls.__dict__["build"])
        keras1_form = keras1_args.KERAS1_FORMS.get(cls.__name__)
        if keras1_form is not None and cls.__module__.startswith("kestrel."):
            cls.__init__ = keras1_args.keras1_init(cls.__init__, keras1_form)

    @classmethod
    def _read_call_signature(cls) -> None:
        """Set the class flags that follow from `call`'s signature (again when the bases of
        `cls` change, as a functional-constructed Model subclass's do)."""
        params = inspect.signature(cls.call).parameters
        cls._call_accepts_training = "training" in params
        # Kestrel's own layers read an unset `training` from their module flag; a user's
        # `call` gets the mode in force as its argument, as Keras passes an outer call's
        user_call = not (cls.call.__module__ or "").startswith("kestrel.")  # None: exec'd code
        cls._fills_training = cls._call_accepts_training and user_call
        if user_call:
            default = params["training"].default if cls._call_accepts_training else None
            cls._keras_training_default = default if isinstance(default, bool) else None
        cls._call_accepts_mask = "mask" in params
        cls._call_signature = call_masks.call_signature(cls.call)
        cls._call_named_masks = call_masks.named_mask_arguments(cls._call_signature)
        # declared (or not) by the class that defines the compute_mask in use
        owner = next(k for k in cls.__mro__ if "compute_mask" in k.__dict__)
        cls._unmasked_in_unmasked_out = owner is Layer or \
            owner.__dict__.get("_unmasked_in_unmasked_out", False)
        cls._records_mask_ops = symbolic_masks.records_mask_ops(cls)

    def __new__(cls, *args, **kwargs):
        layer = super().__new__(cls)
        if cls.get_config is Layer.get_config:  # a class without its own config: Keras' auto one
            layer.__dict__["_auto_config"] = auto_config.capture(cls, args, kwargs)
        return layer

    def __init__(self, *, activity_regularizer=None, trainable: bool = True, dtype=None,
                 autocast: bool = True, name: str | None = None, **kwargs):
        initial_weights = kwargs.pop("weights", None)  # Keras 2: set once the layer is built
        unknown = set(kwargs) - _BASE_KWARGS
        if unknown:
            raise ValueError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: "
                f"{short_repr({k: kwargs[k] for k in sorted(unknown)})}")
        super().__init__()
        for attr in self.__dict__.pop("_set_before_init", ()):  # see __setattr__
            setattr(self, attr, self.__dict__.pop(attr))
        self.training = False  # Keras semantics: inference unless fit() or training=True
        if name is not None and not isinstance(name, str):
            raise ValueError(f"Layer name must be a string. Received: name={short_repr(name)}")
        self.name = name or naming.unique_name(naming.to_snake_case(type(self).__name__))
        self._set_policy(resolve_policy(dtype))
        self.autocast = autocast
        self._trainable = bool(trainable)
        self.built = False
        # as Keras 3: a layer that defines its own compute_mask propagates masks
        self.supports_masking = type(self).compute_mask is not Layer.compute_mask
        self.input_spec: InputSpec | list | None = None
        self._build_input_shape = None
        self._weight_order: list[str] = []
        self._weight_layouts: dict[str, tuple] = {}
        self._keras_weight_names: dict[str, str] = {}  # torch attribute -> Keras name if unequal
        self._regularizers: list[tuple[str, Any]] = []
        self._constraints: list[tuple[str, Any]] = []
        self._losses: list[torch.Tensor] = []
        self._inbound_nodes: list[Node] = []
        from kestrel import regularizers

        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._batch_input_shape = _batch_shape_from_kwargs(kwargs)
        self._parent_path = None  # the name scopes open when first built or called
        if initial_weights is not None:
            self.__dict__["_weights_once_built"] = initial_weights
        remat.install(self)  # inside a RematScope: recompute the forward pass in backward

    # ------------------------------------------------------------------ lifecycle
    def build(self, input_shape) -> None:
        """Create the layer's weights for `input_shape` (batch dimension included)."""
        self.built = True

    def call(self, *args, **kwargs):
        raise NotImplementedError(f"Layer {type(self).__name__} does not implement call().")

    # True on a layer whose symbolic call could not be traced to build its sublayers: its
    # next run builds them, inside its name scope (see `_trace_to_build`).
    _builds_when_run = False

    def forward(self, *args, **kwargs):
        if self._builds_when_run:
            self._builds_when_run = False
            with self._open_name_scope():
                return self.forward(*args, **kwargs)
        if rebinding.layer_needs_rebinding(type(self)):  # `a *= b` in Keras 2 code
            with rebinding.rebinding():
                return self.call(*args, **kwargs)
        return self.call(*args, **kwargs)

    def _build_from_shape(self, input_shape) -> None:
        self._build_input_shape = input_shape
        with self._open_name_scope():
            self.build(input_shape)
        self.built = True
        if "_weights_once_built" in self.__dict__:
            self.set_weights(self.__dict__.pop("_weights_once_built"))

    def _open_name_scope(self) -> name_scope:
        """This layer's name scope, under the scopes open the first time it is opened (a build
        or first call): weights created inside get paths `<outer scopes>/<layer>/<weight>`."""
        if self.__dict__.get("_parent_path") is None:
            self._parent_path = current_path()
            if isinstance(self._dtype_policy, DTypePolicyMap):  # its entry for the new path
                self._set_policy(self._dtype_policy)
        return name_scope(self.name, caller=self)

    def build_from_config(self, build_config: dict | None) -> None:
        """Build from the `build_config` a saved config carries (`{"input_shape": ...}`)."""
        shape = (build_config or {}).get("input_shape")
        if shape is not None and not self.built:
            self._build_from_shape(shape_inference.to_shape_tuple(shape))

    def get_build_config(self) -> dict | None:
        if self._build_input_shape is None or _keras_builds_at_init(type(self)):
            return None
        return {"input_shape": shape_inference.to_shape_list(self._build_input_shape)}

    # ------------------------------------------------------------------ calling
    def __call__(self, *args, **kwargs):
        if training_mode.idle():  # the outermost call: a default claimed inside ends with it
            with training_mode.outermost(self):
                return Layer.__call__(self, *args, **kwargs)
        if not args and kwargs and not is_symbolic(kwargs):  # eager `layer(inputs=x)`: built
            args, kwargs = _first_by_position(self._call_signature, kwargs)  # as `layer(x)`
        first = args[0] if args else None
        if self._keras_training_default is not None and kwargs.get("training") is None \
                and training_mode.unclaimed() and type(first) is not KerasTensor:
            training_mode.claim_default(self._keras_training_default)
        if self._fills_training and kwargs.get("training") is None and training_mode.active():
            kwargs["training"] = self.training
        if len(args) == 1 and not kwargs and type(first) in _PLAIN_KINDS and self._plain(first):
            return self._call_plain(self._unmasked(super().__call__), first)
        if not isinstance(first, torch.Tensor) and not _tensor_list(first):
            if type(first) is KerasTensor or is_symbolic((args, kwargs)):
                return self._symbolic_call(args, kwargs)
            if _holds_arrays(first):  # NumPy data, as Keras accepts in `model(x)`
                first = map_structure(_array_to_tensor, first)
                args = (first,) + args[1:]
        if len(args) > 1 or kwargs:  # the other arguments too (`mha(q, v, attention_mask=m)`)
            args, kwargs = _other_arrays_to_tensors(args, kwargs)
        if not self.built:
            traced = self._keras_traces_to_build()
            with self._open_name_scope():  # sublayers built by the first call nest under it
                self._build_on_call(first)
                if self.built:
                    outputs = self(*args, **kwargs)
                    if traced:
                        _name_traced_outputs(outputs)
                    self._warn_if_left_unbuilt()
                    return outputs
        if self._losses:
            self._losses.clear()
        if self.autocast and self.built and self._convert_input_args:
            if type(first) is torch.Tensor:
                target = self._input_cast_dtype()
                if first.is_floating_point() and first.dtype is not target:
                    args = (first.to(target),) + args[1:]
            elif type(first) in (list, tuple):  # merging layers: each input, as Keras
                args = (_cast_floats(first, self._input_cast_dtype()),) + args[1:]
        mask_aware = self.supports_masking or self._call_accepts_mask
        previous_mask = masked_first = None
        if mask_aware or self._call_named_masks:
            kwargs, masked_first, previous_mask = call_masks.fill(self, args, kwargs)
        if not self.supports_masking:
            self._warn_if_mask_dropped(previous_mask, first, kwargs)
        if "mask" in kwargs and not self._call_accepts_mask:
            del kwargs["mask"]
        switch = None
        explicit = False
        if "training" in kwargs:
            training = kwargs["training"]
            if not self._call_accepts_training:
                del kwargs["training"]
            if training is not None:
                explicit = True
                training_mode.enter()
                if bool(training) != self.training:
                    switch = self.training
                    self.train(bool(training))
        try:
            if self._autocast_dtype is not None and isinstance(first, torch.Tensor) \
                    and not torch.is_autocast_enabled(first.device.type):
                _POLICY_AUTOCAST.append(self)
                try:
                    with torch.autocast(first.device.type, dtype=self._autocast_dtype):
                        outputs = super().__call__(*args, **kwargs)
                finally:
                    _POLICY_AUTOCAST.pop()
            elif _POLICY_AUTOCAST and self._autocast_dtype is None \
                    and isinstance(first, torch.Tensor):
                with torch.autocast(first.device.type, enabled=False):  # its own dtype, as Keras
                    outputs = super().__call__(*args, **kwargs)
            else:
                outputs = super().__call__(*args, **kwargs)
            if self._autocast_dtype is not None:
                outputs = in_compute_dtype(self, outputs)
        except (RuntimeError, IndexError) as error:
            self._explain_failure(first, error)
            raise
        finally:
            if switch is not None:
                self.train(switch)
            if explicit:
                training_mode.leave()
        if mask_aware:
            out_mask = self.compute_mask(masked_first, previous_mask)
            if out_mask is not None:
                set_mask(outputs, out_mask)
        if self.activity_regularizer is not None:  # averaged over the batch, as Keras >= 3.14
            for out in flatten(outputs):
                self._losses.append(self.activity_regularizer(out) / max(out.shape[0], 1))
        return outputs

    # Elementwise layers set this to a method `_in_place(x, position)` computing `call(x)` into
    # the tensor at `position` of a list `x` (or into a tensor `x` itself, position 0) where
    # they can: see `_call_in_graph`.
    _in_place = None
    # True where Keras' layer computes eagerly in its variable dtype under a mixed policy
    # (CategoryEncoding): `in_compute_dtype` leaves its outputs as they come.
    _outputs_in_variable_dtype = False
    # True where `call` returns a new tensor, or a whole view of one, that it keeps no
    # reference to (not even for backward): only such outputs are handed to `_in_place`.
    _output_is_fresh = False

    def _call_in_graph(self, x, donated: int | None = None):
        """`self(x)` for a model running its layers on a tensor or a list of tensors: `forward`
        itself when nothing else would happen (`_plain`, no torch hooks, no torch.jit tracing),
        which saves torch's module call machinery on every layer of every batch. `donated`:
        the position of an input tensor the model hands over (nothing else holds it), which
        `_in_place` may overwrite with the result."""
        if self._keras_training_default is not None:
            self._claim_in_graph()
        if self._runs_plain(x):
            if donated is not None:
                return self._call_plain(functools.partial(self._in_place, position=donated), x)
            return self._call_plain(self._unmasked(self.forward), x)
        return self(x)

    def _takes_padding(self, padding_layer) -> bool:
        """Whether a model may hand this layer the input of the `ZeroPadding` layer before it
        and its padding (`_call_padded_in_graph(x, pads)`) instead of the padded tensor: only
        layers that pad as they compute (convolutions, pooling) say yes."""
        return False

    # Elementwise activation layers name the builtin activation their `call` computes, where
    # `padded_activation` can write it into a zero-padded buffer (see
    # `_call_padding_output_in_graph`); None elsewhere.
    _padded_activation = None

    def _call_padding_output_in_graph(self, x, padding_layer):
        """`padding_layer(self(x))` for a model that fused the `ZeroPadding` reading this
        layer's output into it: the activation computed into the padded buffer."""
        from kestrel.layers import padded_activation

        if self._runs_plain(x) and padding_layer._runs_plain(x) and padded_activation.applies(x) \
                and x.ndim == padding_layer.rank + 2:
            return self._call_plain(lambda t: padded_activation.apply(
                self._padded_activation, t, padding_layer.padding, padding_layer._first_spatial), x)
        return padding_layer._call_in_graph(self._call_in_graph(x))

    def _claim_in_graph(self) -> None:
        """In a model's graph, the layer's `training` default (Keras' node holds it) sets the
        mode of an outermost call made without one (see training_mode.claim_default)."""
        if training_mode.claimable():
            training_mode.claim_default(self._keras_training_default, override=True)

    def _runs_plain(self, x) -> bool:
        """Whether `self(x)` from a model may run `forward` directly (`_call_in_graph`)."""
        return type(x) in _PLAIN_KINDS and self._plain(x) and not (
            self._fills_training or self._forward_hooks or self._forward_pre_hooks
            or self._backward_hooks or self._backward_pre_hooks or _any_global_hook()
            or torch._C._get_tracing_state())

    def _unmasked(self, run):
        """`run` as the full call path would invoke it when nothing is masked: with
        `mask=None` where `call` takes a mask."""
        return functools.partial(run, mask=None) if self._call_accepts_mask else run

    def _call_plain(self, run, x):
        """`run(x)` for a call `_plain` allows: fresh `losses`, and torch errors caused by a
        wrong input turned into clear ones."""
        if self._losses:
            self._losses.clear()
        try:
            return run(x)
        except (RuntimeError, IndexError) as error:
            self._explain_failure(x, error)
            raise

    def _plain(self, inputs) -> bool:
        """Whether calling on `inputs` (a tensor, or a flat list, tuple or dict of tensors, as
        models and merging layers take) needs nothing beyond `call`: built, nothing masked, no
        dtype cast, no autocast, no activity regularizer, and a layer that then computes no
        mask of its own (the hot path)."""
        if not (self.built and self._unmasked_in_unmasked_out and self._autocast_dtype is None
                and self.activity_regularizer is None and not _POLICY_AUTOCAST):
            return False
        if type(inputs) is torch.Tensor:
            return getattr(inputs, "_keras_mask", None) is None and \
                (inputs.dtype is self._variable_dtype or not self.autocast)
        target = self._input_cast_dtype() if self.autocast and self._convert_input_args \
            and type(inputs) is not dict else None
        for t in (inputs.values() if type(inputs) is dict else inputs):
            if type(t) is not torch.Tensor or getattr(t, "_keras_mask", None) is not None \
                    or target is not None and t.dtype is not target and t.is_floating_point():
                return False
        return True

    def _build_on_call(self, first) -> None:
        shapes = shape_of(first)
        check_input_shapes(self, self.input_spec, shapes)
        self._build_from_shape(shapes)
        devices = {t.device for t in flatten(first) if isinstance(t, torch.Tensor)}
        if len(devices) == 1:
            device = devices.pop()
            if device.type != "meta" and any(
                    t.device != device for t in self._own_tensors()):
                self.to(device)

    def _keras_traces_to_build(self) -> bool:
        """Whether Keras' first call builds this layer by tracing `call` on KerasTensors: a
        layer without a `build` of its own holding unbuilt sublayers. The trace names a
        KerasTensor per output (`_name_traced_outputs`), which shifts later tensor names."""
        from kestrel.models.model import Model

        return type(self).build in (Layer.build, Model.build) and \
            any(not l.built for l in self._flatten_layers(False, recursive=False))

    def _warn_if_left_unbuilt(self) -> None:
        """Keras' warning after the first call of a user layer without a `build` of its own
        whose call left a sublayer unbuilt (one it never calls, say)."""
        if type(self).build is Layer.build and not type(self).__module__.startswith("kestrel.") \
                and any(not (l.built or _keras_builds_at_init(type(l)))  # Dropout: built in Keras
                        for l in self._flatten_layers(False, recursive=False)):
            warnings.warn(
                f"`build()` was called on layer '{self.name}', however the layer does not have "
                "a `build()` method implemented and it looks like it has unbuilt state. This "
                "will cause the layer to be marked as built, despite not being actually built, "
                "which may cause failures down the line. Make sure to implement a proper "
                "`build()` method.")

    def _explain_failure(self, first, error) -> None:
        """Turn a torch error caused by a wrong input into a clear ValueError."""
        try:
            check_input_shapes(self, self.input_spec, shape_of(first))
        except ValueError as clear:
            raise clear from error

    def _symbolic_call(self, args, kwargs):
        first = args[0] if args else next(iter(kwargs.values()))
        self._check_not_strings(args, kwargs)
        shapes = shape_of(first)
        check_input_shapes(self, self.input_spec, shapes)
        first_call = not self.built
        traced = first_call and self._keras_traces_to_build()
        with self._open_name_scope():
            if first_call:
                self._build_from_shape(shapes)
                if traced and type(self).compute_output_shape is not Layer.compute_output_shape:
                    self._trace_to_build(args, kwargs)
            outputs = self._record_node(first, args, kwargs, traced)
        if first_call:
            self._warn_if_left_unbuilt()
        return outputs

    def _trace_to_build(self, args, kwargs) -> None:
        """Keras builds a layer without a `build` of its own by tracing its `call` even where
        `compute_output_shape` gives the output: sublayers get built (and named) inside this
        layer's scope. A call that cannot be traced warns, as Keras, and builds when run."""
        try:
            self._infer_output_spec(args, kwargs)
        except Exception as error:  # noqa: BLE001 - Keras warns and lets the real call build
            self._builds_when_run = True
            warnings.warn(
                f"Layer '{self.name}' looks like it has unbuilt state, but Keras is not able "
                "to trace the layer `call()` in order to build it automatically. Possible "
                "causes:\n1. The `call()` method of your layer may be crashing. Try to "
                "`__call__()` the layer eagerly on some test input first to see if it works. "
                "E.g. `x = np.random.random((3, 4)); y = layer(x)`\n2. If the `call()` method "
                "is correct, then you may need to implement the `def build(self, input_shape)` "
                "method on your layer. It should create all variables used by the layer (e.g. "
                "by calling `layer.build()` on all its children layers).\nException "
                f"encountered: ''{error}''")

    def _record_node(self, first, args, kwargs, traced: bool = False):
        """The symbolic outputs of a call on KerasTensors, recorded as a new node (`traced`:
        Keras traced the call once more to build the layer, see `_keras_traces_to_build`)."""
        spec_kwargs, previous_mask = kwargs, shape_inference.symbolic_mask(first)
        if self._call_accepts_mask or self._call_named_masks:  # a mask consumer sees its masks
            spec_kwargs, first, previous_mask = call_masks.fill(self, args, dict(kwargs))
        if not self.supports_masking:
            self._warn_if_mask_dropped(previous_mask, first, kwargs)
        with discarding_assignments():
            outputs = self.compute_output_spec(*args, **spec_kwargs)
            if traced:
                _name_traced_outputs(outputs)
            for tensor in flatten(outputs):  # named at creation, before the mask's ops, as Keras
                if isinstance(tensor, KerasTensor):
                    tensor.name = naming.unique_name("keras_tensor")
            self._attach_output_masks(first, previous_mask, outputs)
        self._clear_losses()  # a symbolic call adds no loss, and starts afresh as in Keras
        node = Node(self, args, node_arguments.recorded_kwargs(self, args, kwargs, spec_kwargs),
                    outputs)
        self._inbound_nodes.append(node)
        for index, tensor in enumerate(node.output_tensors):
            tensor._keras_history = (self, len(self._inbound_nodes) - 1, index)
        for tensor in node.output_tensors:  # a new mask is named after the outputs, as in Keras
            mask = getattr(tensor, "_keras_mask", None)
            if isinstance(mask, KerasTensor) and mask._name is None:
                mask.name = naming.unique_name("keras_tensor")
        return outputs

    _warned_mask_dropped = False

    def _warn_if_mask_dropped(self, previous_mask, first, kwargs) -> None:
        """Keras' warning when a masked input (the call's `mask`, else its first argument's)
        reaches a layer that does not support masking; here once per layer."""
        if self._warned_mask_dropped:
            return
        if previous_mask is None:
            previous_mask = kwargs.get("mask")
        if previous_mask is None:
            previous_mask = mask_of(first)
        if all(m is None for m in flatten(previous_mask)):
            return
        self._warned_mask_dropped = True
        warnings.warn(
            f"Layer '{self.name}' (of type {type(self).__name__}) was passed an input with a "
            "mask attached to it. However, this layer does not support masking and will "
            "therefore destroy the mask information. Downstream layers will not see the mask.")

    def _attach_output_masks(self, first, previous_mask, outputs) -> None:
        """The symbolic outputs' masks: from `compute_mask` on the KerasTensors where its ops
        are recorded (as in Keras), else from a run on placeholders."""
        if not self.supports_masking or previous_mask is None and self._unmasked_in_unmasked_out:
            return
        if not (self._records_mask_ops and symbolic_masks.attach_recorded_masks(
                self, first, previous_mask, outputs)):
            shape_inference.attach_output_masks(self, first, outputs)

    accepts_strings = False  # set by the layers that read string data (lookups, hashing, ...)

    def _check_not_strings(self, args, kwargs) -> None:
        """Kestrel's numeric layers refuse `dtype="string"` inputs with a clear message."""
        if self.accepts_strings or not type(self).__module__.startswith("kestrel.layers"):
            return
        if any(isinstance(t, KerasTensor) and t.dtype == "string"
               for t in flatten((args, kwargs))):
            raise TypeError(
                f"{type(self).__name__} '{self.name}' cannot take string inputs (dtype="
                "'string'): map strings to numbers first, e.g. with StringLookup, Hashing or "
                "TextVectorization.")

    def compute_output_shape(self, input_shape):
        """Output shape for `input_shape`; the default runs `call` on meta tensors."""
        raise NotImplementedError

    def compute_output_spec(self, *args, **kwargs):
        """Symbolic outputs for symbolic inputs, from `compute_output_shape` or a meta run."""
        if type(self).compute_output_shape is not Layer.compute_output_shape:
            first = args[0] if args else next(iter(kwargs.values()))
            out_shape = self.compute_output_shape(shape_of(first))
            dtype = self._symbolic_input_dtype(flatten(first)[0].dtype)
            return shape_inference.shapes_to_keras_tensors(out_shape, dtype)
        return shape_inference.infer_output_spec(self, args, kwargs)

    def _symbolic_input_dtype(self, dtype):
        """The dtype a symbolic input of `dtype` has in `call`: a floating one in the compute
        dtype, as Keras' `__call__` casts it (unless the layer takes inputs as they come)."""
        if self.autocast and self._convert_input_args and isinstance(dtype, str) \
                and dtype.startswith(("float", "bfloat")):
            return self.compute_dtype
        return dtype

    def _infer_output_spec(self, args, kwargs):
        with discarding_assignments():
            return shape_inference.infer_output_spec(self, args, kwargs)

    def _run_on_placeholders(self, args, kwargs, size):
        try:
            with discarding_assignments():
                return shape_inference.run_on_placeholders(self, args, kwargs, size)
        finally:
            self._clear_losses()  # losses of placeholder data are not the layer's losses

    def compute_mask(self, inputs, previous_mask=None):
        """The mask of this layer's output; by default passes the input mask through."""
        return previous_mask if self.supports_masking else None

    # ------------------------------------------------------------------ weights
    def add_weight(self, *args, **kwargs) -> Variable:
        """Create a weight of Keras shape `shape`: a `Variable`, which is an `nn.Parameter`
        when trainable and is registered as a buffer otherwise.

        Positional arguments follow Keras 3 (`shape, initializer, dtype, trainable, autocast,
        regularizer, constraint, ...`), or Kestrel's own order (`name, shape, initializer,
        dtype, trainable, regularizer, constraint`) when the first one is a name.
        """
        order = _OWN_WEIGHT_ARGS if args and isinstance(args[0], str) else _KERAS_WEIGHT_ARGS
        if len(args) > len(order):
            raise TypeError(f"Layer '{self.name}': add_weight() takes at most {len(order)} "
                            f"positional arguments. Received: {len(args)}")
        for key, value in zip(order, args):
            if key in kwargs:
                raise TypeError(f"Layer '{self.name}': add_weight() got multiple values for "
                                f"argument '{key}'")
            kwargs[key] = value
        for key in ("autocast", "aggregation", "overwrite_with_gradient"):  # Keras' own
            kwargs.pop(key, None)
        return self._create_weight(**kwargs)

    def _create_weight(self, name: str | None = None, shape=None, initializer=None, dtype=None,
                       trainable: bool = True, regularizer=None, constraint=None, *,
                       layout: tuple | None = None, attr: str | None = None) -> Variable:
        """`add_weight` with its arguments named.

        `layout` is an optional `(to_torch, to_keras)` pair of functions when the layer stores
        the weight in a torch-friendly layout; `shape`, initializers, `get_weights()` and saved
        files always use the Keras layout. `attr` is the torch attribute when it must differ
        from `name` (Normalization's `mean` is a Keras attribute of its own).
        """
        from kestrel import constraints, initializers, regularizers

        shape = _weight_shape(self, name or "variable", shape)
        torch_dtype = config.to_torch_dtype(dtype) if dtype is not None else self._variable_dtype
        if initializer is None:
            initializer = "glorot_uniform" if torch_dtype.is_floating_point else "zeros"
        # an unnamed weight is `variable`, `variable_1`, ... as Keras names it; its torch
        # attribute stays `variable_<index>`, so state_dict keys do not depend on creation order
        if attr is not None and name:
            self._keras_weight_names[attr] = name
        attr = attr or name or f"variable_{len(self._weight_order)}"
        name = name or naming.unique_name("variable")
        value = self._initial_value(initializers.get(initializer), name, shape, torch_dtype)
        if layout is not None:
            value = layout[0](value).contiguous()
        value = value.to(device=config.device(), dtype=torch_dtype)
        if attr in self.__dict__ and self.__dict__[attr] is None:  # `self.w = None` in
            del self.__dict__[attr]  # __init__, then `self.w = self.add_weight(name="w")`
        if attr in self._weight_order or attr in self.__dict__ or hasattr(type(self), attr):
            # taken, or a class attribute (`weights`, `trainable`, a method): a free name
            attr = f"{attr}_{len(self._weight_order)}"
        with name_scope(self.name, caller=self):
            path = f"{current_path()}/{name}"
        tensor = wrap_variable(value, trainable=trainable, name=name, path=path,
                               requires_grad=self._trainable)
        if trainable:
            self.register_parameter(attr, tensor)
        else:
            self.register_buffer(attr, tensor)
        self._weight_order.append(attr)
        if layout is not None:
            self._weight_layouts[attr] = layout
        tensor.regularizer = regularizers.get(regularizer)
        tensor.constraint = constraints.get(constraint)
        if regularizer is not None:
            self._regularizers.append((attr, tensor.regularizer))
        if constraint is not None:
            self._constraints.append((attr, tensor.constraint))
        return tensor

    def _initial_value(self, initializer, name: str, shape: tuple, dtype) -> torch.Tensor:
        """`initializer(shape)`, refusing negative or oversized shapes before allocating."""
        what = f"Layer '{self.name}' ({type(self).__name__}) cannot create weight '{name}'"
        size = int(np.prod(shape, dtype=object))
        if min(shape, default=0) < 0 or size > MAX_WEIGHT_ELEMENTS:
            raise ValueError(
                f"{what}: its shape must have non-negative sizes and at most 2**34 elements; "
                f"check the layer's size arguments (e.g. units, filters). Received: "
                f"shape={shape} ({size} elements)")
        if initialization.skipped():
            return torch.zeros(shape, dtype=dtype)
        try:
            return initializer(shape, dtype=dtype)
        except RuntimeError as error:  # torch.OutOfMemoryError, or the CPU allocator's
            if not isinstance(error, torch.OutOfMemoryError) and "allocate" not in str(error):
                raise
            raise type(error)(f"{what} of shape {shape}: {error}") from error

    def _apply(self, fn, recurse=True):
        """torch's `_apply` (`.to()`, `.double()`, ...), keeping the identity of the Variables
        registered as buffers, which torch would replace with plain tensors."""
        held = {k: b for k, b in self._buffers.items() if isinstance(b, Variable)}
        for key in held:
            self._buffers[key] = None
        try:
            result = super()._apply(fn, recurse)
            for variable in held.values():
                new = fn(variable)
                if new is not variable:
                    variable.data = new
        finally:
            self._buffers.update(held)
        return result

    def _own_tensors(self) -> list[torch.Tensor]:
        return [getattr(self, n) for n in self._weight_order]

    def _sublayers(self) -> list["Layer"]:
        return [m for m in self._modules.values() if isinstance(m, Layer)]

    def _flatten_layers(self, include_self: bool = True, recursive: bool = True) -> list:
        """This layer and its sublayers, each once, in Keras' order (a private Keras method
        that keras.io examples call, e.g. to list the layers a quantization changed)."""
        def children(layer):  # a Sequential's InputLayer first, as Keras tracks it
            return sorted(layer._sublayers(), key=lambda l: type(l).__name__ != "InputLayer")

        layers, seen = [self] if include_self else [], set()
        queue = collections.deque(children(self))
        while queue:
            layer = queue.popleft()
            if id(layer) not in seen:
                seen.add(id(layer))
                layers.append(layer)
                if recursive:
                    queue.extendleft(children(layer))
        return layers

    def _device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return config.device()

    def _weight_entries(self) -> list[tuple["Layer", str]]:
        """(owner layer, attribute) for every weight, in Keras order, shared ones once."""
        entries, seen = [], set()
        def visit(layer):
            for attr in layer._weight_order:
                key = id(getattr(layer, attr))
                if key not in seen:
                    seen.add(key)
                    entries.append((layer, attr))
            for sub in layer._sublayers():
                visit(sub)
        visit(self)
        return entries

    @property
    def weights(self) -> list[torch.Tensor]:
        """All weights, layer by layer as Keras 3 orders them: a layer's own trainable then
        non-trainable weights (a weight frozen after its creation, as LoRA's base kernel,
        keeps its place among the trainable ones), then its sublayers' (shared ones once)."""
        trainable = {id(t) for t in self.trainable_weights}
        out, seen = [], set()
        def visit(layer):
            frozen = layer.__dict__.get("_frozen_after_creation", ())
            own = [(attr, getattr(layer, attr)) for attr in layer._weight_order]
            for _, t in sorted(own, key=lambda p: id(p[1]) not in trainable and
                               p[0] not in frozen):
                if id(t) not in seen:
                    seen.add(id(t))
                    out.append(t)
            for sub in layer._sublayers():
                visit(sub)
        visit(self)
        return out

    @property
    def trainable_weights(self) -> list[torch.Tensor]:
        if not self._trainable:
            return []
        out = [getattr(self, n) for n in self._weight_order
               if isinstance(getattr(self, n), nn.Parameter)]
        for sub in self._sublayers():
            out.extend(t for t in sub.trainable_weights if not any(t is o for o in out))
        return out

    @property
    def non_trainable_weights(self) -> list[torch.Tensor]:
        if not self._trainable:
            return [getattr(owner, a) for owner, a in self._weight_entries()]
        out = [getattr(self, n) for n in self._weight_order
               if not isinstance(getattr(self, n), nn.Parameter)]
        for sub in self._sublayers():
            out.extend(t for t in sub.non_trainable_weights if not any(t is o for o in out))
        return out

    @property
    def variables(self) -> list[torch.Tensor]:
        return self.weights

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        value = bool(value)
        for module in self.modules():
            if isinstance(module, Layer):
                module._trainable = value
                for attr in module._weight_order:
                    tensor = getattr(module, attr)
                    if isinstance(tensor, nn.Parameter):
                        tensor.requires_grad_(value)

    def _ordered_weight_entries(self) -> list[tuple["Layer", str]]:
        """Entries in `get_weights()` order: the order of `self.weights`."""
        return self._entries_of(self.weights)

    def _legacy_weight_entries(self) -> list[tuple["Layer", str]]:
        """Entries in Keras 2's order (all trainable weights, then all non-trainable ones), as
        its `.h5` files list a nested model's weights."""
        return self._entries_of(self.trainable_weights + self.non_trainable_weights)

    def _entries_of(self, tensors) -> list[tuple["Layer", str]]:
        by_id = {id(getattr(owner, attr)): (owner, attr) for owner, attr in self._weight_entries()}
        return [by_id[id(t)] for t in tensors]

    def get_weights(self) -> list[np.ndarray]:
        """The weights as NumPy arrays, in Keras' layouts and order."""
        return [keras_value(owner, attr).detach().cpu().numpy().copy()  # a snapshot, as Keras
                for owner, attr in self._ordered_weight_entries()]

    def set_weights(self, weights) -> None:
        """Set the weights from NumPy arrays in Keras' layouts and order."""
        entries = self._ordered_weight_entries()
        weights = list(weights)
        if len(weights) != len(entries):
            raise ValueError(
                f"You called `set_weights(weights)` on layer '{self.name}' with a weight list "
                f"of length {len(weights)}, but the layer was expecting {len(entries)} weights.")
        for (owner, attr), value in zip(entries, weights):
            assign_keras_value(owner, attr, value)

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't "
                "built. You can build it manually via: `layer.build(input_shape)`.")
        return int(sum(t.numel() for t in self.weights))

    # ------------------------------------------------------------------ stateless, own state
    def stateless_call(self, trainable_variables, non_trainable_variables, *args,
                       return_losses: bool = False, **kwargs):
        """Call the layer on the given variable values without changing its own; returns
        `(outputs, non_trainable_variables)` (+ `losses` with `return_losses`). Gradients flow
        to the given trainable values; see `kestrel.layers.stateless`."""
        return stateless.stateless_call(self, trainable_variables, non_trainable_variables,
                                        *args, return_losses=return_losses, **kwargs)

    def save_own_variables(self, store) -> None:
        """Put this layer's own weights into `store` as `"0"`, `"1"`, ... (Keras layout);
        override to save other state too (`.keras` and `.weights.h5` files call it)."""
        from kestrel.saving.keras_weights import save_own_variables

        save_own_variables(self, store)

    def load_own_variables(self, store) -> None:
        """Set this layer's own weights from `store` (`"0"`, `"1"`, ...); the counterpart of
        `save_own_variables`."""
        from kestrel.saving.keras_weights import load_own_variables

        load_own_variables(self, store)

    def quantize(self, mode=None, type_check=True, config=None, filters=None) -> None:
        """Quantize the weights (`"int8"`) of this built layer, or of every leaf layer of a
        model that supports it; see `kestrel.quantizers.apply.quantize`."""
        from kestrel.quantizers.apply import quantize

        quantize(self, mode, type_check=type_check, config=config, filters=filters)

    # ------------------------------------------------------------------ losses
    def add_loss(self, loss, inputs=None) -> None:
        """Add a scalar loss term, or a list of them (e.g. from inside `call`); they join
        `self.losses`. `inputs` (Keras 2's conditional losses) is accepted and ignored."""
        for term in loss if isinstance(loss, (list, tuple)) else [loss]:
            if isinstance(term, KerasTensor):
                raise ValueError(
                    f"Layer '{self.name}': add_loss() of a symbolic tensor needs the functional "
                    "model whose inputs compute it: call `model.add_loss(tensor)` on it. "
                    f"Received: loss={short_repr(term)}")
            if not isinstance(term, torch.Tensor):
                term = torch.as_tensor(term, dtype=torch.float32)
            self._losses.append(term)
            scope = stateless.get_stateless_scope()
            if scope is not None and scope.collect_losses:
                scope.add_loss(term)

    def _clear_losses(self) -> None:
        """Forget the losses added by the last call of this layer and of its sublayers."""
        for layer in self.modules():
            if isinstance(layer, Layer) and layer._losses:
                layer._losses.clear()

    @property
    def losses(self) -> list[torch.Tensor]:
        """Losses added during the last call plus weight regularization penalties."""
        return collect_losses([m for m in self.modules() if isinstance(m, Layer)])

    def _apply_constraints(self) -> None:
        for attr, constraint in self._constraints:
            with torch.no_grad():
                assign_keras_value(self, attr, constraint(keras_value(self, attr)))

    # ------------------------------------------------------------------ graph info
    def _single_node(self, what: str) -> Node:
        if not self._inbound_nodes:
            raise AttributeError(
                f"Layer '{self.name}' has never been called on a symbolic input and thus has "
                f"no defined {what}.")
        return self._inbound_nodes[0]

    def __getattr__(self, name: str):
        if name in _GRAPH_PROPERTIES:
            # the property raised AttributeError and torch's fallback would hide its message:
            # run it again so that its own error reaches the caller
            return getattr(type(self), name).fget(self)
        return _MODULE_GETATTR(self, name)  # not `super()`: every parameter access comes here

    @property
    def input(self):
        node = self._single_node("input")
        return node.call_args[0] if node.call_args else node.outputs

    @property
    def output(self):
        """The output of the layer's only call: a tensor, or the list of its output tensors."""
        tensors = self._single_node("output").output_tensors
        return tensors[0] if len(tensors) == 1 else list(tensors)

    @property
    def input_shape(self):
        """Keras 2's input shape: that of every call, refused when calls differ in shape."""
        return self._shape_of_every_node("input", self.get_input_shape_at)

    @property
    def output_shape(self):
        """Keras 2's output shape: that of every call, refused when calls differ in shape."""
        return self._shape_of_every_node("output", self.get_output_shape_at)

    def _shape_of_every_node(self, what: str, shape_at):
        self._single_node(f"{what} shape")
        shapes = [shape_at(index) for index in range(len(self._inbound_nodes))]
        if any(shape != shapes[0] for shape in shapes[1:]):
            raise AttributeError(
                f"The layer '{self.name}' has multiple inbound nodes with different {what} "
                f"shapes ({', '.join(map(str, shapes))}), hence the notion of \"{what} shape\" "
                f"is ill-defined for the layer. Use `get_{what}_shape_at(node_index)` instead.")
        return shapes[0]

    # Keras 2's accessors of one call among several (a shared layer has a node per call)
    @property
    def inbound_nodes(self) -> list[Node]:
        return list(self._inbound_nodes)

    def _node_at(self, node_index: int, what: str) -> Node:
        self._single_node(what)
        if not 0 <= node_index < len(self._inbound_nodes):
            raise ValueError(f"Asked to get {what} at node {node_index}, but layer "
                             f"'{self.name}' has only {len(self._inbound_nodes)} inbound nodes.")
        return self._inbound_nodes[node_index]

    def get_input_at(self, node_index: int):
        node = self._node_at(node_index, "input")
        return node.call_args[0] if node.call_args else node.outputs

    def get_output_at(self, node_index: int):
        tensors = self._node_at(node_index, "output").output_tensors
        return tensors[0] if len(tensors) == 1 else list(tensors)

    def get_input_shape_at(self, node_index: int):
        return shape_of(self.get_input_at(node_index))

    def get_output_shape_at(self, node_index: int):
        return shape_of(self.get_output_at(node_index))

    @property
    def dtype(self) -> str:
        """The dtype of the layer's weights (its policy's `variable_dtype`)."""
        return self._active_policy().variable_dtype

    @property
    def dtype_policy(self) -> DTypePolicy:
        """The layer's `DTypePolicy` (or `DTypePolicyMap`); set it with a name, a policy or a
        policy config."""
        return self._dtype_policy

    @dtype_policy.setter
    def dtype_policy(self, value) -> None:
        policy = resolve_policy(value)
        current, path = self._dtype_policy, self.path
        if isinstance(current, DTypePolicyMap) and path:  # as Keras: replace this path's entry
            if path in current:
                del current[path]
            current[path] = policy
            policy = current[path]
        else:
            current = policy
        if policy.quantization_mode is not None:
            self._apply_quantized_policy(policy)
        else:
            self._set_policy(current)

    def _apply_quantized_policy(self, policy: DTypePolicy) -> None:
        """Quantizable layers quantize themselves; others refuse a quantized policy."""
        raise NotImplementedError(
            f"Layer '{self.name}' ({type(self).__name__}) does not support quantization. "
            f"Received: dtype_policy={policy.name!r}")

    def _active_policy(self) -> DTypePolicy:
        """The policy in force: a `DTypePolicyMap`'s entry for the layer's path once it has
        one (its default before), else the layer's policy."""
        policy = self._dtype_policy
        if isinstance(policy, DTypePolicyMap):
            parent = self.__dict__.get("_parent_path")
            if parent is None:
                return policy.default_policy
            return policy[f"{parent}/{self.name}" if parent else self.name]
        return policy

    def _input_cast_dtype(self) -> torch.dtype:
        """The dtype `__call__` casts a floating first input to: a layer with weights takes
        their dtype (autocast then computes), one without its compute dtype, so that
        `Activation("softmax", dtype="float32")` ends a mixed model in float32."""
        return self._variable_dtype if self._weight_order \
            else self._autocast_dtype or self._variable_dtype

    def _set_policy(self, policy: DTypePolicy) -> None:
        """Make `policy` the layer's and cache the torch dtypes `__call__` reads: inputs are
        cast to the dtype of the weights, and `call` runs under autocast when the compute
        dtype differs from it (weights built before the policy changed keep their dtype)."""
        self._dtype_policy = policy
        active = self._active_policy()
        stored = next((w.dtype for w in self.weights if w.is_floating_point()), None) \
            if self.__dict__.get("built") else None
        self._variable_dtype = stored or config.to_torch_dtype(active.variable_dtype)
        compute = config.to_torch_dtype(active.compute_dtype)
        self._autocast_dtype = None if compute is self._variable_dtype else compute

    @property
    def compute_dtype(self) -> str:
        """The dtype the layer computes in (`"float16"` under `mixed_float16`)."""
        return self._active_policy().compute_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype of the layer's weights (Keras 3's name for `dtype`)."""
        return self._active_policy().variable_dtype

    @property
    def input_dtype(self) -> str:
        """The dtype floating-point inputs are cast to: the compute dtype."""
        return self.compute_dtype

    @property
    def path(self) -> str | None:
        """The layer's name under the name scopes open when it was built; None until the
        layer is built, as in Keras 3."""
        if not self.built:
            return None
        parent = self.__dict__.get("_parent_path")
        return f"{parent}/{self.name}" if parent else self.name

    # ------------------------------------------------------------------ Keras 3 aliases
    @property
    def trainable_variables(self) -> list[torch.Tensor]:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list[torch.Tensor]:
        return self.non_trainable_weights

    def add_variable(self, shape, initializer, dtype=None, trainable=True, autocast=True,
                     regularizer=None, constraint=None, name=None) -> Variable:
        """Keras 3's `add_variable`: `add_weight` with the shape first."""
        return self.add_weight(name, shape, initializer, dtype, trainable, regularizer,
                               constraint)

    @property
    def metrics(self) -> list:
        """Metrics assigned as attributes of this layer and of its sublayers."""
        return self._attribute_metrics()

    def _attribute_metrics(self, skip: type | tuple = ()) -> list:
        """Metrics assigned as public attributes of this layer and of its sublayers, leaving
        out those of sublayers of the types `skip` (their sublayers still count)."""
        from kestrel.metrics import Metric

        found = []
        for module in self.modules():
            if module is not self and isinstance(module, skip):
                continue
            attrs = vars(module)
            # a layer indexes its metric attributes as they are set; other modules are read
            names = attrs.get("_metric_attrs", ()) if isinstance(module, Layer) else attrs
            found.extend(v for v in (attrs.get(k) for k in names if not k.startswith("_"))
                         if isinstance(v, Metric) and not any(v is m for m in found))
            found.extend(attrs.get("_added_metrics", {}).values())  # Keras 2's add_metric
        return found

    @property
    def updates(self) -> list:
        """tf.keras 2's `layer.updates`, with its deprecation warning: `[]`, as in TF 2's eager
        mode (layers apply their updates, such as BatchNormalization's moving statistics,
        themselves), or what a Keras 1 layer assigned to it."""
        warnings.warn("`layer.updates` will be removed in a future version. This property "
                      "should not be used, as `updates` are applied automatically.",
                      DeprecationWarning, stacklevel=2)
        return self.__dict__.get("_keras2_updates", [])

    @updates.setter
    def updates(self, value) -> None:
        self.__dict__["_keras2_updates"] = value

    def add_metric(self, value, name=None, aggregation="mean") -> None:
        """Keras 2's `add_metric` (inside `call`): `name` is logged as the mean of `value`
        over the epoch's batches, with the compiled metrics."""
        from kestrel.layers.added_metrics import add_metric

        add_metric(self, value, name, aggregation)

    @property
    def metrics_variables(self) -> list[torch.Tensor]:
        """The state variables of `metrics`."""
        return [v for metric in self.metrics for v in metric.variables]

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """Constructor arguments as JSON-able data (`{**super().get_config(), ...}`); a class
        that does not override it gets the arguments it was constructed with, as Keras."""
        automatic = type(self).get_config is Layer.get_config
        config = {
            **(auto_config.config_of(self) if automatic else {"name": self.name}),
            "trainable": self.trainable,
            "dtype": dtype_policies.serialize(self.dtype_policy),
        }
        if self.activity_regularizer is not None:  # only when set, as Keras
            from kestrel import regularizers

            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict):
        """Rebuild a layer from `get_config()` output (Keras 2 and Keras 3 configs accepted)."""
        return cls(**clean_config(cls, config))

    def _names_sublayer(self, name: str) -> bool:
        """Whether `name` is the key of a sublayer a model registered under its layer name."""
        modules = self.__dict__.get("_modules")
        return bool(modules) and name in modules and \
            getattr(modules[name], "name", None) == name

    def __setattr__(self, name: str, value) -> None:
        if name == "training":  # set by train()/eval() on every module: skip the slow path
            object.__setattr__(self, name, value)
            return
        if "_modules" not in self.__dict__ and isinstance(value, (torch.nn.Module, *_CONTAINERS)):
            # a sublayer set before `super().__init__()`, as tf.keras 2 allowed (Géron's
            # `DenseTranspose`): kept as it is until `__init__` tracks it
            object.__setattr__(self, name, value)
            self.__dict__.setdefault("_set_before_init", []).append(name)
            return
        if self._names_sublayer(name) and value is not None and \
                not isinstance(value, torch.nn.Module):
            object.__setattr__(self, name, value)  # a model's sublayer `Dense(name="outputs")`
            return  # stays in `_modules`; the attribute (`model.outputs`) is the value
        if isinstance(value, Variable) and "_weight_order" in self.__dict__ \
                and name not in self._weight_order and not self._owns(value):
            self._track_variable(name, value)  # `self.v = keras.Variable(...)`, as Keras
            return
        if getattr(type(value), "_kestrel_metric", False) and name[0] != "_":
            self.__dict__.setdefault("_metric_attrs", {})[name] = None  # see _attribute_metrics
        if name[0] == "_" or not (isinstance(value, _CONTAINERS)
                                  or isinstance(self.__dict__.get(name), _CONTAINERS)):
            super().__setattr__(name, value)
            return
        value = tracking.track(self, name, value)  # lists/dicts of layers, as Keras' trackers
        super().__setattr__(name, value)
        tracking.sync(self, name, value)

    def _owns(self, tensor) -> bool:
        """Whether `tensor` is already a parameter or buffer of this layer or its sublayers."""
        return any(tensor is t for t in (*self.parameters(), *self.buffers()))

    def _track_variable(self, attr: str, variable: Variable) -> None:
        """A Variable assigned as an attribute becomes one of this layer's weights."""
        if isinstance(variable, nn.Parameter):
            self.register_parameter(attr, variable)
        else:
            self.register_buffer(attr, variable)
        self._weight_order.append(attr)  # its path stays its name, as Keras' outside a build

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


_PLAIN_KINDS = (torch.Tensor, list, tuple, dict)  # input types `Layer._plain` judges
# The layers whose mixed policy opened the running torch.autocast, outermost first: a layer
# inside with a policy of one dtype (`dtype="float32"`) computes with autocast off, as Keras
_POLICY_AUTOCAST: list = []
_CONTAINERS = (list, tuple, dict)  # attribute values that may hold sublayers


def _any_global_hook() -> bool:
    """Whether torch has a hook for every module (`register_module_forward_hook`, ...)."""
    check = getattr(torch.nn.modules.module, "_has_any_global_hook", None)
    return True if check is None else bool(check())


def collect_losses(layers: list[Layer]) -> list[torch.Tensor]:
    """The `add_loss` terms and weight penalties of `layers`."""
    out = []
    for layer in layers:
        out.extend(layer._losses)
        for attr, regularizer in layer._regularizers:
            out.append(regularizer(keras_value(layer, attr)))
    return out


def _first_by_position(signature, kwargs: dict) -> tuple[tuple, dict]:
    """`(args, kwargs)` with the first parameter of `call`, when given by keyword, moved to
    the front of the positional arguments."""
    params = iter(signature.parameters.values())
    first = next(params, None)
    if first is None or first.kind is not first.POSITIONAL_OR_KEYWORD or first.name not in kwargs:
        return (), kwargs
    kwargs = dict(kwargs)
    return (kwargs.pop(first.name),), kwargs


def _tensor_list(value) -> bool:
    """A plain list of real tensors (e.g. a merging layer's inputs): the common eager case."""
    return type(value) is list and bool(value) and all(type(t) is torch.Tensor for t in value)


def _holds_arrays(value) -> bool:
    if isinstance(value, np.ndarray):
        return True
    if isinstance(value, (list, tuple, dict)):
        return any(isinstance(v, np.ndarray) for v in flatten(value))
    return False


def _other_arrays_to_tensors(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """NumPy arrays among the arguments after the first as tensors, as Keras converts them."""
    if any(_holds_arrays(a) for a in args[1:]):
        args = args[:1] + tuple(map_structure(_array_to_tensor, a) for a in args[1:])
    if any(_holds_arrays(v) for v in kwargs.values()):
        kwargs = {k: map_structure(_array_to_tensor, v) for k, v in kwargs.items()}
    return args, kwargs


def _array_to_tensor(value):
    if not isinstance(value, np.ndarray) or is_string_array(value):  # strings stay NumPy
        return value
    from kestrel.ops.convert import from_numpy  # read-only arrays (pandas' .values) copied

    tensor = from_numpy(np.ascontiguousarray(value))
    return tensor.to(config.to_torch_dtype(config.floatx())) if tensor.dtype == torch.float64 \
        else tensor


def _keras_builds_at_init(cls) -> bool:
    """Whether Keras builds a layer of `cls` at construction, keeping no build shapes: its
    classes that say so (`_keras_builds_at_init`), unless a subclass defines its own `build`."""
    for klass in cls.__mro__:
        if "_keras_builds_at_init" in klass.__dict__:
            return klass.__dict__["_keras_builds_at_init"]
        if "build" in klass.__dict__:
            return False
    return False


def in_compute_dtype(layer, outputs):
    """The floating `outputs` of a Kestrel layer under a mixed policy in its compute dtype, as
    Keras' layers return them (under torch's autocast, normalizations, embeddings and sums
    with float32 weights come out in float32). A user's layer keeps what its `call` returns
    (an explicit cast to float32 stays), and so does a layer computing in its variable dtype
    as Keras' (`_outputs_in_variable_dtype`)."""
    if not _is_kestrel_layer(type(layer)) or layer._outputs_in_variable_dtype:
        return outputs
    dtype = layer._autocast_dtype

    def cast(t):
        if type(t) is not torch.Tensor or not t.is_floating_point() or t.dtype is dtype:
            return t
        mask = getattr(t, "_keras_mask", None)
        t = t.to(dtype)
        if mask is not None:
            t._keras_mask = mask
        return t
    return map_structure(cast, outputs)


@functools.cache
def _is_kestrel_layer(cls) -> bool:
    """A layer class of `kestrel.layers` (not a model, not a user's subclass)."""
    return cls.__module__.startswith("kestrel.layers.")


def _cast_floats(inputs, dtype: torch.dtype):
    """`inputs` (a list or tuple) with its floating tensors cast to `dtype`; the same object
    when none needs it."""
    if not any(type(t) is torch.Tensor and t.is_floating_point() and t.dtype is not dtype
               for t in inputs):
        return inputs
    return type(inputs)(t.to(dtype) if type(t) is torch.Tensor and t.is_floating_point()
                        else t for t in inputs)


def _marks_built(build):
    """Wrap a subclass' `build` so that calling it directly opens the layer's name scope and
    marks the layer built, as Keras does."""

    params = list(inspect.signature(build).parameters.values())[1:]
    takes_shape = any(p.kind is not p.VAR_KEYWORD for p in params)  # Keras: `build(self)` too

    @functools.wraps(build)
    def wrapper(self, input_shape=None, *args, **kwargs):
        with self._open_name_scope():
            if takes_shape:
                build(self, input_shape, *args, **kwargs)
            else:
                build(self, *args, **kwargs)
        if self._build_input_shape is None and input_shape is not None:
            self._build_input_shape = input_shape
        self.built = True

    return wrapper


def clean_config(cls, config: dict) -> dict:
    """The arguments of `cls` in `config`: keys that other Keras versions write and Kestrel
    ignores are dropped when `cls` does not take them; any other key `cls` does not take is
    refused, as Keras 3 does."""
    accepted = set()
    takes_kwargs = False
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind is param.VAR_KEYWORD:
                takes_kwargs = True
            else:
                accepted.add(param.name)
        if klass is Layer:
            break
    accepted |= _BASE_KWARGS
    config = {k: v for k, v in config.items() if k in accepted or k not in _IGNORED_CONFIG_KEYS}
    if not takes_kwargs or issubclass(cls, Layer):
        unknown = sorted(k for k in config if k not in accepted)
        if unknown:
            raise ValueError(
                f"Unrecognized argument(s) {short_repr(unknown)} in the config of layer "
                f"{short_repr(config.get('name'))} ({cls.__name__}): {cls.__name__} does not "
                f"take them. Received: {unknown[0]}={short_repr(config[unknown[0]])}")
    return config


def _batch_shape_from_kwargs(kwargs: dict):
    if kwargs.get("input_shape") is not None or kwargs.get("input_dim") is not None:
        warnings.warn("Do not pass an `input_shape`/`input_dim` argument to a layer. When "
                      "using Sequential models, prefer using an `Input(shape)` object as the "
                      "first layer in the model instead.", stacklevel=3)
    if kwargs.get("batch_input_shape") is not None:
        return tuple(kwargs["batch_input_shape"])
    if kwargs.get("input_shape") is not None:
        return (kwargs.get("batch_size"),) + tuple(kwargs["input_shape"])
    if kwargs.get("input_dim") is not None:
        return (kwargs.get("batch_size"), kwargs["input_dim"])
    return None


def register_layer(*aliases: str):
    """Register a built-in layer class for deserialization by name."""
    return object_registry.register_builtin("layers", *aliases)


Layer = register_layer()(Layer)
