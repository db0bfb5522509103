"""What a rule knows about the code around a node: imports, aliases, scopes and simple value types.

Names resolve to *qualified names* such as ``asyncio.sleep``, ``requests.Session.get`` or
``pkg.mod.Client.fetch``. Anything that cannot be known for sure resolves to ``None``: the rules
are written so that ``None`` means "say nothing" (precision first).

What each scope and class binds is in ``_binder``, the inference of value types in ``_types``,
the AST helpers and walkers in ``_ast``; this module follows the walk through the scopes and
answers the rules' questions.
"""

from __future__ import annotations

import ast
import builtins
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from loopwise.lint._ast import self_parameter
from loopwise.lint._binder import (
    AttributeAssignment,
    AttributeAssignments,
    Bindings,
    ModuleScope,
    Scope,
    _Binder,
    attribute_assignments,
    defines_method,
    normalize,
    property_getters,
)
from loopwise.lint._types import _NONE, _agreed, _is_known, _ValueTypes

if TYPE_CHECKING:
    from loopwise.lint._project import Project

__all__ = ["FileContext"]

_UNBOUND = object()  # in the attribute cache: the class itself does not bind that name
_T = TypeVar("_T")
_IGNORED_BASES = frozenset({"builtins.object", "typing.Generic", "typing.Protocol", "abc.ABC"})

_BUILTINS = frozenset(dir(builtins))


