"""Check one module: parse it, walk its tree once, and hand each node to the rules that want it."""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from loopwise.lint._ast import COMPREHENSIONS, FUNCTIONS, LOOPS, SCOPE_NODES, child_nodes, in_list
from loopwise.lint._binder import Bindings, Scope
from loopwise.lint._context import FileContext
from loopwise.lint._finding import Finding
from loopwise.lint._fix import Fix
from loopwise.lint._noqa import apply_noqa
from loopwise.lint._project import ModuleSummary, Project, summarize
from loopwise.lint._rule import Rule

__all__ = ["MAX_FILE_BYTES", "Checker", "ParsedModule", "check_module", "parse_module"]

MAX_FILE_BYTES = 8 * 1024 * 1024


_T = TypeVar("_T")


@dataclass(slots=True)
class ParsedModule:
    """A parsed file, or the error line that replaces its findings."""

    path: str
    module: str
    is_package: bool
    source: bytes
    tree: ast.Module | None
    error: Finding | None
    bindings: dict[ast.AST, Bindings] | None = None  # shared by the summary and the check


def parse_module(path: str, source: bytes, module: str, is_package: bool) -> ParsedModule:
    """Parse ``source``: a file that cannot be parsed gives an error finding, never an exception."""
    if len(source) > MAX_FILE_BYTES:
        size_mb = len(source) / 1024 / 1024
        limit_mb = MAX_FILE_BYTES // 1024 // 1024
        message = f"file is {size_mb:.1f} MB, over the {limit_mb} MB limit: not checked"
        return ParsedModule(
            path, module, is_package, source, None, _error(path, "io-error", message)
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # e.g. SyntaxWarning for invalid escapes: not ours to report
            tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        message = f"syntax error: {exc.msg}"
        line = exc.lineno or 1
        column = exc.offset or 1
        found = _error(path, "syntax-error", message, line=line, column=max(column, 1))
        return ParsedModule(path, module, is_package, source, None, found)
    except (ValueError, RecursionError, MemoryError) as exc:
        message = f"syntax error: {str(exc) or type(exc).__name__}"
        found = _error(path, "syntax-error", message)
        return ParsedModule(path, module, is_package, source, None, found)
    return ParsedModule(path, module, is_package, source, tree, None)


def summarize_module(parsed: ParsedModule) -> ModuleSummary:
    """The module's summary for the project table (empty for a file that did not parse)."""
    if parsed.tree is None:
        return ModuleSummary(name=parsed.module)
    try:
        context = FileContext(parsed.tree, parsed.module, parsed.is_package)
        parsed.bindings = context.bindings
        summary = summarize(context)
        summary.file = parsed.module.replace(".", "/") + (
            "/__init__.py" if parsed.is_package else ".py"
        )
        return summary
    except RecursionError:
        return ModuleSummary(name=parsed.module)


def _error(path: str, code: str, message: str, *, line: int = 1, column: int = 1) -> Finding:
    return Finding(path, line, column, code, message, line, column)


class Checker:
    """The state of one walk: where the walker is, and the findings so far.

    Rules read ``ctx`` (names, scopes, types), ``project`` (other modules), ``parents`` (the
    ancestors of the current node, innermost last) and call :meth:`report`.
    """

    def __init__(
        self,
        parsed: ParsedModule,
        project: Project,
        rules: Sequence[Rule[Any]],
        *,
        fixes: bool = False,
    ) -> None:
        assert parsed.tree is not None
        self.path = parsed.path
        self.source = parsed.source
        # Whether rules should build fixes: only when asked, so plain checking pays nothing.
        self.fixes = fixes
        self.tree = parsed.tree
        self.project = project
        self.ctx = FileContext(
            parsed.tree, parsed.module, parsed.is_package, parsed.bindings, project
        )
        self.ctx.extra_classes = frozenset().union(*(r.classes_for(self.path) for r in rules))
        self.parents: list[ast.AST] = []
        self.findings: list[Finding] = []
        self._rule: Rule[Any] | None = None
        self._per_module: dict[Callable[[ast.Module], object], object] = {}
        self._dispatch: dict[type[ast.AST], list[Rule[Any]]] = {}
        self._scope_dispatch: dict[type[ast.AST], list[Rule[Any]]] = {}
        for rule in rules:
            for node_type in rule.node_types:
                self._dispatch.setdefault(node_type, []).append(rule)
            for node_type in rule.scopes:
                self._scope_dispatch.setdefault(node_type, []).append(rule)

    # -- what rules call ---------------------------------------------------------------------

    def report(
        self, node: ast.AST, message: str, *, code: str | None = None, fix: Fix | None = None
    ) -> None:
        """Record a finding at ``node`` for the rule being run (or ``code``), with its fix."""
        rule_code = code or (self._rule.code if self._rule else "LW000")
        line = getattr(node, "lineno", 1)
        column = getattr(node, "col_offset", 0) + 1
        end_line = getattr(node, "end_lineno", None) or line
        end_column = (getattr(node, "end_col_offset", None) or column - 1) + 1
        self.findings.append(
            Finding(self.path, line, column, rule_code, message, end_line, end_column, fix)
        )

    def per_module(self, scan: Callable[[ast.Module], _T]) -> _T:
        """``scan(tree)`` for this module, computed once per check and shared by every call.

        For purely syntactic scans of the whole module: the tree does not change during a
        check. ``scan`` is the key, so pass a module-level function, not a fresh lambda.
        """
        memo = self._per_module
        if scan not in memo:
            memo[scan] = scan(self.tree)
        return cast(_T, memo[scan])

    @property
    def parent(self) -> ast.AST | None:
        return self.parents[-1] if self.parents else None

    @property
    def function(self) -> Scope | None:
        return self.ctx.function

    @property
    def in_async_function(self) -> bool:
        return self.ctx.in_async_function

    def enclosing_loop(self, node: ast.AST, *, comprehensions: bool = False) -> ast.AST | None:
        """The nearest loop of the current function whose body (re-)runs ``node``.

        With ``comprehensions`` a comprehension counts as a loop, except for ``node`` inside
        its first iterable, which runs once before it (the search goes on outside it).
        """
        child = node
        from_first_iterable = False
        for parent in reversed(self.parents):
            if isinstance(parent, SCOPE_NODES):
                return None
            if isinstance(parent, LOOPS) and in_list(child, parent.body):
                return parent
            if isinstance(parent, ast.While) and child is parent.test:
                return parent
            if isinstance(parent, COMPREHENSIONS):
                if not comprehensions:
                    return None
                if not (from_first_iterable and child is parent.generators[0]):
                    return parent
            from_first_iterable = isinstance(parent, ast.comprehension) and child is parent.iter
            child = parent
        return None

    def enclosing_function_node(self) -> ast.AST | None:
        for parent in reversed(self.parents):
            if isinstance(parent, (*FUNCTIONS, ast.Lambda)):
                return parent
        return None

    # -- the walk ----------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        try:
            self._walk(self.tree)
        finally:
            self._per_module.clear()  # the scans' results may hold the tree's nodes
        return self.findings

    def _visit_rules(self, node: ast.AST) -> None:
        rules = self._dispatch.get(type(node))
        if rules:
            for rule in rules:
                self._rule = rule
                rule.visit(node, self)
            self._rule = None

    def _enter(self, node: ast.AST) -> None:
        self.ctx.enter(node)
        rules = self._scope_dispatch.get(type(node))
        if rules:
            for rule in rules:
                self._rule = rule
                rule.visit_scope(node, self)
            self._rule = None

    def _walk(self, node: ast.AST) -> None:
        self._visit_rules(node)
        parents = self.parents
        parents.append(node)
        if isinstance(node, FUNCTIONS):
            self._walk_all(node.decorator_list)
            self._walk_arguments_outside(node.args)
            if node.returns is not None:
                self._walk(node.returns)
            self._enter(node)
            self._walk_all(node.body)
            self.ctx.leave(node)
        elif isinstance(node, ast.Lambda):
            self._walk_arguments_outside(node.args)
            self._enter(node)
            self._walk(node.body)
            self.ctx.leave(node)
        elif isinstance(node, ast.ClassDef):
            self._walk_all(node.decorator_list)
            self._walk_all(node.bases)
            self._walk_all(node.keywords)
            self._enter(node)
            self._walk_all(node.body)
            self.ctx.leave(node)
        elif isinstance(node, COMPREHENSIONS):
            self._enter(node)
            for child in child_nodes(node):
                self._walk(child)
            self.ctx.leave(node)
        else:
            for child in child_nodes(node):
                self._walk(child)
        parents.pop()

    def _walk_all(self, nodes: Iterable[ast.AST]) -> None:
        for child in nodes:
            self._walk(child)

    def _walk_arguments_outside(self, args: ast.arguments) -> None:
        """Defaults and annotations run when the ``def`` runs, in the enclosing scope."""
        self._walk_all(d for d in args.defaults)
        self._walk_all(d for d in args.kw_defaults if d is not None)
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self._walk(arg.annotation)


def check_module(
    parsed: ParsedModule, project: Project, rules: Sequence[Rule[Any]], *, fixes: bool = False
) -> list[Finding]:
    """All findings for one parsed module, ``# noqa`` applied, sorted by position.

    With ``fixes`` each finding carries its rule's fix, when the rule has one for it.
    """
    if parsed.error is not None:
        return [parsed.error]
    checker = Checker(parsed, project, rules, fixes=fixes)
    try:
        findings = checker.run()
    except RecursionError:
        message = "syntax error: too deeply nested to check"
        return [_error(parsed.path, "syntax-error", message)]
    except Exception as exc:  # a bug in a rule must not hide the other files' findings
        rule = checker._rule.code if checker._rule else "engine"
        line = getattr(checker.parents[-1], "lineno", None) if checker.parents else None
        where = f"{parsed.path}:{line}" if line else parsed.path
        message = (
            f"internal error in {rule} at {where}: {type(exc).__name__}: {exc}; please report it"
        )
        return [_error(parsed.path, "internal-error", message)]
    codes = frozenset(rule.code for rule in rules)
    return sorted(apply_noqa(findings, parsed.source, codes, parsed.path, fixes=fixes))
