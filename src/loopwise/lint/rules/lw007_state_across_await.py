"""LW007: state mutated across await."""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace

from loopwise.lint._ast import COMPREHENSIONS, NAMED_SCOPES
from loopwise.lint._checker import Checker
from loopwise.lint._rule import Rule

_LOCK_TYPES = frozenset(
    {"asyncio.Lock", "asyncio.Semaphore", "asyncio.BoundedSemaphore", "asyncio.Condition"}
)
_LOCK_WORDS = ("lock", "mutex", "sem", "cond")


@dataclass(frozen=True, slots=True)
class _Read:
    """One read of shared state: which, when (``seq``), before which suspension (``epoch``)."""

    key: str
    seq: int
    epoch: int
    locks: frozenset[int]
    # The value still is what was read: copied (`old = self.x`), or picked as one alternative
    # (`x or self.x`, `kwargs.get(k, self.x)`, `if x is None: x = self.x`), never combined
    # with anything. Writing it back restores a saved value or states the chosen one ("the
    # last command wins"); there is no modification for another task's update to be lost in.
    unchanged: bool = True


_Taint = frozenset[_Read]
_CLEAN: _Taint = frozenset()


def _combined(taint: _Taint) -> _Taint:
    """``taint`` once its value went into a new one (`n + 1`, `items[1:]`, `[x for x in xs]`)."""
    if not any(read.unchanged for read in taint):
        return taint
    return frozenset(replace(read, unchanged=False) for read in taint)


class StateMutatedAcrossAwait(Rule[ast.AsyncFunctionDef]):
    """## What it does
    Checks an `async def` for a lost read-modify-write: a value read from shared state — an
    attribute of `self` (the method's first parameter, so also `cls`) or a module global
    declared `global` in the function — then a suspension point (`await`, `async for`,
    `async with`), then a write back to the same attribute or global of a new value computed
    from what was read before the suspension. The value is followed through local variables:
    `n = self.count`, `await ...`, `self.count = n + 1` is flagged, and so are
    `self.count += await f()`, `total += await f()` (for a `global total`) and
    `self.count = self.count + await f()`, where the read happens before the `await`.

    The body is read once, in source order: the branches of `if`/`try`/`match` are taken one
    after the other (a read in one branch and an `await` in the next are paired as if both
    ran) and a loop body is read once (a read at the end of a loop body and a write at the top
    of the next iteration are not paired). A local reassigned from something else forgets the
    stale read.

    ## What it does not flag
    - Locals, and reads and writes in nested functions and lambdas (they are checked as their
      own functions).
    - The old value written back unchanged: copied (`old = self.state`, `await ...`,
      `self.state = old`) or picked as one alternative in place of a new one
      (`if text is None: text = self._text`, `text = text or self._text`,
      `level = kwargs.get("level", self.level)`, `t = self.t if t is None else t`), then
      stored as it is. That is a save-and-restore (`try: await ... finally: self.command =
      saved`, or a revert guarded by a re-check) or "the last command wins", a chosen value
      rather than a computed one: there is no modification for another task's update to be
      lost in. Combined with anything, it is flagged again: `if n is None: n = self.count`
      then `self.count = n + 1`, `self.count = (self.count or 0) + 1`, `(self.count + 1) or 0`.
      A value combined and then restored after the function wrote the attribute itself
      (`old = self.n`, `self.n = 0`, `await ...`, `self.n = old + 1`) is not flagged either:
      the write in between shows the function owns that state for the duration.
    - A write whose value does not come from the stale read: in `if self.closed: return`,
      `await ...`, `self.closed = True`, the value written is a constant. Such check-then-act
      code can still race, but telling which cases matter needs more than the code shows.
    - The result of an await, even one given the old value: in
      `self.transport = await upgrade(self.transport)` the new object is made after the
      suspension, usually on purpose. Likewise the items of `async for` and the value of
      `async with ... as x`.
    - A read and a write both inside the same `async with <lock>:` block, or between
      `await <lock>.acquire()` and `<lock>.release()`. A lock is an expression whose type is
      known to be `asyncio.Lock`, `Semaphore`, `BoundedSemaphore` or `Condition`, or whose last
      name contains `lock`, `mutex`, `sem` or `cond` (any case): `self._lock`,
      `self._locks[key]`, `write_mutex`, `self._sem`.
    - A value that also uses the attribute as it is after the `await`:
      `self.pending = self.pending[len(sent):]`, `self.total += new - old` merge the old
      value into the current one instead of overwriting it.
    - `obj.count` on an arbitrary object and a module variable that is only read: the code
      must be a method of the class the attribute is read on, or declare the global.

    A lock the caller holds cannot be seen, nor can an object that is only ever used by one
    task at a time (a single-consumer stream): silence such a line with `# noqa: LW007`.

    ## Why it is opt-in
    On the 21 projects of the ecosystem check (1.07M lines) it found no lost update a
    maintainer would act on: after the exemptions above, the two findings left were per-stream
    counters that only the one task consuming the stream ever touches. Whether other tasks
    share an object is not visible in the code. Turn it on with `--select LW007` for classes
    whose instances many tasks use at once (caches, pools, accounts, rate counters).

    ## Why is this bad?
    Every `await` lets other tasks run. If another task updates the same attribute or global
    while this one is suspended, the write after the `await` is computed from the old value
    and silently discards the other task's update: counters drift, balances go wrong, items
    vanish. It never shows in a test with one task at a time.

    ## Example
    ```python
    class Account:
        async def deposit(self, amount):
            balance = self.balance
            await self.audit.log("deposit", amount)
            self.balance = balance + amount

        async def add_interest(self):
            self.balance += await self.bank.interest(self.balance)
    ```

    ## Use instead
    Hold a lock across the read and the write:
    ```python
    class Account:
        def __init__(self):
            self._lock = asyncio.Lock()

        async def deposit(self, amount):
            async with self._lock:
                balance = self.balance
                await self.audit.log("deposit", amount)
                self.balance = balance + amount
    ```
    or read the state after the `await`, so no suspension separates the read from the write:
    ```python
        async def add_interest(self):
            interest = await self.bank.interest(self.balance)
            self.balance += interest
    ```

    ## Fix safety
    No fix: re-reading the state after the `await`, or holding a lock, depends on the code.
    """

    code = "LW007"
    default = False
    name = "state-mutated-across-await"
    summary = "shared state written from a value read before an await"
    scopes = (ast.AsyncFunctionDef,)

    def visit_scope(self, node: ast.AsyncFunctionDef, checker: Checker) -> None:
        function = node
        scope = checker.function
        if scope is None or (scope.self_name is None and not scope.declared_outer):
            return
        flow = _Flow(checker, scope.self_name)
        flow.block(function.body)
        lock_hint = f"{scope.self_name}._lock" if scope.self_name else "_lock"
        for target, key, suspension in flow.findings:
            subject = f"`{key}`" if "." in key else f"global `{key}`"
            checker.report(
                target,
                f"{subject} is written from a value read before {suspension} (another task "
                f"may have changed it): hold `async with {lock_hint}:` around both, or re-read "
                "it after the await",
            )


