"""No PyTorch API newer than 2.5: every torch name and keyword the package uses exists in 2.5.1.

    .venv/bin/python -m pytest -q test/test_torch25_api.py

2.5 is the oldest PyTorch the package supports: JetPack 6.1's and 6.2's PyTorch is NVIDIA's build
of the 2.5 line; 2.5.1 is PyPI's release of it. `make setup` downloads 2.5.1's aarch64 CPU wheel
once and keeps only its Python sources (``.py``, ``.pyi``) in ``.cache/torch-2.5.1/`` (this test
skips without them). They are read as syntax trees, never imported, and so is the package
(``rgbd_saliency_ros/`` with benchmarks/, ``training/``, ``launch/``). Checked against 2.5.1:

- ``import torch.x``, ``from torch.x import Name``: the module, and the name in it (through its
  imports, star imports and their ``__all__``, and its submodules);
- attribute chains from a name bound to torch (``F.interpolate``, ``nn.Module``,
  ``torch.nn.functional.scaled_dot_product_attention``, ``torch.cuda.Stream``): each step,
  through modules, classes and their torch base classes;
- attributes and methods of objects whose torch class is known: parameters and variables
  annotated with it (``x: torch.Tensor``), and what a call, ``x[i]`` or ``a + b`` returns where
  2.5.1's definition says so (``torch.zeros(...)``, ``x.flatten(1)``, ``torch.Generator()``);
  a function's local name has the type of its latest assignment (branches and loops merged: a
  type where all paths agree); ``super()`` in a subclass of torch classes. Tensor's names are
  those of ``torch/_tensor.py``'s Tensor and ``torch/_C/__init__.pyi``'s TensorBase;
- ``self`` in a class whose bases are all torch's (an ``nn.Module`` subclass): the keywords of
  the torch methods it calls (``self.register_buffer(..., persistent=False)``) unless it defines
  them itself; a name neither has is not reported (set at run time: submodules, buffers);
- keyword arguments of all of these calls (``super().__init__`` included) against the Python
  definition or the ``.pyi`` stub: some overload taking it, or ``**kwargs``, passes (``**_``, in
  which 2.5.1's ``torch.onnx.export`` takes and ignores options, does not); a class's keywords
  are those of its or its torch bases' ``__init__`` and ``__new__``;
- on an object of unknown type, in a file that imports torch: an attribute that the installed
  (newer) torch's OBJECT_CLASSES have and none of 2.5.1's do (``.is_xpu``), and a keyword that a
  method of theirs takes only in the newer torch (``.modules(remove_duplicate=...)``).

Accepted as fallbacks: inside a ``try`` with a handler that catches ImportError (or
ModuleNotFoundError), AttributeError or TypeError and does not raise: a missing module or name, a
missing attribute, an unknown keyword respectively; ``X.name`` under ``if hasattr(X, "name")``,
after ``hasattr(X, "name") and``, or in ``... if hasattr(X, "name") else ...``.

Not covered: what the ops do (C++ semantics, defaults, dtypes, devices, numerics) and behaviour
changed under an unchanged signature (``torch.load``'s ``weights_only`` default became True in 2.6:
the package passes it); what ``torch.compile``, ``torch.export`` and the ONNX exporter accept;
keywords of C functions that no ``.pyi`` lists, of callables reached through values, non-torch
base classes or a module's ``__call__`` (``self.conv(x)`` returns an unknown), all accepted;
objects of unknown type beyond the newer-name rule; an object annotated with a torch class is
taken to be of that class (a subclass's own method keywords would be reported: annotate it with
the subclass); names reached through ``getattr`` or strings;
version checks as guards (``torch.__version__``); a submodule counts as an attribute of its
package whether or not anything imports it; CUDA-only code of the CUDA builds.
"""

from __future__ import annotations

import ast
import importlib.util
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO_ROOT, package_files

TORCH_OLDEST = "2.5.1"
# What `make setup` fills (see the Makefile's TORCH_OLDEST): torch/**/*.py and *.pyi of the wheel.
SOURCES = REPO_ROOT / ".cache" / f"torch-{TORCH_OLDEST}"
OLDEST = f"PyTorch {TORCH_OLDEST}"

# Classes whose objects the package handles without the checker knowing their type (a model, a
# batch, a program): the newer-name and newer-keyword rules compare these.
OBJECT_CLASSES = (
    "torch.Tensor",
    "torch.nn.Module",
    "torch.nn.Parameter",
    "torch.optim.Optimizer",
    "torch.optim.lr_scheduler.LRScheduler",
    "torch.amp.GradScaler",
    "torch.autocast",
    "torch.utils.data.DataLoader",
    "torch.utils.data.Dataset",
    "torch.utils.data.Sampler",
    "torch.Generator",
    "torch.device",
    "torch.dtype",
    "torch.Size",
    "torch.cuda.Stream",
    "torch.cuda.Event",
    "torch.export.ExportedProgram",
    "torch.onnx._internal.exporter._onnx_program.ONNXProgram",  # what export(dynamo=True) returns
    "torch.utils.tensorboard.SummaryWriter",
    "torch.nn.parallel.DistributedDataParallel",
)

