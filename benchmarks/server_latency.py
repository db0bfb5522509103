"""How fast ``loopwise server`` answers an edit on a large real project, driven over stdio.

Run by hand (never from the tests)::

    python benchmarks/server_latency.py [--edits 40] [--codebase homeassistant]

It takes the codebase the way ``benchmarks/check_speed.py`` does (downloaded from the package
index into a directory outside the repository, reused between runs), starts ``loopwise
server`` in it with pygls' client, and measures:

* indexing: from ``initialized`` to the end of the server's ``$/progress`` (cache off), against
  one cold ``loopwise check --no-cache`` of the same tree;
* the server's resident memory after indexing;
* latency: from a ``didChange`` of a file of about 1,000 lines to the ``publishDiagnostics``
  of that version, after indexing; the first half of the edits add a comment (the file's
  summary stays), the second half each add a new function (the project's summaries change).
  The default debounce (30 ms) is part of the time, as an editor would see it.

Goals (issue 13): p95 <= 100 ms, and indexing no slower than a cold ``loopwise check``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_speed import fetch, loopwise_command, scan

TIMEOUT = 900.0


def pick_file(root: Path, files: dict[str, int], target: int) -> Path:
    """The project file (not a test) whose line count is closest to ``target``."""
    candidates = {name: count for name, count in files.items() if "test" not in name}
    name = min(candidates, key=lambda n: (abs(candidates[n] - target), n))
    return root / name


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def drive(root: Path, target: Path, text: str, edits: int) -> dict[str, Any]:
    client = LanguageClient("loopwise-bench", "0")
    published: dict[tuple[str, int | None], float] = {}
    ended = asyncio.Event()
    arrived = asyncio.Event()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        published[(params.uri, params.version)] = time.perf_counter()
        arrived.set()

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def on_create(params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def on_progress(params: types.ProgressParams) -> None:
        value = params.value
        kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
        if kind == "end":
            ended.set()

    command = loopwise_command()
    await client.start_io(command[0], *command[1:], "server", cwd=root)
    server = client._server
    assert server is not None
    capabilities = types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True)
    )
    await client.initialize_async(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="bench")],
            initialization_options={"cache": False},
        )
    )
    started = time.perf_counter()
    client.initialized(types.InitializedParams())
    await asyncio.wait_for(ended.wait(), TIMEOUT)
    indexing = time.perf_counter() - started
    memory = rss_mb(server.pid)

    uri = target.as_uri()

    async def until(version: int) -> float:
        while (uri, version) not in published:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 60)
        return published[(uri, version)]

    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    await until(1)
    latencies: dict[str, list[float]] = {"comment": [], "new function": []}
    for version in range(2, edits + 2):
        kind = "comment" if version < edits // 2 + 2 else "new function"
        extra = (
            f"# edit {version}\n" if kind == "comment" else f"def _bench_{version}():\n    pass\n"
        )
        sent = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text + extra)],
            )
        )
        latencies[kind].append((await until(version)) - sent)
        await asyncio.sleep(0.2)
    await client.shutdown_async(None)
    client.exit(None)
    await asyncio.wait_for(client.stop(), 30)
    return {"indexing": indexing, "rss_mb": memory, "latencies": latencies}


def cold_check(root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [*loopwise_command(), "check", "--no-cache", "--exit-zero", "--format", "json", "."],
        cwd=root,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--codebase", default="homeassistant", choices=("aiohttp", "homeassistant"))
    parser.add_argument("--edits", type=int, default=40, help="didChange rounds (default 40)")
    parser.add_argument("--lines", type=int, default=1000, help="size of the edited file")
    parser.add_argument(
        "--downloads",
        type=Path,
        default=Path(tempfile.gettempdir()) / "loopwise-check-speed",
        help="where check_speed.py keeps the codebases (reused)",
    )
    parser.add_argument("--no-cold-check", action="store_true", help="skip the cold check")
    options = parser.parse_args(argv)
    version, root = fetch(options.codebase, options.downloads, refresh=False)
    tree = scan(options.codebase, version, root)
    target = pick_file(root, tree.lines, options.lines)
    print(
        f"{options.codebase} {version}: {len(tree.files)} files, {tree.total_lines:,} lines;"
        f" editing {target.relative_to(root)} ({tree.lines[target.relative_to(root).as_posix()]}"
        f" lines); {os.cpu_count()} CPUs"
    )
    result = asyncio.run(drive(root, target, target.read_text(encoding="utf-8"), options.edits))
    print(f"indexing (no cache): {result['indexing']:.1f} s; RSS after: {result['rss_mb']:.0f} MB")
    if not options.no_cold_check:
        cold = cold_check(root)
        print(
            f"cold loopwise check: {cold:.1f} s"
            f" (indexing / check = {result['indexing'] / cold:.2f})"
        )
    everything: list[float] = []
    for kind, values in result["latencies"].items():
        everything += values
        print(
            f"didChange -> publishDiagnostics, {kind}:"
            f" p50 {statistics.median(values) * 1000:.0f} ms,"
            f" p95 {percentile(values, 0.95) * 1000:.0f} ms ({len(values)} edits)"
        )
    p95 = percentile(everything, 0.95) * 1000
    print(
        f"all edits: p50 {statistics.median(everything) * 1000:.0f} ms,"
        f" p95 {p95:.0f} ms (goal <= 100)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
