# Copyright sps-pynq contributors. Licensed under Apache-2.0.
# Block design "sps" of the overlay: Zynq UltraScale+ PS + the SPS core, for PYNQ on the ZCU104.
#
#   zynq_ultra_ps_e_0                                              sps_core_0 (VLNV from sps_names.tcl)
#     M_AXI_HPM0_FPD (32-bit) --> smartconnect_ctrl --M00--> s_axil    registers at 0xA000_0000, 64 KiB
#                                                   --M01--> axi_intc_0/s_axi at 0xA001_0000, 64 KiB
#     S_AXI_HP0_FPD  (AXI bits) <-- smartconnect_ddr <----- m_axi     descriptors, weights, feature maps in DDR
#     pl_ps_irq0[0] <-- axi_intc_0/irq;  axi_intc_0/intr <-- irq_concat/dout;  irq_concat/In0 <-- irq_o
#     pl_clk0 (CLK_MHZ) --> every aclk, clk_i;  pl_resetn0 --> proc_sys_reset_0 --> rst_ni, interconnect resets
#
# Why the interrupt controller: PYNQ (3.x and 4.x, pynqmetadata's interrupt_controllers_view.py and
# interrupt_pins_view.py) lists an interrupt pin only when it finds it by walking back from the `intr` input of an
# axi_intc whose `irq` reaches pl_ps_irq0/1; a core wired straight to pl_ps_irq0 gets no entry in
# ip_dict[...]["interrupts"] and pynq.Interrupt cannot be made. PYNQ's own ZCU104 base design does the same
# (boards/ZCU104/base/base.tcl: sources -> xlconcat0 -> axi_intc_0/intr, C_IRQ_CONNECTION 1, irq -> xlconcat_0/In0
# -> pl_ps_irq0). Here the core's irq_o reaches intr through a one-input xlconcat too (room for
# more interrupts later, and PYNQ then names the pin's controller input irq_concat/In0, as in the base design);
# the controller's irq goes straight to pl_ps_irq0.
#
# Sourced by build_overlay.tcl; defines procedures only. The names (sps_core_0, the base address) come from
# sps_names.tcl, generated from sps_pynq/hw/ip.py: the runtime and the virtual board use the same definitions.
# sps_pynq/virtual_board/overlay.py describes this same design in the virtual overlay's .hwh (the interrupt
# controller's name and address below are repeated there; host_tests/test_virtual_overlay.py compares the two).

set ::sps_intc_cell  "axi_intc_0"
set ::sps_irq_concat "irq_concat"
set ::sps_intc_base  0xA0010000
set ::sps_intc_range 64K
# The PS's IOPLL on the ZCU104 preset (PSS_REF_CLK 33.333 MHz x 90 / 2); pl_clk0 = IOPLL / divisor.
set ::sps_iopll_mhz  1500

# The pl_clk0 request must be an integer number of MHz (the PS configuration takes FREQMHZ as a whole number in
# PYNQ's and FINN's scripts; a fractional value such as 187.5 is a risk the first build should not take) and is
# reached as IOPLL / divisor: returns the achieved frequency, and warns when it differs from the request.
proc sps_check_clock {clk_mhz} {
    if {![string is integer -strict $clk_mhz] || $clk_mhz < 10 || $clk_mhz > 333} {
        error "clk_mhz=$clk_mhz: give a whole number of MHz from 10 to 333, e.g. 150 (IOPLL/10), 125 (/12),\
               100 (/15); 187 gives IOPLL/8 = 187.5 MHz"
    }
    set divisor [expr {max(1, round(double($::sps_iopll_mhz) / $clk_mhz))}]
    set achieved [expr {double($::sps_iopll_mhz) / $divisor}]
    if {abs($achieved - $clk_mhz) > 0.005 * $clk_mhz} {
        puts "WARNING: pl_clk0 $clk_mhz MHz is not IOPLL $::sps_iopll_mhz MHz / an integer; Vivado will pick a\
              divisor (about [format %.3f $achieved] MHz for /$divisor): read the achieved clock from the .hwh\
              (PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ)"
    }
    return $achieved
}

