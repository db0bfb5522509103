"""LW010 beyond its fixture: messages, positions, and its sentinel fix."""

from __future__ import annotations

import ast

from tests.lint.snippets import check_rule
from tests.lint.test_workflow import _fix


def test_mutable_default_is_reported_at_the_default_with_the_parameter() -> None:
    [first, second] = check_rule(
        """
        def f(a, b=None, *, cache={"key": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}, seen=set()):
            cache["other"] = b
            seen.add(a)
        """,
        "LW010",
    )
    assert (first.line, first.column) == (2, 27)
    assert "`cache`" in first.message
    assert "..." in first.message  # a long default is shortened
    assert "`seen`" in second.message
    assert "`set()`" in second.message
    assert "None" in second.message


def test_mutable_default_positional_defaults_align_with_the_last_parameters() -> None:
    [finding] = check_rule("def f(a, b, c=[], d=()):\n    c.append(a)\n", "LW010")
    assert "`c`" in finding.message


def test_mutable_default_message_mentions_concurrency_for_coroutines() -> None:
    [sync, coroutine] = check_rule(
        """
        def f(a=[]):
            a.append(1)
        async def g(a=[]):
            a.append(1)
        """,
        "LW010",
    )
    assert "concurrent" not in sync.message
    assert "every call shares one list, concurrent calls too" in coroutine.message


def test_mutable_default_message_says_what_the_function_does_with_it() -> None:
    findings = check_rule(
        """
        def appends(items=[]):
            items.append(1)
        def stores(self, items=[]):
            self.items = items
        def returns(items={}):
            return items
        def _fill(target):
            target.add(1)
        def hands_on(items=set()):
            _fill(items)
        """,
        "LW010",
    )
    messages = [f.message for f in findings]
    assert messages[0].startswith("default `[]` of `items` is appended to (line 3): ")
    assert "every call shares one list" in messages[0]
    assert "is stored in `self.items` (line 5)" in messages[1]
    assert "is returned (line 7)" in messages[2]
    assert "is passed to `_fill()`, where it is added to (line 9)" in messages[3]


def test_mutable_default_only_read_is_not_reported() -> None:
    source = """
        def f(items=[], options={}):
            for item in items:
                print(item, options.get(item), len(items), **options)
            return sorted(items)
        """
    assert check_rule(source, "LW010") == []


def test_sentinel_goes_before_a_decorated_first_statement() -> None:
    source = (
        "def deco(f):\n    return f\n\n\n"
        "def outer(items=[]):\n    @deco\n    def inner():\n        return 1\n"
        "    items.append(inner)\n    return items\n"
    )
    fixed = _fix(source, unsafe=False)
    ast.parse(fixed)
    assert fixed == source.replace("items=[]", "items=None").replace(
        "    @deco\n", "    if items is None:\n        items = []\n    @deco\n"
    )


def test_a_private_cache_default_is_not_fixed_without_unsafe_fixes() -> None:
    # `_memo={}` is the deliberate memoisation idiom: the safe fix would silently drop the cache.
    source = (
        "def fib(n, _memo={}):\n    if n in _memo:\n        return _memo[n]\n"
        "    _memo[n] = n if n < 2 else fib(n - 1) + fib(n - 2)\n    return _memo[n]\n"
    )
    assert _fix(source, unsafe=False) == source
    assert "_memo=None" in _fix(source, unsafe=True)


def test_sentinel_fix_not_offered_when_the_function_rebinds_a_name_of_the_default() -> None:
    # In the body the default's `list` would be the parameter (None) or a local not yet bound.
    for source in (
        "def f(x, list=list()):\n    list.append(x)\n    return list\n",
        "import collections\n\n\ndef g(index=collections.defaultdict(list)):\n"
        "    index['a'].append(1)\n    list = [index]\n    return list\n",
    ):
        fixed = _fix(source, unsafe=True)
        assert fixed == source, fixed
