"""Functional models: a graph of layer calls between symbolic inputs and outputs."""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import torch

from kestrel import tree
from kestrel.layers.core.input_layer import Input, InputLayer
from kestrel.layers import graph_closures, node_arguments, padded_activation, training_mode
from kestrel.layers.layer import Layer
from kestrel.layers.normalization import batch_norm_folding
from kestrel.layers.node import KerasTensor, Node, flatten, map_structure
from kestrel.models import handover
from kestrel.models.model import Model
from kestrel.registry import object_registry


class Functional(Model):
    """A model defined by `Model(inputs, outputs)`; runs its nodes in topological order.

    Args:
        inputs: KerasTensor(s) from `Input()`, as a tensor, list or dict; intermediate tensors
            (layer outputs) cut the graph there, each becoming a new `Input` named
            `<tensor name>CLONE`, as in Keras.
        outputs: KerasTensor(s) computed from `inputs`, as a tensor, list or dict.
        name: model name.
    """
    _keras_converts_inputs = False  # so its nodes record the arguments it is given (node_arguments)

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        _warn_on_renamed_inputs(inputs)
        if name is None and type(self) is Functional:  # a subclass is named after its class
            name = _default_name()
        super().__init__(name=name, trainable=trainable, **kwargs)
        if not all(isinstance(t, KerasTensor) and t._keras_history is not None
                   and isinstance(t._keras_history[0], InputLayer) for t in flatten(inputs)):
            self._check_symbolic(inputs, outputs)
            inputs, outputs = _cut_graph(inputs, outputs, self.name)
        self._init_graph(inputs, outputs)

    def _check_symbolic(self, inputs, outputs) -> None:
        for t in flatten(inputs) + flatten(outputs):
            if not isinstance(t, KerasTensor):
                raise ValueError(
                    f"Model '{self.name}': inputs and outputs must be symbolic tensors from "
                    f"Input() and layer calls. Received: {type(t).__name__}")

    def _init_graph(self, inputs, outputs) -> None:
        self._check_symbolic(inputs, outputs)
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        inputs, outputs = _keys_sorted(inputs), _keys_sorted(outputs)
        # as Keras: `outputs=[y]` makes a model that returns `y` itself (`[(a, b)]`: `(a, b)`)
        single = type(outputs) in (list, tuple) and len(outputs) == 1
        self._returned_struct = outputs[0] if single else outputs
        self._single_in_list = single and isinstance(outputs[0], KerasTensor)
        self.inputs = flatten(inputs)
        self.outputs = flatten(outputs)
        self._nodes, layers = _collect_graph(self.inputs, self.outputs + self._loss_tensors,
                                             self.name)
        names = [layer.name for layer in layers]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(
                    f"The name '{name}' is used {names.count(name)} times in the model "
                    f"'{self.name}'. All layer names should be unique.")
        for layer in layers:
            self._modules[layer.name] = layer
        self._layers = layers
        # a Lambda taking K.gradients (Keras 2 graph gradients) needs autograd in predict too
        self._autograd_at_inference = any(getattr(layer, "takes_gradients", False)
                                          for layer in layers)
        self._closes_over_graph = any(layer._closes_over_graph for layer in layers)
        self._compile_plan()
        self.built = True
        self._build_input_shape = map_structure(lambda t: t.shape, inputs)

    def _compile_plan(self) -> None:
        """Assign each symbolic tensor a slot and record, per node, how to call its layer."""
        slots: dict[int, int] = {}
        def slot(t: KerasTensor) -> int:
            return slots.setdefault(id(t), len(slots))
        self._input_slots = [slot(t) for t in self.inputs]
        self._input_ranks = [len(t.shape) for t in self.inputs]
        plan = []
        fed = set(self._input_slots)
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                if node.layer.constant is not None and slot(node.outputs) not in fed:
                    plan.append((node.layer, _GENERAL, ((node.layer.constant,), {}),
                                 [slot(node.outputs)]))
                continue
            kwargs = node_arguments.run_kwargs(node.layer, node.call_kwargs)
            only = node.call_args[0] if len(node.call_args) == 1 and not kwargs else None
            if isinstance(only, KerasTensor):
                simple, arg_spec = _ONE, slot(only)
            elif isinstance(only, list) and all(isinstance(t, KerasTensor) for t in only):
                simple, arg_spec = _LIST, [slot(t) for t in only]
            else:
                simple = _GENERAL
                arg_spec = map_structure(
                    lambda v: _Slot(slot(v)) if isinstance(v, KerasTensor) else v,
                    (node.call_args, kwargs))
            out_slots = [slot(t) for t in node.output_tensors]
            plan.append((node.layer, simple, arg_spec, out_slots))
        self._output_slots = [slot(t) for t in self.outputs]
        self._loss_slots = [slot(t) for t in self._loss_tensors]
        self._n_slots = len(slots)
        kept = set(self._output_slots) | set(self._loss_slots)
        plan = _fuse_norms_into_paddings(_fuse_batch_norms(_fuse_paddings(plan, kept), kept),
                                         kept)
        # free each intermediate after its last reader, as eager torch code does: holding
        # every activation to the end of `call` defeats the allocator (MobileNetV2 predict 2.9x
        # slower than torchvision at batch 8, 128x128)
        last_reader = {}
        for step, (_, simple, arg_spec, _) in enumerate(plan):
            last_reader.update((index, step) for index in _read_slots(simple, arg_spec))
        dead = [[] for _ in plan]
        for index, step in last_reader.items():
            if index not in self._output_slots and index not in self._loss_slots:
                dead[step].append(index)
        fresh = {index for layer, simple, _, out_slots in plan
                 if layer._output_is_fresh and simple is not _PADDING_OUTPUT  # saved for backward
                 for index in out_slots}
        self._plan = [(*entry, frees, _donors(entry, set(frees) & fresh))
                      for entry, frees in zip(plan, dead)]

    @property
    def layers(self) -> list[Layer]:
        """The layers, in graph order; op nodes (`x + y`, `ops.mean(x)`) are not layers."""
        return [layer for layer in self._layers if not getattr(layer, "is_op_node", False)]

    @property
    def operations(self) -> list[Layer]:
        """Every node of the graph, layers and op nodes, in graph order (as Keras 3)."""
        return list(self._layers)

    @property
    def input_names(self) -> list[str]:
        return [t._keras_history[0].name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        """The output layers' names; a layer giving several outputs (a nested model) gets
        `name`, `name_1`, ... as in Keras 2, so each output keeps its own loss and metrics
        (Keras 3 repeats the name, and its logs then show one output's loss twice)."""
        names, counts = [], {}
        for tensor in self.outputs:
            name = proposal = tensor._keras_history[0].name
            while proposal in names:
                counts[name] = counts.get(name, 0) + 1
                proposal = f"{name}_{counts[name]}"
            names.append(proposal)
        return names

    def __call__(self, *args, **kwargs):
        if args and type(args[0]) is np.ndarray and type(self._inputs_struct) is list and \
                len(self._inputs_struct) == 1:  # Keras wraps only a tensor into `[x]`
            self._warn_if_nested_differently(args[0])
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        replays = training_mode.enter_graph()
        try:
            if self._closes_over_graph:
                with graph_closures.model_run(self, inputs, training):
                    return self._run_graph(inputs, training, mask)
            return self._run_graph(inputs, training, mask)
        finally:
            training_mode.leave_graph(replays)

    def _run_graph(self, inputs, training, mask):
        if getattr(self, "_autograd_at_inference", False) and not torch.is_grad_enabled():
            with torch.enable_grad():
                outputs = self.call(inputs, training=training, mask=mask)
            return map_structure(
                lambda t: t.detach() if isinstance(t, torch.Tensor) else t, outputs)
        values: list = [None] * self._n_slots
        flat = self._flatten_inputs(inputs)
        for position, (index, tensor, rank) in enumerate(
                zip(self._input_slots, flat, self._input_ranks)):
            if tensor is not None and tensor.ndim != rank:
                tensor = self._adjust_rank(position, tensor)
            values[index] = tensor
        for layer, simple, arg_spec, out_slots, frees, donors in self._plan:
            if simple is _ONE:
                if donors and handover.owned(values, arg_spec):
                    outputs = layer._call_in_graph(handover.take(values, arg_spec), 0)
                else:
                    outputs = layer._call_in_graph(values[arg_spec])
            elif simple is _LIST:
                donor = handover.first_owned(values, arg_spec, donors) if donors else None
                if donor is not None:
                    outputs = layer._call_in_graph(
                        handover.take_from_list(values, arg_spec, donor), donor)
                else:
                    outputs = layer._call_in_graph([values[i] for i in arg_spec])
            elif simple is _PAD:
                x = values[arg_spec]
                outputs = _Padding(x, layer.padding) if layer._runs_plain(x) \
                    else layer._call_in_graph(x)
            elif simple is _PADDED:
                x = values[arg_spec]
                outputs = layer._call_padded_in_graph(x.tensor, x.pads) if type(x) is _Padding \
                    else layer._call_in_graph(x)
            elif simple is _PADDING_OUTPUT and arg_spec.norm is None:
                outputs = layer._call_padding_output_in_graph(values[arg_spec.index],
                                                              arg_spec.padding)
            elif simple is _PADDING_OUTPUT:
                outputs = padded_activation.after_norm(layer, arg_spec.padding, arg_spec.norm,
                                                       arg_spec.conv,
                                                       *_unpadded(values[arg_spec.index]))
            elif simple is _CONV_NORM:
                outputs = batch_norm_folding.call(layer, arg_spec.norm,
                                                  *_unpadded(values[arg_spec.index]))
            else:
                args, kwargs = map_structure(
                    lambda v: values[v.index] if type(v) is _Slot else v, arg_spec)
                if layer._keras_training_default is not None and kwargs.get("training") is None:
                    layer._claim_in_graph()
                outputs = layer(*args, **kwargs)
            for index in frees:
                values[index] = None
            if len(out_slots) == 1:
                values[out_slots[0]] = outputs if isinstance(outputs, torch.Tensor) \
                    else flatten(outputs)[0]
            else:
                for index, value in zip(out_slots, flatten(outputs)):
                    values[index] = value
            outputs = args = kwargs = value = x = None  # `values` alone holds them: see handover
        self._losses.extend(values[i] for i in self._loss_slots)
        if self._single_in_list:
            return values[self._output_slots[0]]
        results = iter([values[i] for i in self._output_slots])
        return map_structure(lambda _: next(results), self._returned_struct)

    @property
    def _loss_tensors(self) -> list[KerasTensor]:
        return getattr(self, "_symbolic_losses", [])

    def add_loss(self, loss, inputs=None) -> None:
        """Add loss terms; symbolic tensors computed from this model's inputs are recomputed at
        every call and join `losses` (Keras 2's `model.add_loss(kt)`; Keras 3 refuses them).

        Example:
            >>> x = kestrel.Input((3,)); y = kestrel.layers.Dense(2)(x)
            >>> model = kestrel.Model(x, y); model.add_loss(kestrel.ops.mean(y ** 2))
        """
        terms = loss if isinstance(loss, (list, tuple)) else [loss]
        symbolic = [t for t in terms if isinstance(t, KerasTensor)]
        if len(symbolic) < len(terms):
            super().add_loss([t for t in terms if not isinstance(t, KerasTensor)], inputs)
        if not symbolic:
            return
        previous = self._loss_tensors
        self._symbolic_losses = previous + symbolic
        try:
            self._init_graph(self._inputs_struct, self._outputs_struct)
        except ValueError:
            self._symbolic_losses = previous
            raise

    def _adjust_rank(self, position: int, x):
        """`x` with a trailing size-1 axis added or removed to match its `Input`'s rank (as
        Keras 3 does: `(N, 28, 28)` data feeds an `Input(shape=(28, 28, 1))`)."""
        spec = self.inputs[position]
        adjusted = rank_matched(x, spec.shape)
        if adjusted is None:
            raise ValueError(
                f"Model '{self.name}': invalid input shape for input '{self.input_names[position]}'"
                f". Expected shape {spec.shape}, but the input has incompatible shape "
                f"{tuple(x.shape)}")
        return adjusted

    def _flatten_inputs(self, inputs) -> list:
        """Accept a tensor, a list in input order, or a dict keyed by input name. As Keras, other
        keys are ignored (Keras 2's image_ocr feeds its generator's `source_str` strings along;
        a model built on a dict warns that the structures differ)."""
        if isinstance(inputs, dict):
            if isinstance(self._inputs_struct, dict):
                order = sorted(self._inputs_struct)
            else:
                order = self.input_names
            for name in order:
                if name not in inputs:
                    raise ValueError(
                        f'Missing data for input "{name}". You passed a data dictionary with '
                        f"keys {list(inputs)}. Expected the following keys: {order}")
            if isinstance(self._inputs_struct, dict) and set(inputs) - set(order):
                self._warn_if_nested_differently(inputs)
            return [inputs[k] for k in order]
        flat = flatten(inputs)
        if len(flat) != len(self.inputs):
            raise ValueError(
                f"Model '{self.name}' expects {len(self.inputs)} input(s), but it received "
                f"{len(flat)} input tensors.")
        if isinstance(inputs, (list, tuple)):
            self._warn_if_nested_differently(inputs)
        for tensor, value in zip(self.inputs, flat):
            if value is None and not tensor._keras_history[0].optional:
                raise ValueError(f"The input '{tensor.name}' is not optional, but None was "
                                 "passed. Please provide a valid tensor.")
        return flat

    def _warn_if_nested_differently(self, inputs) -> None:
        """Keras' warning for inputs nested unlike the model's (`[x]` for a one-input model);
        lists and tuples count as the same."""
        try:
            tree.assert_same_structure(tree.lists_to_tuples(inputs),
                                       tree.lists_to_tuples(self._inputs_struct))
        except (ValueError, TypeError):
            expected = map_structure(lambda t: t.name, self._inputs_struct)
            received = map_structure(
                lambda t: "None" if t is None else f"Tensor(shape={t.shape})", inputs)
            warnings.warn("The structure of `inputs` doesn't match the expected structure.\n"
                          f"Expected: {expected}\nReceived: inputs={received}", stacklevel=2)

    def compute_output_spec(self, *args, **kwargs):
        return self._infer_output_spec(args, kwargs)

    def get_build_config(self) -> dict:
        """As Keras: a functional model is built from its graph, so no input shape."""
        return {"input_shape": None}

    def get_config(self) -> dict:
        from kestrel.models.functional_config import functional_config

        if not _functional_like(type(self)):  # its constructor builds the graph, as Keras
            return Model.get_config(self)
        return functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from kestrel.models.functional_config import functional_from_config

        if not _functional_like(cls) and "layers" not in config:
            return Model.from_config.__func__(cls, config, custom_objects)
        return functional_from_config(cls, config, custom_objects)


def _functional_like(cls) -> bool:
    """Whether `cls(inputs, outputs, ...)` rebuilds a graph from its config, as Keras decides:
    its constructor takes Functional's arguments, or `*args` and `**kwargs`."""
    spec, functional = inspect.getfullargspec(cls.__init__), inspect.getfullargspec(
        Functional.__init__)
    return spec.args == functional.args or (spec.varargs is not None
                                            and spec.varkw is not None)


def _keys_sorted(struct):
    """`struct` with every dict's keys in sorted order: Keras flattens dicts so, which orders
    a model's `inputs`, `outputs`, `output_names`, layers and returned dicts."""
    if isinstance(struct, dict):
        return {key: _keys_sorted(struct[key]) for key in sorted(struct)}
    if type(struct) in (list, tuple):
        return type(struct)(_keys_sorted(item) for item in struct)
    return struct


def _donors(entry, dying: set[int]) -> tuple[int, ...] | None:
    """The positions of a node's inputs that its layer may overwrite (`Layer._in_place`):
    fresh outputs of other layers (`Layer._output_is_fresh`) read for the last time here
    (`dying`), once; None if there are none. Whether nothing else holds them is checked per
    call (`handover.owned`)."""
    layer, simple, arg_spec, _ = entry
    if layer._in_place is None:
        return None
    reads = [arg_spec] if simple is _ONE else arg_spec[:2] if simple is _LIST else []
    positions = tuple(position for position, index in enumerate(reads) if index in dying
                      and (simple is _ONE or arg_spec.count(index) == 1))
    return positions or None


# how a node is called (small ints: `is` holds after pickling): on one tensor, on a list,
# anything else; a ZeroPadding fused into the convolution that reads it, and that convolution;
# an activation that writes into the buffer of the ZeroPadding after it (`_PaddingOutput`);
# a convolution and the BatchNormalization reading it (`_ConvNorm`)
_ONE, _LIST, _GENERAL, _PAD, _PADDED, _PADDING_OUTPUT, _CONV_NORM = 0, 1, 2, 3, 4, 5, 6
_ONE_INPUT = (_ONE, _PAD, _PADDED)


class _Padding:
    """What a fused ZeroPadding hands its convolution: the unpadded tensor and the padding."""
    __slots__ = ("tensor", "pads")

    def __init__(self, tensor, pads):
        self.tensor, self.pads = tensor, pads


def _unpadded(x) -> tuple:
    """`(tensor, pads)` of a value a fused ZeroPadding may have handed on (`pads` None:
    a plain tensor)."""
    return (x.tensor, x.pads) if type(x) is _Padding else (x, None)


class _PaddingOutput:
    """The arguments of an activation step that absorbed the ZeroPadding reading it: the
    activation's input slot and the padding layer; where it absorbed the BatchNormalization
    before it too (and that normalization's convolution), those layers, the slot then being
    theirs (`padded_activation.after_norm`)."""
    __slots__ = ("index", "padding", "norm", "conv")

    def __init__(self, index: int, padding, norm=None, conv=None):
        self.index, self.padding, self.norm, self.conv = index, padding, norm, conv


class _ConvNorm:
    """The arguments of a convolution step that absorbed the BatchNormalization reading it:
    the convolution's input slot (a `_Padding` there when it was `_PADDED`) and the
    normalization layer."""
    __slots__ = ("index", "norm")

    def __init__(self, index: int, norm):
        self.index, self.norm = index, norm


def rank_matched(x: torch.Tensor, shape):
    """`x` with a trailing size-1 axis added or removed to match the rank of an input of
    `shape` (mask kept), or None when neither applies."""
    if x.ndim == len(shape) - 1 and shape[-1] == 1:
        adjusted = x[..., None]
    elif x.ndim == len(shape) + 1 and x.shape[-1] == 1:
        adjusted = x[..., 0]
    else:
        return None
    mask = getattr(x, "_keras_mask", None)
    if mask is not None:
        adjusted._keras_mask = mask
    return adjusted


def _read_slots(simple: int, arg_spec) -> list[int]:
    """The slots a plan step reads."""
    if simple in _ONE_INPUT:
        return [arg_spec]
    if simple is _LIST:
        return arg_spec
    if simple is _PADDING_OUTPUT or simple is _CONV_NORM:
        return [arg_spec.index]
    return [v.index for v in flatten(arg_spec) if type(v) is _Slot]


def _readers_and_producers(plan: list) -> tuple[dict[int, list[int]], dict[int, int]]:
    """Per slot, the plan steps that read it, and the step that writes it."""
    readers: dict[int, list[int]] = {}
    for step, (_, simple, arg_spec, _) in enumerate(plan):
        for index in _read_slots(simple, arg_spec):
            readers.setdefault(index, []).append(step)
    producers = {index: step for step, entry in enumerate(plan) for index in entry[3]}
    return readers, producers


def _fuse_paddings(plan: list, kept: set[int]) -> list:
    """`plan` with each ZeroPadding whose output only one layer reads (and nothing returns)
    marked `_PAD`, and that layer `_PADDED` where it takes the padding itself
    (`Layer._takes_padding`: convolutions, pooling), without a padded copy of the input.
    A padding that torch's layers cannot take (asymmetric, or read by another layer) of an
    activation's output read by nothing else joins that activation instead
    (`_PADDING_OUTPUT`: `Layer._padded_activation`)."""
    from kestrel.layers.reshaping.zero_padding import BaseZeroPadding

    readers, producers = _readers_and_producers(plan)
    plan = list(plan)
    absorbed = set()
    for step, (layer, simple, arg_spec, out_slots) in enumerate(plan):
        if not (isinstance(layer, BaseZeroPadding) and simple is _ONE and len(out_slots) == 1):
            continue
        only_reader = out_slots[0] not in kept and len(readers.get(out_slots[0], ())) == 1
        target = readers[out_slots[0]][0] if only_reader else None
        reader = plan[target] if only_reader else None
        takes = only_reader and reader[1] is _ONE and isinstance(reader[0], Layer) and \
            reader[0]._takes_padding(layer)
        if not (takes and all(b == a for b, a in layer.padding)) and \
                _absorb_into_activation(plan, step, producers.get(arg_spec), kept, readers):
            absorbed.add(step)
        elif takes:
            plan[step] = (layer, _PAD, arg_spec, out_slots)
            plan[target] = (reader[0], _PADDED, reader[2], reader[3])
    return [entry for step, entry in enumerate(plan) if step not in absorbed]


def _absorb_into_activation(plan: list, step: int, producer, kept: set, readers: dict) -> bool:
    """Make the activation step `producer`, whose output only the ZeroPadding at `step`
    reads, write the padded output itself; whether it could."""
    if producer is None:
        return False
    layer, simple, arg_spec, out_slots = plan[producer]
    padding, _, _, padded_slots = plan[step]
    if not (simple is _ONE and isinstance(layer, Layer) and len(out_slots) == 1 and
            layer._padded_activation is not None and out_slots[0] not in kept and
            readers.get(out_slots[0]) == [step]):
        return False
    plan[producer] = (layer, _PADDING_OUTPUT, _PaddingOutput(arg_spec, padding), padded_slots)
    return True


def _fuse_batch_norms(plan: list, kept: set[int]) -> list:
    """`plan` with each convolution whose output only a BatchNormalization reads (and nothing
    returns) joined with it into one `_CONV_NORM` step (`batch_norm_folding`)."""
    readers, _ = _readers_and_producers(plan)
    plan = list(plan)
    absorbed = set()
    for step, (layer, simple, arg_spec, out_slots) in enumerate(plan):
        if simple not in (_ONE, _PADDED) or len(out_slots) != 1 or out_slots[0] in kept:
            continue
        steps = readers.get(out_slots[0], ())
        if len(steps) != 1:
            continue
        norm, norm_simple, _, norm_slots = plan[steps[0]]
        if norm_simple is _ONE and batch_norm_folding.foldable(layer, norm):
            plan[step] = (layer, _CONV_NORM, _ConvNorm(arg_spec, norm), norm_slots)
            absorbed.add(steps[0])
    return [entry for step, entry in enumerate(plan) if step not in absorbed]


def _fuse_norms_into_paddings(plan: list, kept: set[int]) -> list:
    """`plan` with each padded activation (`_PADDING_OUTPUT`) whose input only a
    BatchNormalization produces, alone or with its convolution (`_CONV_NORM`), joined with
    that step, so that the normalization can write into the padded buffer."""
    from kestrel.layers.normalization.batch_normalization import BatchNormalization

    readers, producers = _readers_and_producers(plan)
    plan = list(plan)
    absorbed = set()
    for step, (layer, simple, arg_spec, out_slots) in enumerate(plan):
        if simple is not _PADDING_OUTPUT or arg_spec.index in kept or \
                readers.get(arg_spec.index) != [step] or arg_spec.index not in producers:
            continue
        producer = producers[arg_spec.index]
        before, before_simple, before_spec, before_slots = plan[producer]
        if before_simple is _CONV_NORM:  # `before` is the convolution
            fused = _PaddingOutput(before_spec.index, arg_spec.padding, before_spec.norm, before)
        elif before_simple is _ONE and type(before).call is BatchNormalization.call and \
                len(before_slots) == 1 and before._keras_training_default is None:
            fused = _PaddingOutput(before_spec, arg_spec.padding, before)
        else:
            continue
        plan[step] = (layer, _PADDING_OUTPUT, fused, out_slots)
        absorbed.add(producer)
    return [entry for step, entry in enumerate(plan) if step not in absorbed]


class _Slot:
    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def _warn_on_renamed_inputs(inputs) -> None:
    """Keras' warning for a dict of inputs whose keys are not the tensors' names."""
    if not isinstance(inputs, dict):
        return
    for key, value in inputs.items():
        if isinstance(value, KerasTensor) and key != value.name:
            warnings.warn(
                "When providing `inputs` as a dict, all keys in the dict must match the names "
                f"of the corresponding tensors. Received key '{key}' mapping to value {value} "
                f"which has name '{value.name}'. Change the tensor name to '{key}' (via "
                f"`Input(..., name='{key}')`)")


def _default_name() -> str:
    from kestrel.layers import naming

    return naming.unique_name("functional")


def _cut_graph(inputs, outputs, name: str):
    """Keras' `clone_graph_nodes`: a new `Input` for each intermediate tensor in `inputs` and
    a copy of every call between them and `outputs`, so the original graph stays intact."""
    flat_inputs = flatten(inputs)
    clones: dict[int, KerasTensor] = {}
    for t in flat_inputs:
        if t._keras_history is None:
            raise ValueError(f"Model '{name}': input tensor {t} was not produced by a layer.")
        if isinstance(t.node.layer, InputLayer):
            _renode_input(t)
            clones[id(t)] = t
        else:
            clones[id(t)] = Input(batch_shape=t.shape, dtype=t.dtype, name=f"{t.name}CLONE")

    def copy_input(value):
        if not isinstance(value, KerasTensor):
            return value
        if id(value) not in clones:
            raise ValueError(f"Graph disconnected: model '{name}' cannot obtain tensor {value} "
                             "from the given inputs.")
        return clones[id(value)]

    def copy_output(value):
        if not isinstance(value, KerasTensor):
            return value
        clone = KerasTensor(value.shape, value.dtype, name=value.name)
        if getattr(value, "_keras_mask", None) is not None:
            clone._keras_mask = value._keras_mask
        clones[id(value)] = clone
        return clone

    for node in _collect_graph(flat_inputs, flatten(outputs), name)[0]:
        if node.is_input or any(id(t) in clones for t in node.output_tensors):
            continue  # an Input, or the call that made an intermediate input: cut here
        args, kwargs = map_structure(copy_input, (node.call_args, node.call_kwargs))
        copy = Node(node.layer, args, kwargs, map_structure(copy_output, node.outputs))
        node.layer._inbound_nodes.append(copy)
        for index, tensor in enumerate(copy.output_tensors):
            tensor._keras_history = (node.layer, len(node.layer._inbound_nodes) - 1, index)
    return (map_structure(lambda t: clones[id(t)], inputs),
            map_structure(lambda t: clones[id(t)], outputs))


def _renode_input(tensor: KerasTensor) -> None:
    """As Keras' graph cut: an `Input` kept among cut inputs gets a new node of its layer
    (the summary then shows `name[1][0]`)."""
    layer = tensor.node.layer
    layer._inbound_nodes.append(Node(layer, (), {}, tensor))
    tensor._keras_history = (layer, len(layer._inbound_nodes) - 1, 0)


def _collect_graph(inputs: list[KerasTensor], outputs: list[KerasTensor],
                   name: str) -> tuple[list[Node], list]:
    """Nodes between `inputs` and `outputs` (checking connectivity) and their layers, both
    in Keras' order: deepest (farthest from the outputs) first, a shared layer at the depth
    of its deepest call; layers of equal depth in the order the walk from the outputs first
    reached them."""
    input_ids = {id(t) for t in inputs}
    order: list[Node] = []  # post-order: every node after the nodes it reads
    state: dict[int, int] = {}  # 1 = visiting, 2 = done
    reached: dict[int, int] = {}  # id(layer) -> when the walk first reached it

    def visit(tensor: KerasTensor, path: list[str]):
        if tensor._keras_history is None:
            raise ValueError(f"Model '{name}': tensor {tensor} was not produced by a layer.")
        node = tensor.node
        key = id(node)
        if state.get(key) == 2:
            return
        if id(tensor) in input_ids:
            state[key] = 2
            if node.is_input:
                reached.setdefault(id(node.layer), len(reached))
            order.append(node)
            return
        if node.is_input and getattr(node.layer, "constant", None) is not None:
            state[key] = 2  # an `Input(tensor=value)` not fed: the graph reads the value
            reached.setdefault(id(node.layer), len(reached))
            order.append(node)
            return
        if node.is_input:
            raise ValueError(
                f"Graph disconnected: cannot obtain value for tensor {tensor} at layer "
                f"'{node.layer.name}'. Model '{name}': the outputs are not reachable from the "
                f"given inputs; this input is missing from `inputs`. The following previous "
                f"layers were accessed without issue: {path}")
        state[key] = 1
        reached.setdefault(id(node.layer), len(reached))
        for parent in node.input_tensors:
            visit(parent, path + [node.layer.name])
        state[key] = 2
        order.append(node)

    for out in outputs:
        visit(out, [])
    for tensor in inputs:
        if state.get(id(tensor.node)) != 2:  # an input the outputs do not read
            order.insert(0, tensor.node)
            state[id(tensor.node)] = 2
            reached[id(tensor.node.layer)] = -1
    depth, layer_depth = _graph_depths(order)
    nodes = sorted(order, key=lambda n: -depth[id(n)])
    layers = list({id(n.layer): n.layer for n in order}.values())
    layers.sort(key=lambda l: (-layer_depth[id(l)], reached.get(id(l), -1)))
    return nodes, layers


def _graph_depths(order: list[Node]) -> tuple[dict, dict]:
    """Each node's and layer's distance from the outputs, as Keras 3's `map_graph`: a layer
    called more than once lifts its later-walked calls to its deepest call's depth."""
    depth = {id(n): 0 for n in order}
    layer_depth: dict[int, int] = {}
    for node in reversed(order):
        node_depth = max(depth[id(node)], layer_depth.get(id(node.layer), 0))
        depth[id(node)] = layer_depth[id(node.layer)] = node_depth
        for parent in node.parent_nodes:
            if id(parent) in depth:
                depth[id(parent)] = max(depth[id(parent)], node_depth + 1)
    return depth, layer_depth


object_registry.register_builtin("layers", "Model")(Functional)
