"""``loopwise server``: the checker as a Language Server Protocol server over stdio (pygls).

Guarantees: diagnostics of an open Python file follow its buffer (on open and save at once,
on change after a short debounce), under the settings ``loopwise check`` would use for it.
The workspace is indexed in the background after start-up; a change to a file re-checks the
open files whose findings depend on it. Nothing a client or a rule does ends the session: a
failing rule loses its findings for that file (and is logged), a broken buffer keeps its last
good findings plus one syntax-error diagnostic, and a client that goes away ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from loopwise._exceptions import ConfigError
from loopwise._version import __version__
from loopwise.lint._engine import Cache, default_jobs
from loopwise.lint._files import SourceFile
from loopwise.lint._finding import Finding
from loopwise.lint._incremental import summarize_files
from loopwise.lint._project import ModuleSummary
from loopwise.lint._rule import Rule
from loopwise.lint._server_actions import FIX_ALL_KIND, Lines, code_actions, diagnostic, hover_text
from loopwise.lint._server_io import BoundedInput, one_line
from loopwise.lint._server_state import FileReport, ServerState
from loopwise.lint.rules import ALL_RULES

__all__ = ["DEFAULT_DEBOUNCE", "LoopwiseServer", "build_server", "serve"]

logger = logging.getLogger("loopwise.server")

DEFAULT_DEBOUNCE = 0.03  # seconds: one check per burst of keystrokes, without a felt delay
_INDEX_TOKEN = "loopwise/index"
_Summaries = list[tuple[SourceFile, str, bool, ModuleSummary]]


class LoopwiseServer(LanguageServer):
    """The server's state on top of pygls' protocol handling."""

    def __init__(self) -> None:
        super().__init__("loopwise", __version__)
        self.state = ServerState([], [rule() for rule in ALL_RULES])
        self.debounce = DEFAULT_DEBOUNCE
        self.cache = True
        self.pending: dict[str, asyncio.Task[None]] = {}
        self.index_task: asyncio.Task[None] | None = None
        self.stopping = threading.Event()
        self.shown_errors: set[str] = set()

    # -- publishing ----------------------------------------------------------------------

    def publish(self, uri: str) -> None:
        """Check an open document's current text and publish its diagnostics."""
        path = _path(uri)
        if path is None or path not in self.state.buffers:
            return
        if uri in self.pending:
            # the document is newer than the buffer: its own refresh publishes soon, whereas
            # publishing now would label the older text's findings with the newer version
            return
        document = self.workspace.get_text_document(uri)
        report = self.state.check(path)
        lines = Lines(document.source, self.workspace.position_codec)
        diagnostics = [diagnostic(f, lines) for f in report.findings]
        if report.syntax_error is not None:
            diagnostics.append(diagnostic(report.syntax_error, lines))
        if report.config_error is not None:
            self.show_error(report.config_error)
            config = Finding(path, 1, 1, "config-error", report.config_error, 1, 1)
            diagnostics.append(diagnostic(config, lines))
        for failure in report.failures:
            self.log(
                types.MessageType.Error,
                f"rule {failure.code} failed on {failure.path}:{failure.line or '?'}"
                f" ({failure.error}); its findings in this file are left out",
            )
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri, diagnostics=diagnostics, version=document.version
            )
        )

    def clear(self, uri: str) -> None:
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
        )

    def refresh(self, uri: str) -> None:
        """Take the buffer's text, publish its findings and those of the files it affects."""
        path = _path(uri)
        if path is None:
            return
        document = self.workspace.get_text_document(uri)
        if document.language_id != "python" and not path.endswith(".py"):
            return  # a client that sends every open document: TOML or text is not checked
        others = self.state.set_text(path, document.source.encode("utf-8", "surrogatepass"))
        self.publish(uri)
        self.publish_paths(others)

    def publish_paths(self, paths: Sequence[str]) -> None:
        for other in paths:
            other_uri = self.uri_of(other)
            if other_uri is not None:
                self.publish(other_uri)

    def uri_of(self, path: str) -> str | None:
        for document in self.workspace.text_documents.values():
            if _path(document.uri) == path:
                uri: str = document.uri
                return uri
        found: str | None = from_fs_path(path)
        return found

    def schedule(self, uri: str, delay: float) -> None:
        """Refresh ``uri`` after ``delay`` seconds, replacing a refresh already waiting."""
        waiting = self.pending.pop(uri, None)
        if waiting is not None:
            waiting.cancel()
        self.pending[uri] = asyncio.get_running_loop().create_task(self._later(uri, delay))

    def flush(self, uri: str) -> None:
        """Take in an edit still waiting for its debounce, so a request sees the buffer as it is.

        (A code action computed on the text before the edit would undo the edit.)
        """
        waiting = self.pending.pop(uri, None)
        if waiting is not None:
            waiting.cancel()
            self.guarded(self.refresh, uri)

    async def _later(self, uri: str, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        self.pending.pop(uri, None)
        self.guarded(self.refresh, uri)

    def guarded(self, action: Callable[[str], None], uri: str) -> None:
        """Run one step for a document; an unexpected error is logged, never raised."""
        try:
            action(uri)
        except Exception as exc:  # the session outlives any one file
            logger.exception("error while handling %s", uri)
            self.log(types.MessageType.Error, f"loopwise: error on {uri}: {exc!r}")

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Bad input from the editor (a malformed frame, a change to a document it never
        opened) is one line in the editor's log, not a pop-up; the session goes on."""
        if source is FeatureRequestError:  # the request's error response carries it
            return
        self.log(
            types.MessageType.Warning,
            f"loopwise: could not handle a message from the editor, ignored it"
            f" ({type(error).__name__}: {error})",
        )

    def log(self, kind: types.MessageType, message: str) -> None:
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    def show_error(self, message: str) -> None:
        if message not in self.shown_errors:
            self.shown_errors.add(message)
            self.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=message)
            )

    def reload_config(self) -> None:
        error = self.state.reload_config()
        if error is not None:
            self.show_error(f"loopwise: {error} (the previous settings stay)")
            return
        self.shown_errors.clear()
        if not self.state.indexed and self.index_task is not None and self.index_task.done():
            # the index failed under the broken settings: these may let it through
            self.index_task = asyncio.get_running_loop().create_task(self.index())
        self.publish_paths(list(self.state.buffers))

    # -- indexing ------------------------------------------------------------------------

    async def index(self) -> None:
        """Summarize the workspace in a thread, reporting progress; then re-check open files."""
        loop = asyncio.get_running_loop()
        token: str | None = None
        progress = self.client_capabilities.window
        if progress is not None and progress.work_done_progress:
            try:
                await asyncio.wait_for(
                    self.work_done_progress.create_async(_INDEX_TOKEN), timeout=5
                )
                token = _INDEX_TOKEN
            except Exception:  # a client that will not show progress still gets the index
                token = None
        if token is not None:
            self.work_done_progress.begin(
                token, types.WorkDoneProgressBegin(title="loopwise: indexing", percentage=0)
            )
        done = 0
        total = 0

        def report(count: int) -> None:
            nonlocal done
            done += count
            if token is not None and total:
                percentage = min(99, done * 100 // total)
                self.work_done_progress.report(
                    token,
                    types.WorkDoneProgressReport(
                        message=f"{done}/{total} files", percentage=percentage
                    ),
                )

        def started(count: int) -> Callable[[int], None]:
            nonlocal total
            total = count

            def advance(step: int) -> None:
                if self.stopping.is_set():
                    raise _Stopped
                try:
                    loop.call_soon_threadsafe(report, step)
                except RuntimeError:  # the loop is closed: the client went away mid-index
                    raise _Stopped from None

            return advance

        result: asyncio.Future[_Summaries | None] = loop.create_future()
        worker = threading.Thread(
            target=self._index_in_thread,
            args=(loop, result, started),
            name="loopwise-index",
            daemon=True,  # a client that goes away must not wait for the index
        )
        worker.start()
        summaries = await result
        if summaries is not None:
            self.state.add_index(summaries)
        if token is not None:
            count = len(summaries or [])
            self.work_done_progress.end(
                token,
                types.WorkDoneProgressEnd(
                    message=f"{count} file{'s' if count != 1 else ''} indexed"
                ),
            )
        self.publish_paths(list(self.state.buffers))

    def _index_in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        result: asyncio.Future[_Summaries | None],
        started: Callable[[int], Callable[[int], None]],
    ) -> None:
        outcome: _Summaries | None
        try:
            files = self.state.workspace_files()
            cache = None
            if self.cache and self.state.roots:
                root = self.state.selector.finder.for_directory(self.state.roots[0]).root
                cache = Cache.load(root / ".loopwise_cache")
            outcome = summarize_files(
                files, jobs=default_jobs(), cache=cache, progress=started, fork=False
            )
        except _Stopped:
            outcome = None
        except ConfigError as exc:  # indexed again once the configuration is mended
            logger.error("indexing waits for a valid configuration: %s", exc)
            outcome = None
        except Exception:
            logger.exception("indexing failed; checking files one by one")
            outcome = None

        def deliver() -> None:
            if not result.done():
                result.set_result(outcome)

        with contextlib.suppress(RuntimeError):  # the loop is gone: the session ended
            loop.call_soon_threadsafe(deliver)


