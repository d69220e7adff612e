# Copyright sps-pynq contributors. Licensed under Apache-2.0.
# Package the SPS core as a Vivado IP (VLNV from sps_names.tcl): sources from hw_src/rtl/files.f, packaged top the
# Verilog-2001 wrapper sps_ip_top.v around sps_top.
#
# Sourced by build_overlay.tcl; defines procedures only. The IP's interfaces come from the port prefixes, as in
# Alex Forencich's verilog-axi: s_axil_* (AXI4-Lite slave, registers), m_axi_* (AXI4 master, DDR), plus clk_i,
# rst_ni (active low, synchronous to clk_i) and irq_o (level, active high).
#
# Why the wrapper: UG1118 (Packaging a SystemVerilog top) asks for a Verilog/VHDL top, because the packager parses
# the top file alone; sps_top's generics default to sps_if_pkg constants, which that parse cannot evaluate.
#
# Why the explicit address space: the bus interfaces are removed and re-inferred below, which leaves m_axi without
# the address space the packager made for it; a master without master_address_space_ref gives assign_bd_address
# nothing to map the PS's DDR into (Analog Devices' packaging sets it for the same reason: library/axi_dmac/
# axi_dmac_ip.tcl, library/xilinx/axi_adcfifo/axi_adcfifo_ip.tcl in analogdevicesinc/hdl).

# The IP's identity and its register block come from sps_names.tcl (generated from sps_pynq/hw/ip.py). The
# core decodes 8 address bits (sps_pynq/hw/regmap.py ADDR_BITS); it is given a 64 KiB window, the smallest the
# address editor handles comfortably, and aliases inside it.

set ::sps_ip_top_module "sps_ip_top"
set ::sps_ip_top_file [file join [file dirname [file normalize [info script]]] sps_ip_top.v]
set ::sps_axi_addr_bits 40          ;# sps_ip_top's m_axi_*addr width: the IP's address space is 2^40 bytes

# Ordered source files of hw_src/rtl/files.f: one path per line relative to the list's folder, `#` and `//`
# comments and +/- options skipped (the same rules as lint.sh and scripts/synth_report.py).
proc sps_read_file_list {files_f} {
    if {![file isfile $files_f]} {
        error "$files_f does not exist: the RTL's ordered source list is needed"
    }
    set fh [open $files_f r]
    set text [read $fh]
    close $fh
    set dir [file dirname [file normalize $files_f]]
    set sources {}
    set lineno 0
    foreach raw [split $text "\n"] {
        incr lineno
        set line $raw
        foreach comment {"//" "#"} {
            set cut [string first $comment $line]
            if {$cut >= 0} {
                set line [string range $line 0 [expr {$cut - 1}]]
            }
        }
        set line [string trim $line]
        if {$line eq "" || [string index $line 0] in {+ -}} {
            continue
        }
        set path [file normalize [file join $dir $line]]
        if {![file isfile $path]} {
            error "$files_f:$lineno names $line, which does not exist ($path)"
        }
        lappend sources $path
    }
    if {[llength $sources] == 0} {
        error "$files_f lists no source files"
    }
    return $sources
}

# A size as Vivado writes it (65536, 0x10000, 64K, 1T) in bytes.
proc sps_size_bytes {text} {
    set text [string trim $text]
    set units {K 10 M 20 G 30 T 40 P 50 E 60}
    set unit [string toupper [string index $text end]]
    if {[dict exists $units $unit]} {
        set number [string range $text 0 end-1]
        if {![string is wideinteger -strict $number]} {
            error "'$text' is not a size"
        }
        return [expr {$number << [dict get $units $unit]}]
    }
    if {![string is wideinteger -strict $text] && ![regexp {^0[xX][0-9a-fA-F]+$} $text]} {
        error "'$text' is not a size"
    }
    return [expr {$text + 0}]
}

# The bus parameter `name` of bus interface `busif`, set to `value`; inference may have created it already
# (POLARITY of a reset whose name ends in n, SENSITIVITY of an interrupt), and adding it twice is an error.
proc sps_set_bus_parameter {busif name value} {
    set param [ipx::get_bus_parameters $name -of_objects $busif -quiet]
    if {$param eq ""} {
        set param [ipx::add_bus_parameter $name $busif]
    }
    set_property value $value $param
}