# Create, connect and validate the block design `bd_name`; `clk_mhz` is the requested pl_clk0 frequency (an integer,
# see sps_check_clock) and `axi_bits` the width of the core's AXI master (64 or 128), which HP0 is set to.
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

    # SmartConnects adapt widths and protocols: AXI4 (32-bit) -> AXI4-Lite for the registers of the core (M00) and
    # of the interrupt controller (M01), and the core's AXI4 master (ID, cache, QoS) -> the HP port.
    set smc_ctrl [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect smartconnect_ctrl]
    set_property -dict [list CONFIG.NUM_SI {1} CONFIG.NUM_MI {2}] $smc_ctrl
    set smc_ddr [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect smartconnect_ddr]
    set_property -dict [list CONFIG.NUM_SI {1} CONFIG.NUM_MI {1}] $smc_ddr
    set rst [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset proc_sys_reset_0]
    # The interrupt controller PYNQ looks for; its irq is a single level-high wire (as in PYNQ's base design).
    set intc [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_intc $::sps_intc_cell]
    set_property -dict [list CONFIG.C_IRQ_CONNECTION {1}] $intc
    set concat [create_bd_cell -type ip -vlnv xilinx.com:ip:xlconcat $::sps_irq_concat]
    set_property -dict [list CONFIG.NUM_PORTS {1}] $concat

    # One clock domain: pl_clk0 for the PS ports, the interconnect, the interrupt controller and the core.
    connect_bd_net [get_bd_pins $ps_name/pl_clk0] \
        [get_bd_pins $ps_name/maxihpm0_fpd_aclk] \
        [get_bd_pins $ps_name/saxihp0_fpd_aclk] \
        [get_bd_pins smartconnect_ctrl/aclk] \
        [get_bd_pins smartconnect_ddr/aclk] \
        [get_bd_pins proc_sys_reset_0/slowest_sync_clk] \
        [get_bd_pins $::sps_intc_cell/s_axi_aclk] \
        [get_bd_pins $core_name/clk_i]
    connect_bd_net [get_bd_pins $ps_name/pl_resetn0] [get_bd_pins proc_sys_reset_0/ext_reset_in]
    connect_bd_net [get_bd_pins proc_sys_reset_0/interconnect_aresetn] \
        [get_bd_pins smartconnect_ctrl/aresetn] \
        [get_bd_pins smartconnect_ddr/aresetn]
    connect_bd_net [get_bd_pins proc_sys_reset_0/peripheral_aresetn] \
        [get_bd_pins $core_name/rst_ni] \
        [get_bd_pins $::sps_intc_cell/s_axi_aresetn]

    connect_bd_intf_net [get_bd_intf_pins $ps_name/M_AXI_HPM0_FPD] [get_bd_intf_pins smartconnect_ctrl/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins smartconnect_ctrl/M00_AXI] [get_bd_intf_pins $core_name/s_axil]
    connect_bd_intf_net [get_bd_intf_pins smartconnect_ctrl/M01_AXI] [get_bd_intf_pins $::sps_intc_cell/s_axi]
    connect_bd_intf_net [get_bd_intf_pins $core_name/m_axi] [get_bd_intf_pins smartconnect_ddr/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins smartconnect_ddr/M00_AXI] [get_bd_intf_pins $ps_name/S_AXI_HP0_FPD]

    # The core's interrupt through the controller to the PS (pl_ps_irq0[0] is GIC SPI 89, Linux IRQ 121).
    connect_bd_net [get_bd_pins $core_name/irq_o] [get_bd_pins $::sps_irq_concat/In0]
    connect_bd_net [get_bd_pins $::sps_irq_concat/dout] [get_bd_pins $::sps_intc_cell/intr]
    connect_bd_net [get_bd_pins $::sps_intc_cell/irq] [get_bd_pins $ps_name/pl_ps_irq0]

    # Address map: the registers at a fixed base (the runtime reads it from the .hwh, but a fixed one keeps
    # logs and docs comparable), the interrupt controller after them, then everything else the PS offers the
    # core's master (DDR, OCM, QSPI) by default.
    set ps_data [get_bd_addr_spaces $ps_name/Data]
    assign_bd_address -offset $::sps_core_base -range $::sps_core_range -target_address_space $ps_data \
        [get_bd_addr_segs $core_name/s_axil/$::sps_reg_block_name] -force
    assign_bd_address -offset $::sps_intc_base -range $::sps_intc_range -target_address_space $ps_data \
        [get_bd_addr_segs $::sps_intc_cell/S_AXI/Reg] -force
    assign_bd_address
    if {[get_bd_addr_segs -of_objects [get_bd_addr_spaces $core_name/m_axi] -quiet] eq ""} {
        error "block design: the core's m_axi reaches no memory (no address segments in its address space);\
               check the packaged IP's address space (package_ip.tcl) and the HP0 connection"
    }

    validate_bd_design
    save_bd_design
}
