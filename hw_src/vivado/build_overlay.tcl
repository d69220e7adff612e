# Copyright sps-pynq contributors. Licensed under Apache-2.0.
# Build the SPS overlay for PYNQ: package the core as IP, create the block design, implement, write the bitstream,
# and copy sps.bit + sps.hwh to overlays/<board>/.
#
#   vivado -mode batch -source hw_src/vivado/build_overlay.tcl -tclargs [key=value ...]
#   (usually through `make -C hw_src overlay`, which passes the build configuration's parameters)
#
# key=value arguments (defaults in brackets):
#   board=zcu104                       overlay folder name under overlays/
#   part=xczu7ev-ffvc1156-2-e          FPGA part
#   board_part=xilinx.com:zcu104:part0:1.1   Vivado board files (PS preset); they ship with Vivado
#   clk_mhz=150                        requested pl_clk0 = core clock, whole MHz (IOPLL 1500 MHz / 10)
#   jobs=4                             parallel Vivado runs
#   build=<repo>/build/vivado/<board>  work folder (project, IP repository, reports)
#   out=<repo>/overlays/<board>        where sps.bit and sps.hwh are copied
#   param.<Name>=<value>               generics of sps_ip_top, e.g. param.Rows=16 (default: its zcu104 defaults)
#   allow_timing_violation=0           1: copy the outputs even if the design misses timing (for bring-up only)
#
# Written for Vivado 2024.1 (the version of PYNQ's own ZCU104 base.tcl); it has not been run in Vivado by its
# authors (see overlays/README.md). Other versions print a warning and try anyway.

set script_dir [file dirname [file normalize [info script]]]
set repo [file normalize [file join $script_dir .. ..]]

# -- arguments ---------------------------------------------------------------------------------------------------
array set opt {
    board zcu104
    part xczu7ev-ffvc1156-2-e
    board_part xilinx.com:zcu104:part0:1.1
    clk_mhz 150
    jobs 4
    build ""
    out ""
    allow_timing_violation 0
}
set params [dict create]
foreach arg $argv {
    set eq [string first "=" $arg]
    if {$eq < 1} {
        error "build_overlay.tcl: argument '$arg' is not key=value (known keys: [lsort [array names opt]] param.<Name>)"
    }
    set key [string range $arg 0 [expr {$eq - 1}]]
    set value [string range $arg [expr {$eq + 1}] end]
    if {[string match "param.*" $key]} {
        dict set params [string range $key 6 end] $value
    } elseif {[info exists opt($key)]} {
        set opt($key) $value
    } else {
        error "build_overlay.tcl: unknown key '$key' (known: [lsort [array names opt]] param.<Name>)"
    }
}
if {$opt(build) eq ""} {
    set opt(build) [file join $repo build vivado $opt(board)]
}
if {$opt(out) eq ""} {
    set opt(out) [file join $repo overlays $opt(board)]
}
set build [file normalize $opt(build)]
set out [file normalize $opt(out)]
set axi_bits [expr {[dict exists $params AxiDataWidth] ? [dict get $params AxiDataWidth] : 128}]

set written_for 2024.1
set vivado_version [version -short]
if {$vivado_version ne $written_for} {
    puts "WARNING: Vivado $vivado_version; these scripts were written for Vivado $written_for (IP versions, the\
          board preset and Tcl options may differ)"
}

source [file join $script_dir sps_names.tcl]
source [file join $script_dir package_ip.tcl]
source [file join $script_dir block_design.tcl]
set clk_achieved [sps_check_clock $opt(clk_mhz)]

# -- 1. the core as IP -----------------------------------------------------------------------------------------
set sources [sps_read_file_list [file join $repo hw_src rtl files.f]]
set ip_dir [file join $build ip_repo sps_core]
puts "== packaging sps_ip_top + sps_top ([llength $sources] files) as $::sps_ip_vendor:$::sps_ip_library:$::sps_ip_name:$::sps_ip_version"
sps_package_ip $sources $ip_dir $opt(part) $params [file join $build ip_pack] $axi_bits

# -- 2. project and block design -------------------------------------------------------------------------------
set proj_name "sps_$opt(board)"
set proj_dir [file join $build project]
create_project $proj_name $proj_dir -part $opt(part) -force
if {[get_board_parts -quiet $opt(board_part)] eq ""} {
    error "board part $opt(board_part) is not installed: install the ZCU104 board files (Vivado > Tools > \
           Vivado Store > Boards) or pass board_part=<installed part>"
}
set_property board_part $opt(board_part) [current_project]
set_property ip_repo_paths [list [file join $build ip_repo]] [current_project]
update_ip_catalog -rebuild

puts "== block design sps: pl_clk0 $opt(clk_mhz) MHz (about $clk_achieved), HP0 $axi_bits-bit, core at $::sps_core_base"
sps_create_block_design sps $opt(clk_mhz) $axi_bits
set bd_file [get_files sps.bd]
generate_target all $bd_file
# -import adds the generated sps_wrapper.v wherever this Vivado version writes it (.srcs or .gen), as FINN does.
make_wrapper -files $bd_file -import -fileset sources_1 -top
set_property top sps_wrapper [current_fileset]
update_compile_order -fileset sources_1

# -- 3. synthesis, implementation, bitstream -------------------------------------------------------------------
puts "== implementing (jobs=$opt(jobs)); this takes about an hour"
launch_runs impl_1 -to_step write_bitstream -jobs $opt(jobs)
wait_on_run impl_1
set impl_dir [get_property DIRECTORY [get_runs impl_1]]
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    error "implementation failed ([get_property STATUS [get_runs impl_1]]): see $impl_dir/runme.log"
}
open_run impl_1
file mkdir $build
report_utilization -file [file join $build utilization.rpt]
report_timing_summary -max_paths 10 -file [file join $build timing_summary.rpt]
set wns [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -setup]]
set whs [get_property SLACK [get_timing_paths -max_paths 1 -nworst 1 -hold]]
foreach {what slack} [list setup $wns hold $whs] {
    if {![string is double -strict $slack]} {
        error "no $what timing path in the routed design (slack '$slack'): is pl_clk0 constrained? see\
               [file join $build timing_summary.rpt]"
    }
}
puts "== timing at $opt(clk_mhz) MHz: WNS $wns ns, WHS $whs ns (reports in $build)"
if {($wns < 0 || $whs < 0) && !$opt(allow_timing_violation)} {
    error "the design misses timing at $opt(clk_mhz) MHz (WNS $wns ns, WHS $whs ns): see \
           [file join $build timing_summary.rpt]; rebuild with a lower CLK_MHZ (e.g. 125 = IOPLL / 12)"
}

# -- 4. the overlay files PYNQ loads: sps.bit and sps.hwh side by side -----------------------------------------
set bit_file [file join $impl_dir sps_wrapper.bit]
set hwh_file [file join $proj_dir $proj_name.gen sources_1 bd sps hw_handoff sps.hwh]
foreach f [list $bit_file $hwh_file] {
    if {![file isfile $f]} {
        error "expected build output $f is missing"
    }
}
file mkdir $out
file copy -force $bit_file [file join $out sps.bit]
file copy -force $hwh_file [file join $out sps.hwh]
puts "== wrote [file join $out sps.bit] and [file join $out sps.hwh]"
