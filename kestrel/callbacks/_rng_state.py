"""The random states training draws from, as JSON data: capture now, restore later.

Covers torch's global CPU generator (shuffling, unseeded dropout), the CUDA generators once
CUDA is in use, NumPy's and Python's global generators (PyDataset shuffling, user code),
`kestrel.random`'s global `SeedGenerator` (unseeded random ops), and the layers' own generators
(`seed_generator`s, private `torch.Generator`s), keyed by their position among the model's
modules (layer names differ between two builds of the same model).
"""
from __future__ import annotations

import base64
import random

import numpy as np
import torch


def _encode(state: torch.Tensor) -> str:
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def _decode(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def capture(model) -> dict:
    """The random states of the process and of `model`'s seeded layers.

    Example:
        >>> model = torch.nn.Linear(2, 2)
        >>> state = capture(model)
        >>> a = torch.rand(2); restore(model, state); torch.equal(a, torch.rand(2))
        True
    """
    from kestrel.random import seed_generator as seeds

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": _encode(torch.get_rng_state()),
             "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
             "python": [version, list(internal), gauss_next],
             "global_seed": seeds._GLOBAL[0].state.tolist() if seeds._GLOBAL else None,
             "layers": {}, "seed_generators": {}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_encode(s) for s in torch.cuda.get_rng_state_all()]
    for index, module in enumerate(model.modules()):
        generator = module.__dict__.get("_generator")
        if isinstance(generator, torch.Generator):
            state["layers"][str(index)] = [str(generator.device), _encode(generator.get_state())]
        seed_generator = module.__dict__.get("seed_generator")
        if isinstance(seed_generator, seeds.SeedGenerator):
            state["seed_generators"][str(index)] = seed_generator.state.tolist()
    return state


def restore(model, state: dict) -> None:
    """Put back the random states `capture` returned (seeded layers' generators included)."""
    from kestrel.random import seed_generator as seeds

    seeds.reset_global_seed_generator()
    if state.get("global_seed") is not None:  # made before Python's state comes back
        seeds.global_seed_generator().state.copy_(torch.tensor(state["global_seed"]))
    torch.set_rng_state(_decode(state["torch"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_decode(s) for s in state["cuda"]])
    saved, seed_states = state.get("layers", {}), state.get("seed_generators", {})
    for index, module in enumerate(model.modules()):
        if str(index) in saved:
            device, text = saved[str(index)]
            generator = torch.Generator(device=device)
            generator.set_state(_decode(text))
            module.__dict__["_generator"] = generator
        seed_generator = module.__dict__.get("seed_generator")
        if str(index) in seed_states and isinstance(seed_generator, seeds.SeedGenerator):
            seed_generator.state.copy_(torch.tensor(seed_states[str(index)]))
