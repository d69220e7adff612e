"""The .spsmodel container: round trip, and every way a file can be wrong named in the error."""
import json
import os
import warnings
import zipfile

import numpy as np
import pytest
from onnx import helper

from sps_pynq import model_file
from sps_pynq.compiler import compile_model
from sps_pynq.compiler.testing import make_model
from sps_pynq.errors import ModelFileError
from sps_pynq.hw.config import FORMAT_VERSION


@pytest.fixture(scope="module")
def program():
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    m = make_model(nodes, [("x", [1, 3, 8, 8])], ["y"], {"w": rng.standard_normal((8, 3, 3, 3))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_model(m, num_calib=2)


def rewrite(src, dst, manifest=None, blobs=None, drop=()):
    """Copy a .spsmodel, replacing the manifest (a function of the dict) and/or blobs."""
    with zipfile.ZipFile(src) as z:
        items = {n: z.read(n) for n in z.namelist()}
    if manifest is not None:
        items["manifest.json"] = json.dumps(manifest(json.loads(items["manifest.json"]))).encode()
    for name, data in (blobs or {}).items():
        items[name] = data
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in items.items():
            if name not in drop:
                z.writestr(name, data)


def test_round_trip(program, tmp_path):
    path = model_file.save(program, tmp_path / "m.spsmodel")
    back = model_file.load(path)
    assert back.image == program.image and back.arena_size == program.arena_size
    assert back.layers == program.layers and back.inputs == program.inputs and back.outputs == program.outputs
    assert back.hw == program.hw and back.metadata == json.loads(json.dumps(program.metadata))
    assert [d.pack() for d in back.descriptors()] == [d.pack() for d in program.descriptors()]


def test_truncated_file(program, tmp_path):
    path = model_file.save(program, tmp_path / "m.spsmodel")
    data = path.read_bytes()
    cut = tmp_path / "cut.spsmodel"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cut.spsmodel.*(truncated|not a .spsmodel)"):
        model_file.load(cut)


def test_tampered_image(program, tmp_path):
    path = model_file.save(program, tmp_path / "m.spsmodel")
    image = bytearray(program.image)
    image[200] ^= 0xFF
    bad = tmp_path / "bad.spsmodel"
    rewrite(path, bad, blobs={"image.bin": bytes(image)})
    with pytest.raises(ModelFileError, match="bad.spsmodel: blob image.bin fails its sha256 check"):
        model_file.load(bad)


def test_resized_image(program, tmp_path):
    path = model_file.save(program, tmp_path / "m.spsmodel")
    bad = tmp_path / "short.spsmodel"
    rewrite(path, bad, blobs={"image.bin": program.image[:-64]})
    with pytest.raises(ModelFileError, match=f"blob image.bin has {len(program.image) - 64} bytes, manifest says "
                                             f"{len(program.image)}"):
        model_file.load(bad)


def test_version_mismatch(program, tmp_path):
    path = model_file.save(program, tmp_path / "m.spsmodel")
    bad = tmp_path / "old.spsmodel"
    rewrite(path, bad, manifest=lambda m: {**m, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(ModelFileError, match=f"format version {FORMAT_VERSION + 1}, this sps-pynq reads version "
                                             f"{FORMAT_VERSION}"):
        model_file.load(bad)


def test_wrong_format_missing_blob_and_no_manifest(program, tmp_path):
    path = model_file.save(program, tmp_path / "m.spsmodel")
    other = tmp_path / "other.spsmodel"
    rewrite(path, other, manifest=lambda m: {**m, "format": "something"})
    with pytest.raises(ModelFileError, match="format is 'something'"):
        model_file.load(other)
    noblob = tmp_path / "noblob.spsmodel"
    rewrite(path, noblob, drop=("image.bin",))
    with pytest.raises(ModelFileError, match="blob image.bin listed in the manifest is missing"):
        model_file.load(noblob)
    nomani = tmp_path / "nomani.spsmodel"
    rewrite(path, nomani, drop=("manifest.json",))
    with pytest.raises(ModelFileError, match="not a .spsmodel \\(no manifest.json"):
        model_file.load(nomani)
    incomplete = tmp_path / "incomplete.spsmodel"
    rewrite(path, incomplete, manifest=lambda m: {k: v for k, v in m.items() if k != "layers"})
    with pytest.raises(ModelFileError, match="incomplete.spsmodel: manifest.layers: is missing; .*re-pack"):
        model_file.load(incomplete)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="nope.spsmodel: no such .spsmodel file"):
        model_file.load(tmp_path / "nope.spsmodel")


def test_atomic_write_leaves_nothing_on_failure(program, tmp_path):
    import copy
    broken = copy.copy(program)
    broken.metadata = {"not json": object()}        # json.dumps fails while the zip is being written
    target = tmp_path / "m.spsmodel"
    with pytest.raises(TypeError):
        model_file.save(broken, target)
    assert os.listdir(tmp_path) == []
    # an existing file survives a failed overwrite untouched
    model_file.save(program, target)
    before = target.read_bytes()
    with pytest.raises(TypeError):
        model_file.save(broken, target)
    assert sorted(os.listdir(tmp_path)) == ["m.spsmodel"] and target.read_bytes() == before


def test_save_into_missing_folder(program, tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        model_file.save(program, tmp_path / "no" / "m.spsmodel")
