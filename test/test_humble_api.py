"""No rclpy API newer than ROS 2 Humble: every rclpy name the package uses exists in Humble's.

    .venv/bin/python -m pytest -q test/test_humble_api.py

Humble has no PyPI wheels, so the node cannot run on it here. Instead its rclpy Python sources
(../shared/ros2-python/api/rclpy-humble-python-sources.tar.gz) are read as syntax trees, the
package's sources likewise, and each use is looked up:
- ``import rclpy.x`` / ``from rclpy.x import Name``: the module, and the name in it;
- ``rclpy.f``, ``Name.attr`` where the name is bound to an rclpy module or class: the attribute;
- any ``.attr`` whose name the installed (newer) rclpy defines and Humble's does not, on any object
  (``self.add_post_set_parameters_callback`` in a Node subclass: Humble lacks it);
- keyword arguments of calls to rclpy classes (``super().__init__`` of a subclass included) and
  to methods of rclpy's Node, publishers, clocks, executors...
Imports in a ``try`` whose ``except ImportError`` imports a fallback are checked in the fallback.
"""

from __future__ import annotations

import ast
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO_ROOT, find_shared, package_files

# Classes whose methods a node calls on objects it gets from rclpy (node.create_publisher(...)...).
OBJECT_CLASSES = (
    "Node",
    "Publisher",
    "Subscription",
    "Client",
    "Service",
    "Timer",
    "Clock",
    "Executor",
    "SingleThreadedExecutor",
    "MultiThreadedExecutor",
    "Context",
    "RcutilsLogger",
    "Parameter",
    "QoSProfile",
    "Time",
    "Duration",
)


@dataclass
class Function:
    params: set[str]
    any_keyword: bool  # **kwargs


@dataclass
class Api:
    """Names an rclpy tree defines."""

    modules: dict[str, set[str]] = field(default_factory=dict)  # "rclpy.node" -> top-level names
    classes: dict[str, dict[str, ast.ClassDef]] = field(
        default_factory=dict
    )  # name -> module -> def
    functions: dict[str, list[Function]] = field(default_factory=dict)  # name -> every def of it
    module_functions: dict[str, dict[str, Function]] = field(
        default_factory=dict
    )  # module -> name -> def
    names: set[str] = field(default_factory=set)  # every name defined anywhere (attributes too)

    def class_members(self, name: str, seen: frozenset = frozenset()) -> set[str]:
        """Members of every rclpy class called ``name``, with those of their rclpy bases."""
        members: set[str] = set()
        for node in self.classes.get(name, {}).values():
            members |= _defined_names(node.body) | _self_attributes(node)
            for base in node.bases:
                base_name = (
                    base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                )
                if base_name in self.classes and base_name not in seen:
                    members |= self.class_members(base_name, seen | {name})
        return members

    def accepts(
        self, function: str, keyword: str, cls: str | None = None, module: str | None = None
    ) -> bool:
        """Whether some definition of ``function`` (of class ``cls``, or at the top of ``module``,
        if given) takes ``keyword``."""
        if module is not None:
            defs = (
                [self.module_functions[module][function]]
                if function in self.module_functions.get(module, {})
                else []
            )
        elif cls is not None:
            defs = [
                _function(d)
                for node in self.classes.get(cls, {}).values()
                for d in node.body
                if isinstance(d, (ast.FunctionDef, ast.AsyncFunctionDef)) and d.name == function
            ]
        else:
            defs = self.functions.get(function, [])
        return not defs or any(f.any_keyword or keyword in f.params for f in defs)


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Function:
    a = node.args
    params = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs}
    return Function(params, a.kwarg is not None)


def _defined_names(body: list[ast.stmt]) -> set[str]:
    """Names a module or class body binds, looking into its if/try blocks."""
    names: set[str] = set()
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in stmt.names}
        elif isinstance(stmt, (ast.If, ast.Try, ast.With)):
            inner = list(stmt.body) + list(getattr(stmt, "orelse", []))
            inner += [s for h in getattr(stmt, "handlers", []) for s in h.body]
            names |= _defined_names(inner)
    return names


def _self_attributes(node: ast.AST) -> set[str]:
    return {
        t.attr
        for t in ast.walk(node)
        if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store)
    }