# The handler types that make a `try` a fallback, and the kind of problem each one accepts.
FALLBACK_KINDS = {
    "ImportError": "import",
    "ModuleNotFoundError": "import",
    "AttributeError": "attribute",
    "TypeError": "keyword",
}

# Binary operators and the Tensor methods that give their result type.
DUNDERS = {
    ast.Add: "__add__",
    ast.Sub: "__sub__",
    ast.Mult: "__mul__",
    ast.Div: "__truediv__",
    ast.MatMult: "__matmul__",
    ast.Pow: "__pow__",
}


@dataclass(frozen=True, eq=False)
class Thing:
    """What a name or expression stands for in a torch tree."""

    kind: str  # module | class | function | instance | self | other (a value, or not torch's)
    name: str  # the module's dotted name, or the class's or function's name (for messages)
    node: ast.AST | None = None  # the ClassDef or FunctionDef
    module: str = ""  # the module the node is in: its bases and annotations are resolved there
    owner: Thing | None = None  # a method's receiver, for ``-> Self``
    own: frozenset[str] = frozenset()  # kind "self": the names the package class defines itself
    bases: tuple[Thing, ...] = ()  # kind "self": its torch base classes


OTHER = Thing("other", "?")


def known(things: list[Thing] | None) -> bool:
    """Whether ``things`` says anything checkable (a torch module, class, function or object)."""
    return bool(things) and any(t.kind != "other" for t in things)


def describe(things: list[Thing]) -> str:
    """The name of what ``things`` stand for, for messages."""
    thing = next(t for t in things if t.kind != "other")
    return thing.name


@dataclass
class Bindings:
    """The names a module or class body binds, each with how (several: branches, overloads)."""

    names: dict[str, list[tuple]] = field(default_factory=dict)
    stars: list[str] = field(default_factory=list)  # star-imported modules, in order
    all: set[str] | None = None  # a literal __all__
    all_dynamic: bool = False  # __all__ grown by code (torch's own): public names count too

    def bind(self, name: str, how: tuple) -> None:
        self.names.setdefault(name, []).append(how)

    def exports(self, name: str) -> bool:
        """Whether ``from <module> import *`` brings ``name``."""
        if self.all is not None and name in self.all:
            return True
        return (self.all is None or self.all_dynamic) and not name.startswith("_")


def collect(body: list[ast.stmt], package: str | None, into: Bindings) -> Bindings:
    """What ``body`` binds, looking into if/try/with blocks; ``package``: where relative imports
    start (None in a class body)."""
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            into.bind(stmt.name, ("def", stmt))
        elif isinstance(stmt, ast.ClassDef):
            into.bind(stmt.name, ("class", stmt))
        elif isinstance(stmt, ast.Import):
            for a in stmt.names:
                if a.asname:
                    into.bind(a.asname, ("module", a.name))
                else:
                    into.bind(a.name.split(".")[0], ("module", a.name.split(".")[0]))
        elif isinstance(stmt, ast.ImportFrom):
            source = _absolute(stmt, package)
            for a in stmt.names:
                if a.name == "*":
                    into.stars.append(source)
                else:
                    into.bind(a.asname or a.name, ("from", source, a.name))
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id == "__all__":
                    _grow_all(into, stmt.value)
                elif isinstance(target, ast.Name):
                    into.bind(target.id, _assigned(stmt.value))
                else:  # unpacking binds its names; `f.__doc__ = ...` binds none
                    for n in _unpacked(target):
                        into.bind(n, ("other",))
        elif isinstance(stmt, ast.AugAssign) and getattr(stmt.target, "id", "") == "__all__":
            _grow_all(into, stmt.value)
        elif isinstance(stmt, ast.Expr) and _is_all_call(stmt.value):
            _grow_all(into, stmt.value.args[0] if stmt.value.args else None)
        elif isinstance(stmt, (ast.If, ast.Try, ast.With)):
            inner = list(stmt.body) + list(getattr(stmt, "orelse", []))
            inner += [s for h in getattr(stmt, "handlers", []) for s in h.body]
            collect(inner + list(getattr(stmt, "finalbody", [])), package, into)
    return into


def _unpacked(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for e in target.elts for n in _unpacked(e)]
    if isinstance(target, ast.Starred):
        return _unpacked(target.value)
    return []


def _absolute(stmt: ast.ImportFrom, package: str | None) -> str:
    if not stmt.level or package is None:
        return stmt.module or ""
    parts = package.split(".")[: len(package.split(".")) - stmt.level + 1]
    return ".".join(parts + ([stmt.module] if stmt.module else []))


def _assigned(value: ast.expr | None) -> tuple:
    """How an assignment binds: an alias of a dotted name (also through torch's ``_add_docstr``,
    which is how C functions get their docs), else a value."""
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "_add_docstr":
        value = value.args[0] if value.args else None
    if isinstance(value, (ast.Name, ast.Attribute)):
        return ("alias", value)
    return ("other",)


