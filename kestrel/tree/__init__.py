"""`kestrel.tree`: Keras 3's utilities for nested structures (lists, tuples, namedtuples, dicts).

Dicts are visited in sorted key order (OrderedDicts in their own order), as Keras does, so that
`pack_sequence_as(s, flatten(s))` rebuilds `s`.

    >>> flatten({"b": 1, "a": [2, 3]})
    [2, 3, 1]
"""
from __future__ import annotations

import collections
from typing import Any

__all__ = ["MAP_TO_NONE", "assert_same_paths", "assert_same_structure", "flatten",
           "flatten_with_path", "is_nested", "lists_to_tuples", "map_shape_structure",
           "map_structure", "map_structure_up_to", "pack_sequence_as", "traverse"]


class _MapToNone:
    """Returned by a `traverse` function to replace a sub-tree with None."""

    def __repr__(self):
        return "keras.tree.MAP_TO_NONE"


MAP_TO_NONE = _MapToNone()


def is_nested(structure) -> bool:
    """Whether `structure` is a list, tuple (incl. namedtuple), dict or deque."""
    return isinstance(structure, (list, tuple, dict, collections.deque))


def _is_namedtuple(value) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def _keys(structure) -> list:
    if isinstance(structure, collections.OrderedDict):
        return list(structure)
    try:
        return sorted(structure)
    except TypeError as error:
        raise TypeError(f"Dict keys must be sortable; received keys {list(structure)[:10]}") \
            from error


def _children(structure) -> list[tuple[Any, Any]]:
    """(path key, child) pairs of one level of a nested structure."""
    if isinstance(structure, dict):
        return [(k, structure[k]) for k in _keys(structure)]
    return list(enumerate(structure))


def _rebuild(structure, children: list):
    """A container of the same type as `structure` holding `children` (in `_children` order)."""
    if isinstance(structure, dict):
        keys = _keys(structure)
        values = dict(zip(keys, children))
        if isinstance(structure, collections.OrderedDict) or type(structure) is dict:
            return type(structure)((k, values[k]) for k in structure)
        return type(structure)({k: values[k] for k in structure})
    if _is_namedtuple(structure):
        return type(structure)(*children)
    if isinstance(structure, collections.deque):
        return collections.deque(children, maxlen=structure.maxlen)
    return type(structure)(children)


def flatten(structure) -> list:
    """All leaves of `structure` in a flat list (`None` is a leaf)."""
    if not is_nested(structure):
        return [structure]
    return [leaf for _, child in _children(structure) for leaf in flatten(child)]


def flatten_with_path(structure) -> list[tuple[tuple, Any]]:
    """`(path, leaf)` pairs; a path is the tuple of keys/indices leading to the leaf."""
    if not is_nested(structure):
        return [((), structure)]
    return [((key, *path), leaf) for key, child in _children(structure)
            for path, leaf in flatten_with_path(child)]


def pack_sequence_as(structure, flat_sequence):
    """Rebuild `structure` with the leaves taken in order from `flat_sequence`."""
    if not isinstance(flat_sequence, (list, tuple)) and not hasattr(flat_sequence, "__iter__"):
        raise TypeError(f"flat_sequence must be a sequence. Received: {type(flat_sequence)}")
    flat = list(flat_sequence)
    leaves = iter(flat)
    count = len(flatten(structure))
    if count != len(flat):
        raise ValueError(f"The target structure has {count} leaves, but flat_sequence has "
                         f"{len(flat)} elements.")

    def build(node):
        if not is_nested(node):
            return next(leaves)
        return _rebuild(node, [build(child) for _, child in _children(node)])

    return build(structure)


