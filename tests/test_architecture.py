"""Layering: the core and the kernels never import the UI or GUI toolkits,
and kernels in native/ do no I/O (no I/O modules, no calls into C libraries)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN_IN_CORE = ("pocketpacs.ui", "webview", "bottle", "PyQt6", "PySide6", "qtpy")
IO_MODULES = ("lmdb", "os", "io", "socket", "subprocess", "shutil", "pathlib")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # relative import inside core/: ..ui or .ui
                if mod.split(".")[0] == "ui" and path.parent.name == "core":
                    names.append("pocketpacs.ui")
                continue
            names.append(mod)
    return names


def test_core_and_native_never_import_ui():
    bad = []
    for folder in ("core", "native"):
        for py in sorted((REPO / folder).rglob("*.py")):
            for name in _imports(py):
                if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_CORE):
                    bad.append(f"{py.relative_to(REPO)} imports {name}")
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
