"""Layering, checked on every import statement (function-level ones too).

- The core and the kernels never import the UI or GUI toolkits.
- Inside the core, each module imports only its own layer or the ones below:
  ``errors``/``log``/``paths``/``process`` (base) < ``dicom`` < ``images`` <
  ``archive`` < the series reader, the command line and the public API (``series``,
  ``cli``, ``__init__``);
  ``synth`` writes DICOM files and stands beside ``dicom``.  Kernels in
  ``native/`` import nothing of the core (numba's set-up, ``native/_jit``,
  takes its folder rules from ``paths``).
- No import cycle between modules, whatever the layer: storage never calls
  up into policy (``archive.store`` -> ``archive.integrity`` -> ``archive.api``
  was one).
- The UI imports the core's subpackages and its public API, not the
  kernels' internals (``native._jit``).
- Kernels in ``native/`` do no I/O (no I/O modules, no calls into C libraries).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CORE = ("pocketpacs.ui", "webview", "bottle", "PyQt6", "PySide6", "qtpy")
IO_MODULES = ("lmdb", "os", "io", "socket", "subprocess", "shutil", "pathlib")
FOLDERS = {"core": "pocketpacs", "native": "pocketpacs.native", "ui": "pocketpacs.ui",
           "benchmarks": "pocketpacs.benchmarks"}

#: The one import of the core by native/: numba's set-up (not a kernel) checks
#: the kernel cache's folders with the same rules as the archive folder's.
NATIVE_MAY_IMPORT = {("pocketpacs.native._jit", "pocketpacs.paths")}

#: Rank of each part of the core: a module may import its own rank or lower.
BASE = ("errors", "log", "paths", "process")
RANKS = {"base": 0, "native": 0, "dicom": 1, "synth": 2, "images": 2, "archive": 3, "top": 4, "series": 4,
         "net": 4, "share": 4, "ui": 5, "benchmarks": 6}

#: The benchmarks stand above everything (they drive the core, the UI server and
#: peers); the core reaches them in one place: ``pocketpacs bench`` (issue 18).
CORE_MAY_IMPORT = {("pocketpacs.cli.bench_command", "pocketpacs.benchmarks.options"),
                   ("pocketpacs.cli.bench_command", "pocketpacs.benchmarks.runner")}


def module_name(path: Path) -> str:
    """``core/archive/store.py`` -> ``pocketpacs.archive.store``."""
    rel = path.relative_to(REPO)
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1][:-3]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(py): py for folder in FOLDERS for py in sorted((REPO / folder).rglob("*.py"))}


MODULES = all_modules()


def _walk_runtime(node: ast.AST):
    """``ast.walk`` without the bodies of ``if TYPE_CHECKING:`` (annotations only)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for other in child.orelse:
                yield other
                yield from _walk_runtime(other)
            continue
        yield child
        yield from _walk_runtime(child)


def _imports(path: Path) -> list[str]:
    """Every module an import statement in *path* names, relative ones resolved.

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is
    a module of ours, else of ``pkg``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    names = []
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES]
            names += subs or [mod]
            if subs and len(subs) < len(node.names):
                names.append(mod)
    return names


def _ours(name: str) -> str | None:
    """The module of ours that an imported name lands in (``None``: not ours)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _part(module: str) -> str:
    parts = module.split(".")
    if parts[:2] == ["pocketpacs", "native"]:
        return "native"
    if parts[:2] == ["pocketpacs", "ui"]:
        return "ui"
    if parts[:2] == ["pocketpacs", "benchmarks"]:
        return "benchmarks"
    if len(parts) == 1 or parts[1] in ("cli", "__main__"):
        return "top"
    if parts[1] in BASE:
        return "base"
    return parts[1]


def test_import_resolution_sees_relative_and_function_level_imports():
    deps = set(_imports(MODULES["pocketpacs.archive.browse"]))
    assert "pocketpacs.archive.store" in deps  # from .store import LmdbStore
    assert "pocketpacs.images.volume" in deps  # a function-level import: from ..images.volume import ...
    assert "pocketpacs.errors" in deps  # from ..errors import ...


