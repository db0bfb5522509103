"""Fixes on shapes real code has: aliases, tuples, comments, decorators (found in review)."""

from __future__ import annotations

import argparse
import ast
import io
import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.lint.test_workflow import BAD, _fix, project, run

__all__ = ["project"]  # the fixture, used by name

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


# -- what --fix reads and writes ---------------------------------------------------------------


def test_a_file_not_in_utf8_is_left_alone_and_said_so(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ast columns are UTF-8 offsets: applied to latin-1 bytes they land in the wrong place
    # (`log("é")` became `logawait ("é")`, which still parses).
    source = (
        "# -*- coding: latin-1 -*-\nimport asyncio\n\nasync def log(m):\n    pass\n\n"
        'async def main():\n    x = "\xe9\xe9\xe9"; log("\xe9")\n'
    ).encode("latin-1")
    (project / "bad.py").write_bytes(source)
    code, _, err = run(capsys, "--fix", "bad.py")
    assert (project / "bad.py").read_bytes() == source
    assert code == 1 and "bad.py: not fixed: encoded in iso-8859-1" in err


def test_a_file_with_a_byte_order_mark_is_fixed_and_keeps_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = b"\xef\xbb\xbfdef f(x=[]):\n    x.append(1)\n    return x\n"
    (project / "bad.py").write_bytes(source)
    code, _, _ = run(capsys, "--fix", "bad.py")
    assert code == 0
    assert (project / "bad.py").read_bytes() == (
        b"\xef\xbb\xbfdef f(x=None):\n    if x is None:\n        x = []\n"
        b"    x.append(1)\n    return x\n"
    )


def test_a_file_changed_between_check_and_fix_is_fixed_as_it_is_now(project: Path) -> None:
    from loopwise.lint import check
    from loopwise.lint._check_command import _fix_files

    result = check(["bad.py"], fixes=True)
    # An editor saved meanwhile: the edit computed for the old text (`await` at column 4 of
    # line 7) would make `await print()`, which parses.
    (project / "bad.py").write_text(BAD.replace("    work()", "    print(); work()"))
    _fix_files(argparse.Namespace(unsafe_fixes=False, diff=False), result)
    fixed = (project / "bad.py").read_text()
    assert fixed == BAD.replace("    work()", "    print(); await work()")


# -- baselines ----------------------------------------------------------------------------------


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_a_baseline_fingerprints_the_text_read_from_stdin(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "--write-baseline", "baseline.json", "bad.py")[0] == 0
    # An editor's unsaved buffer: a new unawaited call where the file on disk has the known one.
    buffer = BAD.replace("    work()\n", "    other()\n").replace(
        "pass\n", "pass\n\nasync def other():\n    pass\n"
    )
    buffer = buffer.replace(
        "async def main():\n    other()", "async def main():\n    work()\n    other()"
    )
    _stdin(monkeypatch, buffer)
    code, out, err = run(capsys, "--baseline", "baseline.json", "-", "--stdin-filename", "bad.py")
    assert code == 1 and "`other()`" in out and "`work()`" not in out, out
    # The known finding moved down by lines added above it: still known.
    _stdin(monkeypatch, "# a new comment\n\n" + BAD)
    code, out, err = run(capsys, "--baseline", "baseline.json", "-", "--stdin-filename", "bad.py")
    assert (code, out) == (0, "") and "1 baseline finding hidden" in err


def test_a_baseline_from_a_newer_loopwise_says_so(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "baseline.json").write_text('{"version": 2, "findings": {}}\n')
    code, _, err = run(capsys, "--baseline", "baseline.json", ".")
    assert code == 2 and err.count("\n") == 1
    assert "written by a newer loopwise (format 2; this one reads format 1)" in err


# -- options that cannot go together -------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--add-noqa", "--fix"], "--fix and --add-noqa cannot be used together"),
        (["--add-noqa", "--fix-only"], "--fix-only and --add-noqa cannot be used together"),
        (["--isolated", "--config", "loopwise.toml"], "--isolated and --config cannot be used"),
        (["--config", "."], ".: --config takes a file (pyproject.toml or loopwise.toml)"),
    ],
)
def test_options_that_contradict_each_other_are_one_line_and_exit_two(
    project: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    (project / "loopwise.toml").write_text('select = ["LW002"]\n')
    code, out, err = run(capsys, *options, "bad.py")
    assert (code, out) == (2, "") and message in err and err.count("\n") == 1, err
    assert (project / "bad.py").read_text() == BAD  # neither fixed nor given a noqa


# -- output formats -------------------------------------------------------------------------------

MUTATED = "def collect(items=[]):\n    items.append(1)\n    return items\n"


def test_gitlab_fingerprints_survive_lines_added_above_and_stay_unique(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GitLab matches a merge request's issues to the target branch's by fingerprint: one that
    # changes when the code above moves shows a fixed and a new issue for the same code. (The
    # LW010 message names the line of the mutation.)
    (project / "bad.py").write_text(BAD + "    work()\n")
    (project / "mutated.py").write_text(MUTATED)
    before = json.loads(run(capsys, "--output-format", "gitlab", ".")[1])
    (project / "bad.py").write_text("import os\n" + BAD + "    work()\n")
    (project / "mutated.py").write_text("import os\n\n" + MUTATED)
    after = json.loads(run(capsys, "--output-format", "gitlab", ".")[1])
    assert len(before) == 3 and len({issue["fingerprint"] for issue in before}) == 3
    assert [i["fingerprint"] for i in before] == [i["fingerprint"] for i in after]
    assert [i["location"]["lines"]["begin"] for i in after] == [8, 9, 3]


def test_sarif_locations_are_uri_references(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = project / "my app" / "100%"
    folder.mkdir(parents=True)
    (folder / "a#b.py").write_text(BAD)
    (project / "bad.py").unlink()
    out = run(capsys, "--output-format", "sarif", ".")[1]
    result = json.loads(out)["runs"][0]["results"][0]
    location = result["locations"][0]["physicalLocation"]["artifactLocation"]
    assert location["uri"] == "my%20app/100%25/a%23b.py"


def test_junit_stays_well_formed_with_control_characters_in_a_path(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "bad.py").rename(project / "bad\x01\x1b.py")
    out = run(capsys, "--output-format", "junit", ".")[1]
    root = ElementTree.fromstring(out)
    assert root.find("testsuite/testcase/failure") is not None


def test_keep_reference_fix_leaves_a_trailing_comment_on_the_create_task_line() -> None:
    # A type-ignore or noqa comment moved to another line stops applying to the call.
    source = (
        "import asyncio\n\n_background_tasks: set[object] = set()\n\n\nasync def work():\n"
        "    pass\n\n\nasync def main():\n"
        "    asyncio.create_task(work())  # type: ignore[arg-type]\n    return 1\n"
    )
    assert _fix(source, unsafe=True) == source.replace(
        "    asyncio.create_task(work())  # type: ignore[arg-type]\n",
        "    _task = asyncio.create_task(work())  # type: ignore[arg-type]\n"
        "    _background_tasks.add(_task)\n"
        "    _task.add_done_callback(_background_tasks.discard)\n",
    )


def test_a_private_cache_default_is_not_fixed_without_unsafe_fixes() -> None:
    # `_memo={}` is the deliberate memoisation idiom: the safe fix would silently drop the cache.
    source = (
        "def fib(n, _memo={}):\n    if n in _memo:\n        return _memo[n]\n"
        "    _memo[n] = n if n < 2 else fib(n - 1) + fib(n - 2)\n    return _memo[n]\n"
    )
    assert _fix(source, unsafe=False) == source
    assert "_memo=None" in _fix(source, unsafe=True)


def test_awaiting_a_bare_gather_needs_unsafe_fixes() -> None:
    # gather() schedules its children at once: they already run. `await` makes the caller wait
    # for them (forever, for servers), which is more than the lost failures flagged.
    source = (
        "import asyncio\n\nasync def serve():\n    pass\n\n"
        "async def main():\n    asyncio.gather(serve(), serve())\n    return 1\n"
    )
    assert _fix(source, unsafe=False) == source
    assert "    await asyncio.gather(" in _fix(source, unsafe=True)


def test_add_noqa_never_edits_a_string_that_looks_like_a_noqa(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = BAD.replace("    work()\n", '    x = "see # noqa: E501"; work()  # type: ignore\n')
    (project / "bad.py").write_text(source)
    assert run(capsys, "--add-noqa", "bad.py")[0] == 0
    assert (project / "bad.py").read_text() == source.replace(
        "# type: ignore\n", "# type: ignore  # noqa: LW001\n"
    )
    assert run(capsys, "bad.py")[:2] == (0, "")


def test_no_await_inside_a_generator_expression() -> None:
    # `await` there parses but turns it into an async generator: `list()` of it then fails.
    source = (
        "import asyncio\n\nasync def ready(x):\n    return x\n\n"
        "async def main(items):\n    return list(1 if ready(x) else 2 for x in items)\n"
    )
    assert _fix(source, unsafe=True) == source


def test_full_format_caret_on_the_first_line_of_a_file_with_a_byte_order_mark(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = "import asyncio; asyncio.get_event_loop().run_until_complete(asyncio.sleep(0))"
    (project / "bad.py").write_bytes(b"\xef\xbb\xbf" + line.encode() + b"\n")
    out = run(capsys, "--output-format", "full", "--color", "never", "bad.py")[1]
    assert f"1 | {line}\n  | {' ' * 16}^^^^^" in out, out


def test_force_exclude_applies_to_the_stdin_filename(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Editors pipe every buffer with --force-exclude: an excluded path is neither reported
    # nor rewritten (its text comes back as it was).
    (project / "loopwise.toml").write_text('exclude = ["generated/**"]\n')
    _stdin(monkeypatch, BAD)
    code, out, _ = run(capsys, "--force-exclude", "-", "--stdin-filename", "generated/x.py")
    assert (code, out) == (0, "")
    _stdin(monkeypatch, BAD)
    code, out, _ = run(
        capsys, "--force-exclude", "--fix", "-", "--stdin-filename", "generated/x.py"
    )
    assert (code, out) == (0, BAD)
    _stdin(monkeypatch, BAD)  # without --force-exclude a named path is checked, as in ruff
    assert run(capsys, "-", "--stdin-filename", "generated/x.py")[0] == 1


def test_run_fix_not_offered_for_a_future() -> None:
    # asyncio.run() takes a coroutine: `asyncio.run(asyncio.gather(...))` raises ValueError.
    source = (
        "import asyncio\n\nasync def a():\n    pass\n\n"
        "asyncio.get_event_loop().run_until_complete(asyncio.gather(a(), a()))\n"
    )
    assert _fix(source, unsafe=True) == source


def test_keep_reference_set_goes_below_a_shebang_and_coding_line() -> None:
    source = (
        "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nasync def work():\n    pass\n\n\n"
        "async def main():\n    import asyncio\n    asyncio.create_task(work())\n"
    )
    fixed = _fix(source, unsafe=True)
    assert fixed.startswith(
        "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n\n"
        "_background_tasks: set[object] = set()  # running tasks, kept until done\n\n"
        "async def work():\n"
    )


def test_diff_of_a_file_without_a_final_line_break_applies(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without the marker, `git apply` / `patch` refuse the hunk (the last line differs).
    (project / "bad.py").write_text(BAD.rstrip("\n"))
    code, out, _ = run(capsys, "--diff", "bad.py")
    assert code == 1
    marker = "\\ No newline at end of file\n"
    assert out.endswith(f"-    work()\n{marker}+    await work()\n{marker}")


def test_sentinel_fix_not_offered_when_the_function_rebinds_a_name_of_the_default() -> None:
    # In the body the default's `list` would be the parameter (None) or a local not yet bound.
    for source in (
        "def f(x, list=list()):\n    list.append(x)\n    return list\n",
        "import collections\n\n\ndef g(index=collections.defaultdict(list)):\n"
        "    index['a'].append(1)\n    list = [index]\n    return list\n",
    ):
        fixed = _fix(source, unsafe=True)
        assert fixed == source, fixed


def test_a_file_declared_ascii_is_fixed(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ASCII is UTF-8: its columns are right.
    (project / "bad.py").write_text("# -*- coding: ascii -*-\n" + BAD)
    code, _, err = run(capsys, "--fix", "bad.py")
    assert code == 0 and "not fixed" not in err
    assert "    await work()\n" in (project / "bad.py").read_text()