class _Stopped(Exception):
    """The session ended while indexing."""


def _path(uri: str) -> str | None:
    """The file path of a ``file:`` URI (None for other schemes such as ``untitled:``)."""
    if not uri.startswith("file:"):
        return None
    path: str | None = to_fs_path(uri)
    return path


def _roots(params: types.InitializeParams) -> list[Path]:
    folders = params.workspace_folders or []
    uris = [folder.uri for folder in folders] or ([params.root_uri] if params.root_uri else [])
    roots = [Path(p) for p in (_path(uri) for uri in uris) if p]
    if not roots and params.root_path:
        roots = [Path(params.root_path)]
    return roots


def _load_rules(names: Sequence[str]) -> list[Rule[Any]]:
    """Extra rule classes named ``module:Class`` (the ``extraRules`` initialization option)."""
    loaded = []
    for name in names:
        module_name, _, class_name = name.partition(":")
        rule_class = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(rule_class, type) and issubclass(rule_class, Rule)):
            raise TypeError(f"{name} is not a loopwise Rule class")
        loaded.append(rule_class())
    return loaded


def build_server() -> LoopwiseServer:
    """A server with every handler registered (not started)."""
    server = LoopwiseServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: LoopwiseServer, params: types.InitializeParams) -> None:
        options = params.initialization_options
        options = options if isinstance(options, dict) else {}
        debounce = options.get("debounce")
        if isinstance(debounce, (int, float)) and 0 <= debounce <= 10_000:
            ls.debounce = debounce / 1000
        ls.cache = options.get("cache", True) is not False
        extra: list[Rule[Any]] = []
        names = options.get("extraRules")
        if isinstance(names, list):
            try:
                extra = _load_rules([str(name) for name in names])
            except Exception as exc:
                ls.show_error(f"loopwise: extraRules: {exc!r}")
        ls.state = ServerState(_roots(params), [*(rule() for rule in ALL_RULES), *extra])
        error = ls.state.reload_config()
        if error is not None:
            ls.show_error(f"loopwise: {error} (using the default settings)")

    @server.feature(types.INITIALIZED)
    async def initialized(ls: LoopwiseServer, params: types.InitializedParams) -> None:
        watched = ls.client_capabilities.workspace
        changes = watched.did_change_watched_files if watched else None
        if changes is not None and changes.dynamic_registration:
            globs = ["**/*.py", "**/pyproject.toml", "**/loopwise.toml", "**/*.json"]
            registration = types.Registration(
                id="loopwise-watch",
                method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=types.DidChangeWatchedFilesRegistrationOptions(
                    watchers=[types.FileSystemWatcher(glob_pattern=glob) for glob in globs]
                ),
            )
            try:
                await asyncio.wait_for(
                    ls.client_register_capability_async(
                        types.RegistrationParams(registrations=[registration])
                    ),
                    timeout=5,
                )
            except Exception:
                logger.warning("the client did not accept file watching")
        ls.index_task = asyncio.get_running_loop().create_task(ls.index())

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: LoopwiseServer, params: None) -> None:
        ls.stopping.set()
        for task in ls.pending.values():
            task.cancel()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LoopwiseServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.guarded(ls.refresh, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LoopwiseServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, ls.debounce)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: LoopwiseServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        path = _path(uri)
        if path is not None and (ls.state.is_config_file(path) or ls.state.is_baseline(path)):
            ls.reload_config()
            return
        ls.schedule(uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LoopwiseServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        waiting = ls.pending.pop(uri, None)
        if waiting is not None:
            waiting.cancel()
        path = _path(uri)
        if path is None:
            return
        ls.clear(uri)
        ls.publish_paths(ls.state.close(path))

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched(ls: LoopwiseServer, params: types.DidChangeWatchedFilesParams) -> None:
        reload = False
        affected: dict[str, None] = {}
        for change in params.changes:
            path = _path(change.uri)
            if path is None:
                continue
            if ls.state.is_config_file(path) or ls.state.is_baseline(path):
                reload = True
            elif change.type == types.FileChangeType.Deleted:
                affected.update(dict.fromkeys(ls.state.deleted(path)))
                if path not in ls.state.buffers:
                    ls.clear(change.uri)
            else:
                affected.update(dict.fromkeys(ls.state.disk_changed(path)))
        if reload:
            ls.reload_config()
        else:
            ls.publish_paths(list(affected))

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL_KIND],
            resolve_provider=False,
        ),
    )
    def code_action(
        ls: LoopwiseServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        path = _path(uri)
        if path is None or path not in ls.state.buffers:
            return None
        ls.flush(uri)
        document = ls.workspace.get_text_document(uri)
        lines = Lines(document.source, ls.workspace.position_codec)
        checked = ls.state.fixable(path)
        if checked.error is not None:
            return None
        findings = [f for f in checked.findings if ls.state.selector.wanted(f, Path.cwd())]
        fix_all = ls.state.remembered(path, "fix-all", lambda: _fix_all(ls, path))
        return code_actions(uri, lines, findings, fix_all, params.range, params.context.only)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: LoopwiseServer, params: types.HoverParams) -> types.Hover | None:
        uri = params.text_document.uri
        path = _path(uri)
        if path is None or path not in ls.state.buffers:
            return None
        ls.flush(uri)
        document = ls.workspace.get_text_document(uri)
        lines = Lines(document.source, ls.workspace.position_codec)
        report: FileReport = ls.state.check(path)
        text = hover_text(report.findings, lines, params.position)
        if text is None:
            return None
        content = types.MarkupContent(kind=types.MarkupKind.Markdown, value=text)
        return types.Hover(contents=content)

    return server


def _fix_all(ls: LoopwiseServer, path: str) -> str | None:
    """The buffer's text with every safe fix applied (None when nothing changes)."""
    from loopwise.lint._fixing import fix_source

    buffer = ls.state.buffers[path]
    outcome = fix_source(
        path,
        path,
        buffer.text,
        project=ls.state.project,
        rules=ls.state.rules,
        selector=ls.state.selector,
        unsafe=False,
    )
    if not outcome.changed:
        return None
    return outcome.after.decode("utf-8", errors="surrogateescape")


def serve(*, stdin: Any = None, stdout: Any = None) -> None:
    """Run the server on stdio until the client exits or goes away."""
    logging.basicConfig(level=logging.WARNING, format="loopwise server: %(message)s")
    for name in ("pygls.server", "pygls.io_"):  # where pygls reports a message it cannot read
        logging.getLogger(name).addFilter(one_line)
    bounded: Any = BoundedInput(stdin or sys.stdin.buffer)  # pygls only reads lines and sizes
    build_server().start_io(bounded, stdout)
