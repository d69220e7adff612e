"""Compile the C golden model with cffi (API mode) into a per-user cache, once per source/flags/compiler.

The cache folder is $SPS_PYNQ_CACHE, else $XDG_CACHE_HOME/sps-pynq, else ~/.cache/sps-pynq. The module name
contains a hash of golden.c, golden.h, sps_hw.h, the flags, the compiler ($CC) and the CPU, so a changed source
or another machine sharing the home folder gets its own build, and concurrent first uses (pytest -n 2) are
safe: each builds in its own temporary folder and renames the finished library into place.

`python -m sps_pynq.native.build` builds it ahead of time (e.g. when installing on a board).
"""
from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import BackendError

HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)
SOURCES = ["golden.c", "pool.c"]
HEADERS = ["golden.h", "pool.h", "sps_hw.h"]

def cdef() -> str:
    """The declarations cffi binds: golden.h itself, minus its preprocessor lines (cffi's parser takes C
    declarations and comments, not #ifndef/#include), so the binding cannot drift from the header."""
    text = (HERE / "golden.h").read_text()
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


BASE_FLAGS = ["-O3", "-fwrapv", "-std=gnu11", "-pthread", "-Wno-comment"]
NATIVE_FLAGS = ["-march=native"]


def cache_dir() -> Path:
    if os.environ.get("SPS_PYNQ_CACHE"):
        return Path(os.environ["SPS_PYNQ_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sps-pynq"


def _cpu_id() -> str:
    """What -march=native depends on: the CPU model and flags (Linux), else the machine name."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
        keep = [line for line in text.splitlines() if line.split(":")[0].strip() in
                ("model name", "flags", "Features", "CPU part", "CPU implementer")]
        return "\n".join(sorted(set(keep)))
    except OSError:
        return platform.machine()


def _key(flags) -> str:
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        h.update((HERE / name).read_bytes())
    h.update(" ".join(flags).encode())
    h.update(os.environ.get("CC", "").encode())
    h.update(_cpu_id().encode())
    h.update(f"{sys.implementation.cache_tag} {platform.machine()}".encode())
    return h.hexdigest()[:16]


def _compile(module_name: str, flags, workdir: Path) -> Path:
    import cffi
    ffi = cffi.FFI()
    ffi.cdef(cdef())
    ffi.set_source(module_name, '#include "golden.h"', sources=[str(HERE / s) for s in SOURCES],
                   include_dirs=[str(HERE)], extra_compile_args=list(flags),
                   extra_link_args=["-pthread"])
    return Path(ffi.compile(tmpdir=str(workdir), verbose=False))


def _load(module_name: str, path: Path):
    spec = importlib.util.spec_from_file_location(module_name, str(path),
                                                  loader=importlib.machinery.ExtensionFileLoader(module_name,
                                                                                                 str(path)))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(verbose: bool = False, flags=None):
    """Return the compiled module (with `.ffi` and `.lib`), compiling it first if it is not in the cache.
    `flags` replaces the default flag sets (tests use it to build the portable, non-AVX2 code paths)."""
    folder = cache_dir()
    errors = []
    # Best flags first; drop -march=native if this compiler does not take it.
    for flags in ([list(flags)] if flags is not None else (BASE_FLAGS + NATIVE_FLAGS, BASE_FLAGS)):
        name = f"_sps_golden_{_key(flags)}"
        suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
        target = folder / (name + suffix)
        if target.is_file():
            try:
                return _load(name, target)
            except ImportError as e:          # a broken cache entry: rebuild it
                errors.append(f"cached {target}: {e}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BackendError(f"cannot create the golden-model cache folder {folder} ({e}); set SPS_PYNQ_CACHE "
                               f"to a writable folder") from e
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
        try:
            built = _compile(name, flags, work)
            os.replace(built, target)
            log.log(logging.INFO if verbose else logging.DEBUG, "built %s with %s", target, " ".join(flags))
            return _load(name, target)
        except ModuleNotFoundError as e:      # Python >= 3.12 has no distutils: cffi compiles through setuptools
            raise BackendError(f"cannot compile the C golden model: {e}. cffi needs setuptools to run the C "
                               f"compiler on this Python; `pip install setuptools`") from e
        except Exception as e:                # distutils/setuptools raise several unrelated types here
            errors.append(f"{' '.join(flags)}: {type(e).__name__}: {e}")
            last = e
        finally:
            shutil.rmtree(work, ignore_errors=True)
    cc = os.environ.get("CC", "cc (the default)")
    raise BackendError(
        f"cannot compile the C golden model (sps_pynq/native/golden.c) with the C compiler {cc}: "
        f"{errors[-1]}. The sim backend needs a C compiler: install gcc (Debian/Ubuntu: "
        f"`sudo apt install build-essential`), or point CC at a working compiler.") from last


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    mod = build(verbose=True)
    print(f"golden model ready, {mod.lib.sps_golden_threads()} threads")
