"""Tampered .spsmodel files, hashes recomputed (as an attacker would): every manifest field and every descriptor
field is mutated, and each file must give one ModelFileError naming the file and the field, or load and then
run and `inspect` without any other exception. Zip-level damage (duplicate entries, methods, flags, sizes that
lie) is refused before anything is decompressed."""
import copy
import dataclasses
import hashlib
import json
import struct
import time
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest
from onnx import helper

from layer_factory import in_bands, random_packed_program
from sps_pynq import model_file
from sps_pynq.cli import main
from sps_pynq.commands.inspect import describe
from sps_pynq.compiler import compile_model
from sps_pynq.compiler.testing import make_model
from sps_pynq.errors import ModelFileError, SpsError
from sps_pynq.hw.config import CONFIGS
from sps_pynq.hw.descriptor import ALIGN, DESC_BYTES, FIELDS, Op, field_spec, pack_program
from sps_pynq.program import STATS_RECORD_BYTES, LayerInfo, Program
from sps_pynq.runtime.session import Session


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


@pytest.fixture(scope="module")
def compiled():
    """conv, pool, conv + residual add, global average pool, FC, softmax host step, input preprocessing and class
    names: every op and manifest part."""
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("MaxPool", ["r1"], ["p1"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "p1"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "B"], ["y"], name="fc", transB=1),
             helper.make_node("Softmax", ["y"], ["prob"], name="softmax", axis=1)]
    m = make_model(nodes, [("x", [1, 3, 8, 8])], ["prob"], {"w1": rng.standard_normal((8, 3, 3, 3)),
                   "w2": rng.standard_normal((8, 8, 3, 3)), "B": rng.standard_normal((5, 8))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = compile_model(m, num_calib=2)
    assert program.host_steps and {d.op for d in program.descriptors()} == set(Op)
    program.preprocess = {"scale": 1 / 255, "mean": [0.5, 0.25, 0.125], "std": [0.5, 2.0, 1.0]}
    program.classes = ["cat", "dog", "ship", "frog", "truck"]
    return program


def banded_program(seed: int) -> Program:
    """A random chain whose CONVs and pools run as row or channel bands (several descriptors per layer, bands
    of the network's input and output map included), descriptors and statistics moved past the old image."""
    rng = np.random.default_rng(seed)
    base = random_packed_program(rng, CONFIGS["zcu104"], n_layers=4, in_shape=(6, 9, 7))
    descs = in_bands(rng, base.descriptors(), max_bands=3)
    prog = _align(len(base.image))
    stats = _align(prog + len(descs) * DESC_BYTES)
    image = base.image + bytes(prog - len(base.image)) + pack_program(descs)
    return dataclasses.replace(base, image=image, prog_offset=prog, stats_offset=stats,
                               arena_size=_align(stats + len(descs) * STATS_RECORD_BYTES),
                               layers=[LayerInfo(f"band{j}_{d.op.name.lower()}", [], 0.05)
                                       for j, d in enumerate(descs)])


def write(path, manifest, image, rehash=True):
    """A .spsmodel from a manifest (any JSON value) and an image, the image's size and sha256 recomputed."""
    if rehash and isinstance(manifest, dict) and isinstance(manifest.get("blobs"), dict):
        blob = {"size": len(image), "sha256": hashlib.sha256(image).hexdigest()}
        manifest = {**manifest, "blobs": {**manifest["blobs"], "image.bin": blob}}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("image.bin", image)
    return path


def parts(program, tmp_path):
    path = model_file.save(program, tmp_path / "orig.spsmodel")
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("manifest.json")), z.read("image.bin")


def int8_output(program) -> bytes:
    """The raw output bytes for a fixed input (bytes 0, 1, 2, ...): what a correct run must give."""
    t = program.inputs[0]
    x = (np.arange(t.nbytes) % 251 - 125).astype(np.int8).reshape(t.shape)
    with Session(program, backend="sim") as s:
        return s.run_int8(x).tobytes()


def check_outcome(path, expected: bytes, what: str):
    """One clear error, or a program that runs (a DeviceError or other SpsError is a clear error too) and that
    `inspect` describes. Returns 'refused', 'same' or 'differs' (a valid program computing something else)."""
    t0 = time.perf_counter()
    try:
        program = model_file.load(path)
    except ModelFileError as e:
        msg = str(e)
        assert msg.startswith(f"{path}") and ("re-pack" in msg or "pack one" in msg), (what, msg)
        assert time.perf_counter() - t0 < 2.0, (what, "slow refusal")
        return "refused"
    describe(program)
    try:
        got = int8_output(program)
    except SpsError:
        return "refused"
    return "same" if got == expected else "differs"


HOSTILE = [None, True, False, 0, -1, 1, 2 ** 31, 2 ** 64, 1.5, float("nan"), float("inf"), -0.0, "", "x",
           [], {}, [0]]


def mutations(value, path):
    """Values to put in place of `value`: hostile ones of every JSON type, and near misses of its own type
    (in the free-form metadata, a few: only what the runtime and `inspect` read is checked there)."""
    if path[:1] == ("metadata",):
        return [None, -1, "x", [], {}, [0]]
    out = list(HOSTILE)
    if type(value) is int:
        out += [value + 1, value - 1, value * 2 ** 20 + 7, -value, float(value)]
    elif type(value) is float:
        out += [-value, 0.0, value * 1e300, str(value)]
    elif type(value) is str:
        out += [value + "_", "a" * 5000, value.upper()]
    elif type(value) is list and value:
        out += [value + value[-1:], value[:-1], value[::-1], [value]]
    elif type(value) is dict:
        out += [{**value, "unexpected": 1}, dict(list(value.items())[:-1])]
    return out


def paths(obj, path=()):
    """Every path into the manifest; of repeated list entries (layers, buffers, ...) the first two only."""
    yield path
    if type(obj) is dict:
        for k, v in obj.items():
            yield from paths(v, path + (k,))
    elif type(obj) is list:
        for i, v in enumerate(obj[:2]):
            yield from paths(v, path + (i,))


def with_value(manifest, path, value, delete=False):
    """The manifest with `value` at `path` (or that key deleted): the nodes on the path are copied, the rest
    is shared with `manifest`, which stays as it was."""
    if not path:
        return value
    root = node = copy.copy(manifest)
    for k in path[:-1]:
        node[k] = copy.copy(node[k])
        node = node[k]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return root


# Fields that change nothing a run computes (names, the source, informative metadata, scales of the float
# interface, a host step's axis), so a file with another value may load and compute the same int8 outputs;
# anything else that loads must compute exactly what the original does.
def _harmless(path) -> bool:
    return bool(path) and (path[0] in ("metadata", "host_steps", "preprocess", "classes") or
                           path[-1] in ("name", "sources", "scale",
                                                                                 "out_scale", "source")
                           or path[:2] in (("hw", "name"),) or (path[0] == "layers" and len(path) > 2))


@pytest.mark.parametrize("which", ["compiled", "banded"])
def test_every_manifest_field_mutated(which, compiled, tmp_path):
    program = compiled if which == "compiled" else banded_program(3)
    manifest, image = parts(program, tmp_path)
    expected = int8_output(program)
    target = tmp_path / "t.spsmodel"
    counts = {"refused": 0, "same": 0, "differs": 0}
    for path in list(paths(manifest)):
        node = manifest
        for k in path:
            node = node[k]
        cases = [(v, False) for v in mutations(node, path)]
        if path and type(path[-1]) is str:
            cases.append((None, True))                       # the key removed
        for value, delete in cases:
            m = with_value(manifest, path, value, delete)
            write(target, m, image, rehash=path[:1] != ("blobs",))
            what = f"{'/'.join(map(str, path))} {'deleted' if delete else '= ' + repr(value)[:40]}"
            outcome = check_outcome(target, expected, what)
            counts[outcome] += 1
            if outcome == "differs":
                assert _harmless(path), f"{what}: loads and computes something else"
    print(f"{which}: manifest mutations {counts}")
    assert counts["refused"] > 300, counts


def _set_field(image: bytes, layer: int, prog: int, name: str, value: int) -> bytes:
    _, word, lo, width, _ = field_spec(name)
    at = prog + layer * DESC_BYTES
    words = list(struct.unpack_from("<32I", image, at))
    words[word] = words[word] & ~(((1 << width) - 1) << lo) | value << lo
    return image[:at] + struct.pack("<32I", *words) + image[at + DESC_BYTES:]


def _field_values(orig: int, width: int):
    top = (1 << width) - 1
    return sorted({v for v in (0, 1, top, 1 << (width - 1), orig + 1, orig - 1, orig ^ 1, orig * 3 + 64)
                   if 0 <= v <= top and v != orig})


@pytest.mark.parametrize("which", ["compiled", "banded"])
def test_every_descriptor_field_mutated(which, compiled, tmp_path):
    program = compiled if which == "compiled" else banded_program(4)
    manifest, image = parts(program, tmp_path)
    expected = int8_output(program)
    target = tmp_path / "t.spsmodel"
    names = [f[0] for f in FIELDS if not f[0].startswith("pattern")] + ["pattern0", "pattern1", "pattern15"]
    layers = range(program.num_layers) if which == "compiled" else range(0, program.num_layers, 2)
    outcomes = {"refused": 0, "same": 0, "differs": 0}
    for j in layers:
        raw = struct.unpack_from("<32I", image, program.prog_offset + j * DESC_BYTES)
        for name in names:
            _, word, lo, width, _ = field_spec(name)
            orig = raw[word] >> lo & ((1 << width) - 1)
            for value in _field_values(orig, width):
                bad = _set_field(image, j, program.prog_offset, name, value)
                write(target, manifest, bad)
                outcomes[check_outcome(target, expected, f"layer {j} {name}={value}")] += 1
    print(f"{which}: descriptor mutations {outcomes}")
    assert outcomes["refused"] > outcomes["same"] + outcomes["differs"], outcomes


def test_huge_out_c_is_refused_at_once(compiled, tmp_path):
    """out_c = 2^31 (hashes recomputed) used to make run and inspect build a list of every filter."""
    manifest, image = parts(compiled, tmp_path)
    conv = next(j for j, d in enumerate(compiled.descriptors()) if d.op == Op.CONV)
    path = write(tmp_path / "huge.spsmodel", manifest, _set_field(image, conv, 0, "out_c", 1 << 31))
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match=rf"huge.spsmodel: layer {conv} \({compiled.layers[conv].name}\): "
                                             r"out_c: .*re-pack the model"):
        model_file.load(path)
    seconds, (_, peak) = time.perf_counter() - t0, tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seconds < 1.0 and peak < 20e6, (seconds, peak)


