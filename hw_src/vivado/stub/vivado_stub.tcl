# Copyright sps-pynq contributors. Licensed under Apache-2.0.
# Dry run of the overlay scripts in plain tclsh, for machines without Vivado (CI, reviewers):
#
#   tclsh hw_src/vivado/stub/vivado_stub.tcl <calls.log> hw_src/vivado/build_overlay.tcl [key=value ...]
#
# Every Vivado command the scripts may use is a stand-in that records its call (one Tcl list per line in calls.log)
# and returns something plausible. What it checks, without Vivado:
#   - commands, options and properties against vivado_api.tcl (the list of what Vivado 2024.1 documents, with
#     sources): a command, an option or a property not listed there is an error;
#   - Tcl errors, undefined variables, wrong `proc` arities, and the file plumbing (files.f, the copies at the end);
#   - the IP packaging against the packaged top's HDL: the top must be a Verilog file (UG1118), its parameters and
#     ports are read from it, so a param.<Name> it lacks, an interface whose ports are missing, or an address
#     width that is not the address space's fails here as it would in Vivado;
#   - the address map: the core's master must have segments after assign_bd_address.
# It does not check Vivado's verdict on property values, the IP catalog, or the design itself.
#
# Environment (to exercise the scripts' own checks):
#   SPS_STUB_VIVADO_VERSION   what `version -short` returns (default 2024.1)
#   SPS_STUB_WNS, SPS_STUB_WHS  setup / hold slack of the routed design in ns (default 0.250 / 0.010)
#   SPS_STUB_PROGRESS         PROGRESS of impl_1 after wait_on_run (default 100%)
# `wait_on_run` leaves placeholder sps_wrapper.bit / sps.hwh files where Vivado writes them (text "VIVADO STUB").

if {[llength $argv] < 2} {
    puts stderr "usage: tclsh vivado_stub.tcl <calls.log> <script.tcl> \[args ...\]"
    exit 2
}
set ::stub_log [open [lindex $argv 0] w]
set ::stub_script [file normalize [lindex $argv 1]]
set ::stub_dir [file dirname [file normalize [info script]]]
source [file join $::stub_dir vivado_api.tcl]

proc stub_env {name default} {
    if {[info exists ::env($name)] && $::env($name) ne ""} {
        return $::env($name)
    }
    return $default
}

# -- state -----------------------------------------------------------------------------------------------------
set ::stub_project_dir ""
set ::stub_project_name ""
set ::stub_sources {}                  ;# files added to the current project
set ::stub_top ""                      ;# top module of the current project
set ::stub_hdl_params {}               ;# dict: parameter -> default, of the packaged top
set ::stub_hdl_ports {}                ;# dict: port -> width (an integer, or "" when the width is an expression)
set ::stub_ipx {}                      ;# dict: ipx class -> list of names in the current core
set ::stub_auto_assigned 0             ;# assign_bd_address without arguments has run
array set ::stub_class {}              ;# handle -> list of classes
array set ::stub_prop {}               ;# handle,property (lower case) -> value

proc stub_fail {message} {
    error "vivado stub: $message"
}

proc stub_record {name arguments} {
    puts $::stub_log [linsert $arguments 0 $name]
    flush $::stub_log
}

proc stub_register {handles class} {
    foreach h $handles {
        if {![info exists ::stub_class($h)] || [lsearch -exact $::stub_class($h) $class] < 0} {
            lappend ::stub_class($h) $class
        }
    }
    return $handles
}

# Split `arguments` of command `name` into options and positional words, rejecting options vivado_api.tcl does not
# list for it.
proc stub_parse {name arguments} {
    set spec [dict get $::stub_api_commands $name options]
    set opts [dict create]
    set pos {}
    for {set i 0} {$i < [llength $arguments]} {incr i} {
        set word [lindex $arguments $i]
        if {[regexp {^-[A-Za-z_]+$} $word]} {
            if {![dict exists $spec $word]} {
                stub_fail "$name has no option $word (known: [lsort [dict keys $spec]])"
            }
            if {[dict get $spec $word] == 0} {
                dict set opts $word 1
            } else {
                incr i
                if {$i >= [llength $arguments]} {
                    stub_fail "$name $word needs a value"
                }
                dict set opts $word [lindex $arguments $i]
            }
        } else {
            lappend pos $word
        }
    }
    return [list $opts $pos]
}

