"""LoRA: Keras 3's low-rank adaptation of Dense, EinsumDense and Embedding (ReversibleEmbedding
too: its tied reverse projection uses the merged table, as Keras').

`layer.enable_lora(rank)` freezes the layer's base weight `W` (a kernel or an embedding table)
and adds two trainable float32 weights `A` (`W.shape[:-1] + (rank,)`) and `B` (`(rank,
W.shape[-1])`); the layer then runs with `W + (lora_alpha / rank) * (A @ B)`. Files hold that
merged weight under the base weight's place, so they load into a model without LoRA; loading
one into a LoRA layer sets `W` and zeroes `A` and `B`, as Keras does.
"""
from __future__ import annotations

import torch
from torch import nn

from kestrel import initializers
from kestrel.layers.int_args import positive_int
from kestrel.variables import wrap as wrap_variable

_SAVED_ALIAS = "_lora_saved_weight"  # the attribute files read the merged weight through


class LoraAdaptable:
    """Mixin of the layers with `enable_lora`. Each class names `_lora_base` (the weight LoRA
    adapts), `_lora_prefix` (its adapters' name stem) and defines `_call_with(inputs,
    weight, ...)`, its `call` with `weight` in place of the base weight (and `call`'s other
    arguments, such as ReversibleEmbedding's `reverse`)."""

    _lora_base = "kernel"
    _lora_prefix = "lora_kernel"
    _lora_build_keeps_alpha = False
    lora_enabled = False
    lora_rank = None
    lora_alpha = None

    def _init_lora(self, lora_rank, lora_alpha) -> None:
        """Keras' constructor arguments: `lora_alpha` defaults to `lora_rank`."""
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank

    def _build_lora(self) -> None:
        """End of `build`: a layer made with `lora_rank` gets its adapters. As in Keras, only
        EinsumDense keeps the constructor's `lora_alpha` then (Dense and Embedding reset it
        to the rank)."""
        if self.lora_rank:
            self._check_lora_fits()
            alpha = self.lora_alpha if self._lora_build_keeps_alpha else None
            self._add_lora(self.lora_rank, alpha, "he_uniform", "zeros")

    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform",
                    b_initializer="zeros") -> None:
        """Freeze the base weight and train a rank-`rank` update scaled by `lora_alpha / rank`
        (`lora_alpha` defaults to `rank`)."""
        if getattr(self, f"{self._lora_base}_constraint") is not None:
            noun = "embedding" if self._lora_base == "embeddings" else "kernel"
            raise ValueError(
                f"Lora is incompatible with {noun} constraints. In order to enable lora on "
                f"this layer, remove the `{self._lora_base}_constraint` argument.")
        if not self.built:
            raise ValueError("Cannot enable lora on a layer that isn't yet built.")
        if self.lora_enabled:
            raise ValueError("lora is already enabled. This can only be done once per layer.")
        self._check_lora_fits()
        rank = positive_int(rank, "rank", f"{type(self).__name__} '{self.name}'.enable_lora")
        self._add_lora(rank, lora_alpha, a_initializer, b_initializer)

    def _check_lora_fits(self) -> None:
        if self._quantization_mode is not None:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': Kestrel does not run LoRA on a layer "
                f"quantized with mode '{self._quantization_mode}'. Enable LoRA on the float "
                "layer (and quantize after merging, e.g. by saving and reloading).")

    def _add_lora(self, rank: int, lora_alpha, a_initializer, b_initializer) -> None:
        base = getattr(self, self._lora_base)
        shape = tuple(base.shape)
        regularizer = getattr(self, f"{self._lora_base}_regularizer")
        for suffix, adapter_shape, initializer in (("a", shape[:-1] + (rank,), a_initializer),
                                                   ("b", (rank, shape[-1]), b_initializer)):
            adapter = self.add_weight(f"{self._lora_prefix}_{suffix}", adapter_shape,
                                      initializers.get(initializer), dtype="float32",
                                      regularizer=regularizer)
            adapter.data = adapter.data.to(base.device)  # a model moved since it was built
        _freeze(self, self._lora_base)
        self._weight_layouts[_SAVED_ALIAS] = (self._load_merged_weight, self._saved_merged_weight)
        self.lora_enabled = True
        self.lora_rank = rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else rank
        self.call = self._lora_call

    def _lora_call(self, inputs, *args, **kwargs):
        """`call` with LoRA on: the base weight merged with its low-rank update, as Keras."""
        return self._call_with(inputs, self._lora_merged_weight(), *args, **kwargs)

    def _lora_delta(self) -> torch.Tensor:
        a = getattr(self, f"{self._lora_prefix}_a")
        b = getattr(self, f"{self._lora_prefix}_b")
        return (self.lora_alpha / self.lora_rank) * torch.matmul(a, b)

    def _lora_merged_weight(self) -> torch.Tensor:
        return self._merged(getattr(self, self._lora_base))

    def _merged(self, base: torch.Tensor) -> torch.Tensor:
        """`base` plus the scaled low-rank update, in `base`'s dtype."""
        return (base + self._lora_delta()).to(base.dtype)

    @property
    def _lora_saved_weight(self) -> torch.Tensor:
        return getattr(self, self._lora_base)

    def _saved_merged_weight(self, base: torch.Tensor) -> torch.Tensor:
        return self._merged(base).detach()

    def _load_merged_weight(self, value: torch.Tensor) -> torch.Tensor:
        """A loaded (merged) weight becomes the base weight; the adapters restart at zero."""
        with torch.no_grad():
            getattr(self, f"{self._lora_prefix}_a").zero_()
            getattr(self, f"{self._lora_prefix}_b").zero_()
        return value

    @property
    def _saved_weight_order(self) -> list[str] | None:
        """Keras' file order; with LoRA on, the merged weight in the base weight's place and
        no adapters."""
        if not self.lora_enabled:
            return super()._saved_weight_order
        adapters = (f"{self._lora_prefix}_a", f"{self._lora_prefix}_b")
        return [_SAVED_ALIAS if attr == self._lora_base else attr
                for attr in self._weight_order if attr not in adapters]

    def quantize(self, mode=None, type_check=True, config=None):
        if self.lora_enabled:
            raise NotImplementedError(
                f"{type(self).__name__} '{self.name}': Kestrel does not quantize a layer with "
                "LoRA enabled. Save the model (files hold the merged weights), load it into "
                "a model without LoRA and quantize that.")
        super().quantize(mode, type_check=type_check, config=config)

    def _lora_entry(self) -> dict:
        """`lora_rank` / `lora_alpha`, which Keras writes only when `lora_rank` is set."""
        if not self.lora_rank:
            return {}
        return {"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha}


def _freeze(layer, attr: str) -> None:
    """Make weight `attr` of `layer` non-trainable (a buffer), keeping its value, name and
    place in `layer.weights`. Its regularizer stops adding a loss, as Keras regularizes
    trainable weights only."""
    old = getattr(layer, attr)
    if not isinstance(old, nn.Parameter):
        return
    frozen = wrap_variable(old.detach(), trainable=False, name=old.name, path=old.path)
    frozen.regularizer, frozen.constraint = old.regularizer, old.constraint
    del layer._parameters[attr]
    layer.register_buffer(attr, frozen)
    layer._frozen_after_creation = (*layer.__dict__.get("_frozen_after_creation", ()), attr)
    layer._regularizers = [entry for entry in layer._regularizers if entry[0] != attr]
