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


# -- output paths ------------------------------------------------------------------------------------------------

def test_special_files_are_refused_untouched(program, tmp_path):
    """A fifo, a socket, a symlink to a device (here: to /dev/null, which is only stat'ed) are refused by
    check_writable and save, and stay what they were; nothing else appears in the folder."""
    import socket
    import stat
    fifo = tmp_path / "fifo.spsmodel"
    os.mkfifo(fifo)
    null = tmp_path / "null.spsmodel"
    os.symlink("/dev/null", null)
    sock_path = tmp_path / "sock.spsmodel"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        for target, kind in ((fifo, "fifo"), (null, "character device"), (sock_path, "socket")):
            for call in (model_file.check_writable, lambda p: model_file.save(program, p)):
                with pytest.raises(ModelFileError, match=f"{target.name} is a {kind}, not a regular file"):
                    call(target)
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and stat.S_ISSOCK(os.lstat(sock_path).st_mode)
        assert os.path.islink(null) and os.readlink(null) == "/dev/null"
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
        assert sorted(os.listdir(tmp_path)) == ["fifo.spsmodel", "null.spsmodel", "sock.spsmodel"]
    finally:
        sock.close()


def test_symlink_to_a_file_is_replaced_not_followed(program, tmp_path):
    other = tmp_path / "other.bin"
    other.write_bytes(b"keep me")
    link = tmp_path / "m.spsmodel"
    os.symlink(other, link)
    model_file.save(program, link)
    assert not os.path.islink(link) and model_file.load(link).image == program.image
    assert other.read_bytes() == b"keep me"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_file_mode_follows_the_umask(program, tmp_path, umask):
    old = os.umask(umask)
    try:
        path = model_file.save(program, tmp_path / "m.spsmodel")
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
        model_file.save(program, path)                     # replacing an existing file: the same
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    finally:
        os.umask(old)
    assert os.listdir(tmp_path) == ["m.spsmodel"]


def test_unwritable_folder_is_one_clear_error(program, tmp_path, monkeypatch):
    """A folder that takes no new files (like /proc, or read-only): one ModelFileError before any compile."""
    folder = tmp_path / "ro"
    folder.mkdir()
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(folder)) and (flags & (os.O_CREAT | getattr(os, "O_TMPFILE", 0))):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", refusing_open)
    for call in (model_file.check_writable, lambda p: model_file.save(program, p)):
        with pytest.raises(ModelFileError, match=r"m.spsmodel: cannot create files in .*ro \(Permission denied\); "
                                                 r"choose another output path"):
            call(folder / "m.spsmodel")
    assert os.listdir(folder) == []


WRITER = r"""
import os, sys, time, zipfile
sys.path.insert(0, sys.argv[1])
if sys.argv[3] == "named":
    del os.O_TMPFILE                         # as on a system or filesystem without O_TMPFILE
from layer_factory import random_packed_program
import numpy as np
from sps_pynq import model_file
from sps_pynq.hw.config import CONFIGS
program = random_packed_program(np.random.default_rng(1), CONFIGS["zcu104"], n_layers=3)
real = zipfile.ZipFile.writestr
def slow(self, name, data, *a, **k):
    real(self, name, data, *a, **k)
    print("writing", flush=True)
    time.sleep(60)
zipfile.ZipFile.writestr = slow
model_file.save(program, sys.argv[2])
"""


@pytest.mark.parametrize("mode", ["tmpfile", "named"])
def test_killed_save_leaves_nothing_visible_or_the_next_save_cleans_up(program, tmp_path, mode):
    import signal
    import subprocess
    import sys
    from pathlib import Path
    if mode == "tmpfile" and not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE here")
    out = tmp_path / "m.spsmodel"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(Path(__file__).parent), str(out), mode],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        left = os.listdir(tmp_path)
        assert left == [] if mode == "tmpfile" else (len(left) == 1 and left[0].startswith(".m.spsmodel."))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
    left = os.listdir(tmp_path)
    if mode == "tmpfile":
        assert left == []                            # the unnamed file died with the process
    else:
        assert len(left) == 1 and left[0].endswith(".tmp")
        model_file.save(program, out)                # the next save of the same output removes it
        assert os.listdir(tmp_path) == ["m.spsmodel"]


def test_a_temporary_file_in_use_is_left_alone(program, tmp_path):
    """Only leftovers nobody holds are removed: a writer's temporary file is locked while it writes."""
    import fcntl
    busy = tmp_path / ".m.spsmodel.0123456789abcdef.tmp"
    stale = tmp_path / ".m.spsmodel.abc123xy.tmp"        # the old tempfile.mkstemp names
    other = tmp_path / ".n.spsmodel.0123456789abcdef.tmp"    # another output's: not ours to remove
    for p in (busy, stale, other):
        p.write_bytes(b"partial")
    with open(busy, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        model_file.save(program, tmp_path / "m.spsmodel")
        assert sorted(os.listdir(tmp_path)) == sorted([busy.name, other.name, "m.spsmodel"])
    model_file.save(program, tmp_path / "m.spsmodel")
    assert sorted(os.listdir(tmp_path)) == sorted([other.name, "m.spsmodel"])


def test_closed_form_row_groups_equal_the_layout():
    """model_file.num_row_groups (validation, inspect) counts what layout.row_groups lists, without the list."""
    from sps_pynq.hw import layout
    for out_c in range(1, 70):
        for patterns in range(1, 17):
            for rows in (1, 2, 4, 16):
                assert model_file.num_row_groups(out_c, patterns, rows) == \
                    len(layout.row_groups(out_c, patterns, rows)), (out_c, patterns, rows)
    assert model_file.num_row_groups(1 << 31, 8, 16) == (1 << 31) // 16     # 8 classes of 2^28 filters
