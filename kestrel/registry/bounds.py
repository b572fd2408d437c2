"""Limits for untrusted configs: bounded reprs in messages, bounded nesting and alias expansion.

A config read from a file or string may be hostile: nested deeper than Python's recursion
allows, or a YAML document whose aliases expand to billions of nodes while its text stays
small. Readers parse through `load_json` / `load_yaml`, and messages echo values through
`short_repr`, so that no error path walks or prints an unbounded structure.
"""
from __future__ import annotations

import json
import reprlib

import yaml

MAX_DEPTH = 200  # nesting levels of lists/dicts; Keras configs use a few dozen
MAX_NODES = 1_000_000  # YAML nodes after alias expansion, when aliases cause the growth

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 6, 6, 6
_REPR.maxstring = _REPR.maxother = 120


def short_repr(value, limit: int = 200) -> str:
    """`repr(value)` cut to about `limit` characters, without walking all of a large structure.

    Example:
        >>> short_repr(list(range(10**6)), limit=30)
        '[0, 1, 2, 3, 4, 5, ...]'
    """
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_depth(data, source: str):
    """Return `data` unchanged, or raise ValueError when lists/dicts nest beyond `MAX_DEPTH`."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_DEPTH:
            raise _too_deep(source)
        stack.extend((child, depth + 1) for child in children)
    return data


def _too_deep(source: str) -> ValueError:
    return ValueError(f"{source} is nested too deeply: lists and dicts nest at most "
                      f"{MAX_DEPTH} levels in a model config.")


def load_json(text, source: str):
    """`json.loads(text)` with a bound on nesting; errors are ValueErrors naming `source`."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise _too_deep(source) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{source} is not valid JSON ({error}).") from None
    return check_depth(data, source)


class _DepthLimitedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that stops composing beyond `MAX_DEPTH` levels of nesting."""

    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise RecursionError
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml(text, source: str):
    """`yaml.safe_load(text)` that refuses documents whose aliases expand beyond `MAX_NODES`
    nodes, alias cycles, and nesting beyond `MAX_DEPTH`; errors are ValueErrors."""
    loader = _DepthLimitedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise _too_deep(source) from None
        if node is None:
            return None
        _check_expansion(node, source)
        return check_depth(loader.construct_document(node), source)
    except yaml.YAMLError as error:
        raise ValueError(
            f"{source} was refused: only plain YAML data is accepted (safe_load); Python "
            f"object tags are not allowed. ({error})") from None
    finally:
        loader.dispose()


def _check_expansion(root, source: str) -> None:
    """Count the nodes of a composed YAML graph as if its aliases were copied out."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ValueError(f"{source} was refused: a YAML alias refers to a node that "
                             "contains it (a cycle).")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    if sizes[id(root)] > max(MAX_NODES, len(sizes)):
        raise ValueError(
            f"{source} was refused: its YAML aliases expand to {sizes[id(root)]} nodes "
            f"(at most {MAX_NODES} are allowed; the document itself has {len(sizes)}).")


def _children(node) -> list:
    value = node.value
    if not isinstance(value, list):
        return []
    if value and isinstance(value[0], tuple):
        return [part for pair in value for part in pair]
    return value
