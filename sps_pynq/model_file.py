"""The `.spsmodel` container: a zip of a versioned JSON manifest and binary blobs, each with its sha256.

    manifest.json   {"format": "spsmodel", "format_version": N, "hw": {...}, "blobs": {name: {size, sha256}},
                     "arena_size", "prog_offset", "stats_offset", "layers", "inputs", "outputs", "host_steps",
                     "metadata"}
    image.bin       the initial arena contents (descriptors, weights, parameters)

Writing is atomic (an unnamed O_TMPFILE linked in when complete, else a locked temporary file renamed at the
end), so an error or a kill never leaves a half-written model; only regular files are ever replaced. Loading is
ONE validation step before anything is used (docs/spsmodel.md, "Validation"): the zip's directory and entries
before anything is decompressed, the manifest against the schema written out below, the blob's size and sha256,
then every descriptor decoded once and bounded (its shape against the hardware, the regions it reads and writes
against the arena, with closed-form sizes: no loop runs over a count read from the file before that count is
bounded). Every failure is a ModelFileError naming the file and the field. Standard library only: this runs on
the board.
"""
from __future__ import annotations

import bisect
import dataclasses
import errno
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import stat
import struct
import zipfile
import zlib
from dataclasses import fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .errors import ModelFileError
from .hw.config import CONFIGS, FORMAT_VERSION, HwConfig
from .hw.descriptor import ALIGN, DESC_BYTES, MAX_PATTERNS, PARAM_RECORD_BYTES, Descriptor, Op
from .hw import bands, layout, residency
from .hw.layout import GROUP_ALIGN
from .program import STATS_RECORD_BYTES, LayerInfo, Program, TensorInfo

FORMAT_NAME = "spsmodel"
MANIFEST = "manifest.json"
IMAGE = "image.bin"

# Limits of what load() reads (docs/spsmodel.md, "Validation").
MAX_MANIFEST_BYTES = 16 << 20       # the manifest of resnet20 is 27 KB
MAX_IMAGE_BYTES = 1 << 30           # descriptors + weights + parameters
MAX_ARENA_BYTES = 1 << 32           # every offset in a descriptor is a 32-bit field
MAX_LAYERS = 1 << 16                # descriptors in one program
MAX_TENSORS = 64                    # network inputs, outputs, host steps
MAX_EXPANSION = 100                 # an entry above 1 MiB may not inflate more than this (packed models: <= 21x)
_EXPANSION_FREE = 1 << 20
_MAX_FILE_BYTES = MAX_IMAGE_BYTES + MAX_MANIFEST_BYTES + (1 << 20)
_MAX_ZIP_ENTRIES = 8
_MAX_ZIP_DIRECTORY = 64 << 10
_ZIP_FLAGS_OK = 0x0002 | 0x0004 | 0x0008 | 0x0800   # deflate level hints, data descriptor, UTF-8 names
_DIM_MAX = (1 << 31) - 1
_HOST_OPS = ("softmax",)
_OPS = {int(o) for o in Op}
_REPACK = "the file is damaged or was edited: re-pack the model"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- writing ---------------------------------------------------------------------------------------------------

def save(program: Program, path: Union[str, os.PathLike]) -> Path:
    """Write `program` to `path` atomically: the new file appears whole or not at all (see _NewFile)."""
    path = Path(path)
    blobs = {IMAGE: program.image}
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "hw": program.hw.to_dict(),
        "blobs": {name: {"size": len(data), "sha256": _sha256(data)} for name, data in blobs.items()},
        "arena_size": program.arena_size,
        "prog_offset": program.prog_offset,
        "stats_offset": program.stats_offset,
        "layers": [layer.to_dict() for layer in program.layers],
        "inputs": [t.to_dict() for t in program.inputs],
        "outputs": [t.to_dict() for t in program.outputs],
        "host_steps": program.host_steps,
        "metadata": program.metadata,
    }
    if program.preprocess is not None:        # absent unless given, so other models' manifests stay as they were
        manifest["preprocess"] = program.preprocess
    if program.classes is not None:
        manifest["classes"] = program.classes
    check_writable(path)
    try:
        out = _NewFile(path)
    except OSError as e:
        raise ModelFileError(f"{path}: cannot write ({e.strerror or e}); choose another output path") from e
    try:
        with os.fdopen(os.dup(out.fd), "wb") as f:
            with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
                z.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
                for name, data in blobs.items():
                    z.writestr(name, data)
            f.flush()
            os.fsync(f.fileno())
        _refuse_special(path)               # again, just before it is replaced
        out.publish()
    except BaseException as e:
        out.abandon()
        if isinstance(e, OSError):
            raise ModelFileError(f"{path}: cannot write ({e.strerror or e}); choose another output path") from e
        raise
    return path


def check_writable(path: Union[str, os.PathLike]) -> None:
    """ModelFileError unless save() can write `path`: its folder exists and takes new files (tried), and `path`
    does not exist or is a regular file (a folder, device, fifo or socket there is refused untouched). Called
    before a long compile, so a typo in -o costs nothing."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ModelFileError(f"{path}: folder {folder} does not exist; create it or choose another output path")
    _refuse_special(path)
    try:
        _NewFile(path).abandon()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot create files in {folder} ({e.strerror or e}); choose another "
                             f"output path") from e


_KINDS = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "fifo"),
          (stat.S_ISSOCK, "socket"))


def _refuse_special(path: Path) -> None:
    """ModelFileError when `path` (a symlink followed) exists and is not a regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return                              # nothing there (or a dangling symlink, which is replaced)
    except OSError as e:
        raise ModelFileError(f"{path}: cannot use as the output ({e.strerror or e}); choose another output "
                             f"path") from e
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(f"{path} is a folder; give a file name, e.g. {path / 'model.spsmodel'}")
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "special file")
        raise ModelFileError(f"{path} is a {kind}, not a regular file; a model is written only as a regular file "
                             f"(nothing was written there): choose another output path")


