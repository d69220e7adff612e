# Copyright sps-pynq contributors. Licensed under Apache-2.0.
"""The SPS overlays, installed as the package `sps_pynq.overlays` (setup.py maps it to the repository's
`overlays/` folder) and registered under pynq's `pynq.overlays` entry point, so that pynq finds them by name
wherever pip installed them: `pynq.Overlay("zcu104/sps.bit")`, `pynq.Overlay("virtual_zcu104/sps.bit")`.

    zcu104/sps.{bit,hwh}           the Vivado build of hw_src/ for the ZCU104 (see README.md; not in every copy)
    virtual_zcu104/sps.{bit,hwh}   the generated overlay of the virtual ZCU104 (no FPGA design inside)
"""