class _Flow:
    """One pass over a coroutine body, in source order, tracking where values came from."""

    def __init__(self, checker: Checker, self_name: str | None) -> None:
        self.checker = checker
        self.self_name = self_name
        self.globals: set[str] = set()
        self.locals: dict[str, _Taint] = {}
        self.epoch = 0
        self.suspensions: list[str] = []  # suspensions[e] ends epoch e
        self.seq = 0
        self.held: list[int] = []  # lock regions the code is inside
        self.acquired: dict[str, int] = {}  # `await x.acquire()` regions, by lock text
        self.regions = 0
        self.writes: dict[str, list[tuple[int, int]]] = {}
        self.findings: list[tuple[ast.AST, str, str]] = []

    # -- events ------------------------------------------------------------------------------

    def read(self, key: str) -> _Taint:
        self.seq += 1
        return frozenset({_Read(key, self.seq, self.epoch, frozenset(self.held))})

    def suspend(self, what: str, line: int) -> None:
        self.suspensions.append(f"the `{what}` on line {line}")
        self.epoch += 1

    def write(self, key: str, taint: _Taint, target: ast.AST) -> None:
        held = frozenset(self.held)
        writes = self.writes.setdefault(key, [])
        same = [read for read in taint if read.key == key]
        merges = any(read.epoch == self.epoch for read in same)  # `x = old_part + self.x`
        stale = [
            read
            for read in same
            if read.epoch < self.epoch
            and not (read.locks & held)
            and not any(seq > read.seq and epoch == read.epoch for seq, epoch in writes)
        ]
        if stale and not merges and not all(read.unchanged for read in stale):
            first = min(stale, key=lambda read: read.seq)
            self.findings.append((target, key, self.suspensions[first.epoch]))
        self.seq += 1
        writes.append((self.seq, self.epoch))

    # -- statements --------------------------------------------------------------------------

    def block(self, body: list[ast.stmt]) -> None:
        for statement in body:
            self.statement(statement)

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Expr):
            self.expression_statement(node.value)
        elif isinstance(node, ast.Assign):
            self.assign(node)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.bind(node.target, self.expr(node.value))
        elif isinstance(node, ast.AugAssign):
            self.augmented(node)
        elif isinstance(node, ast.Return):
            if node.value is not None:
                self.expr(node.value)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.loop(node)
        elif isinstance(node, ast.While | ast.If):
            self.expr(node.test)
            self.block(node.body)
            self.block(node.orelse)
        elif isinstance(node, ast.With | ast.AsyncWith):
            self.with_block(node)
        elif isinstance(node, ast.Try | ast.TryStar):
            self.block(node.body)
            for handler in node.handlers:
                if handler.type is not None:
                    self.expr(handler.type)
                if handler.name:
                    self.locals.pop(handler.name, None)
                self.block(handler.body)
            self.block(node.orelse)
            self.block(node.finalbody)
        elif isinstance(node, ast.Match):
            self.expr(node.subject)
            for case in node.cases:
                for capture in ast.walk(case.pattern):
                    name = getattr(capture, "name", None) or getattr(capture, "rest", None)
                    if isinstance(name, str):
                        self.locals.pop(name, None)
                if case.guard is not None:
                    self.expr(case.guard)
                self.block(case.body)
        elif isinstance(node, ast.Global):
            self.globals.update(node.names)
        elif isinstance(node, NAMED_SCOPES):
            self.locals.pop(node.name, None)  # its body is checked as its own function
        elif isinstance(node, ast.Raise | ast.Assert):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.expr):
                    self.expr(child)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                self.locals.pop((alias.asname or alias.name).split(".")[0], None)

    def expression_statement(self, value: ast.expr) -> None:
        lock = _lock_method_receiver(value)
        if lock is not None and self.is_lock(lock[0]):
            receiver, method = lock
            text = ast.unparse(receiver)
            if method == "acquire":
                self.expr(value)
                self.regions += 1
                self.acquired[text] = self.regions
                self.held.append(self.regions)
                return
            region = self.acquired.pop(text, None)
            if region is not None and region in self.held:
                self.held.remove(region)
        self.expr(value)

    def assign(self, node: ast.Assign) -> None:
        target = node.targets[0]
        value = node.value
        if (
            len(node.targets) == 1
            and isinstance(target, ast.Tuple | ast.List)
            and isinstance(value, ast.Tuple | ast.List)
            and len(target.elts) == len(value.elts)
            and not any(isinstance(e, ast.Starred) for e in [*target.elts, *value.elts])
        ):
            taints = [self.expr(element) for element in value.elts]
            for element, taint in zip(target.elts, taints, strict=True):
                self.bind(element, taint)
            return
        taint = self.expr(value)
        for each in node.targets:
            self.bind(each, taint)

    def augmented(self, node: ast.AugAssign) -> None:
        target = node.target
        key = self.key(target)
        if key is not None:
            before = self.read(key)
        elif isinstance(target, ast.Name):
            before = self.locals.get(target.id, _CLEAN)
        else:
            before = self.expr(target)
        self.bind(target, _combined(before | self.expr(node.value)))

    def loop(self, node: ast.For | ast.AsyncFor) -> None:
        taint = self.expr(node.iter)
        is_async = isinstance(node, ast.AsyncFor)
        if is_async:
            self.suspend("async for", node.lineno)
            taint = _CLEAN  # each item is the result of an await
        self.bind(node.target, _combined(taint))  # an item of it
        self.block(node.body)
        if is_async:
            self.suspend("async for", node.lineno)
        self.block(node.orelse)

    def with_block(self, node: ast.With | ast.AsyncWith) -> None:
        is_async = isinstance(node, ast.AsyncWith)
        regions = 0
        for item in node.items:
            taint = self.expr(item.context_expr)
            if is_async:
                self.suspend("async with", node.lineno)
                if self.is_lock(item.context_expr):
                    self.regions += 1
                    self.held.append(self.regions)
                    regions += 1
            if item.optional_vars is not None:
                self.bind(item.optional_vars, _CLEAN if is_async else _combined(taint))
        self.block(node.body)
        if regions:
            del self.held[-regions:]
        if is_async:
            self.suspend("async with", node.lineno)

    # -- expressions -------------------------------------------------------------------------

    def key(self, node: ast.AST) -> str | None:
        """The shared state ``node`` names: ``self.attr`` or a declared global, else None."""
        if isinstance(node, ast.Name):
            return node.id if node.id in self.globals else None
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == self.self_name
        ):
            return f"{self.self_name}.{node.attr}"
        return None

    def bind(self, target: ast.AST, taint: _Taint) -> None:
        key = self.key(target)
        if key is not None:
            self.write(key, taint, target)
        elif isinstance(target, ast.Name):
            self.locals[target.id] = taint
        elif isinstance(target, ast.Attribute):
            self.expr(target.value)
        elif isinstance(target, ast.Subscript):
            self.expr(target.value)
            self.expr(target.slice)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, taint)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self.bind(element, _combined(taint))  # a part of the value

    def expr(self, node: ast.expr) -> _Taint:
        """Evaluate ``node`` in Python's order; the reads its value is computed from."""
        if isinstance(node, ast.Name):
            if node.id in self.globals:
                return self.read(node.id)
            return self.locals.get(node.id, _CLEAN)
        if isinstance(node, ast.Attribute):
            key = self.key(node)
            return self.read(key) if key is not None else _combined(self.expr(node.value))
        if isinstance(node, ast.Await):
            self.expr(node.value)
            self.suspend("await", node.lineno)
            return _CLEAN  # a new value, produced after the suspension
        if isinstance(node, ast.Lambda | ast.Constant):
            return _CLEAN
        if isinstance(node, ast.NamedExpr):
            taint = self.expr(node.value)
            self.bind(node.target, taint)
            return taint
        if isinstance(node, ast.Dict):
            taint = _CLEAN
            for key_node, value in zip(node.keys, node.values, strict=True):
                if key_node is not None:
                    taint |= self.expr(key_node)
                taint |= self.expr(value)
            return _combined(taint)
        if isinstance(node, COMPREHENSIONS):
            return self.comprehension(node)
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            return frozenset().union(*(self.expr(value) for value in node.values))
        if isinstance(node, ast.IfExp):
            self.expr(node.test)
            return self.expr(node.body) | self.expr(node.orelse)
        if _is_get_with_default(node):
            assert isinstance(node, ast.Call)
            self.expr(node.func)
            self.expr(node.args[0])
            return self.expr(node.args[1])
        if isinstance(node, ast.Yield | ast.YieldFrom):
            if node.value is not None:
                self.expr(node.value)
            return _CLEAN  # the value sent in, not ours
        taint = _CLEAN
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                taint |= self.expr(child)
            elif isinstance(child, ast.keyword):
                taint |= self.expr(child.value)
        return _combined(taint)

    def comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
    ) -> _Taint:
        saved: dict[str, _Taint | None] = {}
        for generator in node.generators:
            taint = self.expr(generator.iter)
            if generator.is_async:
                self.suspend("async for", node.lineno)
                taint = _CLEAN  # each item is the result of an await
            for bound in ast.walk(generator.target):
                if isinstance(bound, ast.Name) and bound.id not in saved:
                    saved[bound.id] = self.locals.get(bound.id)
            self.bind(generator.target, _combined(taint))  # an item of it
            for condition in generator.ifs:
                self.expr(condition)
        if isinstance(node, ast.DictComp):
            result = self.expr(node.key) | self.expr(node.value)
        else:
            result = self.expr(node.elt)
        for name, previous in saved.items():
            if previous is None:
                self.locals.pop(name, None)
            else:
                self.locals[name] = previous
        return _combined(result)

    def is_lock(self, node: ast.expr) -> bool:
        if self.checker.ctx.origin(node) in _LOCK_TYPES:
            return True
        for segment in _name_segments(node):
            lowered = segment.lower()
            if any(word in lowered for word in _LOCK_WORDS):
                return True
        return False