def _stale_pattern(name: str):
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{6,32}}\.tmp")


class _NewFile:
    """A new file that takes the place of `path` on publish(), with the umask's permissions.

    On Linux it is an unnamed O_TMPFILE in the target folder, linked in by name (linkat) only when complete, so
    a killed writer leaves nothing visible. Elsewhere (or where the filesystem has no O_TMPFILE) it is a named
    `.NAME.<random>.tmp` beside the target, locked (flock) while written; a kill leaves it behind, and the next
    save of the same output removes such files whose lock nobody holds."""

    def __init__(self, path: Path):
        self.path = path
        self.folder = path.parent if str(path.parent) else Path(".")
        self.tmp: Optional[Path] = None          # the visible temporary name, if there is one
        self.fd = -1
        _remove_stale(self.folder, path.name)
        if hasattr(os, "O_TMPFILE"):
            try:
                self.fd = os.open(self.folder, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)
            except OSError as e:
                if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
        if self.fd < 0:
            self.fd, self.tmp = self._named()

    def _named(self) -> Tuple[int, Path]:
        for _ in range(100):
            tmp = self.folder / f".{self.path.name}.{secrets.token_hex(8)}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0),
                             0o666)
            except FileExistsError:
                continue
            _lock(fd)
            return fd, tmp
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(self.folder))

    def publish(self) -> None:
        if self.tmp is None:
            try:
                if self._link(self.path.name):
                    self.close()
                    return
            except OSError:
                pass                        # linkat cannot name it (no /proc): _link_to_temporary copies
            self._link_to_temporary()
        os.replace(self.tmp, self.path)
        self.tmp = None
        self.close()

    def _link(self, name: str) -> bool:
        """Give the unnamed file `name` in the folder (fails, False, if that name exists)."""
        dir_fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
        try:
            # dst_dir_fd makes os.link call linkat(..., AT_SYMLINK_FOLLOW), which links the file the
            # /proc/self/fd symlink names (plain link() would try to link the symlink itself).
            os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
            return True
        except FileExistsError:
            return False
        finally:
            os.close(dir_fd)

    def _link_to_temporary(self) -> None:
        """Name the unnamed file (a locked temporary name), to be renamed over the target; where linkat cannot
        name it (no /proc), copy it to a named temporary file."""
        _lock(self.fd)
        for _ in range(100):
            tmp = self.folder / f".{self.path.name}.{secrets.token_hex(8)}.tmp"
            try:
                if self._link(tmp.name):
                    self.tmp = tmp
                    return
            except OSError:
                break
        fd, tmp = self._named()
        with os.fdopen(os.dup(self.fd), "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
            src.seek(0)
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.close(self.fd)
        self.fd, self.tmp = fd, tmp

    def abandon(self) -> None:
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _lock(fd: int) -> None:
    try:
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (ImportError, OSError):
        pass                # no flock here: a leftover temporary file is then only ever removed by hand


def _remove_stale(folder: Path, name: str) -> None:
    """Remove `.NAME.<random>.tmp` files a killed save of this output left in `folder`: regular files whose
    lock (held by a writer while it writes) nobody holds."""
    try:
        import fcntl
        entries = list(os.scandir(folder))
    except (ImportError, OSError):
        return
    pattern = _stale_pattern(name)
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0) |
                         getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(entry.path)
        except OSError:
            pass                            # a save in progress holds it, or it went away
        finally:
            os.close(fd)


# -- reading: the container ------------------------------------------------------------------------------------

class _Bad(Exception):
    """One validation failure: `where` names the field (e.g. manifest.inputs[0].scale, layer 3 (conv2): out_c)."""

    def __init__(self, where: str, what: str, advice: str = _REPACK):
        super().__init__(f"{where}: {what}")
        self.where, self.what, self.advice = where, what, advice


