"""The Python blocks of docs/server.md: the quick start runs as a real server, every other block
is a fragment that must compile and whose loopwise imports must exist.

The quick start is run in a fresh interpreter on a free port (its ``8080`` replaced), asked for
what it serves, then stopped with SIGTERM: it must exit 0.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.reference._blocks import Block, parse

ROOT = Path(__file__).resolve().parents[3]
PAGE = ROOT / "docs" / "server.md"
BLOCKS = parse(PAGE.read_text(encoding="utf-8"), PAGE)
QUICK_START = BLOCKS[0]


def test_the_quick_start_is_the_first_block_and_a_whole_program() -> None:
    assert 'run(app, "127.0.0.1", 8080)' in QUICK_START.code


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_quick_start_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "quick_start.py"
    script.write_text(QUICK_START.code.replace("8080", str(port)), encoding="utf-8")
    environ = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "src"), environ.get("PYTHONPATH")])
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environ,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert f"serving on http://127.0.0.1:{port}" in line, line
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            async with session.get(f"{base}/events", headers={"Last-Event-ID": "0"}) as events:
                assert events.headers["Content-Type"].startswith("text/event-stream")
                async with session.post(f"{base}/publish") as published:
                    assert published.status == 200
                    assert (await published.json())["id"] == 1
                async with asyncio.timeout(10):
                    seen = b""
                    while b"\n\n" not in seen:
                        seen += await events.content.readany()
                assert b"event: note" in seen
                assert json.dumps({"text": "hello"}).encode() in seen
            async with session.ws_connect(f"{base}/ws") as ws:
                await ws.send_str("echo")
                assert (await ws.receive(timeout=10)).data == "echo"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        errors = (await process.stderr.read()).decode()
        assert "Traceback" not in errors, errors
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


FRAGMENTS = BLOCKS[1:]


@pytest.mark.parametrize("block", FRAGMENTS, ids=[b.id for b in FRAGMENTS])
def test_fragment_compiles_and_its_imports_exist(block: Block) -> None:
    tree = compile(
        block.code, str(PAGE), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | ast.PyCF_ONLY_AST
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("loopwise"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