# -- properties ------------------------------------------------------------------------------------------------
proc stub_classes {handle} {
    if {[info exists ::stub_class($handle)]} {
        return $::stub_class($handle)
    }
    stub_fail "property of '$handle', which no stubbed command returned (not a Vivado object here)"
}

proc stub_allowed {handle property mode} {
    set wanted [string tolower $property]
    set known {}
    foreach class [stub_classes $handle] {
        if {![dict exists $::stub_api_properties $class]} {
            stub_fail "no properties are listed for $class objects (vivado_api.tcl)"
        }
        set names [dict get $::stub_api_properties $class set]
        if {$mode eq "get"} {
            set names [concat $names [dict get $::stub_api_properties $class get]]
        }
        foreach n $names {
            lappend known $n
            if {[string tolower $n] eq $wanted} {
                return
            }
        }
    }
    set verb [expr {$mode eq "set" ? "set" : "read"}]
    stub_fail "cannot $verb property $property of $handle ([join [stub_classes $handle] /]): not a property\
               vivado_api.tcl lists for it (known: [lsort -unique $known])"
}

proc stub_set_property {arguments} {
    lassign [stub_parse set_property $arguments] opts pos
    if {[dict exists $opts -dict]} {
        set pairs [dict get $opts -dict]
        set objects [concat {*}$pos]
        if {[llength $pairs] % 2} {
            stub_fail "set_property -dict needs name value pairs, got [llength $pairs] words"
        }
    } else {
        if {[llength $pos] < 3} {
            stub_fail "set_property needs a name, a value and objects, got: $arguments"
        }
        set pairs [lrange $pos 0 1]
        set objects [concat {*}[lrange $pos 2 end]]
    }
    if {[llength $objects] == 0} {
        stub_fail "set_property [lindex $pairs 0] on no object"
    }
    foreach obj $objects {
        foreach {property value} $pairs {
            stub_allowed $obj $property set
            set ::stub_prop($obj,[string tolower $property]) $value
            if {[string tolower $property] eq "top"} {
                set ::stub_top $value
            }
        }
    }
    return ""
}

proc stub_get_property {arguments} {
    lassign [stub_parse get_property $arguments] opts pos
    lassign $pos property obj
    set obj [lindex $obj 0]
    stub_allowed $obj $property get
    set key "$obj,[string tolower $property]"
    if {[info exists ::stub_prop($key)]} {
        return $::stub_prop($key)
    }
    set classes [stub_classes $obj]
    switch -- [string tolower $property] {
        name { return $obj }
        progress { return [stub_env SPS_STUB_PROGRESS "100%"] }
        status { return "write_bitstream Complete!" }
        directory { return [file join $::stub_project_dir "$::stub_project_name.runs" $obj] }
        slack {
            if {$obj eq "timing_path_hold"} {
                return [stub_env SPS_STUB_WHS 0.010]
            }
            return [stub_env SPS_STUB_WNS 0.250]
        }
        size_left -
        size_right {
            set width [dict get $::stub_hdl_ports $obj]
            if {$width eq ""} {
                stub_fail "the width of port $obj is an expression in the HDL; the stub reads literal widths only"
            }
            return [expr {[string tolower $property] eq "size_left" ? $width - 1 : 0}]
        }
    }
    return ""
}

# -- the packaged top's HDL ------------------------------------------------------------------------------------
# Parameters (`parameter [integer] Name = value`) and ports (`input|output wire [hi:0] name`) of module `top` in
# the Verilog file of the current project that defines it.
proc stub_read_top {top} {
    set found ""
    foreach f $::stub_sources {
        if {![file isfile $f]} {
            continue
        }
        set fh [open $f r]
        set text [read $fh]
        close $fh
        if {[regexp "(^|\\n)\\s*module\\s+$top\\y" $text]} {
            set found $f
            break
        }
    }
    if {$found eq ""} {
        stub_fail "ipx::package_project: no added source defines the top module '$top'"
    }
    if {[file extension $found] ne ".v"} {
        stub_fail "ipx::package_project: the top $top is in [file tail $found]; UG1118 asks for a Verilog or VHDL\
                   top (a wrapper) when the design is SystemVerilog"
    }
    set ::stub_hdl_params [dict create]
    foreach {_ name value} [regexp -all -inline {parameter\s+(?:integer\s+)?(\w+)\s*=\s*([^,\s)]+)} $text] {
        dict set ::stub_hdl_params $name $value
    }
    set ::stub_hdl_ports [dict create]
    set decl {(?:input|output|inout)\s+(?:wire\s+|reg\s+)?(?:\[([^\]]+)\]\s*)?(\w+)}
    foreach {_ range name} [regexp -all -inline $decl $text] {
        set width 1
        if {$range ne ""} {
            if {[regexp {^\s*(\d+)\s*:\s*0\s*$} $range -> hi]} {
                set width [expr {$hi + 1}]
            } else {
                set width ""
            }
        }
        dict set ::stub_hdl_ports $name $width
    }
}