def load(path: Union[str, os.PathLike]) -> Program:
    """The Program stored at `path`, after every check in docs/spsmodel.md ("Validation"); ModelFileError else."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such .spsmodel file") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read ({e.strerror or e})") from e
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(f"{path} is a folder, not a .spsmodel file")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"{path} is not a regular file (a device, fifo or socket); give a .spsmodel file")
    if st.st_size > _MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: {st.st_size} bytes, more than any .spsmodel this sps-pynq reads "
                             f"({_MAX_FILE_BYTES} bytes: image up to {MAX_IMAGE_BYTES}); re-pack the model")
    try:
        with open(path, "rb") as f:
            _check_end_record(f, st.st_size)
            with zipfile.ZipFile(f) as z:
                members = _members(z)
                if MANIFEST not in members:
                    raise ModelFileError(f"{path}: not a .spsmodel (no {MANIFEST} inside); pack one with "
                                         f"`sps-pynq pack`")
                manifest = _parse_manifest(_read_member(z, members[MANIFEST], MAX_MANIFEST_BYTES))
                check_manifest(manifest)
                blob = manifest["blobs"][IMAGE]
                info = members.get(IMAGE)
                if info is None:
                    raise ModelFileError(f"{path}: blob {IMAGE} listed in the manifest is missing; re-pack the model")
                if info.file_size != blob["size"]:
                    raise ModelFileError(f"{path}: blob {IMAGE} has {info.file_size} bytes, manifest says "
                                         f"{blob['size']}; the file is truncated or tampered, re-pack the model")
                image = _read_member(z, info, blob["size"])
    except _Bad as e:
        raise ModelFileError(f"{path}: {e.where}: {e.what}; {e.advice}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:    # zlib.error: a corrupted deflate stream
        raise ModelFileError(f"{path}: not a .spsmodel or truncated ({e}); re-pack the model") from e
    except (OSError, zipfile.LargeZipFile) as e:
        raise ModelFileError(f"{path}: cannot read ({e}); re-pack the model") from e
    if _sha256(image) != blob["sha256"]:
        raise ModelFileError(f"{path}: blob {IMAGE} fails its sha256 check; the file is corrupted or tampered, "
                             f"re-pack the model")
    program = Program(
        hw=HwConfig(**manifest["hw"]),
        image=image,
        arena_size=manifest["arena_size"],
        prog_offset=manifest["prog_offset"],
        layers=[LayerInfo(d["name"], list(d.get("sources", [])), float(d["out_scale"])) for d in manifest["layers"]],
        inputs=[_tensor(d) for d in manifest["inputs"]],
        outputs=[_tensor(d) for d in manifest["outputs"]],
        stats_offset=manifest["stats_offset"],
        host_steps=[dict(s) for s in manifest.get("host_steps", [])],
        metadata=dict(manifest.get("metadata", {})),
        preprocess=_preprocess(manifest.get("preprocess")),
        classes=list(manifest["classes"]) if "classes" in manifest else None,
    )
    check_program(program, str(path))
    return program


def _preprocess(d: Optional[dict]) -> Optional[dict]:
    if d is None:
        return None
    return {"scale": float(d["scale"]), "mean": [float(v) for v in d["mean"]], "std": [float(v) for v in d["std"]]}


def _tensor(d: dict) -> TensorInfo:
    return TensorInfo(d["name"], tuple(d["shape"]), float(d["scale"]), d["offset"])


def _check_end_record(f, size: int) -> None:
    """Refuse, before zipfile reads the central directory, a zip that declares more entries or a larger
    directory than a .spsmodel has, or ZIP64 records (never written here): zipfile would build one object per
    declared entry. Finds the end record where zipfile does (the last 22 bytes, else the last 64 KiB)."""
    tail_len = min(size, 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = len(tail) - 22 if tail[-22:-18] == b"PK\x05\x06" else tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return                                  # no end record: zipfile says "not a zip file"
    entries, directory = struct.unpack_from("<HI", tail, at + 10)
    if at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        raise _Bad("zip directory", "has ZIP64 records, which a .spsmodel never has")
    if entries > _MAX_ZIP_ENTRIES or directory > _MAX_ZIP_DIRECTORY:
        raise _Bad("zip directory", f"declares {entries} entries in {directory} bytes; a .spsmodel has "
                                    f"{MANIFEST} and {IMAGE}")
    f.seek(0)


def _members(z: zipfile.ZipFile) -> Dict[str, zipfile.ZipInfo]:
    """The entries by name, each checked before anything is decompressed: no duplicates, nothing but the
    manifest and the image, stored or deflated, not encrypted."""
    found: Dict[str, zipfile.ZipInfo] = {}
    for info in z.infolist():
        where = f"zip entry {info.filename!r}"
        if info.filename in found:
            raise _Bad(where, "appears twice (which copy counts would depend on the reader)")
        if info.filename not in (MANIFEST, IMAGE):
            raise _Bad(where, f"is not part of a .spsmodel (only {MANIFEST} and {IMAGE})")
        if info.flag_bits & 0x1:
            raise _Bad(where, "is encrypted")
        if info.flag_bits & ~_ZIP_FLAGS_OK:
            raise _Bad(where, f"uses zip features a .spsmodel never has (flags 0x{info.flag_bits:04x})")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Bad(where, f"uses compression method {info.compress_type}; a .spsmodel is stored or deflated")
        found[info.filename] = info
    return found


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The entry's bytes, its declared size bounded first; read in pieces, so a header that lies about the
    size cannot make this allocate more than the data that is really there."""
    where = f"zip entry {info.filename!r}"
    if info.file_size > limit:
        raise _Bad(where, f"declares {info.file_size} bytes, more than {limit}")
    if info.file_size > _EXPANSION_FREE and info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
        raise _Bad(where, f"declares {info.file_size} bytes from {info.compress_size} compressed "
                          f"(more than {MAX_EXPANSION}x)")
    chunks, n = [], 0
    with z.open(info) as f:
        while n < info.file_size:
            chunk = f.read(min(1 << 20, info.file_size - n))
            if not chunk:
                break
            chunks.append(chunk)
            n += len(chunk)
        if n != info.file_size or f.read(1):      # the extra read reaches the end: zipfile checks the CRC there
            raise _Bad(where, f"holds {'fewer' if n < info.file_size else 'more'} bytes than the "
                              f"{info.file_size} it declares")
    return b"".join(chunks)


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _parse_manifest(raw: bytes):
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as e:
        raise _Bad("manifest", f"key {e.args[0]!r} appears twice in one object") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:   # JSONDecodeError is a ValueError
        raise _Bad("manifest", f"is not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None


# -- reading: the manifest's schema ----------------------------------------------------------------------------

def _show(v) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(v), type(v).__name__)
    text = repr(v)
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({kind})"


def _int(v, where: str, lo: int = 0, hi: int = _DIM_MAX) -> int:
    if type(v) is not int:                 # bool is a subclass of int: refused; 2.0 is a float: refused
        raise _Bad(where, f"is {_show(v)}, expected an integer")
    if not lo <= v <= hi:
        raise _Bad(where, f"is {v}, expected {lo}..{hi}")
    return v


def _scale(v, where: str) -> float:
    if type(v) not in (int, float):
        raise _Bad(where, f"is {_show(v)}, expected a number")
    if not (math.isfinite(v) and v > 0):
        raise _Bad(where, f"is {v!r}, expected a finite number > 0")
    return float(v)