def _is_all_call(expr: ast.expr) -> bool:
    return (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and getattr(expr.func.value, "id", "") == "__all__"
        and expr.func.attr in ("extend", "append", "__iadd__")
    )


def _grow_all(into: Bindings, value: ast.expr | None) -> None:
    names = None
    if isinstance(value, (ast.List, ast.Tuple)):
        names = [e.value for e in value.elts if isinstance(e, ast.Constant)]
        if len(names) != len(value.elts):
            names = None
    elif isinstance(value, ast.Constant) and isinstance(value.value, str):
        names = [value.value]
    if names is None:
        into.all_dynamic = True
    else:
        into.all = (into.all or set()) | set(names)


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[set[str], bool]:
    a = node.args
    # `**_` is how torch.onnx.export (2.5) takes and ignores options: no keyword passes there
    params = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs}
    return params, a.kwarg is not None and a.kwarg.arg != "_"


class TorchTree:
    """A PyTorch's Python sources (``root``/torch/...), read as syntax trees when first asked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._modules: dict[str, Bindings | None] = {}
        self._classes: dict[int, Bindings] = {}

    def module(self, name: str) -> Bindings | None:
        """The names module ``name`` binds (its .py and .pyi together), None if there is none."""
        if name not in self._modules:
            base = self.root.joinpath(*name.split("."))
            files = [base.parent / (base.name + s) for s in (".py", ".pyi")]
            files += [base / f"__init__{s}" for s in (".py", ".pyi")]
            files = [f for f in files if f.is_file()]
            package = name if base.is_dir() else name.rpartition(".")[0]
            into = Bindings()
            for f in files:
                collect(ast.parse(f.read_bytes(), str(f)).body, package, into)
            self._modules[name] = into if files else None
        return self._modules[name]

    def lookup(self, module: str, name: str, seen: frozenset = frozenset()) -> list[Thing]:
        """What ``module.name`` is; [] if this torch has no such name."""
        if (module, name) in seen or (bindings := self.module(module)) is None:
            return []
        seen = seen | {(module, name)}
        found = [t for how in bindings.names.get(name, []) for t in self._bound(how, module, seen)]
        for star in bindings.stars if not found else ():
            if _is_torch(star) and (s := self.module(star)) is not None and s.exports(name):
                if found := self.lookup(star, name, seen):
                    break
        if not found and self.module(f"{module}.{name}") is not None:
            found = [Thing("module", f"{module}.{name}")]
        return found

    def _bound(self, how: tuple, module: str, seen: frozenset) -> list[Thing]:
        kind = how[0]
        if kind == "def":
            return [Thing("function", f"{module}.{how[1].name}", how[1], module)]
        if kind == "class":
            return [Thing("class", how[1].name, how[1], module)]
        if kind == "module":
            if not _is_torch(how[1]) or self.module(how[1]) is None:
                return [OTHER]
            return [Thing("module", how[1])]
        if kind == "from":
            source, name = how[1], how[2]
            if not _is_torch(source):
                return [OTHER]
            found = self.lookup(source, name, seen)
            if not found and self.module(f"{source}.{name}") is not None:
                found = [Thing("module", f"{source}.{name}")]
            return found or [OTHER]  # imported from C, where no .pyi lists it: it exists
        if kind == "alias":  # the name exists; what it is, where its source resolves
            return self.resolve_in(module, how[1], seen) or [OTHER]
        return [OTHER]

    def resolve_in(
        self, module: str, expr: ast.expr, seen: frozenset = frozenset()
    ) -> list[Thing]:
        """What a dotted name, or a string holding one (an annotation), means in ``module``."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            try:
                expr = ast.parse(expr.value, mode="eval").body
            except SyntaxError:
                return []
        if isinstance(expr, ast.Name):
            return self.lookup(module, expr.id, seen)
        if isinstance(expr, ast.Attribute):
            return self.members(self.resolve_in(module, expr.value, seen), expr.attr)
        return []

    def class_bindings(self, cls: Thing) -> Bindings:
        key = id(cls.node)
        if key not in self._classes:
            self._classes[key] = collect(cls.node.body, None, Bindings())
            for n in ast.walk(cls.node):  # self.x = ... in its methods
                if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
                    self._classes[key].bind(n.attr, ("other",))
        return self._classes[key]

    def class_member(self, cls: Thing, name: str, owner: Thing, seen=frozenset()) -> list[Thing]:
        """``name`` in a torch class or its torch bases; [OTHER] where a base is not torch's or a
        ``__getattr__`` may supply it."""
        if id(cls.node) in seen:
            return []
        seen = seen | {id(cls.node)}
        found = []
        for how in self.class_bindings(cls).names.get(name, []):
            if how[0] == "def":
                shown = owner.name if owner.kind != "self" else cls.name
                found.append(Thing("function", f"{shown}.{name}", how[1], cls.module, owner))
            else:
                found += self._bound(how, cls.module, frozenset())
        if found:
            return found
        # __getattr__ may supply any name but special ones (looked up on the type)
        special = name.startswith("__") and name.endswith("__")
        opaque = "__getattr__" in self.class_bindings(cls).names and not special
        for base in cls.node.bases:
            if isinstance(base, ast.Subscript) or getattr(base, "id", "") in ("object", "Generic"):
                continue  # typing's generics add no members that matter here
            classes = [b for b in self.resolve_in(cls.module, base) if b.kind == "class"]
            opaque |= not classes
            for b in classes:
                found += self.class_member(b, name, owner, seen)
        return found or ([OTHER] if opaque else [])

    def members(self, things: list[Thing], name: str) -> list[Thing]:
        """``name`` looked up on each of ``things``; [] only if none can have it."""
        found: list[Thing] = []
        for t in things:
            if t.kind == "module":
                found += self.lookup(t.name, name)
            elif t.kind in ("class", "instance"):
                found += self.class_member(t, name, t)
            elif t.kind == "self":
                if name in t.own:
                    return [OTHER]
                inherited = [m for b in t.bases for m in self.class_member(b, name, t)]
                found += inherited or [OTHER]  # set at run time, or the subclass's own
            else:
                found.append(OTHER)
        return found

    def returns(self, things: list[Thing]) -> list[Thing] | None:
        """The object a call of ``things`` gives, where every definition says the same class."""
        results = set()
        for t in things:
            if t.kind == "class":
                results.add(Thing("instance", t.name, t.node, t.module))
            elif t.kind == "function":
                ann = t.node.returns
                if getattr(ann, "id", "") == "Self" and t.owner is not None:
                    results.add(t.owner)
                    continue
                classes = [c for c in self.resolve_in(t.module, ann) if c.kind == "class"]
                if ann is None or len(classes) != 1:
                    return None
                results.add(Thing("instance", classes[0].name, classes[0].node, classes[0].module))
            else:
                return None
        by_node = {id(r.node): r for r in results}
        return list(by_node.values()) if len(by_node) == 1 else None

    def signatures(self, things: list[Thing]) -> list[tuple[set[str], bool]] | None:
        """(parameter names, takes **kwargs) of every definition a call of ``things`` may reach;
        None where one is unknown (then any keyword passes)."""
        signatures = []
        for t in things:
            if t.kind == "function":
                signatures.append(_params(t.node))
            elif t.kind == "class":
                inits = self.class_member(t, "__init__", t) + self.class_member(t, "__new__", t)
                if not inits or any(i.kind != "function" for i in inits):
                    return None
                signatures += [_params(i.node) for i in inits]
            else:
                return None
        return signatures

    def class_names(self, path: str) -> dict[str, list[tuple[set[str], bool]]] | None:
        """Every member name of the class at dotted ``path`` (with its torch bases'), each with the
        signatures of its methods; None if this torch has no such class."""
        module, _, name = path.rpartition(".")
        classes = [c for c in self.lookup(module, name) if c.kind == "class"]
        if not classes:
            return None
        names: dict[str, list[tuple[set[str], bool]]] = {}
        todo, seen = list(classes), set()
        while todo:
            cls = todo.pop()
            if id(cls.node) in seen:
                continue
            seen.add(id(cls.node))
            for member, hows in self.class_bindings(cls).names.items():
                defs = [_params(h[1]) for h in hows if h[0] == "def" and not _is_setter(h[1])]
                names.setdefault(member, []).extend(defs)
            for base in cls.node.bases:
                todo += [b for b in self.resolve_in(cls.module, base) if b.kind == "class"]
        return names


