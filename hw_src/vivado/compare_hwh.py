#!/usr/bin/env python3
# Copyright sps-pynq contributors. Licensed under Apache-2.0.
"""Compare a Vivado-built overlay .hwh with the virtual overlay's (or any two .hwh files of this design).

    python hw_src/vivado/compare_hwh.py overlays/zcu104/sps.hwh [overlays/virtual_zcu104/sps.hwh]

First what PYNQ sees, through its own metadata parser (pynqmetadata + pynq's RuntimeMetadataParser): the SPS core
and the interrupt controller in ip_dict (type, address, range, interrupts), the interrupt controllers and pins, and
pl_clk0 in clock_dict. A difference there means the runtime or the virtual board's tests would see another design
than the board has: the script exits with 1. Then the structure of the XML, as notes (cells only in one file, IP
versions, ports and connections of the cells both have, the PS parameters the virtual overlay lists): a first real
build is expected to show some of those, and they are what overlays/README.md asks to look at.
"""
from __future__ import annotations

import argparse
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parents[2]
VIRTUAL = REPO / "overlays" / "virtual_zcu104" / "sps.hwh"
CORE_TYPE = "sps_core"            # the IP name of the core's VLNV (sps_pynq/hw/ip.py IP_NAME)
CLOCK_TOLERANCE = 1e-3            # relative: the achieved pl_clk0 may differ in its last digits


def pynq_view(hwh: Path) -> dict:
    """What PYNQ's parser makes of `hwh`, reduced to what the runtime relies on."""
    from pynqmetadata.frontends import Metadata
    from pynq.metadata.runtime_metadata_parser import RuntimeMetadataParser
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = RuntimeMetadataParser(Metadata(input=str(hwh)))
    ip = {}
    for name, d in p.ip_dict.items():
        kind = str(d.get("type", "")).split(":")
        if kind[2:3] in ([CORE_TYPE], ["axi_intc"]):
            ip[kind[2]] = {"name": name, "phys_addr": d.get("phys_addr"), "addr_range": d.get("addr_range"),
                           "interrupts": sorted((pin, v["controller"], v["index"])
                                                for pin, v in d.get("interrupts", {}).items())}
    clock = dict(p.clock_dict.get(0, {}))
    return {"ip": ip,
            "controllers": {k: (v.get("parent"), v.get("index"), v.get("raw_irq"))
                            for k, v in p.interrupt_controllers.items()},
            "pins": sorted((k, v["controller"], v["index"]) for k, v in p.interrupt_pins.items()
                           if k.split("/")[0] == ip.get(CORE_TYPE, {}).get("name")),
            "clock": clock}


def compare_views(a: dict, b: dict) -> List[str]:
    out = []
    for kind in (CORE_TYPE, "axi_intc"):
        ea, eb = a["ip"].get(kind), b["ip"].get(kind)
        if ea is None or eb is None:
            out.append(f"ip_dict: no {kind} in {'the first' if ea is None else 'the second'} file")
            continue
        for key in ("name", "phys_addr", "addr_range", "interrupts"):
            if ea[key] != eb[key]:
                out.append(f"ip_dict[{kind}] {key}: {ea[key]!r} != {eb[key]!r}")
    if a["controllers"] != b["controllers"]:
        out.append(f"interrupt_controllers: {a['controllers']} != {b['controllers']}")
    if a["pins"] != b["pins"]:
        out.append(f"interrupt_pins of the core: {a['pins']} != {b['pins']}")
    ca, cb = a["clock"], b["clock"]
    for key in ("enable", "divisor0", "divisor1"):
        if ca.get(key) != cb.get(key):
            out.append(f"clock_dict[0] {key}: {ca.get(key)!r} != {cb.get(key)!r}")
    fa, fb = ca.get("frequency"), cb.get("frequency")
    if fa and fb and abs(fa - fb) > CLOCK_TOLERANCE * fb:
        out.append(f"clock_dict[0] frequency: {fa} != {fb} MHz")
    return out


def _modules(hwh: Path) -> Dict[str, ET.Element]:
    root = ET.parse(hwh).getroot()
    return {m.get("INSTANCE"): m for m in root.iter("MODULE")}