def _str(v, where: str, max_len: int = 4096) -> str:
    if type(v) is not str or not 0 < len(v) <= max_len:
        raise _Bad(where, f"is {_show(v)}, expected a non-empty string of at most {max_len} characters")
    return v


def _list(v, where: str, lo: int = 0, hi: int = MAX_LAYERS) -> list:
    if type(v) is not list:
        raise _Bad(where, f"is {_show(v)}, expected a list")
    if not lo <= len(v) <= hi:
        raise _Bad(where, f"has {len(v)} entries, expected {lo}..{hi}")
    return v


def _obj(v, where: str, required: Sequence[str], optional: Sequence[str] = (), strict: bool = True) -> dict:
    if type(v) is not dict:
        raise _Bad(where, f"is {_show(v)}, expected an object")
    for k in required:
        if k not in v:
            raise _Bad(f"{where}.{k}", "is missing")
    if strict:
        for k in v:
            if k not in required and k not in optional:
                raise _Bad(f"{where}.{k}", f"is not a field of {where} (known: "
                                           f"{', '.join(list(required) + list(optional))})")
    return v


_TOP = ("format", "format_version", "hw", "blobs", "arena_size", "prog_offset", "stats_offset", "layers",
        "inputs", "outputs")
_HW_FIELDS = tuple(f.name for f in fields(HwConfig))


def check_manifest(m) -> None:
    """Raise _Bad naming the first field of manifest `m` that breaks the schema (docs/spsmodel.md). Checks each
    value on its own and against the sizes the manifest itself declares; the descriptors are check_program's."""
    if type(m) is not dict:
        raise _Bad("manifest", f"is {_show(m)}, expected an object")
    if m.get("format") != FORMAT_NAME:
        raise _Bad("manifest", f"format is {m.get('format')!r}, expected {FORMAT_NAME!r}: not a .spsmodel",
                   "pack one with `sps-pynq pack`")
    version = m.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        shown = version if type(version) is int else _show(version)
        raise _Bad("manifest", f"format version {shown}, this sps-pynq reads version {FORMAT_VERSION}",
                   "re-pack the model with this version")
    _obj(m, "manifest", _TOP, ("host_steps", "metadata", "preprocess", "classes"))

    hw = _obj(m["hw"], "manifest.hw", _HW_FIELDS)
    _str(hw["name"], "manifest.hw.name", 64)
    for k in _HW_FIELDS[1:]:
        _int(hw[k], f"manifest.hw.{k}", 0, 1 << 32)
    if hw["format_version"] != FORMAT_VERSION:
        raise _Bad("manifest.hw.format_version", f"is {hw['format_version']}, expected {FORMAT_VERSION}")
    try:
        cfg = HwConfig(**hw)           # the RTL's elaboration rules (rows, cols, buffers, widths)
    except ValueError as e:
        raise _Bad("manifest.hw", str(e)) from None
    named = CONFIGS.get(cfg.name)
    if named is not None and named != cfg:        # e.g. "zcu104" with rows=1: not what the zcu104 overlay is
        k = next(f for f in _HW_FIELDS if getattr(cfg, f) != getattr(named, f))
        raise _Bad(f"manifest.hw.{k}", f"is {getattr(cfg, k)}, but the {cfg.name} configuration has "
                                       f"{getattr(named, k)}")

    blob = _obj(_obj(m["blobs"], "manifest.blobs", (IMAGE,))[IMAGE], f"manifest.blobs.{IMAGE}", ("size", "sha256"))
    size = _int(blob["size"], f"manifest.blobs.{IMAGE}.size", 0, MAX_IMAGE_BYTES)
    digest = blob["sha256"]
    if type(digest) is not str or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise _Bad(f"manifest.blobs.{IMAGE}.sha256", f"is {_show(digest)}, expected 64 lowercase hex digits")

    arena = _int(m["arena_size"], "manifest.arena_size", 1, MAX_ARENA_BYTES)
    if size > arena:
        raise _Bad("manifest.arena_size", f"is {arena}, smaller than the image of {size} bytes")
    prog = _int(m["prog_offset"], "manifest.prog_offset", 0, MAX_ARENA_BYTES)
    if prog % ALIGN:
        raise _Bad("manifest.prog_offset", f"is {prog}, not a multiple of {ALIGN}")
    layers = _list(m["layers"], "manifest.layers", 1, MAX_LAYERS)
    if prog + len(layers) * DESC_BYTES > size:
        raise _Bad("manifest.prog_offset" if prog >= size else "manifest.layers",
                   f"{len(layers)} descriptors at prog_offset {prog} end at byte {prog + len(layers) * DESC_BYTES}, "
                   f"past the image of {size} bytes")
    for j, d in enumerate(layers):
        w = f"manifest.layers[{j}]"
        _obj(d, w, ("name", "out_scale"), ("sources",))
        _str(d["name"], f"{w}.name")
        _scale(d["out_scale"], f"{w}.out_scale")
        for k, s in enumerate(_list(d.get("sources", []), f"{w}.sources", 0, MAX_LAYERS)):
            _str(s, f"{w}.sources[{k}]")
    stats_at = _int(m["stats_offset"], "manifest.stats_offset", 0, MAX_ARENA_BYTES)
    if stats_at % ALIGN or stats_at + len(layers) * STATS_RECORD_BYTES > arena:
        raise _Bad("manifest.stats_offset", f"is {stats_at}: the {len(layers)} statistics records of "
                                            f"{STATS_RECORD_BYTES} bytes must start on a multiple of {ALIGN} "
                                            f"inside the arena of {arena} bytes")

    names = set()
    for kind in ("inputs", "outputs"):
        for j, t in enumerate(_list(m[kind], f"manifest.{kind}", 1, MAX_TENSORS)):
            w = f"manifest.{kind}[{j}]"
            _obj(t, w, ("name", "shape", "scale", "offset"))
            name = _str(t["name"], f"{w}.name")
            if name in names:
                raise _Bad(f"{w}.name", f"{name!r} names two tensors")
            names.add(name)
            shape = _list(t["shape"], f"{w}.shape", 3, 3)
            nbytes = 1
            for k, s in enumerate(shape):
                nbytes *= _int(s, f"{w}.shape[{k}]", 1)
            _scale(t["scale"], f"{w}.scale")
            at = _int(t["offset"], f"{w}.offset", 0, MAX_ARENA_BYTES)
            if at + nbytes > arena:
                raise _Bad(w, f"{shape} ({nbytes} bytes) at offset {at} ends past the arena of {arena} bytes")

    meta = m.get("metadata", {})
    _check_metadata(meta)
    if "preprocess" in m:
        _check_preprocess(m["preprocess"], m["inputs"][0])
    if "classes" in m:
        _check_classes(m["classes"], m["outputs"][0])
    outputs = {t["name"]: t for t in m["outputs"]}
    for j, step in enumerate(_list(m.get("host_steps", []), "manifest.host_steps", 0, MAX_TENSORS)):
        w = f"manifest.host_steps[{j}]"
        _obj(step, w, ("op",), ("tensor", "axis", "source"))
        if step["op"] not in _HOST_OPS:
            raise _Bad(f"{w}.op", f"is {_show(step['op'])}; this sps-pynq runs {', '.join(_HOST_OPS)} on the host")
        if "tensor" in step:
            if type(step["tensor"]) is not str or step["tensor"] not in outputs:
                raise _Bad(f"{w}.tensor", f"is {_show(step['tensor'])}, not an output ({', '.join(outputs)})")
            t = outputs[step["tensor"]]
        elif len(outputs) == 1:
            t = next(iter(outputs.values()))
        else:
            raise _Bad(f"{w}.tensor", f"is missing, and the model has {len(outputs)} outputs")
        if "source" in step:
            _str(step["source"], f"{w}.source")
        rank = _output_rank(meta, t)
        _int(step.get("axis", -1), f"{w}.axis", -rank, rank - 1)


