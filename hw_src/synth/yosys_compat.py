"""Rewrite three SystemVerilog constructs Yosys 0.70 cannot handle into equivalent ones it can, on copies.

The RTL is written for Verilator and Vivado (lowRISC style). Yosys's own SystemVerilog front end rejects:

1. package imports in a module header, `module m import p::*; #(...) (...);`
   -> the import is moved in front of the module, to file scope (the same names become visible; the packages of
   this project define no clashing names);
2. `return <expr>;` inside a function
   -> `begin if (!f_returned_) f = <expr>; f_returned_ = 1'b1; end`, with `f_returned_` declared after the
   header and cleared before the first statement. Later statements still run but can no longer change the
   result, which is what `return` means for a function without side effects (all synthesizable ones).

3. functions declared in a package (Yosys 0.70 miscompiles a package function that has local variables when a
   module calls it: "Identifier `...$func$...$result' is implicitly declared", the result is lost and most of
   the design is optimized away, or it fails an internal assertion)
   -> the function is moved out of the package into every module that imports the package (the package's
   parameters stay visible there through the import).

Only the copies in the synthesis work folder are rewritten; hw_src/rtl is never touched. Nothing else is
translated: any other construct Yosys rejects fails the flow with Yosys's own message.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

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


_PACKAGE = re.compile(r"\bpackage\s+(?P<name>\w+)\s*;(?P<body>.*?)\bendpackage\b", re.DOTALL)
_FUNCTION_BLOCK = re.compile(r"[ \t]*\bfunction\b.*?\bendfunction\b[ \t]*\n?", re.DOTALL)
_MODULE_START = re.compile(r"^[ \t]*module[ \t]+(?P<name>\w+)", re.MULTILINE)


def take_package_functions(text: str) -> Tuple[str, Dict[str, List[str]]]:
    """Remove the functions of every package in `text`; returns (new text, {package: [function text]})."""
    found: Dict[str, List[str]] = {}

    def strip(m: re.Match) -> str:
        funcs = _FUNCTION_BLOCK.findall(m.group("body"))
        if not funcs:
            return m.group(0)
        found[m.group("name")] = funcs
        return m.group(0).replace(m.group("body"), _FUNCTION_BLOCK.sub("", m.group("body")))

    return _PACKAGE.sub(strip, text), found


def _header_end(text: str, start: int) -> int:
    """Index just after the `;` that ends the module header starting at `start` (parentheses balanced)."""
    depth = 0
    for j in range(start, len(text)):
        ch = text[j]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == ";" and depth == 0:
            return j + 1
    raise ValueError("module header without a terminating `;`")


def insert_functions(text: str, functions: Dict[str, List[str]]) -> Tuple[str, int]:
    """Give every module of `text` the functions of the packages this file imports; returns (text, count)."""
    wanted = [f for pkg, funcs in functions.items()
              if re.search(rf"\bimport\s+{pkg}::", text) for f in funcs]
    if not wanted:
        return text, 0
    count = 0
    out, pos = [], 0
    for m in _MODULE_START.finditer(text):
        end = _header_end(text, m.start())
        out.append(text[pos:end])
        out.append("\n  // copied from its package for Yosys (package functions with locals are miscompiled)\n")
        out.append("".join(wanted))
        pos = end
        count += len(wanted)
    out.append(text[pos:])
    return "".join(out), count


def prepare_sources(sources: List[Path], out_dir: Path) -> Tuple[List[Path], List[str]]:
    """Copy `sources` into `out_dir`, rewritten where needed; returns (copies in order, notes on what changed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    texts, notes = [], []
    functions: Dict[str, List[str]] = {}
    for src in sources:
        text = src.read_text()
        text, hoisted = hoist_header_imports(text)
        text, returns = rewrite_returns(text)
        text, taken = take_package_functions(text)
        functions.update(taken)
        texts.append(text)
        if hoisted:
            notes.append(f"{src.name}: package import moved out of the module header")
        if returns:
            notes.append(f"{src.name}: {returns} `return` statement(s) rewritten as guarded assignments")
        for pkg, funcs in taken.items():
            notes.append(f"{src.name}: {len(funcs)} function(s) of package {pkg} moved into the modules importing it")
    copies = []
    for src, text in zip(sources, texts):
        text, inserted = insert_functions(text, functions)
        if inserted:
            notes.append(f"{src.name}: {inserted} package function(s) copied in")
        dst = out_dir / src.name
        dst.write_text(text)
        copies.append(dst)
    return copies, notes