def _is_setter(node: ast.FunctionDef) -> bool:
    """A property's setter or deleter: its ``value`` is no keyword anyone passes."""
    return any(
        isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter")
        for d in node.decorator_list
    )


def _is_torch(module: str) -> bool:
    return module.split(".")[0] == "torch"


@dataclass
class Newer:
    """What the installed torch's OBJECT_CLASSES have and 2.5.1's lack: member names (-> the
    classes that have them) and, per method name, keywords."""

    names: dict[str, set[str]] = field(default_factory=dict)
    keywords: dict[str, set[str]] = field(default_factory=dict)


def newer_than_oldest(oldest: TorchTree, installed: TorchTree) -> Newer:
    """Compares OBJECT_CLASSES between the two trees."""
    new, old = {}, {}
    for path in OBJECT_CLASSES:
        new[path] = installed.class_names(path) or {}  # a newer torch may have dropped one
        old[path] = oldest.class_names(path)
        assert old[path] is not None, f"{path}: no such class in {OLDEST}"
    old_names = {n for members in old.values() for n in members}
    newer = Newer()
    for path, members in new.items():
        short = path.rpartition(".")[2]
        for name, defs in members.items():
            if name.startswith("_"):
                continue
            if name not in old_names:
                newer.names.setdefault(name, set()).add(short)
            elif defs and old[path].get(name):
                before = old[path][name]
                if not any(kwargs for _, kwargs in before):
                    taken = set().union(*(p for p, _ in before))
                    added = set().union(*(p for p, _ in defs)) - taken
                    newer.keywords.setdefault(name, set()).update(added)
    for name, keywords in newer.keywords.items():  # a keyword some 2.5.1 method takes passes
        for params, kwargs in (sig for members in old.values() for sig in members.get(name, [])):
            if kwargs:
                keywords.clear()
            keywords -= params
    return newer