@pytest.mark.parametrize("command", ["inspect", "run"])
def test_cli_tampered_is_one_line(compiled, tmp_path, capsys, command):
    manifest, image = parts(compiled, tmp_path)
    cases = {"scale.spsmodel": (with_value(manifest, ("inputs", 0, "scale"), float("nan")), image),
             "rows.spsmodel": (with_value(manifest, ("hw", "rows"), 1), image),
             "outputs.spsmodel": (with_value(manifest, ("outputs",), []), image),
             "list.spsmodel": ([manifest], image),
             "axis.spsmodel": (with_value(manifest, ("host_steps", 0, "axis"), 7), image),
             "version.spsmodel": (with_value(manifest, ("format_version",), 2.0), image),
             "kernel.spsmodel": (manifest, _set_field(image, 0, 0, "kh", 0))}
    fields_named = {"scale": "manifest.inputs[0].scale", "rows": "manifest.hw.rows", "outputs": "manifest.outputs",
                    "list": "manifest: is [", "axis": "manifest.host_steps[0].axis", "version": "format version",
                    "kernel": "layer 0 (conv1): kh is 0"}
    for name, (m, img) in cases.items():
        path = write(tmp_path / name, m, img)
        args = [command, str(path)] + (["--backend", "sim"] if command == "run" else [])
        assert main(args) == 2
        err = [line for line in capsys.readouterr().err.strip().splitlines() if "warning" not in line]
        assert len(err) == 1 and "Traceback" not in err[0], err
        assert f"{path}: " in err[0] and fields_named[name.split(".")[0]] in err[0] and "re-pack" in err[0], err


