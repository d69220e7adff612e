"""One exception type per kind of user error. The CLI prints their message (no traceback) and exits 2.

Messages name the file, node or layer and every shape involved, and say what to do.
"""


class SpsError(Exception):
    """Base of every error a user can cause; anything else is a bug."""


class NotPpsError(SpsError):
    """A weight tensor is not PPS(P, K): the message names the kernel and the rule it breaks."""


class PpsShapeError(SpsError):
    """A layer cannot be PPS at all (not 3x3, grouped, ...)."""


class OnnxImportError(SpsError):
    """A malformed ONNX file, or a graph the compiler cannot lower."""


class UnsupportedOpError(OnnxImportError):
    """An op or attribute outside what the compiler supports; names the node, the op and what is supported."""


class CompileError(SpsError):
    """The model is valid but does not fit the hardware (buffer sizes, field widths, ...)."""


class ModelFileError(SpsError):
    """A missing, truncated, tampered or wrong-version .spsmodel file."""


class HardwareMismatchError(SpsError):
    """A .spsmodel packed for another hardware configuration than the overlay/backend offers."""


class InputError(SpsError):
    """Wrong input shape or dtype given to Session.run."""


class BackendError(SpsError):
    """A backend cannot be used here (no C compiler, no overlay, no Verilator, ...)."""


class DeviceTimeoutError(SpsError):
    """The accelerator did not finish in time; the message holds a dump of its status registers."""


class DeviceError(SpsError):
    """The accelerator reported an error code; the message says which layer and what."""


class PoolError(BackendError):
    """Every board of a BoardPool failed (or none could load the model); names each board and its error."""