# Package sps_ip_top (sps_top and `sources`) into `ip_dir`, with the generics in `params` (a dict, e.g. Rows 16
# Cols 16); `axi_bits` is the AXI master's data width (the width of its address space).
proc sps_package_ip {sources ip_dir part params work_dir axi_bits} {
    file delete -force $ip_dir
    file mkdir $ip_dir
    create_project sps_ip_pack $work_dir -part $part -force
    add_files -norecurse $sources
    add_files -norecurse [list $::sps_ip_top_file]
    set_property top $::sps_ip_top_module [current_fileset]
    update_compile_order -fileset sources_1

    ipx::package_project -root_dir $ip_dir -vendor $::sps_ip_vendor -library $::sps_ip_library \
        -taxonomy /UserIP -import_files -set_current true
    set core [ipx::current_core]
    set_property name $::sps_ip_name $core
    set_property version $::sps_ip_version $core
    set_property display_name "SPS accelerator (sparse periodic systolic CNN core)" $core
    set_property description "Runs a whole layer program of int8 CONV/POOL/ADD descriptors from DDR after one start" $core
    set_property supported_families {zynquplus Production} $core

    # The build configuration becomes the IP's default generics (sps_pynq/hw/config.py names them).
    dict for {name value} $params {
        set user [ipx::get_user_parameters $name -of_objects $core -quiet]
        if {$user eq ""} {
            error "sps_ip_top has no parameter $name: check hw_src/vivado/sps_ip_top.v against the build configuration"
        }
        set_property value $value $user
        set_property value $value [ipx::get_hdl_parameters $name -of_objects $core]
    }

    # Interfaces: drop whatever the packager guessed (bus interfaces, memory maps, address spaces), then infer them
    # explicitly from the port names and give each the maps it needs.
    foreach busif [ipx::get_bus_interfaces -of_objects $core] {
        ipx::remove_bus_interface [get_property name $busif] $core
    }
    foreach mm [ipx::get_memory_maps -of_objects $core] {
        ipx::remove_memory_map [get_property name $mm] $core
    }
    foreach space [ipx::get_address_spaces -of_objects $core] {
        ipx::remove_address_space [get_property name $space] $core
    }
    ipx::infer_bus_interfaces xilinx.com:interface:aximm_rtl:1.0 $core
    ipx::infer_bus_interface clk_i xilinx.com:signal:clock_rtl:1.0 $core
    ipx::infer_bus_interface rst_ni xilinx.com:signal:reset_rtl:1.0 $core
    ipx::infer_bus_interface irq_o xilinx.com:signal:interrupt_rtl:1.0 $core
    foreach name {s_axil m_axi clk_i rst_ni irq_o} {
        if {[ipx::get_bus_interfaces $name -of_objects $core -quiet] eq ""} {
            error "IP packaging: interface $name was not inferred; check the port names of sps_ip_top"
        }
    }
    ipx::associate_bus_interfaces -busif s_axil -clock clk_i $core
    ipx::associate_bus_interfaces -busif m_axi -clock clk_i $core
    ipx::associate_bus_interfaces -clock clk_i -reset rst_ni $core

    sps_set_bus_parameter [ipx::get_bus_interfaces rst_ni -of_objects $core] POLARITY ACTIVE_LOW
    sps_set_bus_parameter [ipx::get_bus_interfaces irq_o -of_objects $core] SENSITIVITY LEVEL_HIGH

    # The register window the PS sees on s_axil.
    set mm [ipx::add_memory_map s_axil $core]
    set_property slave_memory_map_ref s_axil [ipx::get_bus_interfaces s_axil -of_objects $core]
    set block [ipx::add_address_block $::sps_reg_block_name $mm]
    set_property range $::sps_reg_block_range $block
    set_property width 32 $block
    set_property usage register $block

    # The address space m_axi reaches: 2^40 bytes, as wide as its address ports (checked, not assumed).
    set addr_left [get_property SIZE_LEFT [ipx::get_ports m_axi_araddr -of_objects $core]]
    if {$addr_left + 1 != $::sps_axi_addr_bits} {
        error "IP packaging: m_axi_araddr has [expr {$addr_left + 1}] bits, the address space is made for\
               $::sps_axi_addr_bits: change both together (hw_src/vivado/sps_ip_top.v, package_ip.tcl)"
    }
    set space_bytes [expr {1 << $::sps_axi_addr_bits}]
    set space [ipx::add_address_space m_axi $core]
    set_property range $space_bytes $space
    set_property width $axi_bits $space
    set m_axi [ipx::get_bus_interfaces m_axi -of_objects $core]
    set_property master_address_space_ref m_axi $m_axi
    if {[get_property master_address_space_ref $m_axi] ne "m_axi"} {
        error "IP packaging: m_axi does not reference its address space (master_address_space_ref is\
               '[get_property master_address_space_ref $m_axi]')"
    }
    set range [sps_size_bytes [get_property range [ipx::get_address_spaces m_axi -of_objects $core]]]
    if {$range != $space_bytes} {
        error "IP packaging: the m_axi address space is $range bytes, expected $space_bytes (2^$::sps_axi_addr_bits)"
    }

    ipx::create_xgui_files $core
    ipx::update_checksums $core
    ipx::check_integrity $core
    ipx::save_core $core
    ipx::unload_core $core
    close_project
}