# AXI interface prefixes of the top's ports (what inference of aximm_rtl finds).
proc stub_axi_prefixes {} {
    set prefixes {}
    foreach port [dict keys $::stub_hdl_ports] {
        if {[regexp {^(\w+)_(araddr|awaddr)$} $port -> prefix] && [lsearch -exact $prefixes $prefix] < 0} {
            lappend prefixes $prefix
        }
    }
    return $prefixes
}

proc stub_ipx_names {class} {
    return [expr {[dict exists $::stub_ipx $class] ? [dict get $::stub_ipx $class] : {}}]
}

proc stub_ipx_add {class name} {
    if {[lsearch -exact [stub_ipx_names $class] $name] >= 0} {
        stub_fail "$class $name exists already in the core"
    }
    dict lappend ::stub_ipx $class $name
    stub_register $name $class
    return $name
}

proc stub_ipx_remove {class name} {
    set names [stub_ipx_names $class]
    set at [lsearch -exact $names $name]
    if {$at < 0} {
        stub_fail "no $class $name in the core"
    }
    dict set ::stub_ipx $class [lreplace $names $at $at]
    return ""
}

# ipx::get_* : the named object (or "" / an error when it does not exist), else every object of the class.
proc stub_ipx_get {class opts pos} {
    set quiet [dict exists $opts -quiet]
    switch -- $class {
        ipx_user_parameter - ipx_hdl_parameter { set names [dict keys $::stub_hdl_params] }
        ipx_port { set names [dict keys $::stub_hdl_ports] }
        default { set names [stub_ipx_names $class] }
    }
    if {[llength $pos] == 0} {
        return [stub_register $names $class]
    }
    set found {}
    foreach name [concat {*}$pos] {
        set match [lsearch -all -inline -glob $names $name]
        if {[llength $match] == 0 && !$quiet} {
            stub_fail "no $class named $name (there are: $names)"
        }
        lappend found {*}$match
    }
    return [stub_register $found $class]
}

