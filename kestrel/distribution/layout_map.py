"""LayoutMap: variable paths (exact keys or regular expressions) to TensorLayouts."""
from __future__ import annotations

import collections
import re

from kestrel.distribution.layout import DeviceMesh, TensorLayout


class LayoutMap(collections.abc.MutableMapping):
    """A dict from variable-path patterns to `TensorLayout`s, looked up by regex.

    A lookup tries the key itself, then every pattern with `re.fullmatch` (as Keras 3);
    a path matched by several patterns is an error, one matched by none gets `None`.
    Tuples of axis names are accepted as values and become `TensorLayout`s on the mesh.

    Args:
        device_mesh: the `DeviceMesh` the layouts refer to.

    Example:
        >>> layout_map = LayoutMap(DeviceMesh((1,), ["model"]))
        >>> layout_map["dense.*kernel"] = (None, "model")
        >>> layout_map["dense_1/kernel"].axes
        (None, 'model')
        >>> layout_map["dense_1/bias"] is None
        True
    """

    def __init__(self, device_mesh: DeviceMesh):
        if not isinstance(device_mesh, DeviceMesh):
            raise TypeError(f"LayoutMap expects a DeviceMesh as `device_mesh`. Received: "
                            f"device_mesh of type {type(device_mesh).__name__}")
        self._layout_map: dict[str, TensorLayout] = collections.OrderedDict()
        self._device_mesh = device_mesh

    def __getitem__(self, key: str):
        if key in self._layout_map:
            return self._layout_map[key]
        matches = [pattern for pattern in self._layout_map if re.fullmatch(pattern, key)]
        if len(matches) > 1:
            raise ValueError(f"LayoutMap: path '{key:.200}' matches multiple layout keys: "
                             f"{matches}. Make each variable path match at most one key.")
        return self._layout_map[matches[0]] if matches else None

    def __setitem__(self, key: str, layout) -> None:
        if key in self._layout_map:
            raise ValueError(f"LayoutMap: the key '{key:.200}' already exists with value "
                             f"{self._layout_map[key]}; keys cannot be repeated.")
        if isinstance(layout, (tuple, list)):
            layout = TensorLayout(layout)
        if not isinstance(layout, TensorLayout):
            raise ValueError(f"LayoutMap values must be TensorLayouts or tuples of axis names. "
                             f"Received: a value of type {type(layout).__name__}")
        if layout.device_mesh is None:
            layout.device_mesh = self._device_mesh
        self._layout_map[key] = layout

    def __delitem__(self, key: str) -> None:
        self._layout_map.pop(key)

    def __len__(self) -> int:
        return len(self._layout_map)

    def __iter__(self):
        return iter(self._layout_map)

    @property
    def device_mesh(self) -> DeviceMesh:
        return self._device_mesh