MAX_CLASSES = 1 << 16


def _finite(v, where: str) -> float:
    if type(v) not in (int, float) or not math.isfinite(v):
        raise _Bad(where, f"is {_show(v)}, expected a finite number")
    return float(v)


def _check_preprocess(p, first_input: dict) -> None:
    """{"scale": s > 0, "mean": [m...], "std": [s > 0 ...]}: one value, or one per channel of the first input."""
    w = "manifest.preprocess"
    _obj(p, w, ("scale", "mean", "std"))
    _scale(p["scale"], f"{w}.scale")
    channels = first_input["shape"][0]
    for key in ("mean", "std"):
        values = _list(p[key], f"{w}.{key}", 1, MAX_TENSORS * 1024)
        if len(values) not in (1, channels):
            raise _Bad(f"{w}.{key}", f"has {len(values)} values; expected 1 or one per channel of input "
                                     f"{first_input['name']!r} ({channels})")
        for k, v in enumerate(values):
            (_scale if key == "std" else _finite)(v, f"{w}.{key}[{k}]")
    if len(p["mean"]) != len(p["std"]):
        raise _Bad(f"{w}.std", f"has {len(p['std'])} values, mean has {len(p['mean'])}")


def _check_classes(c, first_output: dict) -> None:
    """Names of the first output's elements (a classifier's [classes, 1, 1] logits), one each, unique."""
    w = "manifest.classes"
    n = math.prod(first_output["shape"])
    names = _list(c, w, 1, MAX_CLASSES)
    if len(names) != n:
        raise _Bad(w, f"has {len(names)} names; output {first_output['name']!r} {list(first_output['shape'])} has "
                      f"{n} elements")
    for k, name in enumerate(names):
        _str(name, f"{w}[{k}]", 256)
    if len(set(names)) != len(names):
        raise _Bad(w, "names a class twice")


def _output_rank(meta: dict, t: dict) -> int:
    """Dimensions of the array a host step sees for output `t` (batch included): the ONNX shape when the
    metadata holds one of the tensor's size (as Session does), else (N, C, H, W)."""
    shape = (meta.get("onnx_outputs") or {}).get(t["name"])
    if shape and len(shape) >= 2 and all(type(s) is int for s in shape[1:]) \
            and math.prod(shape[1:]) == math.prod(t["shape"]):
        return len(shape)
    return 1 + len(t["shape"])