# -- the zip container -----------------------------------------------------------------------------------------

def _raw_zip(entries, method=zipfile.ZIP_DEFLATED):
    import io
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # "Duplicate name"
            for name, data in entries:
                z.writestr(name, data)
    return bytearray(buf.getvalue())


def _patch(data: bytearray, name: bytes, central: dict, local: dict) -> bytearray:
    """Overwrite fields (offset within the header: struct format, value) of the entry `name` in the central
    directory and in its local header."""
    at = 0
    while True:
        c = data.find(b"PK\x01\x02", at)
        if c < 0:
            break
        n = struct.unpack_from("<H", data, c + 28)[0]
        if data[c + 46:c + 46 + n] == name:
            for off, (fmt, v) in central.items():
                struct.pack_into(fmt, data, c + off, v)
            h = struct.unpack_from("<I", data, c + 42)[0]
            for off, (fmt, v) in local.items():
                struct.pack_into(fmt, data, h + off, v)
        at = c + 4
    return data


def _good_entries(compiled, tmp_path):
    manifest, image = parts(compiled, tmp_path)
    return json.dumps(manifest).encode(), image


def _refused(tmp_path, data, fragment):
    path = tmp_path / "z.spsmodel"
    path.write_bytes(bytes(data))
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError) as e:
        model_file.load(path)
    assert fragment in str(e.value) and str(e.value).startswith(str(path)), str(e.value)
    assert time.perf_counter() - t0 < 1.0
    return str(e.value)


