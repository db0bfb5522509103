"""Which container operations change a container or keep an argument, for LW010's escape analysis.

What it decides: which method calls and augmented assignments change the container they act
on (and how a message says so), which of them cannot change an empty container, and which
method calls keep the argument they are given.
"""

from __future__ import annotations

import ast

# Methods that change the container they are called on, and how the message says so.
_MUTATORS = {
    "__delitem__": "has an item deleted",
    "__iadd__": "is extended in place",
    "__setitem__": "has an item assigned",
    "add": "is added to",
    "append": "is appended to",
    "appendleft": "is appended to",
    "clear": "is cleared",
    "difference_update": "is updated in place",
    "discard": "has an item discarded",
    "extend": "is extended",
    "extendleft": "is extended",
    "insert": "is inserted into",
    "intersection_update": "is updated in place",
    "move_to_end": "is reordered",
    "pop": "is popped from",
    "popitem": "is popped from",
    "popleft": "is popped from",
    "remove": "has an item removed",
    "reverse": "is reversed in place",
    "rotate": "is rotated in place",
    "setdefault": "gets keys set by `setdefault()`",
    "sort": "is sorted in place",
    "subtract": "is updated in place",
    "symmetric_difference_update": "is updated in place",
    "update": "is updated",
}

# Mutations that cannot change an empty container: they remove or reorder items (or raise).
# Anything that could have filled the default first is reported on its own.
_SHRINKING = frozenset(
    {
        "__delitem__",
        "clear",
        "difference_update",
        "discard",
        "intersection_update",
        "move_to_end",
        "pop",
        "popitem",
        "popleft",
        "remove",
        "reverse",
        "rotate",
        "sort",
    }
)
# Standard library functions that change the container given as their first argument.
_MUTATING_FUNCTIONS = {
    "bisect.insort": "is inserted into by `bisect.insort()`",
    "bisect.insort_left": "is inserted into by `bisect.insort_left()`",
    "bisect.insort_right": "is inserted into by `bisect.insort_right()`",
    "heapq.heapify": "is reordered in place by `heapq.heapify()`",
    "heapq.heappop": "is popped from by `heapq.heappop()`",
    "heapq.heappush": "is pushed onto by `heapq.heappush()`",
    "heapq.heappushpop": "is changed in place by `heapq.heappushpop()`",
    "heapq.heapreplace": "is changed in place by `heapq.heapreplace()`",
    "operator.delitem": "has an item deleted by `operator.delitem()`",
    "operator.setitem": "has an item assigned by `operator.setitem()`",
    "random.shuffle": "is shuffled in place by `random.shuffle()`",
}
# Of these, the ones that cannot change an empty container (`heappushpop` hands the new item
# straight back when the heap is empty).
_SHRINKING_FUNCTIONS = frozenset(
    {
        "heapq.heapify",
        "heapq.heappop",
        "heapq.heappushpop",
        "heapq.heapreplace",
        "operator.delitem",
        "random.shuffle",
    }
)
_SHRINKING_OPERATORS = (ast.BitAnd, ast.Mult, ast.Sub)  # `x &= s`, `x *= n`, `x -= s`

# Container methods that keep an argument: name -> (positional arguments, which one is kept).
# Only a call of exactly that shape counts (`builder.append(key, value, headers=h)` is some
# other method). `extend`/`update` copy the items instead: handing the default to them reads it.
_STORERS = {
    "add": (1, 0),
    "append": (1, 0),
    "appendleft": (1, 0),
    "insert": (2, 1),
    "put": (1, 0),
    "put_nowait": (1, 0),
    "setdefault": (2, 1),
}

_AUGMENTED = {
    ast.Add: "+=",
    ast.BitAnd: "&=",
    ast.BitOr: "|=",
    ast.BitXor: "^=",
    ast.Mult: "*=",
    ast.Sub: "-=",
}


def _kept_by_method(call: ast.Call, method: str, index: int | None) -> bool:
    shape = _STORERS.get(method)
    return shape == (len(call.args), index) and not call.keywords
