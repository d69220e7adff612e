"""`CompileOptions`: everything that decides how a model is compiled, in one dataclass that every stage reads.

The public functions (`compile_model`, `pack`, `import_and_lower`, `project_onnx`) take a `CompileOptions` or the
same names as keyword arguments: `compile_model(m, pps="4x2", num_calib=8)` is
`compile_model(m, CompileOptions(pps="4x2", num_calib=8))`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

from ..errors import CompileError
from ..hw.config import DEFAULT_CONFIG, HwConfig, get_config


@dataclass(frozen=True)
class CompileOptions:
    """Names and "PxK" strings are resolved on construction: `hw` is always a HwConfig, `pps` a (P, K) or None."""
    # target hardware: a HwConfig or the name of one in hw.config.CONFIGS (CLI --hw)
    hw: Union[str, HwConfig] = DEFAULT_CONFIG
    # (P, K) or "PxK": every eligible 3x3 conv projected onto P patterns of K taps (CLI --pps); None: all dense
    pps: Optional[Tuple[int, int]] = (8, 4)
    # keep the first conv dense even when pps is set (CLI --first-layer-dense)
    first_layer_dense: bool = False
    # merge small residue classes, or let them share row groups (descriptor share), so that row groups are full
    # where that is modelled faster; the same outputs; merged: K' >= K weights a kernel stored
    # (compiler/fill_rows.py; on by default; CLI --no-fill-rows turns it off: the encoding exactly as pruned)
    fill_rows: bool = True
    # keep a layer's output in the activation buffer when the next layer reads just that map, which then skips
    # its input load (compiler/keep.py, hw/residency.py; on by default; CLI --no-keep-outputs turns it off)
    keep_outputs: bool = True
    # calibration inputs [N, C, H, W]: an array or a .npy path (CLI --calib); None: num_calib synthetic inputs
    calib: object = field(default=None, compare=False, repr=False)
    # seeded standard-normal calibration inputs used when calib is None (CLI --num-calib)
    num_calib: int = 32
    # seed of the synthetic calibration inputs and of a zoo model's weights (CLI --seed)
    seed: int = 0
    # (C, H, W) input of a torch.nn.Module, needed to export it to ONNX (zoo models know theirs)
    input_shape: Optional[Tuple[int, ...]] = None

    def __post_init__(self):
        try:
            object.__setattr__(self, "hw", get_config(self.hw))
        except KeyError as e:
            raise CompileError(str(e.args[0])) from e
        object.__setattr__(self, "pps", _pps(self.pps))
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(self.input_shape))

    @classmethod
    def of(cls, options: Optional["CompileOptions"] = None, **overrides) -> "CompileOptions":
        """`options` (default: the defaults) with the keyword arguments that are given replacing its fields."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"unknown compile option(s) {', '.join(unknown)}; the options are {', '.join(names)}")
        if options is None:
            return cls(**overrides)
        if not isinstance(options, cls):
            raise TypeError(f"options must be a CompileOptions, got {type(options).__name__} {options!r}; give "
                            f"other options by name (hw=..., pps=...)")
        return dataclasses.replace(options, **overrides) if overrides else options

    @property
    def pps_text(self) -> str:
        """"PxK" or "dense", as the program's metadata records it."""
        return f"{self.pps[0]}x{self.pps[1]}" if self.pps else "dense"


def _pps(pps) -> Optional[Tuple[int, int]]:
    if pps is None or pps is False or pps == "dense":
        return None
    if isinstance(pps, str):
        from ..pps import parse_pps_spec
        return parse_pps_spec(pps)
    P, K = (int(v) for v in pps)
    return P, K
