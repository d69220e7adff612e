"""Backends of `Session`: one module per backend (`sim`, `rtl`, `board`, `ref`), each a small `Backend` subclass."""
import importlib

from ..errors import BackendError

# The one list of backends: name -> "module:class", imported only when chosen (pynq, cocotb are optional).
BACKENDS = {"sim": "sps_pynq.backends.sim:SimBackend",
            "rtl": "sps_pynq.backends.rtl:RtlBackend",
            "board": "sps_pynq.backends.board:BoardBackend",
            "ref": "sps_pynq.backends.ref:RefBackend"}
BACKEND_NAMES = tuple(BACKENDS)


def backend_class(name: str):
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)} or 'auto'")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)