def _check_same(a, b, path=(), loose: bool = False) -> None:
    if is_nested(a) != is_nested(b):
        raise ValueError(f"The two structures don't have the same nested structure at path "
                         f"{path}: {type(a).__name__} vs {type(b).__name__}.")
    if not is_nested(a):
        return
    same_kind = isinstance(a, dict) == isinstance(b, dict) if loose else \
        (type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict))
         or (type(a) in (list, tuple) and type(b) in (list, tuple) and type(a) is type(b)))
    if not same_kind:
        raise ValueError(f"The two structures don't have the same sequence type at path {path}: "
                         f"{type(a).__name__} vs {type(b).__name__}.")
    ka, kb = [k for k, _ in _children(a)], [k for k, _ in _children(b)]
    if ka != kb:
        raise ValueError(f"The two structures don't have the same keys or length at path "
                         f"{path}: {ka[:10]} vs {kb[:10]}.")
    for (key, ca), (_, cb) in zip(_children(a), _children(b)):
        _check_same(ca, cb, (*path, key), loose)


def assert_same_structure(a, b, check_types=None) -> None:
    """Raise ValueError unless `a` and `b` nest the same containers the same way."""
    _check_same(a, b)


def assert_same_paths(a, b) -> None:
    """Raise ValueError unless `a` and `b` have the same leaf paths (sequence types may differ)."""
    paths_a = {p for p, _ in flatten_with_path(a)}
    paths_b = {p for p, _ in flatten_with_path(b)}
    if paths_a != paths_b:
        only_a, only_b = sorted(paths_a - paths_b)[:5], sorted(paths_b - paths_a)[:5]
        raise ValueError(f"The two structures don't have the same paths. Only in the first: "
                         f"{only_a}; only in the second: {only_b}.")


def map_structure(func, *structures, none_is_leaf: bool = True):
    """Apply `func` to the corresponding leaves of `structures`, keeping their nesting."""
    if not callable(func):
        raise TypeError(f"func must be callable. Received: {func!r}")
    if not structures:
        raise ValueError("map_structure needs at least one structure.")
    for other in structures[1:]:
        _check_same(structures[0], other)

    def walk(*nodes):
        first = nodes[0]
        if first is None and not none_is_leaf:
            return None
        if not is_nested(first):
            return func(*nodes)
        columns = zip(*[[c for _, c in _children(n)] for n in nodes])
        return _rebuild(first, [walk(*column) for column in columns])

    return walk(*structures)


def map_structure_up_to(shallow_structure, func, *structures):
    """Like `map_structure`, but leaves of `shallow_structure` receive whole sub-trees."""
    def walk(shallow, *nodes):
        if not is_nested(shallow):
            return func(*nodes)
        for node in nodes:
            if not is_nested(node) or len(node) != len(shallow):
                raise ValueError(f"The structures do not match the shallow structure "
                                 f"{type(shallow).__name__} of length {len(shallow)}.")
        shallow_children = [c for _, c in _children(shallow)]
        columns = zip(*[[c for _, c in _children(n)] for n in nodes])
        return _rebuild(shallow, [walk(s, *col) for s, col in zip(shallow_children, columns)])

    return walk(shallow_structure, *structures)


def traverse(func, structure, top_down: bool = True):
    """Visit every sub-tree depth-first; a non-None result of `func` replaces that sub-tree
    (top-down: and is not descended into). `MAP_TO_NONE` replaces it with None."""
    if not callable(func):
        raise TypeError(f"func must be callable. Received: {func!r}")

    def resolve(value):
        return None if value is MAP_TO_NONE else value

    def walk(node):
        if top_down:
            out = func(node)
            if out is not None:
                return resolve(out)
            if not is_nested(node):
                return node
            return _rebuild(node, [walk(c) for _, c in _children(node)])
        rebuilt = _rebuild(node, [walk(c) for _, c in _children(node)]) if is_nested(node) \
            else node
        out = func(rebuilt)
        return rebuilt if out is None else resolve(out)

    return walk(structure)


def lists_to_tuples(structure):
    """The same structure with every list turned into a tuple."""
    if not is_nested(structure):
        return structure
    children = [lists_to_tuples(c) for _, c in _children(structure)]
    return tuple(children) if isinstance(structure, list) else _rebuild(structure, children)


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list)) and \
        all(isinstance(e, (int, type(None))) for e in value)


def map_shape_structure(func, structure):
    """`map_structure` where tuples/lists of ints and Nones are leaves (shapes)."""
    if _is_shape(structure) or not is_nested(structure):
        return func(structure)
    return _rebuild(structure, [map_shape_structure(func, c) for _, c in _children(structure)])