def test_core_and_native_never_import_ui():
    bad = []
    for folder in ("core", "native"):
        for py in sorted((REPO / folder).rglob("*.py")):
            for name in _imports(py):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_CORE):
                    bad.append(f"{py.relative_to(REPO)} imports {name}")
    assert not bad, bad


def test_each_layer_imports_only_its_own_or_lower():
    bad = []
    for mod, py in MODULES.items():
        part = _part(mod)
        for name in _imports(py):
            dep = _ours(name)
            if dep is None or dep == mod:
                continue
            dpart = _part(dep)
            if (mod, dep) in NATIVE_MAY_IMPORT or (mod, dep) in CORE_MAY_IMPORT:
                continue
            if part == "native" and dpart != "native":
                bad.append(f"{mod} (a kernel module) imports {dep}")
            elif part == "base" and dpart not in ("base",):
                bad.append(f"{mod} (base) imports {dep}")
            elif RANKS[dpart] > RANKS[part] or (dpart == "synth" and part not in ("synth", "top", "ui", "benchmarks")):
                bad.append(f"{mod} ({part}) imports {dep} ({dpart})")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {mod: {d for n in _imports(py) if (d := _ours(n)) and d != mod} for mod, py in MODULES.items()}
    # a package's own __init__ re-exports its modules; importing the package
    # from inside is the cycle we look for, so keep those edges
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    assert not cycles, cycles


def test_ui_uses_the_core_not_kernel_internals():
    bad = [f"{mod} imports {name}" for mod, py in MODULES.items() if _part(mod) == "ui"
           for name in _imports(py) if name.startswith("pocketpacs.native._")]
    assert not bad, bad


#: Ways for a kernel to reach C functions (libc ``open``/``pread``...) behind the
#: import check's back: I/O in a kernel, and not portable (no ``pread`` on Windows).
#: ``ctypes`` is the module (``import ctypes``, ``ctypes.CDLL``), not a NumPy
#: array's ``.ctypes.data`` address (native/hashing.py checks its alignment).
FOREIGN_CALLS = {
    "ExternalFunction": re.compile(r"\bExternalFunction\b"),
    "ctypes": re.compile(r"(?<![\w.])ctypes\b"),
    "cffi": re.compile(r"\bcffi\b"),
    "llvmlite.binding.load_library": re.compile(r"llvmlite\.binding\.load_library"),
}


def _foreign_calls(text: str) -> list[str]:
    return [word for word, rx in FOREIGN_CALLS.items() if rx.search(text)]


def test_foreign_call_check_catches_them():
    assert _foreign_calls('f = types.ExternalFunction("pread", sig)') == ["ExternalFunction"]
    assert _foreign_calls("import ctypes\nlibc = ctypes.CDLL(None)") == ["ctypes"]
    assert _foreign_calls("from cffi import FFI") == ["cffi"]
    assert _foreign_calls("llvmlite.binding.load_library_permanently(None)") == [
        "llvmlite.binding.load_library"]
    assert _foreign_calls("if (buf.ctypes.data & 7) == 0:") == []


def test_native_kernels_do_no_io():
    allowed = {"_jit.py": {"os"}}  # _jit sets the numba cache folder
    bad = []
    for py in sorted((REPO / "native").rglob("*.py")):
        rel = py.relative_to(REPO).as_posix()
        for name in _imports(py):
            root = name.split(".")[0]
            if root in IO_MODULES and root not in allowed.get(py.name, set()):
                bad.append(f"{rel} imports {name}")
        bad += [f"{rel} mentions {word}"
                for word in _foreign_calls(py.read_text(encoding="utf-8"))]
    assert not bad, bad


def test_packages_listed_in_pyproject_cover_the_tree():
    import tomllib

    conf = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(conf["tool"]["setuptools"]["packages"])
    mapping = conf["tool"]["setuptools"]["package-dir"]
    for pkg, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            name = ".".join([pkg, *rel.parts]) if rel.parts else pkg
            assert name in listed, f"{name} ({init.parent}) is not listed in pyproject packages"