def _is_get_with_default(node: ast.expr) -> bool:
    """``mapping.get(key, default)``: the default is one alternative, not combined."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and len(node.args) == 2
        and not node.keywords
    )


def _name_segments(node: ast.expr) -> list[str]:
    """The last name of ``node`` (through calls and subscripts), and a method's receiver's.

    ``self._lock`` → ``_lock``; ``self._locks[key]`` → ``_locks``;
    ``self._locks.setdefault(key, Lock())`` → ``setdefault``, ``_locks``.
    """
    segments: list[str] = []
    method_call = isinstance(node, ast.Call)
    node = _unwrap(node)
    if isinstance(node, ast.Name):
        segments.append(node.id)
    elif isinstance(node, ast.Attribute):
        segments.append(node.attr)
        receiver = _unwrap(node.value)
        if method_call and isinstance(receiver, ast.Name):
            segments.append(receiver.id)
        elif method_call and isinstance(receiver, ast.Attribute):
            segments.append(receiver.attr)
    return segments


def _unwrap(node: ast.expr) -> ast.expr:
    while isinstance(node, ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _lock_method_receiver(value: ast.expr) -> tuple[ast.expr, str] | None:
    """``(lock, "acquire")`` for ``await lock.acquire()``; ``(lock, "release")`` for a release."""
    awaited = isinstance(value, ast.Await)
    call = value.value if isinstance(value, ast.Await) else value
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
        return None
    method = call.func.attr
    if (method == "acquire" and awaited) or (method == "release" and not awaited):
        return call.func.value, method
    return None
