"""A compiled model's settings as Keras saves them, and `compile` from such a record.

Keras 3 writes `compile_config` (`.keras`, `to_json`) with a serialized `optimizer`; the legacy
`.h5` format writes `training_config` with an `optimizer_config` instead. Keras 2 files add
optimizer keys of their own (`is_legacy_optimizer`, `jit_compile`, `decay`, `lr`) and may name
the class `Custom>Adam`; all of these are accepted.
"""
from __future__ import annotations

import inspect

from kestrel.registry import object_registry
from kestrel.registry.serialization import deserialize_keras_object, serialize_keras_object

_PASSED_THROUGH = ("loss_weights", "run_eagerly", "steps_per_execution")
_OPTIMIZER_RENAMES = {"lr": "learning_rate"}
# Keras 3 cannot read these short loss names back from a legacy `.h5` (it resolves them to
# metrics), so legacy files spell them out; Kestrel reads either spelling.
_LOSS_ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
                 "mape": "mean_absolute_percentage_error",
                 "msle": "mean_squared_logarithmic_error", "kld": "kl_divergence"}


def _serialize(value, category: str):
    """Loss/metric arguments as JSON data: strings and nesting kept, objects serialized."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_serialize(v, category) for v in value]
    if isinstance(value, dict):
        return {k: _serialize(v, category) for k, v in value.items()}
    if inspect.isclass(value):
        return object_registry.get_registered_name(value)
    return serialize_keras_object(value, category)


def compile_config(model) -> dict:
    """Keras 3's `compile_config` of a compiled model (`optimizer`, `loss`, `metrics`, ...)."""
    raw = model._compile_config
    return {
        "optimizer": serialize_keras_object(model.optimizer, "optimizers"),
        "loss": _serialize(raw.get("loss"), "losses"),
        "loss_weights": _serialize(raw.get("loss_weights"), "losses"),
        "metrics": _serialize(raw.get("metrics"), "metrics"),
        "weighted_metrics": _serialize(raw.get("weighted_metrics"), "metrics"),
        "run_eagerly": bool(raw.get("run_eagerly", False)),
        "steps_per_execution": raw.get("steps_per_execution", 1),
        "jit_compile": bool(raw.get("jit_compile", False)),
    }


def training_config(model) -> dict:
    """The legacy `.h5` `training_config`: the compile settings plus an `optimizer_config`."""
    config = compile_config(model)
    config["loss"] = _spell_out(config["loss"])
    optimizer = config.pop("optimizer")
    config["optimizer_config"] = {
        "class_name": optimizer.get("registered_name") or optimizer["class_name"],
        "config": optimizer["config"]}
    return config


def _spell_out(loss):
    if isinstance(loss, str):
        return _LOSS_ALIASES.get(loss.lower(), loss)
    if isinstance(loss, list):
        return [_spell_out(v) for v in loss]
    if isinstance(loss, dict) and "class_name" not in loss:
        return {k: _spell_out(v) for k, v in loss.items()}
    return loss


def _optimizer_class(class_name: str, custom_objects):
    cls = object_registry.lookup(class_name, "optimizers", custom_objects)
    if cls is None and ">" in class_name:  # Keras 2.11+ writes `Custom>Adam`
        cls = object_registry.lookup(class_name.split(">")[-1], "optimizers", custom_objects)
    if cls is None:
        cls = object_registry.lookup(class_name.lower(), "optimizers", custom_objects)
    if cls is None:
        raise ValueError(
            f"Unknown optimizer {class_name!r} in the saved training configuration. If it is "
            f"a custom optimizer, pass it in custom_objects={{'{class_name}': ...}}.")
    return cls


def _accepted_arguments(cls) -> set[str]:
    """Named arguments of `cls.__init__` and of the base initializers its `**kwargs` reach."""
    accepted = set()
    for klass in cls.__mro__[:-1]:  # object's own __init__ takes nothing
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        accepted |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return accepted - {"self"}


def optimizer_from_config(config, custom_objects=None):
    """An optimizer from a Keras 2 or Keras 3 optimizer config (or a plain name)."""
    from kestrel import optimizers

    if config is None or isinstance(config, str):
        return optimizers.get(config)
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret the saved optimizer config. "
                         f"Received: optimizer={config!r}")
    name = config.get("registered_name") or config["class_name"]
    cls = _optimizer_class(name, custom_objects)
    arguments = {_OPTIMIZER_RENAMES.get(k, k): v for k, v in (config.get("config") or {}).items()}
    if not arguments.get("decay"):
        arguments.pop("decay", None)
    accepted = _accepted_arguments(cls)
    arguments = {k: v for k, v in arguments.items() if k in accepted}
    from_config = getattr(cls, "from_config", None)
    if from_config is None:
        return cls(**arguments)
    if "custom_objects" in inspect.signature(from_config).parameters:
        return from_config(arguments, custom_objects=custom_objects)
    return from_config(arguments)


def _deserialize(value, category: str, custom_objects):
    """Loss/metric arguments back to what `compile` takes; serialized objects are rebuilt."""
    if isinstance(value, list):
        return [_deserialize(v, category, custom_objects) for v in value]
    if isinstance(value, dict) and "class_name" in value:
        if value["class_name"] == "MeanMetricWrapper":  # Keras 2 wraps function metrics
            inner = value.get("config", {})
            return inner.get("fn") or inner.get("name")
        return deserialize_keras_object(value, category, custom_objects)
    if isinstance(value, dict):
        return {k: _deserialize(v, category, custom_objects) for k, v in value.items()}
    if isinstance(value, str) and value not in object_registry.builtin_names(category):
        # a user's function saved by name (Keras 2): resolved now, while custom_objects apply
        return object_registry.lookup(value, category, custom_objects) or value
    return value


def restore_compile(model, config: dict, custom_objects=None) -> None:
    """`model.compile(...)` from a saved `compile_config` or legacy `training_config`.

    Args:
        model: the model to compile.
        config: the saved dict (Keras 2 or Keras 3 form).
        custom_objects: user classes/functions the config may name.
    """
    optimizer = config.get("optimizer", config.get("optimizer_config"))
    kwargs = {k: config[k] for k in _PASSED_THROUGH if config.get(k) is not None}
    if isinstance(config.get("jit_compile"), bool):
        kwargs["jit_compile"] = config["jit_compile"]
    with object_registry.custom_object_scope(custom_objects):
        model.compile(
            optimizer=optimizer_from_config(optimizer, custom_objects),
            loss=_deserialize(config.get("loss"), "losses", custom_objects),
            metrics=_deserialize(config.get("metrics"), "metrics", custom_objects),
            weighted_metrics=_deserialize(config.get("weighted_metrics"), "metrics",
                                          custom_objects),
            **kwargs)
