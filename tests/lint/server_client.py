"""A real LSP client (pygls') driving ``loopwise server`` over stdio, for the server tests.

Every wait is bounded: a server that never answers fails the test within ``TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

TIMEOUT = 20.0
SERVER = [sys.executable, "-c", "import sys; from loopwise.cli import main; sys.exit(main())"]
HERE = str(Path(__file__).resolve().parent)  # where the test-only rule module lives
UNAWAITED = "import asyncio\n\n\nasync def main():\n    asyncio.sleep(1)\n"
CLEAN = "import asyncio\n\n\nasync def main():\n    await asyncio.sleep(1)\n"


class Session:
    """One server process and what it sent: diagnostics per URI, progress, log messages."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.client = LanguageClient("loopwise-tests", "0")
        self.diagnostics: dict[str, list[types.Diagnostic]] = {}
        self.published = 0
        self.progress: list[Any] = []
        self.logs: list[str] = []
        self.shown: list[str] = []
        self.versions: dict[str, int] = {}
        self.history: list[tuple[str, int | None]] = []  # (uri, version) of each publication
        self.changed = asyncio.Event()
        client = self.client

        @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            self.diagnostics[params.uri] = list(params.diagnostics)
            self.history.append((params.uri, params.version))
            self.published += 1
            self.changed.set()

        @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def on_create(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @client.feature(types.PROGRESS)
        def on_progress(params: types.ProgressParams) -> None:
            self.progress.append(params.value)
            self.changed.set()

        @client.feature(types.CLIENT_REGISTER_CAPABILITY)
        def on_register(params: types.RegistrationParams) -> None:
            return None

        @client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log(params: types.LogMessageParams) -> None:
            self.logs.append(params.message)
            self.changed.set()

        @client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_show(params: types.ShowMessageParams) -> None:
            self.shown.append(params.message)
            self.changed.set()

    async def start(
        self,
        *,
        options: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        folder: Path | None = None,
    ) -> types.InitializeResult:
        """Start the server in ``root`` with ``folder`` (default: ``root``) as the workspace."""
        folder_uri = (folder or self.root).as_uri()
        await self.client.start_io(
            *SERVER, "server", cwd=self.root, env={**os.environ, **(env or {})}
        )
        capabilities = types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True),
            workspace=types.WorkspaceClientCapabilities(
                did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(
                    dynamic_registration=True
                )
            ),
        )
        result = await asyncio.wait_for(
            self.client.initialize_async(
                types.InitializeParams(
                    capabilities=capabilities,
                    root_uri=folder_uri,
                    workspace_folders=[types.WorkspaceFolder(uri=folder_uri, name="w")],
                    initialization_options={"cache": False, **(options or {})},
                )
            ),
            TIMEOUT,
        )
        self.client.initialized(types.InitializedParams())
        return result

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), TIMEOUT)
            self.client.exit(None)
            await asyncio.wait_for(self.client.stop(), TIMEOUT)
        finally:
            server = self.client._server
            if server is not None and server.returncode is None:
                server.kill()
                await server.wait()

    async def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Until ``condition()`` holds after some message from the server (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while not condition():
            self.changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; logs: {self.logs[-5:]}")
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                continue

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()

    def codes(self, name: str) -> list[str]:
        return sorted(str(d.code) for d in self.diagnostics.get(self.uri(name), []))

    async def wait_codes(self, name: str, codes: list[str]) -> list[types.Diagnostic]:
        await self.wait_for(
            lambda: self.uri(name) in self.diagnostics and self.codes(name) == sorted(codes),
            f"{name}: {codes}",
        )
        return self.diagnostics[self.uri(name)]

    def open(self, name: str, text: str | None = None) -> None:
        content = (self.root / name).read_text() if text is None else text
        self.versions[name] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=self.uri(name), language_id="python", version=1, text=content
                )
            )
        )

    def change(self, name: str, text: str) -> None:
        self.versions[name] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri(name), version=self.versions[name]
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def files_changed(self, *changes: tuple[str, types.FileChangeType]) -> None:
        self.client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[types.FileEvent(uri=self.uri(name), type=kind) for name, kind in changes]
            )
        )

    async def request(self, coroutine: Any) -> Any:
        return await asyncio.wait_for(coroutine, TIMEOUT)

    async def code_actions(
        self,
        name: str,
        *,
        range: types.Range | None = None,
        diagnostics: list[types.Diagnostic] | None = None,
        only: list[str] | None = None,
    ) -> Any:
        """The code actions offered for ``range`` of ``name`` (the start of the file by default)."""
        start = types.Position(line=0, character=0)
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri(name)),
            range=range or types.Range(start=start, end=start),
            context=types.CodeActionContext(diagnostics=diagnostics or [], only=only),
        )
        return await self.request(self.client.text_document_code_action_async(params))

    async def hover(self, name: str, line: int, character: int) -> Any:
        params = types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri(name)),
            position=types.Position(line=line, character=character),
        )
        return await self.request(self.client.text_document_hover_async(params))


def apply_edit(text: str, edit: types.TextEdit) -> str:
    """``text`` with one edit applied (positions in UTF-16 units; the tests use ASCII)."""
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def offset(position: types.Position) -> int:
        return offsets[min(position.line, len(lines))] + position.character

    start, end = offset(edit.range.start), offset(edit.range.end)
    return text[:start] + edit.new_text + text[end:]
