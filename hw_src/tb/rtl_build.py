"""Run a cocotb module of this folder on sps_top by hand (the build code is sps_pynq/backends/rtl_build.py):

    python hw_src/tb/rtl_build.py [config [cocotb module [testcase]]]     e.g.  zcu104 perf_layers
"""
from sps_pynq.backends.rtl_build import main

if __name__ == "__main__":
    main()
