"""`sps-pynq inspect`: what a .spsmodel holds: layers, shapes, PPS settings, MACs, bytes, buffers, hardware."""
from __future__ import annotations

import argparse
import json

NAME = "inspect"
HELP = "show the layers, shapes, P/K, MAC counts and buffers of a .spsmodel"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .spsmodel file")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")


def describe(program) -> dict:
    """Everything `inspect` shows, as plain data (the --json output)."""
    from ..hw import layout
    from ..hw.descriptor import PARAM_RECORD_BYTES, Op
    from ..model_file import num_row_groups
    rows = program.hw.rows
    layers = []
    descs = program.descriptors()
    needed = program.layer_macs(descs)       # nonzero MACs (fill_rows: the model's K, not the stored K')
    for info, d, macs in zip(program.layers, descs, needed):
        row = {"name": info.name, "op": d.op.name, "in_shape": [d.in_c, d.in_h, d.in_w],
               "out_shape": [d.out_c, d.out_h, d.out_w], "relu": d.relu, "out_scale": info.out_scale,
               "sources": info.sources,
               # kept outputs (hw/residency.py): the input read from the activation buffer, the output kept there
               "input_kept": d.resident, "output_kept": d.keep}
        if d.op == Op.ADD:
            row["in2_offset"] = d.in2_offset
        if d.op in (Op.MAXPOOL, Op.AVGPOOL, Op.CONV):
            row.update(kernel=[d.kh, d.kw], stride=[d.stride_h, d.stride_w],
                       pads=[d.pad_top, d.pad_left, d.pad_bottom, d.pad_right])
        if d.op == Op.CONV:
            # "pps-merged": fill_rows stored merged residue classes (P', K' below; the model's K counts the MACs);
            # "-shared": classes share row groups (slots of 2^slot_shift rows, hw/layout.py)
            mode = ("pps-merged" if macs != d.sparse_macs() else "pps") if d.pps else "dense"
            slot_shift = layout.desc_slot_shift(d)
            if slot_shift is not None:
                mode += "-shared"
                row["slot_shift"] = slot_shift
            groups = num_row_groups(d.out_c, d.patterns, rows, slot_shift)
            row.update(mode=mode, P=d.patterns, K=d.nnz,
                       masks=[f"{m:03x}" for m in d.pattern_masks],
                       dense_macs=d.dense_macs(), sparse_macs=macs, row_groups=groups,
                       # closed form (layout.weight_bytes lists every row group)
                       weight_bytes=groups * layout.group_weight_bytes(d.in_c, d.nnz, rows),
                       param_bytes=groups * rows * PARAM_RECORD_BYTES)
        layers.append(row)
    sparse, dense = program.conv_macs()
    buffers = program.metadata.get("buffers") or [
        {"name": t.name, "offset": t.offset, "bytes": t.nbytes, "tensors": [t.name]}
        for t in program.inputs + program.outputs]
    return {
        "hw": program.hw.to_dict(),
        "hw_description": program.hw.describe(),
        "layers": layers,
        "totals": {"layers": program.num_layers, "dense_macs": dense, "sparse_macs": sparse,
                   "mac_reduction": round(dense / sparse, 3) if sparse else None,
                   "weight_bytes": sum(r.get("weight_bytes", 0) for r in layers),
                   "param_bytes": sum(r.get("param_bytes", 0) for r in layers),
                   "image_bytes": len(program.image), "arena_bytes": program.arena_size,
                   "activation_bytes": sum(b["bytes"] for b in buffers)},
        "buffers": buffers,
        "stats": {"offset": program.stats_offset},
        "inputs": [t.to_dict() for t in program.inputs],
        "outputs": [t.to_dict() for t in program.outputs],
        "host_steps": program.host_steps,
        "metadata": {k: v for k, v in program.metadata.items() if k not in ("buffers", "layers")},
    }


def _table(rows, headers) -> str:
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in cells)


def _shape(s) -> str:
    return "x".join(str(v) for v in s)


def run(args) -> int:
    from .. import model_file
    program = model_file.load(args.model)
    info = describe(program)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    meta = info["metadata"]
    print(f"{args.model}: {info['hw_description']}")
    cal = meta.get("calibration") or {}
    cal_text = (f"{cal.get('count', '?')} {'synthetic' if cal.get('synthetic') else 'user'} inputs, "
                f"{cal.get('method', '?')}" if cal else "?")
    print(f"source {meta.get('source', '?')}, PPS {meta.get('pps', '?')}, first layer dense "
          f"{meta.get('first_layer_dense', '?')}, fill rows {meta.get('fill_rows', False)}, keep outputs "
          f"{meta.get('keep_outputs', False)}, calibration: {cal_text}")
    rows = []
    for r in info["layers"]:
        pk = f"{r['P']}/{r['K']}" if r["op"] == "CONV" else "-"
        rows.append([r["name"], r["op"] + ("+relu" if r["relu"] else ""), _shape(r["in_shape"]),
                     _shape(r["out_shape"]), "kept" if r["input_kept"] else "DDR", r.get("mode", "-"), pk,
                     r.get("dense_macs", "-"),
                     r.get("sparse_macs", "-"), r.get("weight_bytes", "-"), r.get("param_bytes", "-")])
    print(_table(rows, ["layer", "op", "in", "out", "input", "mode", "P/K", "dense MACs", "sparse MACs",
                        "weight B", "param B"]))
    t = info["totals"]
    print(f"total: {t['layers']} layers, {t['sparse_macs']} of {t['dense_macs']} MACs "
          f"({t['mac_reduction']}x fewer), weights {t['weight_bytes']} B, params {t['param_bytes']} B, "
          f"image {t['image_bytes']} B, arena {t['arena_bytes']} B")
    print("buffers:")
    print(_table([[b["name"], b["offset"], b["bytes"], len(b["tensors"])] for b in info["buffers"]],
                 ["buffer", "offset", "bytes", "tensors"]))
    print(f"stats at offset {info['stats']['offset']}; inputs "
          + ", ".join(f"{x['name']} {_shape(x['shape'])} scale {x['scale']:.6g}" for x in info["inputs"])
          + "; outputs "
          + ", ".join(f"{x['name']} {_shape(x['shape'])} scale {x['scale']:.6g}" for x in info["outputs"])
          + (f"; host steps {[s['op'] for s in info['host_steps']]}" if info["host_steps"] else ""))
    return 0