@dataclass
class Scope:
    """A function's local names as the visit reaches each use: what each is in torch (None:
    unknown). ``once``: the names bound exactly once in it (a parameter or one assignment), the
    only ones a nested function may take the type of (it runs later, after any reassignment)."""

    names: dict[str, list[Thing] | None]
    once: set[str]


class Checker(ast.NodeVisitor):
    """Finds one source file's uses of torch API that ``oldest`` lacks, visiting each function's
    statements in order so that a local name has the type of its latest assignment."""

    def __init__(self, oldest: TorchTree, newer: Newer, filename: str, uses_torch: bool) -> None:
        self.oldest, self.newer, self.filename = oldest, newer, filename
        self.uses_torch = uses_torch  # the newer-name rules apply to files that import torch
        self.bound: dict[str, list[Thing]] = {}  # module-level imported name -> what it is
        self.scopes: list[Scope] = []  # enclosing functions, innermost last
        self.classes: list[tuple[Thing, ...] | None] = []  # torch bases of enclosing classes
        self.tolerated: list[set[str]] = []  # problem kinds that enclosing try handlers catch
        self.guards: list[set[tuple[str, str]]] = []  # (object, name) checked by hasattr
        self.silent = 0  # > 0 while a loop body is visited once to learn its assignments
        self.problems: list[str] = []

    def problem(self, node: ast.AST, kind: str, text: str) -> None:
        if not self.silent and not any(kind in kinds for kinds in self.tolerated):
            self.problems.append(f"{self.filename}:{node.lineno}: {text}")

    # what names and expressions are
    def name(self, name: str) -> list[Thing] | None:
        for depth, scope in enumerate(reversed(self.scopes)):
            if name in scope.names:
                return scope.names[name] if depth == 0 or name in scope.once else None
        return self.bound.get(name)

    def bind(self, name: str, things: list[Thing] | None) -> None:
        """Binds a name in the innermost function, or at module level."""
        if self.scopes:
            self.scopes[-1].names[name] = things if known(things) else None
        elif known(things):
            self.bound[name] = things
        else:
            self.bound.pop(name, None)

    def resolve(self, expr: ast.expr) -> list[Thing] | None:
        """What ``expr`` is in torch; None when unknown or missing (reported where it occurs)."""
        if isinstance(expr, ast.Name):
            return self.name(expr.id)
        if isinstance(expr, ast.Attribute):
            base = self.resolve(expr.value)
            return (self.oldest.members(base, expr.attr) or None) if known(base) else None
        if isinstance(expr, ast.Call):
            if getattr(expr.func, "id", "") == "super" and self.classes and self.classes[-1]:
                return [Thing("instance", b.name, b.node, b.module) for b in self.classes[-1]]
            called = self.resolve(expr.func)
            return self.oldest.returns(called) if known(called) else None
        if isinstance(expr, (ast.Subscript, ast.BinOp)):
            base = self.resolve(expr.value if isinstance(expr, ast.Subscript) else expr.left)
            dunder = (
                "__getitem__" if isinstance(expr, ast.Subscript) else DUNDERS.get(type(expr.op))
            )
            if dunder and known(base) and all(t.kind == "instance" for t in base):
                return self.oldest.returns(self.oldest.members(base, dunder))
        return None

    def annotated(self, annotation: ast.expr | None) -> list[Thing] | None:
        """The torch object an annotation names (``torch.Tensor``), else None."""
        found = self.resolve(annotation) if annotation is not None else None
        if not known(found) or any(t.kind != "class" for t in found):
            return None
        return [Thing("instance", t.name, t.node, t.module) for t in found]

    # imports
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not _is_torch(alias.name):
                continue
            if self.oldest.module(alias.name) is None:
                self.problem(node, "import", f"module {alias.name} is not in {OLDEST}")
            top = alias.name if alias.asname else "torch"
            self.bind(alias.asname or "torch", [Thing("module", top)])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not _is_torch(module):
            return
        if self.oldest.module(module) is None:
            self.problem(node, "import", f"module {module} is not in {OLDEST}")
            return
        for alias in node.names:
            found = self.oldest.lookup(module, alias.name)
            if not found:
                self.problem(node, "import", f"{module}.{alias.name} is not in {OLDEST}")
            self.bind(alias.asname or alias.name, found)

    # classes and functions
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in node.bases + node.keywords + node.decorator_list:
            self.visit(expr)
        bases = [self.resolve(b) for b in node.bases]
        torch_bases = None
        if bases and all(known(b) and all(t.kind == "class" for t in b) for b in bases):
            torch_bases = tuple(t for b in bases for t in b)
        self.classes.append(torch_bases)
        self.scopes.append(Scope({}, set()))  # its names are not its methods' (nor the module's)
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._function(stmt, node if torch_bases else None)
            else:
                self.visit(stmt)
        self.scopes.pop()
        self.classes.pop()
        self.bind(node.name, None)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._function(node, None)
        self.bind(node.name, None)

    visit_AsyncFunctionDef = visit_FunctionDef

    def _function(self, node, torch_class: ast.ClassDef | None) -> None:
        """``torch_class``: the class whose method this is, when its bases are all torch's."""
        args = node.args
        for expr in node.decorator_list + args.defaults + args.kw_defaults + [node.returns]:
            if expr is not None:
                self.visit(expr)
        params = args.posonlyargs + args.args + args.kwonlyargs
        for arg in params:
            if arg.annotation is not None:
                self.visit(arg.annotation)
        names = {a.arg: self.annotated(a.annotation) for a in params}
        names.update({a.arg: None for a in (args.vararg, args.kwarg) if a is not None})
        plain = not any(
            getattr(d, "id", "") in ("staticmethod", "classmethod") for d in node.decorator_list
        )
        if torch_class is not None and plain and args.posonlyargs + args.args:
            own = frozenset(self.oldest.class_bindings(Thing("class", "", torch_class)).names)
            first = (args.posonlyargs + args.args)[0].arg
            names[first] = [Thing("self", torch_class.name, own=own, bases=self.classes[-1])]
        stores = Counter(
            n.id
            for n in _local_nodes(node.body)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        )
        once = {n for n in names if not stores[n]}
        once |= {n for n, count in stores.items() if count == 1 and n not in names}
        self.scopes.append(Scope(names, once))
        for stmt in node.body:
            self.visit(stmt)
        self.scopes.pop()

    def visit_Lambda(self, node: ast.Lambda) -> None:
        args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
        self.scopes.append(Scope(dict.fromkeys(a.arg for a in args), set()))  # runs later
        self.generic_visit(node)
        self.scopes.pop()

    def visit_ListComp(self, node) -> None:
        """A comprehension runs where it stands, its targets hiding the enclosing names."""
        targets = {n for g in node.generators for n in _unpacked(g.target)}
        outer = dict(self.scopes[-1].names) if self.scopes else {}
        self.scopes.append(Scope({**outer, **dict.fromkeys(targets)}, set()))
        self.generic_visit(node)
        self.scopes.pop()

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp

    # assignments: a local name takes the type of what it was last given
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        things = self.resolve(node.value)
        for target in node.targets:
            pairs = _pairs(target, node.value)  # a, b = x.f(), y.g(): each its own
            if pairs:
                for name, value in pairs:
                    self.bind(name, self.resolve(value))
            else:
                self._store(target, things if isinstance(target, ast.Name) else None)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        for expr in (node.annotation, node.value):
            if expr is not None:
                self.visit(expr)
        if node.value is not None or self.scopes:
            things = self.annotated(node.annotation)
            if things is None and node.value is not None:
                things = self.resolve(node.value)
            self._store(node.target, things)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):  # x += y: what x + y gives
            load = ast.Name(node.target.id, ast.Load())
            self.bind(node.target.id, self.resolve(ast.BinOp(load, node.op, node.value)))
        else:
            self.generic_visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.bind(node.target.id, self.resolve(node.value))

    def _store(self, target: ast.expr, things: list[Thing] | None) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, things)
        else:  # unpacking gives unknowns; x.a = / x[i] = check what they read
            for name in _unpacked(target):
                self.bind(name, None)
            if isinstance(target, (ast.Attribute, ast.Subscript)):
                self.generic_visit(target)

    def _forget_stores(self, nodes: list[ast.AST]) -> None:
        for node in nodes:
            for n in _local_nodes([node]):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                    self.bind(n.id, None)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._store(node.target, None)
        self._loop(node.body)
        self._statements(node.orelse)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self._loop(node.body)
        self._statements(node.orelse)

    def _loop(self, body: list[ast.stmt]) -> None:
        """A loop body starts with what the names had before it or after a pass of it: a silent
        first pass learns the latter, the second checks with what both agree on."""
        before = self._names()
        self.silent += 1
        self._statements(body)
        self.silent -= 1
        entry = _merge(before, self._names())
        self._set_names(entry)
        self._statements(body)
        self._set_names(_merge(entry, self._names()))

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        before = self._names()
        self.guards.append(_hasattr_guards(node.test))
        self._statements(node.body)
        self.guards.pop()
        after_body = self._names()
        self._set_names(before)
        self._statements(node.orelse)
        self._set_names(_merge(after_body, self._names()))

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        self.guards.append(_hasattr_guards(node.test))
        self.visit(node.body)
        self.guards.pop()
        self.visit(node.orelse)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        """``hasattr(X, "n") and X.n(...)``: each operand is guarded by the ones before it."""
        guards: set[tuple[str, str]] = set()
        for value in node.values:
            self.guards.append(set(guards))
            self.visit(value)
            self.guards.pop()
            if isinstance(node.op, ast.And):
                guards |= _hasattr_guards(value)

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._store(item.optional_vars, None)
        self._statements(node.body)

    visit_AsyncWith = visit_With

    def visit_Try(self, node: ast.Try) -> None:
        kinds = set()
        for handler in node.handlers:
            caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            if not any(isinstance(s, ast.Raise) for s in handler.body):
                kinds |= {FALLBACK_KINDS.get(getattr(c, "id", ""), "") for c in caught}
        before = self._names()
        self.tolerated.append(kinds - {""})
        self._statements(node.body)
        self.tolerated.pop()
        self._statements(node.orelse)
        ends = [self._names()]
        for handler in node.handlers:  # may start anywhere in the body
            self._set_names(before)
            self._forget_stores(node.body)
            if handler.type is not None:
                self.visit(handler.type)
            if handler.name:
                self.bind(handler.name, None)
            self._statements(handler.body)
            ends.append(self._names())
        for end in ends[1:]:
            ends[0] = _merge(ends[0], end)
        self._set_names(ends[0])
        self._statements(node.finalbody)

    def _statements(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.visit(stmt)

    def _names(self) -> dict:
        return dict(self.scopes[-1].names) if self.scopes else {}

    def _set_names(self, names: dict) -> None:
        if self.scopes:
            self.scopes[-1].names = names

    # uses
    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load) and not self._guarded(node):
            base = self.resolve(node.value)
            if known(base):
                if not self.oldest.members(base, node.attr):
                    self.problem(
                        node, "attribute", f"{describe(base)}.{node.attr} is not in {OLDEST}"
                    )
            elif self.uses_torch and node.attr in self.newer.names:
                owners = "/".join(sorted(self.newer.names[node.attr]))
                self.problem(
                    node,
                    "attribute",
                    f".{node.attr}: newer PyTorch's {owners} has it, {OLDEST}'s does not",
                )
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        keywords = [k.arg for k in node.keywords if k.arg]
        called = self.resolve(node.func) if keywords else None
        if known(called):
            signatures = self.oldest.signatures(called)
            for keyword in keywords if signatures is not None else ():
                if not any(kwargs or keyword in params for params, kwargs in signatures):
                    self.problem(
                        node, "keyword", f"{describe(called)}() takes no {keyword}= in {OLDEST}"
                    )
        elif isinstance(node.func, ast.Attribute) and self.uses_torch:
            for keyword in keywords:
                if keyword in self.newer.keywords.get(node.func.attr, ()):
                    self.problem(
                        node,
                        "keyword",
                        f".{node.func.attr}() takes {keyword}= only in newer PyTorch",
                    )
        self.generic_visit(node)

    def _guarded(self, node: ast.Attribute) -> bool:
        return any((ast.dump(node.value), node.attr) in g for g in self.guards)


