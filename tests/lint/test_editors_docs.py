"""docs/editors.md: every editor's snippet parses as its config language and runs the real
command; the README points to it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from loopwise.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "editors.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for language, code in _BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        found.setdefault(language, []).append(code)
    return found


def section(title: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_the_command_the_snippets_name_exists() -> None:
    args = build_parser(["server"]).parse_args(["server"])
    assert args.command == "server" and callable(args.handler)


def test_every_editor_has_a_section_with_a_snippet() -> None:
    for title, language in (
        ("Neovim", "lua"),
        ("Helix", "toml"),
        ("Zed", "json"),
        ("VS Code", "json"),
        ("Emacs", "elisp"),
    ):
        assert f"```{language}\n" in section(title), title


def test_json_snippets_parse_and_run_loopwise_server() -> None:
    zed, vscode = (json.loads(code) for code in blocks()["json"])
    binary: dict[str, Any] = zed["lsp"]["pylsp"]["binary"]
    assert (binary["path"], binary["arguments"]) == ("loopwise", ["server"])
    assert "pylsp" in zed["languages"]["Python"]["language_servers"]
    assert vscode["glspc.server.command"] == "loopwise"
    assert vscode["glspc.server.commandArguments"] == ["server"]
    assert vscode["glspc.server.languageId"] == ["python"]


def test_the_helix_snippet_parses_and_lists_the_server_for_python() -> None:
    [code] = blocks()["toml"]
    config = tomllib.loads(code)
    server = config["language-server"]["loopwise"]
    assert (server["command"], server["args"]) == ("loopwise", ["server"])
    [python] = config["language"]
    assert python["name"] == "python" and "loopwise" in python["language-servers"]


def test_the_lua_and_elisp_snippets_name_the_command() -> None:
    [lua] = blocks()["lua"]
    assert 'cmd = { "loopwise", "server" }' in lua
    assert 'vim.lsp.enable("loopwise")' in lua
    assert lua.count("(") == lua.count(")") and lua.count("{") == lua.count("}")
    [elisp] = blocks()["elisp"]
    assert '("loopwise" "server")' in elisp
    assert elisp.count("(") == elisp.count(")")


def test_the_readme_points_to_the_editor_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "### In your editor" in readme and "docs/editors.md" in readme
