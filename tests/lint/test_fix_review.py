"""Fixes on shapes real code has: aliases, tuples, comments, decorators (found in review)."""

from __future__ import annotations

import ast

from tests.lint.test_workflow import _fix

LOOP = "async def a(q):\n    while True:\n        try:\n            await q.get()\n"


def test_a_tuple_handler_reraises_only_the_cancellation() -> None:
    # `raise` at the end of `except (CancelledError, ValueError)` would re-raise the ValueError
    # the handler used to handle.
    source = (
        "import asyncio\n\n"
        + LOOP
        + "        except (asyncio.CancelledError, ValueError):\n            print('x')\n"
    )
    fixed = _fix(source, unsafe=True)
    assert fixed == source.replace(
        "        except (asyncio",
        "        except asyncio.CancelledError:\n            raise\n        except (asyncio",
    )


def test_broad_handler_fix_uses_the_name_the_module_imports() -> None:
    for imports, name in (
        ("import asyncio as aio\n", "aio.CancelledError"),
        ("from asyncio import CancelledError\n", "CancelledError"),
        ("from asyncio import CancelledError as Stop\n", "Stop"),
    ):
        source = f"{imports}\n" + LOOP + "        except BaseException:\n            print('x')\n"
        fixed = _fix(source, unsafe=True)
        assert fixed == source.replace(
            "        except BaseException:",
            f"        except {name}:\n            raise\n        except BaseException:",
        ), imports


def test_broad_handler_fix_needs_asyncio_imported_where_the_handler_runs() -> None:
    source = (
        "def setup():\n    import asyncio\n    return asyncio\n\n"
        + LOOP
        + "        except BaseException:\n            print('x')\n"
    )
    assert _fix(source, unsafe=True) == source


def test_run_fix_keeps_a_comment_in_the_call() -> None:
    source = (
        "import asyncio\n\nasync def main():\n    pass\n\n"
        "asyncio.get_event_loop().run_until_complete(\n    main()  # the entry point\n)\n"
    )
    fixed = _fix(source, unsafe=True)
    assert fixed == source.replace("asyncio.get_event_loop().run_until_complete(", "asyncio.run(")


def test_run_fix_only_for_the_asyncio_module_itself() -> None:
    # `asyncio.events.run` does not exist.
    source = (
        "import asyncio.events\n\nasync def main():\n    pass\n\n"
        "asyncio.events.get_event_loop().run_until_complete(main())\n"
    )
    fixed = _fix(source, unsafe=True)
    assert "asyncio.events.run(" not in fixed


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
