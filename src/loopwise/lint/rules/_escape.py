"""What a function does with one parameter's value, for LW010 (mutable default argument).

What it decides: whether, and where first, the value is mutated, returned or yielded, stored
(on an attribute, in a container that outlives the call, in a ``global`` or ``nonlocal`` name)
or passed on to code of the same module that does one of these. The body is followed in order,
branch by branch, through local aliases and closures, and into the functions, methods and
classes it calls, up to three calls deep.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from loopwise.lint._ast import (
    FUNCTIONS,
    NAMED_SCOPES,
    decorator_names,
    parameters_of,
    self_parameter,
)
from loopwise.lint.rules._containers import (
    _AUGMENTED,
    _MUTATING_FUNCTIONS,
    _MUTATORS,
    _SHRINKING,
    _SHRINKING_FUNCTIONS,
    _SHRINKING_OPERATORS,
    _kept_by_method,
)
from loopwise.lint.rules._definitions import (
    _Callee,
    _declared_outer,
    _Function,
    _function_imports,
    _local_names,
    _Module,
    _parameter_for,
)
from loopwise.lint.rules._shared import _is_super_call

_MAX_CALL_DEPTH = 3

_Live = frozenset[str]  # the local names that may still hold the default at a point


@dataclass(frozen=True, slots=True)
class _Escape:
    """What the function does with the default: ``at`` is where, ``line`` the innermost line."""

    at: ast.AST
    line: int
    what: str


@dataclass
class _Tracker:
    """Follows one parameter's default through a function body, in order, branch by branch."""

    module: _Module
    function: _Function
    cls: ast.ClassDef | None
    parameter: str
    empty: bool
    kind: str
    depth: int = 0
    visiting: frozenset[tuple[int, str]] = frozenset()
    # True in a function the default was handed to: what it returns goes back to the caller,
    # which is where that value is followed (or not), so returning it is no escape there.
    handed: bool = False
    escapes: dict[tuple[int, str], _Escape] = field(default_factory=dict)
    parameters: frozenset[str] = field(init=False)
    outer: dict[str, str] = field(init=False)  # global/nonlocal names: which of the two
    locals: frozenset[str] = field(init=False)  # names bound in the body (parameters are not)
    self_name: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = frozenset(arg.arg for arg in parameters_of(self.function.args))
        self.outer = _declared_outer(self.function)
        self.locals = _local_names(self.function) - frozenset(self.outer)
        self.self_name = (
            self_parameter(self.function)
            if self.cls is not None and isinstance(self.function, FUNCTIONS)
            else None
        )

    def first_escape(self, live: _Live | None = None) -> _Escape | None:
        """The first place the default is changed or escapes, following ``live`` names."""
        if live is None:
            live = frozenset({self.parameter})
        if isinstance(self.function, ast.Lambda):
            self._returned(self.function.body, self.function.body, live)
        else:
            self._block(self.function.body, live)
        if not self.escapes:
            return None
        return min(self.escapes.values(), key=lambda e: (_position(e.at), e.line))

    def _escape(self, at: ast.AST, what: str) -> None:
        line = getattr(at, "lineno", 0)
        self.escapes.setdefault((id(at), what), _Escape(at, line, what))

    # -- statements ----------------------------------------------------------------------

    def _block(self, statements: list[ast.stmt], live: _Live) -> _Live:
        for statement in statements:
            if not live:
                break
            live = self._statement(statement, live)
        return live

    def _statement(self, stmt: ast.stmt, live: _Live) -> _Live:
        if isinstance(stmt, ast.Assign):
            return self._assign(stmt.targets, stmt.value, live, stmt)
        if isinstance(stmt, ast.AnnAssign):
            return (
                live if stmt.value is None else self._assign([stmt.target], stmt.value, live, stmt)
            )
        if isinstance(stmt, ast.AugAssign):
            return self._augmented(stmt, live)
        if isinstance(stmt, ast.Return):
            if stmt.value is not None:
                self._returned(stmt.value, stmt, live)
            return frozenset()
        if isinstance(stmt, ast.Raise):
            self._expressions(stmt, live)
            return frozenset()
        if isinstance(stmt, ast.If):
            self._expression(stmt.test, live)
            return self._block(stmt.body, live) | self._block(stmt.orelse, live)
        if isinstance(stmt, ast.For | ast.AsyncFor):
            self._expression(stmt.iter, live)
            inside = self._unbind(stmt.target, live)
            after = live | self._loop_body(stmt.body, inside)
            return after | self._block(stmt.orelse, after)
        if isinstance(stmt, ast.While):
            self._expression(stmt.test, live)
            after = live | self._loop_body(stmt.body, live)
            return after | self._block(stmt.orelse, after)
        if isinstance(stmt, ast.Try | ast.TryStar):
            return self._try(stmt, live)
        if isinstance(stmt, ast.With | ast.AsyncWith):
            for item in stmt.items:
                self._expression(item.context_expr, live)
                if item.optional_vars is not None:
                    live = self._unbind(item.optional_vars, live)
            return self._block(stmt.body, live)
        if isinstance(stmt, ast.Match):
            self._expression(stmt.subject, live)
            after = live
            for case in stmt.cases:
                if case.guard is not None:
                    self._expression(case.guard, live)
                after |= self._block(case.body, live)
            return after
        if isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                live = self._unbind(target, live)
            return live
        if isinstance(stmt, NAMED_SCOPES):
            return self._definition(stmt, live)
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            bound = {(alias.asname or alias.name).split(".")[0] for alias in stmt.names}
            return live - bound
        return self._expressions(stmt, live)

    def _loop_body(self, body: list[ast.stmt], live: _Live) -> _Live:
        """The body once, and again when it made new aliases a second pass could see."""
        once = self._block(body, live)
        if once - live:
            return once | self._block(body, live | once)
        return once

    def _expressions(self, stmt: ast.stmt, live: _Live) -> _Live:
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, ast.expr):
                live = self._expression(child, live)
        return live

    def _try(self, stmt: ast.Try | ast.TryStar, live: _Live) -> _Live:
        body = self._block(stmt.body, live)
        after = self._block(stmt.orelse, body)
        for handler in stmt.handlers:
            if handler.type is not None:
                self._expression(handler.type, live | body)
            inside = live | body
            if handler.name is not None:
                inside -= {handler.name}
            after |= self._block(handler.body, inside)
        if stmt.finalbody:
            final = self._block(stmt.finalbody, after | live | body)
            return final if after else frozenset()
        return after

    def _assign(
        self, targets: list[ast.expr], value: ast.expr, live: _Live, stmt: ast.stmt
    ) -> _Live:
        live = self._expression(value, live)
        for target in targets:
            live = self._bind(target, value, live, stmt)
        return live

    def _bind(self, target: ast.expr, value: ast.expr | None, live: _Live, stmt: ast.stmt) -> _Live:
        holds = value is not None and bool(self._contained(value) & live)
        if isinstance(target, ast.Name):
            if target.id in self.outer:
                if holds:
                    self._escape(stmt, f"is stored in the {self.outer[target.id]} `{target.id}`")
                return live
            aliases = value is not None and bool(self._aliases(value) & live)
            return (live - {target.id}) | ({target.id} if aliases else frozenset())
        if isinstance(target, ast.Attribute):
            live = self._expression(target.value, live)
            if holds:
                self._escape(stmt, f"is stored in `{_short(target)}`")
            return live
        if isinstance(target, ast.Subscript):
            live = self._expression(target, live)
            if holds and self._shared_container(target.value, live):
                self._escape(stmt, f"is stored in `{_short(target.value)}`")
            return live
        if isinstance(target, ast.Tuple | ast.List):
            pairs = isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts)
            for index, element in enumerate(target.elts):
                paired = (
                    value.elts[index] if pairs and isinstance(value, ast.Tuple | ast.List) else None
                )
                live = self._bind(element, paired, live, stmt)
            return live
        if isinstance(target, ast.Starred):
            return self._bind(target.value, None, live, stmt)
        return self._expression(target, live)

    def _unbind(self, target: ast.expr, live: _Live) -> _Live:
        names = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        if isinstance(target, ast.Name | ast.Tuple | ast.List | ast.Starred):
            return live - names
        return self._expression(target, live)

    def _augmented(self, stmt: ast.AugAssign, live: _Live) -> _Live:
        live = self._expression(stmt.value, live)
        target = stmt.target
        if isinstance(target, ast.Name):
            shrinking = self.empty and isinstance(stmt.op, _SHRINKING_OPERATORS)
            if target.id in live and not shrinking:
                operator = _AUGMENTED.get(type(stmt.op), "an augmented assignment")
                self._escape(stmt, f"is changed in place by `{operator}`")
            return live
        return self._expression(target, live)

    def _returned(self, value: ast.expr, at: ast.AST, live: _Live) -> None:
        self._expression(value, live)
        if not self.handed and self._contained(value) & live:
            self._escape(at, "is returned")

    def _definition(
        self, stmt: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, live: _Live
    ) -> _Live:
        for decorator in stmt.decorator_list:
            self._expression(decorator, live)
        if isinstance(stmt, ast.ClassDef):
            return live - {stmt.name}
        for default in [*stmt.args.defaults, *stmt.args.kw_defaults]:
            if default is not None:
                self._expression(default, live)
        self._closure(stmt, live)
        return live - {stmt.name}

    def _closure(self, function: _Function, live: _Live) -> None:
        """A nested function that uses the default changes it whenever it is called."""
        inner = _Tracker(
            self.module, function, None, self.parameter, self.empty, self.kind, self.depth,
            self.visiting, handed=self.handed,
        )  # fmt: skip
        captured = live - inner.parameters - inner.locals
        if captured:
            inner.first_escape(captured)
            for key, escape in inner.escapes.items():
                self.escapes.setdefault(key, escape)

    # -- expressions ---------------------------------------------------------------------

    def _expression(self, expr: ast.expr, live: _Live) -> _Live:
        """Classify every use of a live name in ``expr``; return ``live`` after its walruses."""
        stack: list[tuple[ast.AST, tuple[ast.AST, ...]]] = [(expr, ())]
        while stack:
            node, parents = stack.pop()
            if isinstance(node, ast.Name):
                if node.id in live and isinstance(node.ctx, ast.Load):
                    self._use(node, parents, live)
                continue
            if isinstance(node, ast.Lambda):
                self._closure(node, live)
                continue
            if isinstance(node, ast.Yield) and node.value is not None:
                self._yielded(node, node.value, live)
            if isinstance(node, ast.NamedExpr):
                aliases = bool(self._aliases(node.value) & live)
                name = node.target.id
                live = (live - {name}) | ({name} if aliases else frozenset())
            inner = (*parents, node)
            stack.extend((child, inner) for child in ast.iter_child_nodes(node))
        return live

    def _yielded(self, node: ast.Yield, value: ast.expr, live: _Live) -> None:
        if not self.handed and self._contained(value) & live:
            self._escape(node, "is yielded")

    def _use(self, name: ast.Name, parents: tuple[ast.AST, ...], live: _Live) -> None:
        parent = parents[-1] if parents else None
        grandparent = parents[-2] if len(parents) > 1 else None
        if isinstance(parent, ast.Attribute) and parent.value is name:
            if isinstance(grandparent, ast.Call) and grandparent.func is parent:
                verb = _MUTATORS.get(parent.attr)
                if verb is not None and not (self.empty and parent.attr in _SHRINKING):
                    self._escape(grandparent, verb)
        elif isinstance(parent, ast.Subscript) and parent.value is name:
            self._item_use(parent, parents[:-1])
        elif isinstance(parent, ast.Call) and any(arg is name for arg in parent.args):
            self._argument(parent, _position_of(name, parent), None, live)
        elif isinstance(parent, ast.keyword) and parent.arg is not None:  # not `**items`
            assert isinstance(grandparent, ast.Call)
            self._argument(grandparent, None, parent.arg, live)

    def _item_use(self, subscript: ast.Subscript, parents: tuple[ast.AST, ...]) -> None:
        if isinstance(subscript.ctx, ast.Store):
            self._escape(subscript, "has an item assigned")
        elif isinstance(subscript.ctx, ast.Del):
            if not self.empty:
                self._escape(subscript, "has an item deleted")
        elif self.kind == "defaultdict":
            self._escape(subscript, "gets missing keys inserted by `[...]` (a defaultdict)")
        elif not self.empty:  # an empty default has no items to change
            self._nested_item_use(subscript, parents)

    def _nested_item_use(self, item: ast.expr, parents: tuple[ast.AST, ...]) -> None:
        """``x[k][j] = v`` or ``x[k].append(v)``: an object inside the default is changed."""
        for parent in reversed(parents):
            if isinstance(parent, ast.Call) and isinstance(item, ast.Attribute):
                if parent.func is item and item.attr in _MUTATORS:
                    self._escape(parent, "has an item changed")
                return
            if not isinstance(parent, ast.Subscript | ast.Attribute) or parent.value is not item:
                return
            if not isinstance(parent.ctx, ast.Load):
                self._escape(parent, "has an item changed")
                return
            item = parent

    # -- calls ---------------------------------------------------------------------------

    def _argument(
        self, call: ast.Call, index: int | None, keyword: str | None, live: _Live
    ) -> None:
        if index == 0 and self._mutated_by_library(call):
            return
        func = call.func
        if isinstance(func, ast.Attribute) and _kept_by_method(call, func.attr, index):
            if self._shared_container(func.value, live):
                self._escape(call, f"is stored in `{_short(func.value)}` by `.{func.attr}()`")
            return
        if self.depth >= _MAX_CALL_DEPTH:
            return
        for callee in self._callees(call):
            if callee.function is None:
                if index is not None or keyword is not None:
                    self._escape(call, f"is passed to `{callee.label}`, which stores it")
                    return
                continue
            parameter = _parameter_for(callee.function, callee.skipped, index, keyword)
            key = (id(callee.function), parameter or "")
            if parameter is None or key in self.visiting:
                continue
            tracker = _Tracker(
                self.module,
                callee.function,
                callee.cls,
                parameter,
                self.empty,
                self.kind,
                self.depth + 1,
                self.visiting | {key, (id(self.function), self.parameter)},
                handed=True,
            )
            inner = tracker.first_escape()
            if inner is not None:
                what = f"is passed to `{callee.label}`, where it {inner.what}"
                self.escapes.setdefault((id(call), what), _Escape(call, inner.line, what))
                return

    def _mutated_by_library(self, call: ast.Call) -> bool:
        """``heapq.heappush(items, x)``, ``random.shuffle(items)``: a known stdlib mutator."""
        name = self._imported(call.func)
        verb = _MUTATING_FUNCTIONS.get(name or "")
        if verb is None or (self.empty and name in _SHRINKING_FUNCTIONS):
            return False
        self._escape(call, verb)
        return True

    def _imported(self, expr: ast.expr) -> str | None:
        """What an imported ``name`` or ``module.member`` names: ``heapq.heappush``."""
        attributes: list[str] = []
        while isinstance(expr, ast.Attribute):
            attributes.insert(0, expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name) or expr.id in self.parameters:
            return None
        imports = (
            _function_imports(self.function) if expr.id in self.locals else self.module.imports
        )
        target = imports.get(expr.id)
        return None if target is None else ".".join([target, *attributes])

    def _shared_container(self, container: ast.expr, live: _Live) -> bool:
        """Whether a container outlives the call: anything but a plain local variable."""
        if isinstance(container, ast.Name):
            return container.id not in self.locals or container.id in live
        return True

    def _callees(self, call: ast.Call) -> list[_Callee]:
        func = call.func
        label = f"{_short(func)}()"
        if isinstance(func, ast.Name):
            if func.id in self.locals or func.id in self.parameters:
                return []
            callees = [_Callee(f, None, 0, label) for f in self.module.functions(func.id)]
            for cls in self.module.classes(func.id):
                init = self.module.method(cls, "__init__")
                if init is not None:
                    callees.append(_Callee(init[0], init[1], 1, label))
                elif "dataclass" in decorator_names(cls):
                    callees.append(_Callee(None, cls, 0, label))
            return callees
        if not isinstance(func, ast.Attribute) or self.cls is None:
            return []
        owner = func.value
        found = None
        if isinstance(owner, ast.Name) and owner.id == self.self_name:
            found = self.module.method(self.cls, func.attr)
        elif _is_super_call(owner):
            found = self.module.inherited(self.cls, func.attr)
        if found is None:
            return []
        function, cls = found
        skipped = 0 if "staticmethod" in decorator_names(function) else 1
        return [_Callee(function, cls, skipped, label)]

    # -- values --------------------------------------------------------------------------

    def _aliases(self, value: ast.expr) -> set[str]:
        """The names whose object ``value`` may be: ``x``, ``x if c else y``, ``x or y``."""
        if isinstance(value, ast.Name):
            return {value.id}
        if isinstance(value, ast.NamedExpr):
            return self._aliases(value.value)
        if isinstance(value, ast.IfExp):
            return self._aliases(value.body) | self._aliases(value.orelse)
        if isinstance(value, ast.BoolOp):
            names: set[str] = set()
            last = len(value.values) - 1
            for position, operand in enumerate(value.values):
                # `x or {}` never yields an empty default: it is falsy
                skip = isinstance(value.op, ast.Or) and self.empty and position < last
                if not (skip and isinstance(operand, ast.Name)):
                    names |= self._aliases(operand)
            return names
        return set()

    def _contained(self, value: ast.expr) -> set[str]:
        """The names whose object ``value`` is or holds (as an element of a display)."""
        names = self._aliases(value)
        if isinstance(value, ast.Tuple | ast.List | ast.Set):
            for element in value.elts:
                if not isinstance(element, ast.Starred):
                    names |= self._contained(element)
        elif isinstance(value, ast.Dict):
            for key, item in zip(value.keys, value.values, strict=True):
                if key is not None:
                    names |= self._contained(item)
        return names


def _position_of(argument: ast.expr, call: ast.Call) -> int | None:
    """The index of a positional argument, unless a ``*args`` before it hides the mapping."""
    for index, arg in enumerate(call.args):
        if arg is argument:
            return index
        if isinstance(arg, ast.Starred):
            return None
    return None


def _short(expr: ast.expr) -> str:
    text = ast.unparse(expr)
    return text if len(text) <= 30 else text[:27] + "..."


def _position(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 0), getattr(node, "col_offset", 0)
