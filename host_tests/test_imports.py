"""The package's import graph runs one way: from the commands down to the hardware contract, never back up,
and the real board backend never imports its test double (the virtual board)."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sps_pynq"

# Rank of each top-level part of the package: a module may import parts of its own rank or below.
RANK = {
    "errors": 0, "__version__": 0, "progress": 0, "hw": 1,
    "program": 2, "model_file": 2, "reference": 2, "pps": 2,
    "native": 3,
    "backends": 4,
    "runtime": 5, "virtual_board": 5,
    "analysis": 6, "compiler": 6, "prune": 6, "zoo": 6, "data": 6, "testing": 6, "demo": 6,
    "commands": 7, "cli": 7, "__main__": 7, "__init__": 7,
}


def _part(module: str) -> str:
    """'sps_pynq.backends.board.driver' -> 'backends'."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path):
    """Every sps_pynq module `path` imports, at the top or inside a function, as absolute names."""
    here = list(path.relative_to(PKG.parent).with_suffix("").parts[:-1])      # the importing module's package
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("sps_pynq"):
                if node.module is None or mod.count(".") == 0:      # `from .. import pps`: the names are modules
                    for alias in node.names:
                        yield f"{mod}.{alias.name}"
                else:
                    yield mod
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sps_pynq"):
                    yield alias.name


def test_no_upward_imports():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        me = ".".join(path.relative_to(PKG.parent).with_suffix("").parts)
        mine = _part(me)
        for mod in _imports(path):
            theirs = _part(mod)
            assert theirs in RANK, f"{mod} (imported by {me}) has no rank in this test: give it one"
            if RANK[theirs] > RANK[mine]:
                bad.append(f"{me} imports {mod}")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_real_backends_do_not_import_the_virtual_board():
    bad = [f"{path.relative_to(PKG)} imports {mod}" for path in sorted((PKG / "backends").rglob("*.py"))
           for mod in _imports(path) if _part(mod) == "virtual_board"]
    assert not bad, bad


def test_the_check_sees_relative_and_lazy_imports(tmp_path):
    mods = set(_imports(PKG / "backends" / "board" / "backend.py"))
    assert "sps_pynq.hw.ip" in mods and "sps_pynq.backends.board.driver" in mods
    mods = set(_imports(PKG / "commands" / "run.py"))
    assert "sps_pynq.runtime.session" in mods          # imported inside run()
