"""kestrel.tree against keras.tree on the same structures."""
import collections

import pytest

from kestrel import tree
from tests.ops_harness import keras

Point = collections.namedtuple("Point", ["x", "y"])
STRUCTURES = [
    1, None, [1, 2, [3, (4, 5)]], {"b": 1, "a": [2, 3]}, {100: "world", 6: "hello"},
    collections.OrderedDict([("b", 1), ("a", 2)]), Point(1, [2, 3]), ([1], {"x": (2, None)}),
    [], {}, ((), [[]]),
]


@pytest.mark.parametrize("structure", STRUCTURES, ids=range(len(STRUCTURES)))
def test_flatten_pack_and_paths_match_keras(structure):
    k = keras().tree
    assert tree.flatten(structure) == k.flatten(structure)
    assert tree.flatten_with_path(structure) == k.flatten_with_path(structure)
    flat = [f"leaf{i}" for i in range(len(tree.flatten(structure)))]
    assert tree.pack_sequence_as(structure, flat) == k.pack_sequence_as(structure, flat)
    assert tree.lists_to_tuples(structure) == k.lists_to_tuples(structure)
    assert tree.is_nested(structure) == k.is_nested(structure)


def test_map_structure_and_up_to():
    s = {"a": [1, 2], "b": (3, Point(4, 5))}
    assert tree.map_structure(lambda v: v * 10, s) == keras().tree.map_structure(
        lambda v: v * 10, s)
    assert tree.map_structure(lambda a, b: a + b, [1, (2,)], [10, (20,)]) == [11, (22,)]
    assert tree.map_structure_up_to([0, 0], lambda v: len(v), [[1, 2], (3,)]) == [2, 1]
    with pytest.raises(ValueError):
        tree.map_structure(lambda a, b: a, [1, 2], [1])


def test_assert_same_structure_and_paths():
    tree.assert_same_structure([1, (2, 3)], ["a", ("b", "c")])
    with pytest.raises(ValueError):
        tree.assert_same_structure([1, 2], (1, 2))
    with pytest.raises(ValueError):
        keras().tree.assert_same_structure([1, 2], (1, 2))
    tree.assert_same_paths([1, 2], (3, 4))
    with pytest.raises(ValueError):
        tree.assert_same_paths({"a": 1}, {"b": 1})


@pytest.mark.parametrize("top_down", [True, False])
def test_traverse_order_matches_keras(top_down):
    s = [(1, 2), [3], {"a": 4}]
    ours, theirs = [], []
    assert tree.traverse(ours.append, s, top_down=top_down) == \
        keras().tree.traverse(theirs.append, s, top_down=top_down)
    assert ours == theirs
    replace = lambda v: tree.MAP_TO_NONE if v == [3] else None  # noqa: E731
    assert tree.traverse(replace, s) == [(1, 2), None, {"a": 4}]


def test_map_shape_structure():
    shapes = {"a": (None, 3), "b": [(2,), (4, 5)]}
    assert tree.map_shape_structure(lambda s: len(s), shapes) == \
        keras().tree.map_shape_structure(lambda s: len(s), shapes)
