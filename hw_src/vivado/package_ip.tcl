# Copyright sps-pynq contributors. Licensed under Apache-2.0.
# Package the SPS core (top module sps_top, sources from hw_src/rtl/files.f) as a Vivado IP, sps-pynq:sps:sps_core:1.0.
#
# Sourced by build_overlay.tcl; defines procedures only. The IP's interfaces come from the port prefixes, as in
# Alex Forencich's verilog-axi: s_axil_* (AXI4-Lite slave, registers), m_axi_* (AXI4 master, DDR), plus clk_i,
# rst_ni (active low, synchronous to clk_i) and irq_o (level, active high).

# The IP's identity and its register block come from sps_names.tcl (generated from sps_pynq/hw/ip.py). The
# core decodes 8 address bits (sps_pynq/hw/regmap.py ADDR_BITS); it is given a 64 KiB window, the smallest the
# address editor handles comfortably, and aliases inside it.

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

# Package sps_top from `sources` into `ip_dir`, with the generics in `params` (a dict, e.g. Rows 16 Cols 16).
proc sps_package_ip {sources ip_dir part params work_dir} {
    file delete -force $ip_dir
    file mkdir $ip_dir
    create_project sps_ip_pack $work_dir -part $part -force
    add_files -norecurse $sources
    set_property top sps_top [current_fileset]
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
        set user [ipx::get_user_parameters $name -of_objects $core]
        if {$user eq ""} {
            error "sps_top has no parameter $name: check hw_src/rtl/sps_top.sv against the build configuration"
        }
        set_property value $value $user
        set_property value $value [ipx::get_hdl_parameters $name -of_objects $core]
    }

    # Interfaces: drop whatever the packager guessed, then infer them explicitly from the port names.
    foreach busif [ipx::get_bus_interfaces -of_objects $core] {
        ipx::remove_bus_interface [get_property name $busif] $core
    }
    foreach mm [ipx::get_memory_maps -of_objects $core] {
        ipx::remove_memory_map [get_property name $mm] $core
    }
    ipx::infer_bus_interfaces xilinx.com:interface:aximm_rtl:1.0 $core
    ipx::infer_bus_interface clk_i xilinx.com:signal:clock_rtl:1.0 $core
    ipx::infer_bus_interface rst_ni xilinx.com:signal:reset_rtl:1.0 $core
    ipx::infer_bus_interface irq_o xilinx.com:signal:interrupt_rtl:1.0 $core
    foreach name {s_axil m_axi clk_i rst_ni irq_o} {
        if {[ipx::get_bus_interfaces $name -of_objects $core] eq ""} {
            error "IP packaging: interface $name was not inferred; check the port names of sps_top"
        }
    }
    ipx::associate_bus_interfaces -busif s_axil -clock clk_i $core
    ipx::associate_bus_interfaces -busif m_axi -clock clk_i $core
    ipx::associate_bus_interfaces -clock clk_i -reset rst_ni $core

    set rst [ipx::get_bus_interfaces rst_ni -of_objects $core]
    set_property value ACTIVE_LOW [ipx::add_bus_parameter POLARITY $rst]
    set irq [ipx::get_bus_interfaces irq_o -of_objects $core]
    set_property value LEVEL_HIGH [ipx::add_bus_parameter SENSITIVITY $irq]

    # The register window the PS sees on s_axil.
    set mm [ipx::add_memory_map s_axil $core]
    set_property slave_memory_map_ref s_axil [ipx::get_bus_interfaces s_axil -of_objects $core]
    set block [ipx::add_address_block $::sps_reg_block_name $mm]
    set_property range $::sps_reg_block_range $block
    set_property width 32 $block
    set_property usage register $block

    ipx::create_xgui_files $core
    ipx::update_checksums $core
    ipx::check_integrity $core
    ipx::save_core $core
    ipx::unload_core $core
    close_project
}