def test_duplicate_manifest_is_refused_not_last_wins(compiled, tmp_path):
    manifest, image = _good_entries(compiled, tmp_path)
    edited = json.loads(manifest)
    edited["inputs"][0]["scale"] = 123.0
    data = _raw_zip([("manifest.json", manifest), ("image.bin", image), ("manifest.json", json.dumps(edited))])
    _refused(tmp_path, data, "zip entry 'manifest.json': appears twice")
    data = _raw_zip([("manifest.json", manifest), ("image.bin", image), ("image.bin", image)])
    _refused(tmp_path, data, "zip entry 'image.bin': appears twice")
    data = _raw_zip([("manifest.json", manifest), ("image.bin", image), ("notes.txt", b"x")])
    _refused(tmp_path, data, "zip entry 'notes.txt': is not part of a .spsmodel")


def test_compression_method_and_flags(compiled, tmp_path):
    manifest, image = _good_entries(compiled, tmp_path)
    for method in (12, 14, 99):                # bzip2, lzma, AES: zipfile would raise or try to decompress
        data = _patch(_raw_zip([("manifest.json", manifest), ("image.bin", image)]), b"image.bin",
                      {10: ("<H", method)}, {8: ("<H", method)})
        _refused(tmp_path, data, f"uses compression method {method}")
    data = _patch(_raw_zip([("manifest.json", manifest), ("image.bin", image)]), b"manifest.json",
                  {8: ("<H", 0x1)}, {6: ("<H", 0x1)})
    _refused(tmp_path, data, "zip entry 'manifest.json': is encrypted")
    data = _patch(_raw_zip([("manifest.json", manifest), ("image.bin", image)]), b"image.bin",
                  {8: ("<H", 0x20)}, {6: ("<H", 0x20)})
    _refused(tmp_path, data, "uses zip features a .spsmodel never has")


def test_declared_sizes_are_checked_before_decompressing(compiled, tmp_path):
    manifest, image = _good_entries(compiled, tmp_path)
    # The entry declares 1 GiB where the manifest says len(image): refused from the directory.
    data = _patch(_raw_zip([("manifest.json", manifest), ("image.bin", image)]), b"image.bin",
                  {24: ("<I", 1 << 30)}, {22: ("<I", 1 << 30)})
    _refused(tmp_path, data, f"blob image.bin has {1 << 30} bytes, manifest says {len(image)}")
    # Manifest and entry agree on 1 GiB, the data is small: the expansion limit refuses it, nothing inflated.
    m = json.loads(manifest)
    m["blobs"]["image.bin"]["size"] = 1 << 30
    m["arena_size"] = 1 << 31
    data = _patch(_raw_zip([("manifest.json", json.dumps(m)), ("image.bin", image)]), b"image.bin",
                  {24: ("<I", 1 << 30)}, {22: ("<I", 1 << 30)})
    tracemalloc.start()
    _refused(tmp_path, data, "more than 100x")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6, peak
    # Stored, declaring more than the data holds (and within the expansion limit): stops at the real data.
    big = bytes(3 << 20)
    m["blobs"]["image.bin"]["size"] = 3 << 20
    data = _patch(_raw_zip([("manifest.json", json.dumps(m)), ("image.bin", big[:2 << 20])], zipfile.ZIP_STORED),
                  b"image.bin", {24: ("<I", 3 << 20)}, {22: ("<I", 3 << 20)})
    _refused(tmp_path, data, "z.spsmodel")
    # A manifest larger than any this sps-pynq reads.
    data = _patch(_raw_zip([("manifest.json", manifest), ("image.bin", image)]), b"manifest.json",
                  {24: ("<I", 64 << 20)}, {22: ("<I", 64 << 20)})
    _refused(tmp_path, data, f"declares {64 << 20} bytes, more than {16 << 20}")