class FileContext(_ValueTypes):
    """Name resolution for one module, following the scopes the walker is currently inside."""

    def __init__(
        self,
        tree: ast.Module,
        module: str,
        is_package: bool,
        bindings: dict[ast.AST, Bindings] | None = None,
        project: Project | None = None,
    ) -> None:
        self.tree = tree
        self.project = project  # other modules' summaries; None while summaries are made
        self.module = ModuleScope.build(tree, module, is_package)
        self.bindings = bindings if bindings is not None else _Binder(module, is_package).run(tree)
        self.scopes: list[Scope] = []
        self.classes: list[ast.ClassDef] = []
        self._owners: list[ast.AST] = []  # classes and scopes, in the order they were entered
        self._class_attr_origins: dict[ast.ClassDef, dict[str, str | object | None]] = {}
        self._class_attr_assignments: dict[ast.ClassDef, AttributeAssignments] = {}
        self._classes_by_name: dict[str, ast.ClassDef] | None = None
        self._method_scopes: dict[ast.AST, Scope] = {}
        self._module_origins: dict[str, str | None] = {}

    # -- scope bookkeeping -------------------------------------------------------------------

    def enter(self, node: ast.AST) -> None:
        if isinstance(node, ast.ClassDef):
            self.classes.append(node)
            self._owners.append(node)
            return
        scope = self._new_scope(node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self._mark_method(scope, node)
        self.scopes.append(scope)
        self._owners.append(node)

    def leave(self, node: ast.AST) -> None:
        self._owners.pop()
        if isinstance(node, ast.ClassDef):
            self.classes.pop()
        else:
            self.scopes.pop()

    def _new_scope(self, node: ast.AST) -> Scope:
        """A scope for ``node`` holding what the binder found it binds."""
        found = self.bindings.get(node) or Bindings()
        return Scope(
            node=node,
            imports=found.imports,
            bound=found.bound,
            declared_outer=found.declared_outer,
            _bindings=found.nodes,
        )

    def _mark_method(self, scope: Scope, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if self._direct_class_of(node) is None:
            return
        self_name = self_parameter(node)
        if self_name is not None:
            scope.class_qualname = self.class_qualname()
            scope.self_name = self_name

    def _direct_class_of(self, node: ast.AST) -> ast.ClassDef | None:
        """The class whose body defines ``node`` directly (the walker entered it last)."""
        owner = self._owners[-1] if self._owners else None
        return owner if isinstance(owner, ast.ClassDef) and node in owner.body else None

    def class_qualname(self) -> str | None:
        """Qualified name of the innermost class, when it is defined at module/class level."""
        if not self.classes or not all(isinstance(o, ast.ClassDef) for o in self._owners):
            return None
        return ".".join([self.module.name, *(cls.name for cls in self.classes)])

    # -- queries used by rules ---------------------------------------------------------------

    @property
    def function(self) -> Scope | None:
        """The innermost function or lambda scope (comprehensions are skipped)."""
        for scope in reversed(self.scopes):
            if scope.is_function:
                return scope
        return None

    @property
    def in_async_function(self) -> bool:
        """True when the nearest enclosing function is an ``async def`` (a lambda is not)."""
        function = self.function
        return function is not None and function.is_async

    def resolve(self, expr: ast.AST) -> str | None:
        """Qualified name of a ``Name``/``Attribute`` chain rooted in a module, class or builtin."""
        if isinstance(expr, ast.Name):
            return self._resolve_name(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.resolve(expr.value)
            if base is None:
                return None
            return normalize(f"{base}.{expr.attr}")
        return None

    def _resolve_name(self, name: str) -> str | None:
        for scope in reversed(self.scopes):
            if name in scope.declared_outer:
                break
            if name in scope.imports:
                return scope.imports[name]
            if name in scope.bound:
                return None
        module = self.module
        if name in module.ambiguous:
            return None
        if name in module.imports:
            return module.imports[name]
        if name in module.defs:
            return f"{module.name}.{name}"
        if name in module.assigned:
            return None
        if name in _BUILTINS:
            return f"builtins.{name}"
        return None

    def resolve_call(self, call: ast.Call) -> str | None:
        """Qualified name of what ``call`` calls: a function, a class, or ``Type.method``."""
        func = call.func
        direct = self.resolve(func)
        if direct is not None:
            return direct
        if isinstance(func, ast.Attribute):
            owner = self.origin(func.value)
            if owner is not None:
                return normalize(f"{owner}.{func.attr}")
        return None

    def origin(self, expr: ast.AST) -> str | None:
        """The type of the value ``expr`` evaluates to, when every binding agrees on it.

        Only the types rules know about are answered: an event loop and ``KNOWN_CLASSES``.
        Project classes are followed on the way (``self._pool._loop``, ``data_file(...)``
        declared ``-> Path``) but never returned.
        """
        found = self._type_of(expr)
        return found if _is_known(found) or found in self.extra_classes else None

    def self_class(self, expr: ast.AST) -> str | None:
        """The class qualname when ``expr`` is the ``self``/``cls`` parameter of a method."""
        if not isinstance(expr, ast.Name):
            return None
        for scope in reversed(self.scopes):
            if scope.binds(expr.id):
                if scope.self_name == expr.id:
                    return scope.class_qualname
                return None
        return None

    def class_attribute_types(self, node: ast.ClassDef, qualname: str) -> dict[str, str | None]:
        """The type of every attribute the class itself binds (for the project summary)."""
        names = set(self._attribute_assignments(node)) | set(property_getters(node))
        return {name: self._own_attribute(node, qualname, name)[1] for name in sorted(names)}

    def declared_return(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
        """The type a function's return annotation names (a known type or a class)."""
        return self._at_module_level(lambda: self._annotated(node.returns))

    # -- classes of this module and of the project -------------------------------------------

    def _is_class(self, qualname: str) -> bool:
        if qualname in self._local_classes():
            return True
        return self.project is not None and self.project.is_class(qualname)

    def _local_classes(self) -> dict[str, ast.ClassDef]:
        """Classes defined at module level (or in such a class), by qualified name."""
        if self._classes_by_name is None:
            found: dict[str, ast.ClassDef] = {}
            pending = [
                (f"{self.module.name}.{name}", node)
                for name, node in self.module.defs.items()
                if isinstance(node, ast.ClassDef) and name not in self.module.ambiguous
            ]
            while pending:
                qualname, node = pending.pop()
                found[qualname] = node
                for child in node.body:
                    if isinstance(child, ast.ClassDef):
                        pending.append((f"{qualname}.{child.name}", child))
            self._classes_by_name = found
        return self._classes_by_name

    def local_definition(self, qualname: str) -> ast.AST | None:
        """The def or class of this module that ``qualname`` names, if any."""
        owner, _, name = qualname.rpartition(".")
        if owner == self.module.name:
            if name in self.module.ambiguous:
                return None
            return self.module.defs.get(name)
        cls = self._local_classes().get(owner)
        if cls is None:
            return None
        found = [
            child
            for child in cls.body
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and child.name == name
        ]
        return found[0] if len(found) == 1 else None

    def _class_attribute(self, qualname: str, attr: str, seen: set[str]) -> tuple[bool, str | None]:
        """(whether the class or a base binds ``attr``, its type), along the bases in order."""
        if qualname in seen:
            return True, None
        seen.add(qualname)
        node = self._local_classes().get(qualname)
        if node is None:
            if self.project is None:
                return True, None
            return True, self.project.attribute_type(qualname, attr)
        bound, found = self._own_attribute(node, qualname, attr)
        if bound:
            return True, found
        for base in node.bases:
            base_name = self._at_module_level(functools.partial(self.resolve, base))
            if base_name is None:
                return True, None
            if base_name in _IGNORED_BASES:
                continue
            bound, found = self._class_attribute(base_name, attr, seen)
            if bound:
                return True, found
        return False, None

    def _own_attribute(
        self, node: ast.ClassDef, qualname: str, attr: str
    ) -> tuple[bool, str | None]:
        """(whether the class itself binds ``attr``, the type all its bindings agree on)."""
        cache = self._class_attr_origins.setdefault(node, {})
        if attr in cache:
            return cache[attr] is not _UNBOUND, _bound_value(cache[attr])
        cache[attr] = None  # guards against `self.x = self.x.f()` cycles
        properties = property_getters(node)
        if attr in properties:
            found = self.declared_return(properties[attr])
            result: str | object | None = found
        else:
            assignments = self._attribute_assignments(node).get(attr)
            if assignments is None:
                result = None if defines_method(node, attr) else _UNBOUND
            else:
                values = [self._assigned_type(a, qualname) for a in assignments]
                result = _agreed(values)
        cache[attr] = result
        return result is not _UNBOUND, _bound_value(result)

    def _attribute_assignments(self, node: ast.ClassDef) -> AttributeAssignments:
        found = self._class_attr_assignments.get(node)
        if found is None:
            found = attribute_assignments(node)
            self._class_attr_assignments[node] = found
        return found

    def _assigned_type(self, assignment: AttributeAssignment | None, qualname: str) -> str | None:
        """The type one `self.x = ...` (or class-level `x = ...`) gives the attribute."""
        if assignment is None:
            return None
        statement, method = assignment
        scopes = [self._method_scope(method, qualname)] if method is not None else []
        saved, self.scopes = self.scopes, scopes
        try:
            if isinstance(statement, ast.AnnAssign):
                annotated = self._annotated(statement.annotation)
                if annotated is not None and annotated != _NONE:
                    return annotated
            value = getattr(statement, "value", None)
            return self._type_of(value) if value is not None else None
        finally:
            self.scopes = saved

    def _method_scope(self, method: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str) -> Scope:
        scope = self._method_scopes.get(method)
        if scope is None:
            scope = self._new_scope(method)
            self_name = self_parameter(method)
            if self_name is not None:
                scope.class_qualname = qualname
                scope.self_name = self_name
            self._method_scopes[method] = scope
        return scope

    def _at_module_level(self, compute: Callable[[], _T]) -> _T:
        """Run ``compute`` with names resolved at module level (for annotations and bases)."""
        saved, self.scopes = self.scopes, []
        try:
            return compute()
        finally:
            self.scopes = saved


def _bound_value(result: str | object | None) -> str | None:
    return result if isinstance(result, str) else None
