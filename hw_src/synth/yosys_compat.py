"""Rewrite two SystemVerilog constructs Yosys 0.70 cannot read into equivalent ones it can, on copies.

The RTL is written for Verilator and Vivado (lowRISC style). Yosys's own SystemVerilog front end rejects:

1. package imports in a module header, `module m import p::*; #(...) (...);`
   -> the import is moved in front of the module, to file scope (the same names become visible; the packages of
   this project define no clashing names);
2. `return <expr>;` inside a function
   -> `begin if (!f_returned_) f = <expr>; f_returned_ = 1'b1; end`, with `f_returned_` declared after the
   header and cleared before the first statement. Later statements still run but can no longer change the
   result, which is what `return` means for a function without side effects (all synthesizable ones).

Only the copies in the synthesis work folder are rewritten; hw_src/rtl is never touched. Nothing else is
translated: any other construct Yosys rejects fails the flow with Yosys's own message.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

_HEADER_IMPORT = re.compile(
    r"(?P<module>^[ \t]*module[ \t]+\w+)(?P<imports>(?:\s*import\s+[\w:*,\s]+;)+)", re.MULTILINE)
_FUNCTION = re.compile(r"\bfunction\b(?P<header>.*?\)\s*;)(?P<body>.*?)\bendfunction\b", re.DOTALL)
_FUNCTION_NAME = re.compile(r"(\w+)\s*\($", re.DOTALL)
_RETURN = re.compile(r"\breturn\b\s*(?P<expr>[^;]*);")
_DECLARATION = re.compile(
    r"^\s*(logic|bit|int|integer|reg|byte|shortint|longint|input|output|inout|automatic|static|var|"
    r"localparam|parameter|\w+_t)\b")


def hoist_header_imports(text: str) -> Tuple[str, int]:
    """`module m import p::*; #(` -> `import p::*;\\nmodule m #(`; returns (new text, modules changed)."""
    count = 0

    def move(m: re.Match) -> str:
        nonlocal count
        count += 1
        imports = " ".join(part.strip() for part in re.findall(r"import\s+[\w:*,\s]+;", m.group("imports")))
        return f"{imports}  // moved from the module header for Yosys\n{m.group('module')}"

    return _HEADER_IMPORT.sub(move, text), count


def _function_name(header: str) -> str:
    before_ports = header[: header.index("(")] + "("
    m = _FUNCTION_NAME.search(before_ports)
    if not m:
        raise ValueError(f"cannot find the function name in `function{header}`")
    return m.group(1)


def _rewrite_function(header: str, body: str) -> Tuple[str, int]:
    name = _function_name(header)
    flag = f"{name}_returned_"
    body, n = _RETURN.subn(
        lambda m: f"begin if (!{flag}) {name} = {m.group('expr').strip()}; {flag} = 1'b1; end", body)
    if n == 0:
        return body, 0
    lines = body.split("\n")
    # The first line that is neither blank, a comment nor a declaration starts the statements.
    first_stmt = next((j for j, ln in enumerate(lines)
                       if j > 0 and ln.strip() and not ln.strip().startswith("//") and not _DECLARATION.match(ln)),
                      len(lines) - 1)
    indent = re.match(r"\s*", lines[first_stmt]).group(0) or "    "
    lines.insert(first_stmt, f"{indent}{flag} = 1'b0;")
    lines.insert(1, f"{indent}logic {flag};  // added for Yosys: `return` rewritten as a guarded assignment")
    return "\n".join(lines), n


def rewrite_returns(text: str) -> Tuple[str, int]:
    """Rewrite `return` in every function; returns (new text, returns rewritten)."""
    total = 0

    def one(m: re.Match) -> str:
        nonlocal total
        body, n = _rewrite_function(m.group("header"), m.group("body"))
        total += n
        return f"function{m.group('header')}{body}endfunction"

    return _FUNCTION.sub(one, text), total


def prepare_sources(sources: List[Path], out_dir: Path) -> Tuple[List[Path], List[str]]:
    """Copy `sources` into `out_dir`, rewritten where needed; returns (copies in order, notes on what changed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    copies, notes = [], []
    for src in sources:
        text = src.read_text()
        text, hoisted = hoist_header_imports(text)
        text, returns = rewrite_returns(text)
        dst = out_dir / src.name
        dst.write_text(text)
        copies.append(dst)
        if hoisted:
            notes.append(f"{src.name}: package import moved out of the module header")
        if returns:
            notes.append(f"{src.name}: {returns} `return` statement(s) rewritten as guarded assignments")
    return copies, notes
