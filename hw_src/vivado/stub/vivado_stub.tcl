# Copyright sps-pynq contributors. Licensed under Apache-2.0.
# Dry run of the overlay scripts in plain tclsh, for machines without Vivado (CI, reviewers):
#
#   tclsh hw_src/vivado/stub/vivado_stub.tcl <calls.log> hw_src/vivado/build_overlay.tcl [key=value ...]
#
# Every Vivado command the scripts may use is defined here as a stand-in that records its call (one Tcl list
# per line in calls.log) and returns something plausible: object names, "100%" for run progress, a positive
# slack. Any other command is an error, so a misspelt or unknown Vivado command fails the dry run, as do Tcl
# syntax errors, undefined variables and wrong `proc` arities. `wait_on_run` leaves placeholder
# sps_wrapper.bit / sps.hwh files where Vivado writes them (text "VIVADO STUB"), so the final copy is exercised.
# It checks the scripts' Tcl and plumbing, not Vivado's acceptance of property names or values.

if {[llength $argv] < 2} {
    puts stderr "usage: tclsh vivado_stub.tcl <calls.log> <script.tcl> \[args ...\]"
    exit 2
}
set ::stub_log [open [lindex $argv 0] w]
set ::stub_script [file normalize [lindex $argv 1]]
set ::stub_project_dir ""
set ::stub_project_name ""

proc stub_record {name arguments} {
    puts $::stub_log [linsert $arguments 0 $name]
    flush $::stub_log
}

# First word that is not an option (the object a get_*/create_* command names), else a made-up object name.
proc stub_object {name arguments} {
    foreach a $arguments {
        if {![string match "-*" $a]} {
            return $a
        }
    }
    return "stub<$name>"
}

proc stub_result {name arguments} {
    switch -glob -- $name {
        version { return "2023.2" }
        create_project {
            set words {}
            foreach a $arguments {
                if {![string match "-*" $a]} { lappend words $a }
            }
            set ::stub_project_name [lindex $words 0]
            set ::stub_project_dir [file normalize [lindex $words 1]]
            return $::stub_project_name
        }
        get_property {
            set prop [string toupper [lindex $arguments 0]]
            switch -- $prop {
                PROGRESS { return "100%" }
                STATUS { return "write_bitstream Complete!" }
                SLACK { return "0.250" }
                DIRECTORY { return [file join $::stub_project_dir "$::stub_project_name.runs" impl_1] }
                default { return "stub_$prop" }
            }
        }
        wait_on_run {
            set impl [file join $::stub_project_dir "$::stub_project_name.runs" impl_1]
            set hwh [file join $::stub_project_dir "$::stub_project_name.gen" sources_1 bd sps hw_handoff]
            file mkdir $impl $hwh
            foreach f [list [file join $impl sps_wrapper.bit] [file join $hwh sps.hwh]] {
                set fh [open $f w]
                puts $fh "VIVADO STUB"
                close $fh
            }
            return ""
        }
        make_wrapper { return [file join $::stub_project_dir sps_wrapper.v] }
        create_bd_cell { return [lindex $arguments end] }
        get_board_parts -
        get_bd_* -
        get_runs -
        get_timing_paths -
        current_* -
        ipx::current_core -
        ipx::get_* -
        get_files -
        ipx::add_* { return [stub_object $name $arguments] }
        default { return "" }
    }
}

# Vivado commands the overlay scripts may use (UG835). Keep this list to real commands only.
set ::stub_commands {
    add_files apply_bd_automation assign_bd_address close_project connect_bd_intf_net connect_bd_net
    create_bd_cell create_bd_design create_project current_fileset current_project generate_target
    get_bd_addr_segs get_bd_addr_spaces get_bd_cells get_bd_intf_pins get_bd_pins get_board_parts get_files
    get_property get_runs get_timing_paths launch_runs make_wrapper open_run report_timing_summary
    report_utilization save_bd_design set_property update_compile_order update_ip_catalog validate_bd_design
    version wait_on_run
    ipx::add_address_block ipx::add_bus_parameter ipx::add_memory_map ipx::associate_bus_interfaces
    ipx::check_integrity ipx::create_xgui_files ipx::current_core ipx::get_bus_interfaces
    ipx::get_hdl_parameters ipx::get_memory_maps ipx::get_user_parameters ipx::infer_bus_interface
    ipx::infer_bus_interfaces ipx::package_project ipx::remove_bus_interface ipx::remove_memory_map
    ipx::save_core ipx::unload_core ipx::update_checksums
}
namespace eval ::ipx {}
foreach cmd $::stub_commands {
    proc ::$cmd {args} [format {
        stub_record %s $args
        return [stub_result %s $args]
    } [list $cmd] [list $cmd]]
}

# Anything else is not Vivado (or not in the list above): fail loudly instead of tclsh's exec fallback.
rename unknown stub_tcl_unknown
proc unknown {args} {
    error "vivado stub: unknown command '[lindex $args 0]' (not a Vivado command the stub knows)"
}

set argv [lrange $argv 2 end]
set argc [llength $argv]
set ::argv0 $::stub_script
if {[catch {uplevel #0 [list source $::stub_script]} message options]} {
    puts stderr "vivado stub: $::stub_script failed: $message"
    puts stderr [dict get $options -errorinfo]
    close $::stub_log
    exit 1
}
close $::stub_log
puts "vivado stub: $::stub_script ran to the end"
