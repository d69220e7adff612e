# Copyright sps-pynq contributors. Licensed under Apache-2.0.
# Block design "sps" of the overlay: Zynq UltraScale+ PS + the SPS core, for PYNQ on the ZCU104.
#
#   zynq_ultra_ps_e_0                                           sps_core_0 (sps-pynq:sps:sps_core:1.0)
#     M_AXI_HPM0_FPD (32-bit) --> smartconnect_ctrl --> s_axil    registers at 0xA000_0000, 64 KiB
#     S_AXI_HP0_FPD  (AXI bits) <-- smartconnect_ddr <-- m_axi    descriptors, weights, feature maps in DDR
#     pl_ps_irq0[0]             <-------------------- irq_o
#     pl_clk0 (CLK_MHZ) --> every aclk, clk_i;  pl_resetn0 --> proc_sys_reset_0 --> rst_ni, interconnect resets
#
# Sourced by build_overlay.tcl; defines procedures only. The names (sps_core_0, the base address) come from
# sps_names.tcl, generated from sps_pynq/hw/ip.py: the runtime and the virtual board use the same definitions.

# Create, connect and validate the block design `bd_name`; `clk_mhz` is the requested pl_clk0 frequency and
# `axi_bits` the width of the core's AXI master (64 or 128), which the HP0 port is set to.
proc sps_create_block_design {bd_name clk_mhz axi_bits} {
    set ps_name $::sps_ps_cell
    set core_name $::sps_core_cell
    create_bd_design $bd_name

    # The PS with the ZCU104 board preset (DDR4, MIO, clocks), then only what the overlay needs on top of it.
    set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:zynq_ultra_ps_e $ps_name]
    apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e -config {apply_board_preset "1"} $ps
    # GP0 = M_AXI_HPM0_FPD, GP1 = M_AXI_HPM1_FPD, GP2 = M_AXI_HPM0_LPD; S_AXI_GP2 = S_AXI_HP0_FPD.
    # PL0 from the IOPLL (1500 MHz on the ZCU104 preset): 150 MHz is IOPLL / 10 exactly.
    set_property -dict [list \
        CONFIG.PSU__USE__M_AXI_GP0 {1} \
        CONFIG.PSU__MAXIGP0__DATA_WIDTH {32} \
        CONFIG.PSU__USE__M_AXI_GP1 {0} \
        CONFIG.PSU__USE__M_AXI_GP2 {0} \
        CONFIG.PSU__USE__S_AXI_GP2 {1} \
        CONFIG.PSU__SAXIGP2__DATA_WIDTH $axi_bits \
        CONFIG.PSU__FPGA_PL0_ENABLE {1} \
        CONFIG.PSU__CRL_APB__PL0_REF_CTRL__SRCSEL {IOPLL} \
        CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $clk_mhz \
        CONFIG.PSU__USE__IRQ0 {1} \
    ] $ps

    set core [create_bd_cell -type ip -vlnv "$::sps_ip_vendor:$::sps_ip_library:$::sps_ip_name:$::sps_ip_version" \
        $core_name]

    # SmartConnects adapt widths and protocols: AXI4 (32-bit) -> AXI4-Lite for the registers, and the core's
    # AXI4 master (ID, cache, QoS) -> the HP port.
    set smc_ctrl [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect smartconnect_ctrl]
    set_property -dict [list CONFIG.NUM_SI {1} CONFIG.NUM_MI {1}] $smc_ctrl
    set smc_ddr [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect smartconnect_ddr]
    set_property -dict [list CONFIG.NUM_SI {1} CONFIG.NUM_MI {1}] $smc_ddr
    set rst [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset proc_sys_reset_0]

    # One clock domain: pl_clk0 for the PS ports, the interconnect and the core.
    connect_bd_net [get_bd_pins $ps_name/pl_clk0] \
        [get_bd_pins $ps_name/maxihpm0_fpd_aclk] \
        [get_bd_pins $ps_name/saxihp0_fpd_aclk] \
        [get_bd_pins smartconnect_ctrl/aclk] \
        [get_bd_pins smartconnect_ddr/aclk] \
        [get_bd_pins proc_sys_reset_0/slowest_sync_clk] \
        [get_bd_pins $core_name/clk_i]
    connect_bd_net [get_bd_pins $ps_name/pl_resetn0] [get_bd_pins proc_sys_reset_0/ext_reset_in]
    connect_bd_net [get_bd_pins proc_sys_reset_0/interconnect_aresetn] \
        [get_bd_pins smartconnect_ctrl/aresetn] \
        [get_bd_pins smartconnect_ddr/aresetn]
    connect_bd_net [get_bd_pins proc_sys_reset_0/peripheral_aresetn] [get_bd_pins $core_name/rst_ni]

    connect_bd_intf_net [get_bd_intf_pins $ps_name/M_AXI_HPM0_FPD] [get_bd_intf_pins smartconnect_ctrl/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins smartconnect_ctrl/M00_AXI] [get_bd_intf_pins $core_name/s_axil]
    connect_bd_intf_net [get_bd_intf_pins $core_name/m_axi] [get_bd_intf_pins smartconnect_ddr/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins smartconnect_ddr/M00_AXI] [get_bd_intf_pins $ps_name/S_AXI_HP0_FPD]

    connect_bd_net [get_bd_pins $core_name/irq_o] [get_bd_pins $ps_name/pl_ps_irq0]

    # Address map: the registers at a fixed base (the runtime reads it from the .hwh, but a fixed one keeps
    # logs and docs comparable), then everything else the PS offers the core (DDR low/high) by default.
    assign_bd_address -offset $::sps_core_base -range $::sps_core_range \
        -target_address_space [get_bd_addr_spaces $ps_name/Data] \
        [get_bd_addr_segs $core_name/s_axil/$::sps_reg_block_name] -force
    assign_bd_address

    validate_bd_design
    save_bd_design
}
