"""The arena plan: aligned, non-overlapping regions; dead activation buffers reused; a live tensor (a residual
input until its ADD) never overwritten; network inputs and outputs in buffers of their own."""
from types import SimpleNamespace

import numpy as np
import pytest

from sps_pynq.compiler.plan import plan_buffers
from sps_pynq.hw.descriptor import ALIGN, DESC_BYTES, Op
from sps_pynq.program import STATS_RECORD_BYTES


def L(inputs, output):
    return SimpleNamespace(inputs=list(inputs), output=output)


def check_no_live_overlap(layers, where, net_inputs, net_outputs, nbytes):
    """Two tensors alive at the same time never share bytes."""
    born = {t: -1 for t in net_inputs}
    dies = {t: len(layers) for t in net_inputs + net_outputs}
    for j, layer in enumerate(layers):
        born.setdefault(layer.output, j)
        for t in layer.inputs:
            dies[t] = max(dies.get(t, j), j)
    for t in born:
        dies.setdefault(t, born[t])
    names = list(born)
    for a in names:
        for b in names:
            if a >= b:
                continue
            live_together = born[a] <= dies[b] and born[b] <= dies[a]
            ra = (where[a].offset, where[a].offset + nbytes[a])
            rb = (where[b].offset, where[b].offset + nbytes[b])
            if live_together:
                assert ra[1] <= rb[0] or rb[1] <= ra[0], f"{a} {ra} and {b} {rb} are live together and overlap"


def test_chain_reuses_two_buffers():
    layers = [L(["in"], "a"), L(["a"], "b"), L(["b"], "c"), L(["c"], "d"), L(["d"], "out")]
    nbytes = {"in": 100, "a": 1000, "b": 500, "c": 800, "d": 300, "out": 10}
    where = plan_buffers(layers, nbytes, ["in"], ["out"], base=4096)
    inner = {id(where[t]) for t in "abcd"}
    assert len(inner) == 2
    assert where["in"].name == "input0" and where["out"].name == "output0"
    assert all(where[t].offset % ALIGN == 0 and where[t].offset >= 4096 for t in nbytes)
    check_no_live_overlap(layers, where, ["in"], ["out"], nbytes)


def test_residual_stays_alive_until_its_add():
    layers = [L(["in"], "x"), L(["x"], "h1"), L(["h1"], "h2"), L(["h2", "x"], "s"), L(["s"], "out")]
    nbytes = dict(zip(["in", "x", "h1", "h2", "s", "out"], [64, 256, 256, 256, 256, 16]))
    where = plan_buffers(layers, nbytes, ["in"], ["out"], base=0)
    assert where["h2"] is not where["x"] and where["h1"] is not where["x"]
    check_no_live_overlap(layers, where, ["in"], ["out"], nbytes)


def test_buffer_grows_to_its_largest_tensor():
    layers = [L(["in"], "a"), L(["a"], "b"), L(["b"], "c"), L(["c"], "out")]
    nbytes = {"in": 8, "a": 100, "b": 50, "c": 400, "out": 8}
    where = plan_buffers(layers, nbytes, ["in"], ["out"], base=0)
    assert where["c"] is where["a"] and where["a"].nbytes == 400
    check_no_live_overlap(layers, where, ["in"], ["out"], nbytes)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet20", "resnet18", "vgg16"])
def test_zoo_programs_have_a_sound_arena(name, zoo_programs):
    program = zoo_programs.compile(name, n_calib=32, pps=(8, 4))      # the programs test_golden checks
    descs = program.descriptors()
    regions = [(0, len(descs) * DESC_BYTES, "descriptors")]
    for m, d in zip(program.metadata["layers"], descs):
        if d.op == Op.CONV:
            regions.append((d.weight_offset, d.weight_offset + m["weight_bytes"], m["name"] + " weights"))
            regions.append((d.param_offset, d.param_offset + m["param_bytes"], m["name"] + " params"))
    image_end = len(program.image)
    for b in program.metadata["buffers"]:
        assert b["offset"] >= image_end and b["offset"] % ALIGN == 0
        regions.append((b["offset"], b["offset"] + b["bytes"], b["name"]))
    regions.append((program.stats_offset, program.stats_offset + len(descs) * STATS_RECORD_BYTES, "stats"))
    regions.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(regions, regions[1:]):
        assert a1 <= b0, f"{an} [{a0}, {a1}) overlaps {bn} [{b0}, {b1})"
        assert b0 % ALIGN == 0
    assert regions[-1][1] <= program.arena_size
    # the buffer plan over the program's own tensors
    layers = [SimpleNamespace(inputs=m["inputs"], output=m["output"]) for m in program.metadata["layers"]]
    where, nbytes = {}, {}
    for b in program.metadata["buffers"]:
        for t in b["tensors"]:
            where[t] = SimpleNamespace(offset=b["offset"])
    for m in program.metadata["layers"]:
        nbytes[m["output"]] = int(np.prod(m["out_shape"]))
        nbytes.setdefault(m["inputs"][0], int(np.prod(m["in_shape"])))
    check_no_live_overlap(layers, where, [program.inputs[0].name], [program.outputs[0].name], nbytes)
    # descriptors point where the plan says
    for m, d in zip(program.metadata["layers"], descs):
        assert d.in_offset == where[m["inputs"][0]].offset and d.out_offset == where[m["output"]].offset