# -- the commands ----------------------------------------------------------------------------------------------
proc stub_result {name arguments} {
    lassign [stub_parse $name $arguments] opts pos
    switch -- $name {
        version { return [stub_env SPS_STUB_VIVADO_VERSION 2024.1] }
        create_project {
            set ::stub_project_name [lindex $pos 0]
            set ::stub_project_dir [file normalize [lindex $pos 1]]
            set ::stub_sources {}
            set ::stub_top ""
            return [stub_register $::stub_project_name project]
        }
        close_project {
            set ::stub_hdl_params {}
            set ::stub_hdl_ports {}
            set ::stub_ipx {}
            return ""
        }
        current_project { return [stub_register $::stub_project_name project] }
        current_fileset { return [stub_register sources_1 fileset] }
        add_files {
            lappend ::stub_sources {*}[concat {*}$pos]
            return ""
        }
        set_property { return [stub_set_property $arguments] }
        get_property { return [stub_get_property $arguments] }
        ipx::package_project {
            if {$::stub_top eq ""} {
                stub_fail "ipx::package_project before `set_property top ... \[current_fileset\]`"
            }
            stub_read_top $::stub_top
            set ::stub_ipx [dict create]
            # What the packager infers on its own (names as it gives them; the scripts remove and re-infer them).
            foreach prefix [stub_axi_prefixes] {
                stub_ipx_add ipx_bus_interface $prefix
                if {[string match m_* $prefix]} {
                    stub_ipx_add ipx_address_space $prefix
                } else {
                    stub_ipx_add ipx_memory_map $prefix
                }
            }
            return ""
        }
        ipx::current_core { return [stub_register core ipx_core] }
        ipx::get_bus_interfaces { return [stub_ipx_get ipx_bus_interface $opts $pos] }
        ipx::get_memory_maps { return [stub_ipx_get ipx_memory_map $opts $pos] }
        ipx::get_address_spaces { return [stub_ipx_get ipx_address_space $opts $pos] }
        ipx::get_user_parameters { return [stub_ipx_get ipx_user_parameter $opts $pos] }
        ipx::get_hdl_parameters { return [stub_ipx_get ipx_hdl_parameter $opts $pos] }
        ipx::get_ports { return [stub_ipx_get ipx_port $opts $pos] }
        ipx::get_bus_parameters {
            set busif [lindex [dict get $opts -of_objects] 0]
            set names {}
            foreach n [concat {*}$pos] {
                lappend names "$busif.$n"
            }
            return [stub_ipx_get ipx_bus_parameter $opts $names]
        }
        ipx::remove_bus_interface { return [stub_ipx_remove ipx_bus_interface [lindex $pos 0]] }
        ipx::remove_memory_map { return [stub_ipx_remove ipx_memory_map [lindex $pos 0]] }
        ipx::remove_address_space { return [stub_ipx_remove ipx_address_space [lindex $pos 0]] }
        ipx::infer_bus_interfaces {
            if {[lindex $pos 0] ne "xilinx.com:interface:aximm_rtl:1.0"} {
                stub_fail "the stub infers aximm_rtl interfaces only, not [lindex $pos 0]"
            }
            foreach prefix [stub_axi_prefixes] {
                stub_ipx_add ipx_bus_interface $prefix
            }
            return ""
        }
        ipx::infer_bus_interface {
            foreach port [concat {*}[lindex $pos 0]] {
                if {![dict exists $::stub_hdl_ports $port]} {
                    stub_fail "ipx::infer_bus_interface: the top has no port $port"
                }
            }
            return [stub_ipx_add ipx_bus_interface [lindex [lindex $pos 0] 0]]
        }
        ipx::add_bus_parameter {
            return [stub_ipx_add ipx_bus_parameter "[lindex $pos 1].[lindex $pos 0]"]
        }
        ipx::add_memory_map { return [stub_ipx_add ipx_memory_map [lindex $pos 0]] }
        ipx::add_address_block { return [stub_ipx_add ipx_address_block [lindex $pos 0]] }
        ipx::add_address_space { return [stub_ipx_add ipx_address_space [lindex $pos 0]] }
        create_bd_cell {
            set cell [lindex $pos end]
            stub_register $cell bd_cell
            if {[dict exists $opts -vlnv]} {
                stub_register $cell "bd_cell:[lindex [split [dict get $opts -vlnv] :] 2]"
            }
            return $cell
        }
        get_bd_pins { return [stub_register [lindex $pos 0] bd_pin] }
        get_bd_intf_pins { return [stub_register [lindex $pos 0] bd_intf_pin] }
        get_bd_addr_spaces { return [stub_register [lindex $pos 0] bd_addr_space] }
        get_bd_addr_segs {
            if {[llength $pos]} {
                return [stub_register [lindex $pos 0] bd_addr_seg]
            }
            # The segments mapped into an address space: only after assign_bd_address has mapped everything.
            if {$::stub_auto_assigned && [dict exists $opts -of_objects]} {
                return [stub_register "[dict get $opts -of_objects]/SEG_stub" bd_addr_seg]
            }
            return ""
        }
        assign_bd_address {
            if {[llength $pos] == 0} {
                set ::stub_auto_assigned 1
            }
            return ""
        }
        get_board_parts { return [stub_register [lindex $pos 0] board_part] }
        get_files { return [stub_register [lindex $pos 0] file] }
        get_runs { return [stub_register [lindex $pos 0] run] }
        get_timing_paths {
            return [stub_register [expr {[dict exists $opts -hold] ? "timing_path_hold" : "timing_path_setup"}] timing_path]
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
        default { return "" }
    }
}

namespace eval ::ipx {}
foreach cmd [dict keys $::stub_api_commands] {
    proc ::$cmd {args} [format {
        stub_record %s $args
        return [stub_result %s $args]
    } [list $cmd] [list $cmd]]
}

# Anything else is not Vivado (or not in vivado_api.tcl): fail loudly instead of tclsh's exec fallback.
rename unknown stub_tcl_unknown
proc unknown {args} {
    error "vivado stub: unknown command '[lindex $args 0]' (not a Vivado command the stub knows; vivado_api.tcl\
           lists those with their sources)"
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
