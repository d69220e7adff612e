"""sps-pynq: periodic pattern-based sparse CNNs on the SPS accelerator, on PYNQ boards.

Board-side imports stay free of torch and onnx; the workstation-only parts (compiler, prune, zoo) import them
lazily.
"""
__version__ = "0.2.0"


def __getattr__(name):
    # Lazy so that `import sps_pynq` stays cheap and torch-free.
    if name == "Session":
        from .runtime.session import Session
        return Session
    if name == "BoardPool":
        from .runtime.pool import BoardPool
        return BoardPool
    raise AttributeError(name)
