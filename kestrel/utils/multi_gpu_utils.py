"""Keras 2's `multi_gpu_model`: one model's batches split over several GPUs
(`keras.utils.multi_gpu_model`, `keras.utils.multi_gpu_utils`), here with
`torch.nn.DataParallel`."""
from __future__ import annotations

import torch

from kestrel.models.model import Model


def available_devices() -> list[str]:
    """The devices this process sees, as torch names: `"cpu"`, then `"cuda:0"`, ..."""
    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def target_gpu_ids(gpus, devices: list[str]) -> list[int]:
    """The GPU ids `gpus` asks for (None: every visible GPU), checked as Keras 2 does: at
    least two, each one among `devices`."""
    if not gpus:
        gpus = sum(name.startswith("cuda") for name in devices)
    if isinstance(gpus, (list, tuple)):
        if len(gpus) <= 1:
            raise ValueError("For multi-gpu usage to be effective, call `multi_gpu_model` "
                             f"with `len(gpus) >= 2`. Received: `gpus={gpus}`")
        ids = [int(i) for i in gpus]
    else:
        if gpus <= 1:
            raise ValueError("For multi-gpu usage to be effective, call `multi_gpu_model` "
                             f"with `gpus >= 2`. Received: `gpus={gpus}`")
        ids = list(range(gpus))
    expected = ["cpu"] + [f"cuda:{i}" for i in ids]
    if any(name not in devices for name in expected):
        raise ValueError(f"To call `multi_gpu_model` with `gpus={gpus}`, we expect the following "
                         f"devices to be available: {expected}. However this machine only has: "
                         f"{devices}. Try reducing `gpus`.")
    return ids


class DataParallelModel(Model):
    """A model that runs `template` through `torch.nn.DataParallel`: each batch is split
    along its first axis over `device_ids`, every GPU runs a replica of `template` on its
    part, and the outputs are concatenated on the first GPU.

    The weights are `template`'s own (training this model trains `template`); save and load
    them through `template`, as Keras 2 advised. Without CUDA, torch runs `template` as is.
    """

    def __init__(self, template, device_ids: list[int]):
        super().__init__()
        self.template = template
        # kept out of torch's submodules: the template is already tracked once, above
        self.__dict__["_parallel"] = torch.nn.DataParallel(template, device_ids=device_ids)

    def call(self, inputs, training=None):
        return self._parallel(inputs, training=training)


def multi_gpu_model(model, gpus=None, cpu_merge=True, cpu_relocation=False):
    """`model` wrapped to split each batch over several GPUs (Keras 2's data parallelism).

    Args:
        model: the template model; its weights move to the first GPU and stay shared.
        gpus: number of GPUs (>= 2), or a list of GPU ids; None: every visible GPU.
        cpu_merge: accepted for Keras 2; outputs are merged on the first GPU, where torch's
            `DataParallel` gathers them and where the loss is computed.
        cpu_relocation: accepted for Keras 2; the weights are not copied to the CPU, since
            `DataParallel` wants them on the first GPU.

    Returns:
        A `DataParallelModel` to compile, fit and predict with like `model`.

    Raises:
        ValueError: fewer than two GPUs asked for, or one of them is not visible.
    """
    ids = target_gpu_ids(gpus, available_devices())
    model.to(f"cuda:{ids[0]}")
    return DataParallelModel(model, ids)