def read_api(sources: dict[str, str]) -> Api:
    """``sources``: module name ("rclpy.node") -> Python source."""
    api = Api()
    for module, text in sources.items():
        tree = ast.parse(text)
        api.modules[module] = _defined_names(tree.body)
        api.names |= api.modules[module] | _self_attributes(tree)
        api.module_functions[module] = {
            d.name: _function(d)
            for d in tree.body
            if isinstance(d, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                api.classes.setdefault(node.name, {})[module] = node
                api.names |= _defined_names(node.body)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                api.functions.setdefault(node.name, []).append(_function(node))
    for module in list(api.modules):  # a package's submodules are attributes of it
        parent, _, child = module.rpartition(".")
        if parent in api.modules:
            api.modules[parent].add(child)
    return api


def humble_sources() -> dict[str, str]:
    archive = find_shared("ros2-python", "api", "rclpy-humble-python-sources.tar.gz")
    sources = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if (
                member.isfile()
                and member.name.endswith(".py")
                and parts[1:3] == ["rclpy", "rclpy"]
            ):
                module = ".".join(parts[2:])[: -len(".py")].removesuffix(".__init__")
                sources[module] = tar.extractfile(member).read().decode()
    assert "rclpy.node" in sources, f"{archive}: no rclpy/rclpy/node.py inside"
    return sources


def installed_sources() -> dict[str, str]:
    import rclpy

    root = Path(rclpy.__file__).parent
    return {
        ".".join(("rclpy",) + p.relative_to(root).with_suffix("").parts).removesuffix(
            ".__init__"
        ): p.read_text()
        for p in root.rglob("*.py")
    }


class Checker(ast.NodeVisitor):
    """Finds the rclpy uses of one source file that ``humble`` lacks; ``newer``: names only the
    installed rclpy defines."""

    def __init__(self, humble: Api, newer: set[str], filename: str) -> None:
        self.humble, self.newer, self.filename = humble, newer, filename
        self.bound: dict[str, tuple[str, str | None]] = {}  # local name -> (module, name in it)
        self.rclpy_bases: list[set[str]] = []  # stack: rclpy base classes of the enclosing classes
        self.problems: list[str] = []
        self.uses_rclpy = False  # the newer-name rule applies to files that import rclpy

    def problem(self, node: ast.AST, text: str) -> None:
        self.problems.append(f"{self.filename}:{node.lineno}: {text}")

    # imports
    def visit_Try(self, node: ast.Try) -> None:
        fallback = any(
            self._catches_import_error(h) and _has_import(h.body) for h in node.handlers
        )
        for stmt in node.body:
            if fallback and isinstance(stmt, (ast.Import, ast.ImportFrom)):
                continue  # the newer-rclpy branch; the handler's import is checked instead
            self.visit(stmt)
        for stmt in node.handlers + node.orelse + node.finalbody:
            self.visit(stmt)

    @staticmethod
    def _catches_import_error(handler: ast.ExceptHandler) -> bool:
        caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        return any(getattr(c, "id", "") in ("ImportError", "ModuleNotFoundError") for c in caught)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == "rclpy":
                self.uses_rclpy = True
                if alias.name not in self.humble.modules:
                    self.problem(node, f"module {alias.name} is not in Humble's rclpy")
                local = alias.asname or alias.name.split(".")[0]
                self.bound[local] = (alias.name if alias.asname else "rclpy", None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if module.split(".")[0] != "rclpy" or node.level:
            return
        self.uses_rclpy = True
        if module not in self.humble.modules:
            self.problem(node, f"module {module} is not in Humble's rclpy")
            return
        for alias in node.names:
            if alias.name not in self.humble.modules[module]:
                self.problem(node, f"{module}.{alias.name} is not in Humble's rclpy")
            self.bound[alias.asname or alias.name] = (module, alias.name)

    # attributes and calls
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        bases = {self._rclpy_class(b) for b in node.bases} - {None}
        self.rclpy_bases.append(bases)
        self.generic_visit(node)
        self.rclpy_bases.pop()

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in self.newer and self.uses_rclpy and not node.attr.startswith("_"):
            self.problem(node, f".{node.attr}: rclpy after Humble has it, Humble's does not")
        elif isinstance(node.value, ast.Name) and node.value.id in self.bound:
            module, name = self.bound[node.value.id]
            if name is None and node.attr not in self.humble.modules.get(module, set()):
                self.problem(node, f"{module}.{node.attr} is not in Humble's rclpy")
            elif name is not None and name in self.humble.classes:
                if node.attr not in self.humble.class_members(name):
                    self.problem(node, f"{name}.{node.attr} is not in Humble's rclpy")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        keywords = [k.arg for k in node.keywords if k.arg]
        cls = self._rclpy_class(node.func)
        if cls is not None:
            self._check_keywords(node, "__init__", keywords, cls)
        elif isinstance(node.func, ast.Attribute):
            method, owner = node.func.attr, node.func.value
            if isinstance(owner, ast.Name) and self.bound.get(owner.id, ("", ""))[1] is None:
                module = self.bound[owner.id][0]  # rclpy.init(...): a module's function
                for keyword in keywords:
                    if not self.humble.accepts(method, keyword, module=module):
                        self.problem(
                            node, f"{module}.{method}() takes no {keyword}= in Humble's rclpy"
                        )
            elif method == "__init__" and _is_super_call(node.func.value) and self.rclpy_bases:
                for base in self.rclpy_bases[-1]:
                    self._check_keywords(node, "__init__", keywords, base)
            else:  # the object's class is unknown: one with the method must take the keyword
                owners = [
                    o
                    for o in OBJECT_CLASSES
                    if any(
                        self._has_method(d, method)
                        for d in self.humble.classes.get(o, {}).values()
                    )
                ]
                for keyword in keywords:
                    if owners and not any(self.humble.accepts(method, keyword, o) for o in owners):
                        self.problem(
                            node,
                            f"{'/'.join(owners)}.{method}() takes no {keyword}= in Humble's rclpy",
                        )
        self.generic_visit(node)

    @staticmethod
    def _has_method(node: ast.ClassDef, method: str) -> bool:
        return any(isinstance(d, ast.FunctionDef) and d.name == method for d in node.body)

    def _check_keywords(
        self, node: ast.Call, function: str, keywords: list[str], cls: str
    ) -> None:
        for keyword in keywords:
            if not self.humble.accepts(function, keyword, cls):
                self.problem(node, f"{cls}.{function}() takes no {keyword}= in Humble's rclpy")

    def _rclpy_class(self, expr: ast.expr) -> str | None:
        """The rclpy class an expression names (``Node``, ``rclpy.node.Node``), else None."""
        if isinstance(expr, ast.Name) and expr.id in self.bound:
            name = self.bound[expr.id][1]
        elif isinstance(expr, ast.Attribute) and _root_name(expr) in self.bound:
            name = expr.attr
        else:
            return None
        return name if name in self.humble.classes else None


def _root_name(expr: ast.expr) -> str | None:
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _is_super_call(expr: ast.expr) -> bool:
    return isinstance(expr, ast.Call) and getattr(expr.func, "id", "") == "super"


def _has_import(body: list[ast.stmt]) -> bool:
    return any(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body)


def newer_than_humble_problems(
    source: str, filename: str, humble: Api, installed: Api
) -> list[str]:
    """The uses of rclpy API that Humble lacks in one Python source, as "file:line: what"."""
    checker = Checker(humble, installed.names - humble.names, filename)
    checker.visit(ast.parse(source))
    return checker.problems


@pytest.fixture(scope="module")
def apis() -> tuple[Api, Api]:
    return read_api(humble_sources()), read_api(installed_sources())


def test_the_package_uses_only_rclpy_api_that_humble_has(apis):
    problems = []
    for path in package_files():
        problems += newer_than_humble_problems(
            path.read_text(), str(path.relative_to(REPO_ROOT)), *apis
        )
    assert not problems, "rclpy API that Humble lacks:\n" + "\n".join(problems)


# What the check must catch: the post-set parameter callback (Jazzy+), the event handler module
# (Iron+), a keyword Humble's Node does not take (Iron+), a QoS policy member Humble lacks.
NEWER_THAN_HUMBLE = """
import rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy


class SaliencyNode(Node):
    def __init__(self):
        super().__init__("saliency_node", enable_logger_service=True)
        self.add_post_set_parameters_callback(self._after)
        self.qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_AVAILABLE)


def main():
    rclpy.init()
    node = rclpy.create_node("n")
    node.create_subscription(None, "t", print, 10, event_callbacks=None)
"""

HUMBLE_FALLBACK = """
try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:
    from rclpy.qos_event import SubscriptionEventCallbacks
"""


def test_the_check_catches_api_newer_than_humble(apis):
    problems = newer_than_humble_problems(NEWER_THAN_HUMBLE, "snippet.py", *apis)
    found = "\n".join(problems)
    assert "snippet.py:3: module rclpy.event_handler is not in Humble's rclpy" in found
    assert "snippet.py:10: Node.__init__() takes no enable_logger_service=" in found
    assert "snippet.py:11: .add_post_set_parameters_callback: rclpy after Humble has it" in found
    assert "snippet.py:12: .BEST_AVAILABLE" in found
    assert not any(":18:" in p or ":17:" in p for p in problems), (
        problems
    )  # event_callbacks is Humble's
    assert newer_than_humble_problems(HUMBLE_FALLBACK, "fallback.py", *apis) == []
    broken = HUMBLE_FALLBACK.replace("rclpy.qos_event", "rclpy.event_handler")
    assert "fallback.py:5: module rclpy.event_handler" in "\n".join(
        newer_than_humble_problems(broken, "fallback.py", *apis)
    )