def test_zip_directory_with_many_entries_or_zip64(compiled, tmp_path):
    manifest, image = _good_entries(compiled, tmp_path)
    data = _raw_zip([("manifest.json", manifest), ("image.bin", image)] + [(f"f{j}", b"") for j in range(20)])
    _refused(tmp_path, data, "declares 22 entries")
    data = _raw_zip([("manifest.json", manifest), ("image.bin", image)])
    end = data.rfind(b"PK\x05\x06")
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, 0, 1)
    _refused(tmp_path, data[:end] + locator + data[end:], "ZIP64")


def test_manifest_json_traps(compiled, tmp_path):
    manifest, image = _good_entries(compiled, tmp_path)
    text = manifest.decode()
    dup = text.replace('"arena_size": ', '"arena_size": 1, "arena_size": ', 1)
    _refused(tmp_path, _raw_zip([("manifest.json", dup), ("image.bin", image)]), "key 'arena_size' appears twice")
    deep = "[" * 100000 + "]" * 100000
    _refused(tmp_path, _raw_zip([("manifest.json", deep), ("image.bin", image)]), "manifest: is not valid JSON")
    huge = text.replace('"arena_size": ', '"arena_size": ' + "9" * 5000 + ', "x": ', 1)
    _refused(tmp_path, _raw_zip([("manifest.json", huge), ("image.bin", image)]), "manifest: is not valid JSON")
    for value in ("[]", '"spsmodel"', "3", "null"):
        _refused(tmp_path, _raw_zip([("manifest.json", value), ("image.bin", image)]), "manifest: is ")
    _refused(tmp_path, _raw_zip([("manifest.json", b"\xff\xfe\x00"), ("image.bin", image)]), "not valid JSON")


def test_not_a_regular_file(tmp_path):
    import os
    fifo = tmp_path / "pipe.spsmodel"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="pipe.spsmodel is not a regular file"):
        model_file.load(fifo)                     # must not block opening the fifo
    (tmp_path / "dir.spsmodel").mkdir()
    with pytest.raises(ModelFileError, match="dir.spsmodel is a folder"):
        model_file.load(tmp_path / "dir.spsmodel")


def test_banded_program_round_trip(tmp_path):
    """Bands of the input and output maps (row bands: the first band spans the map; channel bands abut)
    load, and an output moved by one band is refused."""
    for seed in range(6):
        program = banded_program(seed)
        back = model_file.load(model_file.save(program, tmp_path / f"b{seed}.spsmodel"))
        assert int8_output(back) == int8_output(program)
    manifest, image = parts(banded_program(0), tmp_path)
    moved = with_value(manifest, ("outputs", 0, "offset"), manifest["outputs"][0]["offset"] + ALIGN)
    with pytest.raises(ModelFileError, match="manifest.outputs\\[0\\]: .*is not what any layer of the program "
                                             "writes"):
        model_file.load(write(tmp_path / "moved.spsmodel", moved, image))