def _check_metadata(meta) -> None:
    """The metadata is free-form, except the entries the runtime and `inspect` read."""
    _obj(meta, "manifest.metadata", (), strict=False)
    if "source" in meta and type(meta["source"]) is not str:
        raise _Bad("manifest.metadata.source", f"is {_show(meta['source'])}, expected a string")
    for kind in ("onnx_inputs", "onnx_outputs"):
        shapes = _obj(meta.get(kind) or {}, f"manifest.metadata.{kind}", (), strict=False)
        for name, shape in shapes.items():
            w = f"manifest.metadata.{kind}.{name}"
            for k, s in enumerate(_list(shape, w, 0, 8)):
                if type(s) is str and k == 0:     # a symbolic batch as the ONNX model declares it, e.g. "batch"
                    _str(s, f"{w}[{k}]", 256)       # (Session reads the other dimensions as integers)
                else:
                    _int(s, f"{w}[{k}]", 0)
            if math.prod(s for s in shape[1:] if type(s) is int) >= 1 << 62:
                raise _Bad(w, f"{shape} describes more than 2^62 elements")
    if meta.get("calibration") is not None:
        _obj(meta["calibration"], "manifest.metadata.calibration", (), strict=False)
    for j, b in enumerate(_list(meta.get("buffers") or [], "manifest.metadata.buffers", 0, MAX_LAYERS)):
        w = f"manifest.metadata.buffers[{j}]"
        _obj(b, w, ("name", "offset", "bytes", "tensors"), strict=False)
        _str(b["name"], f"{w}.name")
        _int(b["offset"], f"{w}.offset", 0, MAX_ARENA_BYTES)
        _int(b["bytes"], f"{w}.bytes", 0, MAX_ARENA_BYTES)
        for k, s in enumerate(_list(b["tensors"], f"{w}.tensors", 0, MAX_LAYERS)):
            _str(s, f"{w}.tensors[{k}]")


# -- reading: the program ----------------------------------------------------------------------------------------