def _pairs(target: ast.expr, value: ast.expr) -> list[tuple[str, ast.expr]]:
    """(name, value) of a tuple assigned a tuple of as many, names only; else []."""
    if not (isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)):
        return []
    if len(target.elts) != len(value.elts) or not all(
        isinstance(t, ast.Name) for t in target.elts
    ):
        return []
    return [(t.id, v) for t, v in zip(target.elts, value.elts)]


def _merge(a: dict, b: dict) -> dict:
    """Names after either of two paths: a type both agree on, else unknown."""
    merged = {}
    for name in a.keys() | b.keys():
        x, y = a.get(name), b.get(name)
        if name not in a or name not in b:  # bound on one path only: its type, if it is bound
            merged[name] = x if name in a else y
        elif (
            x is not None and y is not None and [id(t.node) for t in x] == [id(t.node) for t in y]
        ):
            merged[name] = x
        else:
            merged[name] = None
    return merged


def _local_nodes(body: list[ast.stmt]):
    """The nodes of a function body, not those of functions, classes, lambdas and comprehensions
    inside it (their own scopes), whose statements themselves are yielded."""
    todo = list(body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(
            node,
            (
                ast.FunctionDef,
                ast.AsyncFunctionDef,
                ast.ClassDef,
                ast.Lambda,
                ast.ListComp,
                ast.SetComp,
                ast.DictComp,
                ast.GeneratorExp,
            ),
        ):
            todo += ast.iter_child_nodes(node)


def _hasattr_guards(test: ast.expr) -> set[tuple[str, str]]:
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return set().union(*(_hasattr_guards(v) for v in test.values))
    if (
        isinstance(test, ast.Call)
        and getattr(test.func, "id", "") == "hasattr"
        and len(test.args) == 2
        and isinstance(test.args[1], ast.Constant)
    ):
        return {(ast.dump(test.args[0]), test.args[1].value)}
    return set()


def newer_than_oldest_problems(source: str, filename: str, oldest: TorchTree, newer: Newer):
    """The uses of torch API that 2.5.1 lacks in one Python source, as "file:line: what"."""
    tree = ast.parse(source)
    uses_torch = any(
        isinstance(n, ast.Import)
        and any(_is_torch(a.name) for a in n.names)
        or isinstance(n, ast.ImportFrom)
        and not n.level
        and _is_torch(n.module or "")
        for n in ast.walk(tree)
    )
    checker = Checker(oldest, newer, filename, uses_torch)
    checker.visit(tree)
    return checker.problems


@pytest.fixture(scope="module")
def trees() -> tuple[TorchTree, Newer]:
    if not (SOURCES / "torch" / "__init__.py").is_file():
        pytest.skip(
            f"{SOURCES.relative_to(REPO_ROOT)}/ not found: `make setup` downloads {OLDEST} once "
            "and keeps its Python sources there (make test always has them)"
        )
    installed = Path(importlib.util.find_spec("torch").origin).parents[1]
    oldest = TorchTree(SOURCES)
    return oldest, newer_than_oldest(oldest, TorchTree(installed))


def test_the_package_uses_only_torch_api_that_2_5_has(trees):
    problems = []
    files = package_files() + sorted((REPO_ROOT / "training").rglob("*.py"))
    for path in files:
        problems += newer_than_oldest_problems(
            path.read_text(), str(path.relative_to(REPO_ROOT)), *trees
        )
    assert not problems, f"torch API that {OLDEST} lacks:\n" + "\n".join(problems)


# What the check must catch, all newer than 2.5.1: a module (torch.accelerator, 2.6), a function
# (F.grouped_mm), a keyword 2.5.1's ONNX exporter swallows into its ignored **_ (optimize=), a
# Tensor method on a known Tensor and on an object of unknown type (hash_tensor), a keyword of
# Module.modules; and a keyword no 2.5.1 Conv2d takes, in a Module subclass.
NEWER_THAN_2_5 = """
import torch
import torch.accelerator
import torch.nn.functional as F
from torch import nn
from torch.nn.functional import grouped_mm


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, bogus=1)
        self.register_buffer("b", torch.zeros(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.zeros(3).unflatten(0, (1, 3)).nan_to_num(nan=0.0)
        z = x.flatten(1)
        return z.hash_tensor() + y


def export(model, batch):
    torch.onnx.export(model, (batch,), dynamo=True, optimize=True)
    model.modules(remove_duplicate=False)
    batch.hash_tensor()
    F.interpolate(batch, size=4, antialias=True)
    torch.load("w.pt", weights_only=True, mmap=True)
    return F.scaled_dot_product_attention(batch, batch, batch, enable_gqa=True)
"""

FALLBACKS = """
import torch

try:
    import torch.accelerator as accelerator
except ImportError:  # PyTorch 2.5
    accelerator = None


def run(model, x: torch.Tensor):
    if hasattr(torch, "accelerator"):
        torch.accelerator.is_available()
    ok = hasattr(torch, "accelerator") and torch.accelerator.is_available()
    hashed = x.hash_tensor() if hasattr(x, "hash_tensor") else x.sum()
    try:
        compiled = torch.compile(model, recompile_limit=8)
    except TypeError:  # PyTorch 2.5: no recompile_limit
        compiled = torch.compile(model)
    return compiled, hashed, ok
"""


def test_the_check_catches_api_newer_than_2_5(trees):
    found = "\n".join(newer_than_oldest_problems(NEWER_THAN_2_5, "snippet.py", *trees))
    expected = [
        "snippet.py:3: module torch.accelerator is not in PyTorch 2.5.1",
        "snippet.py:6: torch.nn.functional.grouped_mm is not in PyTorch 2.5.1",
        "snippet.py:12: Conv2d() takes no bogus= in PyTorch 2.5.1",
        "snippet.py:18: Tensor.hash_tensor is not in PyTorch 2.5.1",
        "snippet.py:22: torch.onnx.export() takes no optimize= in PyTorch 2.5.1",
        "snippet.py:23: .modules() takes remove_duplicate= only in newer PyTorch",
        "snippet.py:24: .hash_tensor: newer PyTorch's Parameter/Tensor has it",
    ]
    for line in expected:
        assert line in found, found
    assert len(found.splitlines()) == len(expected), found  # 2.5.1's own API passes


def test_the_check_accepts_fallbacks(trees):
    assert newer_than_oldest_problems(FALLBACKS, "fallback.py", *trees) == []
    # without them: the import, the attributes and the keyword are each reported
    unguarded = FALLBACKS.replace('hasattr(torch, "accelerator")', "True")
    unguarded = unguarded.replace("except ImportError:", "except OSError:")
    unguarded = unguarded.replace("except TypeError:", "except ValueError:")
    found = "\n".join(newer_than_oldest_problems(unguarded, "fallback.py", *trees))
    assert "fallback.py:5: module torch.accelerator" in found
    assert "fallback.py:12: torch.accelerator is not in" in found
    assert "fallback.py:13: torch.accelerator is not in" in found
    assert "fallback.py:16: torch.compile() takes no recompile_limit=" in found
    # a handler that raises is no fallback
    raising = FALLBACKS.replace("        compiled = torch.compile(model)\n", "        raise\n")
    assert "fallback.py:16: torch.compile() takes no recompile_limit=" in "\n".join(
        newer_than_oldest_problems(raising, "fallback.py", *trees)
    )