# The edits the issue found giving tracebacks or silently different results, each refused naming the field.
NAMED = [
    (("inputs", 0, "scale"), float("nan"), "manifest.inputs[0].scale"),
    (("inputs", 0, "scale"), 0, "manifest.inputs[0].scale"),
    (("outputs", 0, "scale"), -0.5, "manifest.outputs[0].scale"),
    (("layers", 1, "out_scale"), "1", "manifest.layers[1].out_scale"),
    (("hw", "rows"), 1, "manifest.hw.rows"),
    (("hw", "cols"), 3, "manifest.hw"),
    (("hw", "act_buf_bytes"), True, "manifest.hw.act_buf_bytes"),
    (("outputs",), [], "manifest.outputs"),
    (("inputs",), {}, "manifest.inputs"),
    (("format_version",), True, "format version True"),
    (("format_version",), 2.0, "format version 2.0"),
    (("arena_size",), -1, "manifest.arena_size"),
    (("arena_size",), 2 ** 40, "manifest.arena_size"),
    (("prog_offset",), 2 ** 31, "manifest.prog_offset"),
    (("stats_offset",), -64, "manifest.stats_offset"),
    (("stats_offset",), 0, "manifest.stats_offset"),
    (("inputs", 0, "offset"), 2 ** 40, "manifest.inputs[0].offset"),
    (("inputs", 0, "offset"), 0, "manifest.inputs[0]"),
    (("inputs", 0, "shape"), [3, 8], "manifest.inputs[0].shape"),
    (("inputs", 0, "shape"), [3, 8, 8.0], "manifest.inputs[0].shape[2]"),
    (("outputs", 0, "name"), "x", "manifest.outputs[0].name"),
    (("host_steps", 0, "axis"), 4, "manifest.host_steps[0].axis"),       # (N, 5, 1, 1): axes -4..3
    (("host_steps", 0, "axis"), "1", "manifest.host_steps[0].axis"),
    (("host_steps", 0, "op"), "argmax", "manifest.host_steps[0].op"),
    (("host_steps", 0, "tensor"), "nope", "manifest.host_steps[0].tensor"),
    (("layers",), [], "manifest.layers"),
    (("layers", 0), [], "manifest.layers[0]"),
    (("metadata",), [], "manifest.metadata"),
    (("metadata", "buffers"), [{"name": "b"}], "manifest.metadata.buffers[0].offset"),
    (("metadata", "onnx_outputs"), {"prob": [1, 5.0]}, "manifest.metadata.onnx_outputs.prob[1]"),
    (("metadata", "onnx_outputs"), {"prob": [1, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1]},
     "manifest.metadata.onnx_outputs.prob"),
    (("blobs", "image.bin", "size"), 1.5, "manifest.blobs.image.bin.size"),
    (("unknown_key",), 1, "manifest.unknown_key"),
    (("preprocess",), [], "manifest.preprocess"),
    (("preprocess", "scale"), 0, "manifest.preprocess.scale"),
    (("preprocess", "mean"), [0.5, 0.5], "manifest.preprocess.mean"),             # 3 channels: 1 or 3 values
    (("preprocess", "mean", 1), float("inf"), "manifest.preprocess.mean[1]"),
    (("preprocess", "std", 0), 0.0, "manifest.preprocess.std[0]"),
    (("preprocess", "std"), [1.0], "manifest.preprocess.std"),                     # as many as the means
    (("preprocess", "extra"), 1, "manifest.preprocess.extra"),
    (("classes",), ["a", "b"], "manifest.classes"),                                # 5 outputs: 5 names
    (("classes", 1), "cat", "manifest.classes"),                                   # twice
    (("classes", 0), 7, "manifest.classes[0]"),
    (("classes", 2), "", "manifest.classes[2]"),
]


@pytest.mark.parametrize("path,value,field", NAMED, ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v, _ in NAMED])
def test_edits_are_refused_naming_the_field(compiled, tmp_path, path, value, field):
    manifest, image = parts(compiled, tmp_path)
    target = write(tmp_path / "t.spsmodel", with_value(manifest, path, value), image, rehash=path[0] != "blobs")
    with pytest.raises(ModelFileError) as e:
        model_file.load(target)
    assert str(e.value).startswith(f"{target}: ") and field in str(e.value) and "re-pack" in str(e.value), str(e.value)


def test_preprocess_and_classes_round_trip_and_apply(compiled, tmp_path):
    path = model_file.save(compiled, tmp_path / "m.spsmodel")
    loaded = model_file.load(path)
    assert loaded.preprocess == compiled.preprocess and loaded.classes == compiled.classes
    raw = np.random.default_rng(0).integers(0, 256, size=(2,) + compiled.inputs[0].shape).astype(np.uint8)
    with Session(loaded, backend="sim") as s:
        assert s.classes == compiled.classes
        got = s.run(raw)                                  # uint8 pixels in: the model preprocesses them
        mean = np.array([0.5, 0.25, 0.125]).reshape(1, 3, 1, 1)
        std = np.array([0.5, 2.0, 1.0]).reshape(1, 3, 1, 1)
        want = s.run((raw / 255 - mean) / std, preprocess=False)
        assert np.array_equal(got, want)
    bare = dataclasses.replace(compiled, preprocess=None, classes=None)
    with zipfile.ZipFile(model_file.save(bare, tmp_path / "b.spsmodel")) as z:
        manifest = json.loads(z.read("manifest.json"))
    assert "preprocess" not in manifest and "classes" not in manifest       # absent unless given
    with Session(bare, backend="sim") as s, pytest.raises(SpsError, match="float32/float64"):
        s.run(raw)                                         # no preprocessing: raw integers are refused as before


def test_symbolic_onnx_dimensions_load(compiled, tmp_path):
    """The compiler records ONNX shapes as declared: a symbolic batch ("batch", "?") is a string."""
    manifest, image = parts(compiled, tmp_path)
    m = with_value(manifest, ("metadata", "onnx_inputs"), {"x": ["batch", 3, 8, 8]})
    m = with_value(m, ("metadata", "onnx_outputs"), {"prob": ["?", 5]})
    program = model_file.load(write(tmp_path / "sym.spsmodel", m, image))
    assert program.metadata["onnx_inputs"]["x"][0] == "batch"
    assert int8_output(program) == int8_output(compiled)
