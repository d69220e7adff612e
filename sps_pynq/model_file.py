"""The `.spsmodel` container: a zip of a versioned JSON manifest and binary blobs, each with its sha256.

    manifest.json   {"format": "spsmodel", "format_version": N, "hw": {...}, "blobs": {name: {size, sha256}},
                     "arena_size", "prog_offset", "stats_offset", "layers", "inputs", "outputs", "host_steps",
                     "metadata"}
    image.bin       the initial arena contents (descriptors, weights, parameters)

Writing is atomic (a temporary file in the same folder, renamed at the end), so an error never leaves a
half-written model. Loading checks the format, the version, every blob's size and hash, and names what is wrong.
Standard library only: this runs on the board.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Union

from .errors import ModelFileError
from .hw.config import FORMAT_VERSION, HwConfig
from .hw.descriptor import DESC_BYTES, Op
from .program import LayerInfo, Program, TensorInfo

FORMAT_NAME = "spsmodel"
MANIFEST = "manifest.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(program: Program, path: Union[str, os.PathLike]) -> Path:
    path = Path(path)
    blobs = {"image.bin": program.image}
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
    check_writable(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
            for name, data in blobs.items():
                z.writestr(name, data)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise ModelFileError(f"{path}: cannot write ({e}); choose another output path") from e
        raise
    return path


def check_writable(path: Union[str, os.PathLike]) -> None:
    """ModelFileError unless `path` names a file save() can create: its folder exists and it is no folder.
    Called before a long compile, so a typo in -o costs nothing."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ModelFileError(f"{path}: folder {folder} does not exist; create it or choose another output path")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give a file name, e.g. {path / 'model.spsmodel'}")


def load(path: Union[str, os.PathLike]) -> Program:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such .spsmodel file")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if MANIFEST not in names:
                raise ModelFileError(f"{path}: not a .spsmodel (no {MANIFEST} inside); pack one with `sps-pynq pack`")
            manifest = json.loads(z.read(MANIFEST))
            blobs = {}
            for name, info in manifest.get("blobs", {}).items():
                if name not in names:
                    raise ModelFileError(f"{path}: blob {name} listed in the manifest is missing; re-pack the model")
                blobs[name] = z.read(name)
    except (zipfile.BadZipFile, zlib.error) as e:   # zlib.error: a corrupted deflate stream
        raise ModelFileError(f"{path}: not a .spsmodel or truncated ({e}); re-pack the model") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: manifest is not valid JSON ({e}); re-pack the model") from e
    except (OSError, zipfile.LargeZipFile, EOFError) as e:
        raise ModelFileError(f"{path}: cannot read ({e}); re-pack the model") from e
    if manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: manifest format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{path}: format version {version}, this sps-pynq reads version {FORMAT_VERSION}; "
                             f"re-pack the model with this version")
    for name, info in manifest["blobs"].items():
        data = blobs[name]
        if len(data) != info["size"]:
            raise ModelFileError(f"{path}: blob {name} has {len(data)} bytes, manifest says {info['size']}; "
                                 f"the file is truncated or tampered, re-pack the model")
        if _sha256(data) != info["sha256"]:
            raise ModelFileError(f"{path}: blob {name} fails its sha256 check; the file is corrupted or tampered, "
                                 f"re-pack the model")
    try:
        program = Program(
            hw=HwConfig.from_dict(manifest["hw"]),
            image=blobs["image.bin"],
            arena_size=int(manifest["arena_size"]),
            prog_offset=int(manifest["prog_offset"]),
            layers=[LayerInfo.from_dict(d) for d in manifest["layers"]],
            inputs=[TensorInfo.from_dict(d) for d in manifest["inputs"]],
            outputs=[TensorInfo.from_dict(d) for d in manifest["outputs"]],
            stats_offset=int(manifest["stats_offset"]),
            host_steps=list(manifest.get("host_steps", [])),
            metadata=dict(manifest.get("metadata", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{path}: manifest is incomplete or malformed ({type(e).__name__}: {e}); "
                             f"re-pack the model") from e
    end = program.prog_offset + program.num_layers * DESC_BYTES
    if end > len(program.image) or len(program.image) > program.arena_size:
        raise ModelFileError(f"{path}: program ({program.num_layers} layers at offset {program.prog_offset}) "
                             f"does not fit the image of {len(program.image)} bytes / arena of "
                             f"{program.arena_size} bytes; re-pack the model")
    for t in program.inputs + program.outputs:
        if t.offset + t.nbytes > program.arena_size:
            raise ModelFileError(f"{path}: tensor {t.name} {t.shape} at offset {t.offset} lies outside the arena "
                                 f"of {program.arena_size} bytes; re-pack the model")
    _check_tensors_match_layers(path, program)
    return program


def _check_tensors_match_layers(path: Path, program: Program) -> None:
    """The manifest's input/output tensors must be what the (sha256-checked) descriptors read and write: an
    edited manifest would otherwise feed a wrong-sized input or read the wrong bytes, silently."""
    try:
        descs = program.descriptors()
    except ValueError:
        return          # an undecodable descriptor: the backends name it when they run the program
    reads = {(d.in_offset, d.in_c * d.in_h * d.in_w) for d in descs}
    reads |= {(d.in2_offset, d.in_c * d.in_h * d.in_w) for d in descs if d.op == Op.ADD}
    writes = {(d.out_offset, d.out_c * d.out_h * d.out_w) for d in descs}
    for kind, verb, tensors, done in (("input", "reads", program.inputs, reads),
                                      ("output", "writes", program.outputs, writes)):
        for t in tensors:
            if (t.offset, t.nbytes) not in done:
                raise ModelFileError(f"{path}: {kind} {t.name} {list(t.shape)} ({t.nbytes} bytes at offset "
                                     f"{t.offset}) is not what any layer of the program {verb}; the manifest is "
                                     f"inconsistent or tampered, re-pack the model")