def _ports(module: ET.Element) -> Dict[str, Tuple[str, frozenset]]:
    ports = {}
    for p in module.iter("PORT"):
        width = "" if p.get("LEFT") is None else f"[{p.get('LEFT')}:{p.get('RIGHT')}]"
        cons = frozenset((c.get("INSTANCE"), c.get("PORT")) for c in p.iter("CONNECTION"))
        ports[p.get("NAME")] = (f"{p.get('DIR')}{width}", cons)
    return ports


def compare_structure(a: Path, b: Path) -> List[str]:
    ma, mb = _modules(a), _modules(b)
    notes = [f"cell {n} ({ma[n].get('VLNV')}) only in {a.name}" for n in sorted(set(ma) - set(mb))]
    notes += [f"cell {n} ({mb[n].get('VLNV')}) only in {b.name}" for n in sorted(set(mb) - set(ma))]
    for name in sorted(set(ma) & set(mb)):
        x, y = ma[name], mb[name]
        if x.get("VLNV") != y.get("VLNV"):
            notes.append(f"{name}: VLNV {x.get('VLNV')} != {y.get('VLNV')}")
        px, py = _ports(x), _ports(y)
        if x.get("MODTYPE") == "zynq_ultra_ps_e":       # the real PS lists every port; compare the connected ones
            px = {k: v for k, v in px.items() if v[1]}
            py = {k: v for k, v in py.items() if v[1]}
        for port in sorted(set(px) | set(py)):
            if port not in px or port not in py:
                notes.append(f"{name}/{port}: only in {(a if port in px else b).name}")
            elif px[port] != py[port]:
                notes.append(f"{name}/{port}: {px[port][0]} -> {sorted(px[port][1])} != "
                             f"{py[port][0]} -> {sorted(py[port][1])}")
        if x.get("MODTYPE") == "zynq_ultra_ps_e":
            vx = {p.get("NAME"): p.get("VALUE") for p in x.find("PARAMETERS").iter("PARAMETER")}
            vy = {p.get("NAME"): p.get("VALUE") for p in y.find("PARAMETERS").iter("PARAMETER")}
            for key in sorted(set(vx) & set(vy)):
                if vx[key] != vy[key]:
                    notes.append(f"{name} parameter {key}: {vx[key]} != {vy[key]}")
            smaller = vx if len(vx) < len(vy) else vy
            missing = sorted(set(smaller) - (set(vy) if smaller is vx else set(vx)))
            notes += [f"{name} parameter {key}: only in one file" for key in missing]
    return notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hwh", type=Path, help="the .hwh to check, e.g. overlays/zcu104/sps.hwh from Vivado")
    ap.add_argument("reference", type=Path, nargs="?", default=VIRTUAL,
                    help=f"the .hwh to compare with (default: {VIRTUAL.relative_to(REPO)})")
    args = ap.parse_args(argv)
    for f in (args.hwh, args.reference):
        if not f.is_file():
            print(f"compare_hwh: {f} does not exist", file=sys.stderr)
            return 2
    try:
        va, vb = pynq_view(args.hwh), pynq_view(args.reference)
    except ImportError as e:
        print(f"compare_hwh: needs pynq and pynqmetadata ({e}); pip install sps-pynq[remote]", file=sys.stderr)
        return 2
    problems = compare_views(va, vb)
    print(f"PYNQ's view of {args.hwh} and {args.reference}:")
    core = va["ip"].get(CORE_TYPE, {})
    print(f"  core {core.get('name')} at {core.get('phys_addr') and hex(core['phys_addr'])}, "
          f"interrupts {core.get('interrupts')}; pl_clk0 {va['clock'].get('frequency')} MHz "
          f"(/{va['clock'].get('divisor0')}/{va['clock'].get('divisor1')} of {va['clock'].get('src_sel')})")
    for line in problems:
        print(f"  DIFFERENT {line}")
    if not problems:
        print("  the same (core, interrupt controller, interrupt pins, pl_clk0)")
    notes = compare_structure(args.hwh, args.reference)
    print(f"structure: {len(notes)} difference(s)")
    for line in notes:
        print(f"  note: {line}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