def num_row_groups(out_c: int, patterns: int, rows: int, slot_shift: "int | None" = None) -> int:
    """len(layout.row_groups(out_c, patterns, rows, slot_shift)) in closed form: a loop over at most `patterns`
    classes, never over the filters (golden.c's num_groups; shared classes: the ceil(min(P, O) / S) groups with a
    filter, golden.c's layer_groups)."""
    if slot_shift is not None:
        return -(-min(patterns, out_c) // layout.share_slots(patterns, rows, slot_shift))
    groups = 0
    for r in range(min(patterns, out_c)):
        members = (out_c - r + patterns - 1) // patterns
        groups += (members + rows - 1) // rows
    return groups


def check_program(program: Program, where: str = "program") -> None:
    """ModelFileError naming the layer and field unless every descriptor of `program` is one the core runs
    (golden.c's check_layer: shapes, P/K, buffers of program.hw, kept maps chained on the layer before as
    hw/residency.py says) with every region inside the arena, weights and parameters inside the image, no write
    over descriptors, weights, parameters or statistics, and the manifest's tensors what the layers read and
    write."""
    try:
        _check_program(program)
    except _Bad as e:
        raise ModelFileError(f"{where}: {e.where}: {e.what}; {_REPACK}") from None


def _check_program(p: Program) -> None:
    image_len, arena = len(p.image), p.arena_size
    descs: List[Descriptor] = []
    prev: Optional[Descriptor] = None        # the layer run just before: a resident layer reads what it kept
    for j, info in enumerate(p.layers):
        at = p.prog_offset + j * DESC_BYTES
        w = f"layer {j} ({info.name})"
        op = p.image[at] & 0xF
        if op not in _OPS:
            raise _Bad(w, f"op is {op}, not an operation of the core (CONV, MAXPOOL, AVGPOOL, ADD)")
        d = Descriptor.unpack(p.image[at:at + DESC_BYTES])
        for f in ("in_c", "in_h", "in_w", "out_c", "out_h", "out_w"):
            if getattr(d, f) == 0:
                raise _Bad(w, f"{f} is 0")
        # then kept maps, as golden.c and the core check them (closed forms only: no loop over in_c)
        why = residency.problem(prev, d, p.hw)
        if why:
            raise _Bad(w, f"{why} (kept maps, hw/residency.py)")
        _check_descriptor(d, p.hw, w, arena, image_len)
        descs.append(d)
        prev = d
    _check_no_overwrite(p, descs)
    _check_tensors_match_layers(p, descs)


def _check_descriptor(d: Descriptor, hw: HwConfig, w: str, arena: int, image_len: int) -> None:
    def region(field: str, what: str, offset: int, nbytes: int, aligned: bool, limit: int = arena,
               inside: str = "the arena") -> None:
        if aligned and offset % ALIGN:
            raise _Bad(w, f"{field}: {what} at offset {offset} is not on a multiple of {ALIGN}")
        if offset + nbytes > limit:
            raise _Bad(w, f"{field}: {what} [{offset}, {offset + nbytes}) lies outside {inside} of {limit} bytes")

    if d.op == Op.ADD:
        if (d.in_c, d.in_h, d.in_w) != (d.out_c, d.out_h, d.out_w):
            raise _Bad(w, f"out_c/out_h/out_w: ADD output {d.out_c}x{d.out_h}x{d.out_w} differs from its input "
                          f"{d.in_c}x{d.in_h}x{d.in_w}")
        _check_requant(d, w, with_mult2=True)
        if d.in_map_h or d.out_map_h:
            raise _Bad(w, f"in_map_h/out_map_h: {d.in_map_h}/{d.out_map_h}, must be 0 (ADD reads and writes whole "
                          f"maps)")
        n = d.in_c * d.in_h * d.in_w
        region("in_offset", "input 1", d.in_offset, n, True)
        region("in2_offset", "input 2", d.in2_offset, n, True)
        region("out_offset", "output", d.out_offset, n, True)
        return
    for f in ("kh", "kw", "stride_h", "stride_w"):
        if getattr(d, f) == 0:
            raise _Bad(w, f"{f} is 0")
    if d.pad_top >= d.kh or d.pad_left >= d.kw:
        raise _Bad(w, f"pad_top/pad_left: {d.pad_top}/{d.pad_left} with a {d.kh}x{d.kw} window (a pad must be "
                      f"smaller than the window)")
    if (d.out_h - 1) * d.stride_h >= d.in_h + d.pad_top:
        raise _Bad(w, f"out_h: {d.out_h} rows from {d.in_h} with stride {d.stride_h}, pad {d.pad_top}: windows "
                      f"entirely in the padding")
    if (d.out_w - 1) * d.stride_w >= d.in_w + d.pad_left:
        raise _Bad(w, f"out_w: {d.out_w} columns from {d.in_w} with stride {d.stride_w}, pad {d.pad_left}: "
                      f"windows entirely in the padding")
    if d.in_map_h and d.in_map_h < d.in_h:
        raise _Bad(w, f"in_map_h: a band of {d.in_h} rows in a map of {d.in_map_h}")
    if d.out_map_h and d.out_map_h < d.out_h:
        raise _Bad(w, f"out_map_h: a band of {d.out_h} rows in a map of {d.out_map_h}")
    if layout.is_shared(d):                                       # shared classes / shared pools
        why = layout.share_problem(d, hw)
        if why:
            raise _Bad(w, f"share: a {d.op.name} with shared classes (slot_shift {d.slot_shift}) {why}")
    end = bands.act_end(d, hw)
    if bands.in_lanes(d):                          # channel c in slice c mod 8: shared, or kept so (resident)
        if end > hw.act_buf_bytes // layout.ACT_LANES:
            raise _Bad(w, f"in_c: the input {d.in_c}x{d.in_h}x{d.in_w} takes {end} bytes of each activation-buffer "
                          f"slice of {hw.act_buf_bytes // layout.ACT_LANES} (channels in the buffer's slices)")
    elif end > hw.act_buf_bytes:
        raise _Bad(w, f"in_c: the input {d.in_c}x{d.in_h}x{d.in_w} takes {end} bytes of the activation buffer "
                      f"of {hw.act_buf_bytes}")
    region("in_c" if d.in_offset < arena else "in_offset", f"the input ({d.in_c} planes {d.in_chan_stride} "
           f"bytes apart)", d.in_offset, (d.in_c - 1) * d.in_chan_stride + d.in_h * d.in_w, False)
    region("out_c" if d.out_offset < arena else "out_offset", f"the output ({d.out_c} planes "
           f"{d.out_chan_stride} bytes apart)", d.out_offset, (d.out_c - 1) * d.out_chan_stride + d.out_h * d.out_w,
           False)
    if d.op in (Op.MAXPOOL, Op.AVGPOOL):
        if d.in_c != d.out_c:
            raise _Bad(w, f"out_c: a pool with {d.in_c} input and {d.out_c} output channels")
        if d.op == Op.AVGPOOL:
            _check_requant(d, w, with_mult2=False)
        return
    if d.pps:
        if (d.kh, d.kw) != (3, 3):
            raise _Bad(w, f"kh/kw: a PPS CONV with a {d.kh}x{d.kw} kernel (PPS needs 3x3)")
        if not 1 <= d.patterns <= min(hw.max_patterns, MAX_PATTERNS):
            raise _Bad(w, f"patterns: P={d.patterns}, the core holds 1..{hw.max_patterns}")
        if not 1 <= d.nnz <= 9:
            raise _Bad(w, f"nnz: K={d.nnz}, expected 1..9")
        for j, mask in enumerate(d.pattern_masks):
            if bin(mask).count("1") != d.nnz:
                raise _Bad(w, f"pattern{j}: mask 0x{mask:03x} has {bin(mask).count('1')} taps, K={d.nnz}")
    elif d.patterns != 1 or d.nnz != d.kh * d.kw:
        raise _Bad(w, f"patterns/nnz: a dense {d.kh}x{d.kw} CONV with P={d.patterns}, K={d.nnz} (needs P=1, "
                      f"K={d.kh * d.kw})")
    rows = hw.rows
    if d.in_c * d.nnz * rows > hw.weight_buf_bytes:
        raise _Bad(w, f"in_c: a row group of {d.in_c} x {d.nnz} x {rows} bytes exceeds the weight buffer of "
                      f"{hw.weight_buf_bytes}")
    groups = num_row_groups(d.out_c, d.patterns, rows, layout.desc_slot_shift(d))
    group_bytes = -(-d.in_c * d.nnz * rows // GROUP_ALIGN) * GROUP_ALIGN
    image = "the stored image"
    region("out_c" if d.weight_offset < image_len else "weight_offset", f"the weights ({groups} row groups of "
           f"{group_bytes} bytes)", d.weight_offset, groups * group_bytes, True, image_len, image)
    region("out_c" if d.param_offset < image_len else "param_offset", f"the parameters ({groups} row groups of "
           f"{rows} records)", d.param_offset, groups * rows * PARAM_RECORD_BYTES, True, image_len, image)


def _check_requant(d: Descriptor, w: str, with_mult2: bool) -> None:
    if d.shift > 63:
        raise _Bad(w, f"shift is {d.shift}, expected 0..63")
    if d.mult >= 1 << 31:
        raise _Bad(w, f"mult is {d.mult}, expected 0..2^31-1")
    if with_mult2 and d.mult2 >= 1 << 31:
        raise _Bad(w, f"mult2 is {d.mult2}, expected 0..2^31-1")


def _span(d: Descriptor, out: bool) -> Tuple[int, int]:
    """[start, end) of the bytes a layer writes (out) or reads (its first input), planes strided."""
    if out:
        return d.out_offset, d.out_offset + (d.out_c - 1) * d.out_chan_stride + d.out_h * d.out_w
    return d.in_offset, d.in_offset + (d.in_c - 1) * d.in_chan_stride + d.in_h * d.in_w


def _check_no_overwrite(p: Program, descs: List[Descriptor]) -> None:
    """No layer output, network input (written by the host) or statistics record may land on the descriptors,
    the weights or the parameters: the next run would compute something else."""
    fixed = [(p.prog_offset, p.prog_offset + len(descs) * DESC_BYTES, "the descriptors")]
    for j, d in enumerate(descs):
        if d.op == Op.CONV:
            groups = num_row_groups(d.out_c, d.patterns, p.hw.rows, layout.desc_slot_shift(d))
            wbytes = groups * (-(-d.in_c * d.nnz * p.hw.rows // GROUP_ALIGN) * GROUP_ALIGN)
            fixed.append((d.weight_offset, d.weight_offset + wbytes, f"the weights of layer {j}"))
            fixed.append((d.param_offset, d.param_offset + groups * p.hw.rows * PARAM_RECORD_BYTES,
                          f"the parameters of layer {j}"))
    clash = _Intervals(fixed).hit
    for j, (info, d) in enumerate(zip(p.layers, descs)):
        hit = clash(*_span(d, out=True))
        if hit:
            raise _Bad(f"layer {j} ({info.name})", f"out_offset: the output {list(_span(d, True))} overlaps {hit}")
    for k, t in enumerate(p.inputs):
        hit = clash(t.offset, t.offset + t.nbytes)
        if hit:
            raise _Bad(f"manifest.inputs[{k}].offset", f"the input [{t.offset}, {t.offset + t.nbytes}) overlaps {hit}")
    # The core writes a statistics record after each layer: on a map a later layer reads, it would change the
    # result too.
    maps = [(t.offset, t.offset + t.nbytes, f"tensor {t.name}") for t in p.inputs + p.outputs]
    for j, d in enumerate(descs):
        maps += [(*_span(d, out=False), f"the input of layer {j}"), (*_span(d, out=True), f"the output of layer {j}")]
        if d.op == Op.ADD:
            maps.append((d.in2_offset, d.in2_offset + d.in_c * d.in_h * d.in_w, f"the input 2 of layer {j}"))
    stats_end = p.stats_offset + len(descs) * STATS_RECORD_BYTES
    hit = clash(p.stats_offset, stats_end) or _Intervals(maps).hit(p.stats_offset, stats_end)
    if hit:
        raise _Bad("manifest.stats_offset", f"the statistics [{p.stats_offset}, {stats_end}) overlap {hit}")


class _Intervals:
    """Named [start, end) intervals, merged; hit() names one that meets a query in O(log n)."""

    def __init__(self, items: List[Tuple[int, int, str]]):
        self.merged: List[list] = []          # disjoint [start, end, name], sorted (bands share their weights)
        for lo, hi, name in sorted(items):
            if self.merged and lo < self.merged[-1][1]:
                self.merged[-1][1] = max(self.merged[-1][1], hi)
            else:
                self.merged.append([lo, hi, name])
        self.starts = [m[0] for m in self.merged]

    def hit(self, lo: int, hi: int) -> Optional[str]:
        k = bisect.bisect_right(self.starts, hi - 1) - 1
        return self.merged[k][2] if k >= 0 and self.merged[k][1] > lo else None


def _tiled(lo: int, hi: int, regions: Dict[int, set]) -> bool:
    """True when [lo, hi) is exactly a chain of abutting regions {start: {ends}} (one whole map; the row bands
    of a map, whose first band spans it; the channel bands or channel slices of a map, which abut)."""
    todo, seen = [lo], {lo}
    while todo:
        at = todo.pop()
        for end in regions.get(at, ()):
            if end == hi:
                return True
            if at < end < hi and end not in seen:
                seen.add(end)
                todo.append(end)
    return False


def _check_tensors_match_layers(p: Program, descs: List[Descriptor]) -> None:
    """The manifest's input/output tensors must be what the (sha256-checked) descriptors read and write: an
    edited manifest would otherwise feed a wrong-sized input or read the wrong bytes, silently. A layer in
    bands reads/writes its map as several descriptors: each band's whole-map extent is c planes of the map's
    plane stride from its offset, which for the first band is the map."""
    reads: Dict[int, set] = {}
    writes: Dict[int, set] = {}
    for d in descs:
        reads.setdefault(d.in_offset, set()).add(d.in_offset + d.in_c * d.in_chan_stride)
        if d.op == Op.ADD:
            reads.setdefault(d.in2_offset, set()).add(d.in2_offset + d.in_c * d.in_h * d.in_w)
        writes.setdefault(d.out_offset, set()).add(d.out_offset + d.out_c * d.out_chan_stride)
    # Where one pool's channel bands meet (the next descriptor is the same pool over the next channels): a
    # tensor that starts or ends there is a part of a map, not a map.
    cut_in, cut_out = set(), set()
    for a, b in zip(descs, descs[1:]):
        if a.op in (Op.MAXPOOL, Op.AVGPOOL) and _channel_shape(a) == _channel_shape(b) \
                and b.in_offset == a.in_offset + a.in_c * a.in_chan_stride \
                and b.out_offset == a.out_offset + a.out_c * a.out_chan_stride:
            cut_in.add(b.in_offset)
            cut_out.add(b.out_offset)
    for kind, verb, tensors, done, cuts in (("inputs", "reads", p.inputs, reads, cut_in),
                                            ("outputs", "writes", p.outputs, writes, cut_out)):
        for k, t in enumerate(tensors):
            lo, hi = t.offset, t.offset + t.nbytes
            if lo in cuts or hi in cuts or not _tiled(lo, hi, done):
                raise _Bad(f"manifest.{kind}[{k}]", f"{t.name} {list(t.shape)} ({t.nbytes} bytes at offset "
                                                    f"{t.offset}) is not what any layer of the program {verb}")


def _channel_shape(d: Descriptor) -> Descriptor:
    """`d` without what differs between the channel bands of one pool (bands.channel_band)."""
    return dataclasses.replace(d, in_offset=0, in_c=0, out_offset=0, out_c=0)
