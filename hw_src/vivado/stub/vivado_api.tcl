# Copyright sps-pynq contributors. Licensed under Apache-2.0.
# The Vivado Tcl the overlay scripts may use, for the dry run (vivado_stub.tcl): every command with the options it
# takes and every property the scripts set or read, each with where it is documented or used. Vivado 2024.1 is
# the target (build_overlay.tcl). Nothing here was checked against a running Vivado; the sources are:
#
#   UG835   Vivado Design Suite Tcl Command Reference Guide, 2024.1 (docs.amd.com/r/2024.1-English/
#           ug835-vivado-tcl-commands/<command>); the IPFlow (ipx::) commands are in the same guide
#   UG912   Vivado Properties Reference Guide (project, fileset, run, timing path properties)
#   UG1118  Creating and Packaging Custom IP (identification, bus interfaces, memory maps, address spaces)
#   PYNQ    Xilinx/PYNQ: boards/ZCU104/base/base.tcl (write_bd_tcl of Vivado 2024.1), build_bitstream.tcl
#   FINN    Xilinx/finn: src/finn/transformation/fpgadataflow/templates.py, create_stitched_ip.py
#   ADI     analogdevicesinc/hdl: library/scripts/adi_ip_xilinx.tcl, library/*/*_ip.tcl,
#           projects/scripts/adi_project_xilinx.tcl
#   HWH     a Vivado-written ZCU104 .hwh (PYNQ v2.4's boards/ZCU104/base/base.hwh, Vivado 2018.3): every CONFIG.X
#           of a cell is a <PARAMETER NAME="X"> of its <MODULE>
#
# Options: name -> number of values it takes (0 for a flag). The stub rejects a command not listed, an option not
# listed for its command, and a property not listed for the kind of object it is set on or read from.

# command {options {-option arity ...} source "..."}
set ::stub_api_commands {
    add_files                   {options {-fileset 1 -norecurse 0 -scan_for_includes 0 -quiet 0 -verbose 0}
                                 source "UG835 add_files; PYNQ build_bitstream.tcl; ADI adi_ip_xilinx.tcl"}
    apply_bd_automation         {options {-rule 1 -config 1 -dict 1 -opts 1 -quiet 0 -verbose 0}
                                 source "UG835 apply_bd_automation; FINN templates.py (rule zynq_ultra_ps_e, apply_board_preset)"}
    assign_bd_address           {options {-target_address_space 1 -boundary 0 -master_boundary 0 -external 0 -dict 1
                                          -import_from_file 1 -export_to_file 1 -export_gui_to_file 1 -offset 1
                                          -range 1 -base_high 1 -force 0 -quiet 0 -verbose 0}
                                 source "UG835 assign_bd_address; PYNQ base.tcl"}
    close_project               {options {-delete 0 -quiet 0 -verbose 0}
                                 source "UG835 close_project; FINN templates.py"}
    connect_bd_intf_net         {options {-intf_net 1 -boundary_type 1 -quiet 0 -verbose 0}
                                 source "UG835 connect_bd_intf_net; PYNQ base.tcl"}
    connect_bd_net              {options {-net 1 -boundary_type 1 -quiet 0 -verbose 0}
                                 source "UG835 connect_bd_net; PYNQ base.tcl"}
    create_bd_cell              {options {-type 1 -vlnv 1 -reference 1 -quiet 0 -verbose 0}
                                 source "UG835 create_bd_cell; PYNQ base.tcl"}
    create_bd_design            {options {-dir 1 -cell 1 -mode 1 -quiet 0 -verbose 0}
                                 source "UG835 create_bd_design; PYNQ base.tcl"}
    create_project              {options {-part 1 -force 0 -in_memory 0 -ip 0 -quiet 0 -verbose 0}
                                 source "UG835 create_project; PYNQ base.tcl; ADI adi_ip_xilinx.tcl"}
    current_fileset             {options {-constrset 0 -simset 0 -quiet 0 -verbose 0}
                                 source "UG835 current_fileset; PYNQ build_bitstream.tcl"}
    current_project             {options {-quiet 0 -verbose 0}
                                 source "UG835 current_project; PYNQ base.tcl"}
    generate_target             {options {-force 0 -quiet 0 -verbose 0}
                                 source "UG835 generate_target; ADI library/util_fir_dec/util_fir_dec_ip.tcl"}
    get_bd_addr_segs            {options {-of_objects 1 -filter 1 -hierarchical 0 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 get_bd_addr_segs; PYNQ base.tcl"}
    get_bd_addr_spaces          {options {-of_objects 1 -filter 1 -hierarchical 0 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 get_bd_addr_spaces; PYNQ base.tcl"}
    get_bd_intf_pins            {options {-of_objects 1 -filter 1 -hierarchical 0 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 get_bd_intf_pins; PYNQ base.tcl"}
    get_bd_pins                 {options {-of_objects 1 -filter 1 -hierarchical 0 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 get_bd_pins; PYNQ base.tcl"}
    get_board_parts             {options {-filter 1 -of_objects 1 -regexp 0 -nocase 0 -latest_file_version 0
                                          -latest_hw_revision 0 -quiet 0 -verbose 0}
                                 source "UG835 get_board_parts; ADI adi_project_xilinx.tcl"}
    get_files                   {options {-of_objects 1 -filter 1 -compile_order 1 -used_in 1 -all 0 -regexp 0
                                          -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 get_files; PYNQ base.tcl"}
    get_property                {options {-min 0 -max 0 -quiet 0 -verbose 0}
                                 source "UG835 get_property"}
    get_runs                    {options {-filter 1 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 get_runs; FINN create_stitched_ip.py"}
    get_timing_paths            {options {-setup 0 -hold 0 -max_paths 1 -nworst 1 -quiet 0 -verbose 0}
                                 source "UG835 get_timing_paths; ADI adi_project_xilinx.tcl (SLACK of -setup / -hold)"}
    launch_runs                 {options {-to_step 1 -jobs 1 -quiet 0 -verbose 0}
                                 source "UG835 launch_runs; PYNQ build_bitstream.tcl (impl_1 -to_step write_bitstream -jobs 4)"}
    make_wrapper                {options {-files 1 -top 0 -import 0 -fileset 1 -force 0 -quiet 0 -verbose 0}
                                 source "UG835 make_wrapper; FINN templates.py (-files ... -import -fileset sources_1 -top)"}
    open_run                    {options {-name 1 -quiet 0 -verbose 0}
                                 source "UG835 open_run; FINN templates.py"}
    report_timing_summary       {options {-max_paths 1 -file 1 -quiet 0 -verbose 0}
                                 source "UG835 report_timing_summary; ADI adi_project_xilinx.tcl"}
    report_utilization          {options {-file 1 -hierarchical 0 -quiet 0 -verbose 0}
                                 source "UG835 report_utilization; FINN templates.py"}
    save_bd_design              {options {-quiet 0 -verbose 0}
                                 source "UG835 save_bd_design; PYNQ base.tcl"}
    set_property                {options {-dict 1 -quiet 0 -verbose 0}
                                 source "UG835 set_property"}
    update_compile_order        {options {-fileset 1 -quiet 0 -verbose 0}
                                 source "UG835 update_compile_order; PYNQ build_bitstream.tcl"}
    update_ip_catalog           {options {-rebuild 0 -repo_path 1 -quiet 0 -verbose 0}
                                 source "UG835 update_ip_catalog; PYNQ base.tcl"}
    validate_bd_design          {options {-force 0 -quiet 0 -verbose 0}
                                 source "UG835 validate_bd_design; PYNQ base.tcl"}
    version                     {options {-short 0 -quiet 0 -verbose 0}
                                 source "UG835 version; PYNQ base.tcl ([version -short])"}
    wait_on_run                 {options {-timeout 1 -quiet 0 -verbose 0}
                                 source "UG835 wait_on_runs (2022.2 on; wait_on_run in its own example); PYNQ build_bitstream.tcl and FINN templates.py use wait_on_run"}
    ipx::add_address_block      {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl"}
    ipx::add_address_space      {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI library/util_hbm/util_hbm_ip.tcl, library/xilinx/axi_adcfifo/axi_adcfifo_ip.tcl"}
    ipx::add_bus_parameter      {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl (POLARITY, ASSOCIATED_BUSIF)"}
    ipx::add_memory_map         {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl"}
    ipx::associate_bus_interfaces {options {-busif 1 -clock 1 -reset 1 -remove 0 -quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl"}
    ipx::check_integrity        {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; UG1118 (ipx::check_integrity before ipx::save_core)"}
    ipx::create_xgui_files      {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; FINN templates.py"}
    ipx::current_core           {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl"}
    ipx::get_address_spaces     {options {-of_objects 1 -filter 1 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI library/util_hbm/util_hbm_ip.tcl; FINN create_stitched_ip.py"}
    ipx::get_bus_interfaces     {options {-of_objects 1 -filter 1 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl"}
    ipx::get_bus_parameters     {options {-of_objects 1 -filter 1 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI library/axi_ad9361/axi_ad9361_ip.tcl"}
    ipx::get_hdl_parameters     {options {-of_objects 1 -filter 1 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI library/axi_ad485x/axi_ad485x_ip.tcl"}
    ipx::get_memory_maps        {options {-of_objects 1 -filter 1 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl"}
    ipx::get_ports              {options {-of_objects 1 -filter 1 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl (SIZE_LEFT of s_axi_araddr)"}
    ipx::get_user_parameters    {options {-of_objects 1 -filter 1 -regexp 0 -nocase 0 -quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI library/axi_ad485x/axi_ad485x_ip.tcl"}
    ipx::infer_bus_interface    {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl (clock_rtl, reset_rtl)"}
    ipx::infer_bus_interfaces   {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl (aximm_rtl)"}
    ipx::package_project        {options {-root_dir 1 -vendor 1 -library 1 -taxonomy 1 -import_files 0 -set_current 1
                                          -force 0 -module 1 -generated_files 0 -quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl; FINN create_stitched_ip.py"}
    ipx::remove_address_space   {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow (Remove a named address space from a component)"}
    ipx::remove_bus_interface   {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow (Remove a named bus interface from a component)"}
    ipx::remove_memory_map      {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl"}
    ipx::save_core              {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl"}
    ipx::unload_core            {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow (unload a core opened by package_project or open_core)"}
    ipx::update_checksums       {options {-quiet 0 -verbose 0}
                                 source "UG835 IPFlow; ADI adi_ip_xilinx.tcl"}
}

# Properties by kind of object: {set {...} get {...} source "..."}. Names are compared without case, as Vivado
# does. A bd_cell's CONFIG.* depend on its IP (keyed by the IP name of its VLNV).
set ::stub_api_properties {
    project             {set {board_part ip_repo_paths} get {}
                         source "UG912 project; PYNQ base.tcl (BOARD_PART); FINN create_stitched_ip.py (ip_repo_paths)"}
    fileset             {set {top} get {}
                         source "UG912 fileset; PYNQ build_bitstream.tcl (set_property top ... [current_fileset])"}
    file                {set {} get {}
                         source "(no property used)"}
    ipx_core            {set {name version display_name description supported_families} get {name}
                         source "UG1118 Identification; ADI adi_ip_xilinx.tcl (name); supported_families as FINN create_stitched_ip.py"}
    ipx_user_parameter  {set {value} get {name value}
                         source "UG1118 Customization Parameters; ADI library/axi_ad485x/axi_ad485x_ip.tcl"}
    ipx_hdl_parameter   {set {value} get {name value}
                         source "UG1118; ADI library/axi_ad485x/axi_ad485x_ip.tcl"}
    ipx_bus_interface   {set {slave_memory_map_ref master_address_space_ref} get {name slave_memory_map_ref master_address_space_ref}
                         source "UG1118 Addressing and Memory; ADI adi_ip_xilinx.tcl (slave_memory_map_ref), library/axi_dmac/axi_dmac_ip.tcl (master_address_space_ref)"}
    ipx_bus_parameter   {set {value} get {name value}
                         source "ADI adi_ip_xilinx.tcl (POLARITY value)"}
    ipx_memory_map      {set {} get {name}
                         source "ADI adi_ip_xilinx.tcl"}
    ipx_address_block   {set {range width usage} get {name range width usage}
                         source "UG1118 Addressing and Memory; ADI adi_ip_xilinx.tcl (range); HWH ADDRESSBLOCK USAGE=register"}
    ipx_address_space   {set {range width} get {name range width}
                         source "ADI library/xilinx/axi_adcfifo/axi_adcfifo_ip.tcl (range, width), library/util_hbm/util_hbm_ip.tcl"}
    ipx_port            {set {} get {name size_left size_right}
                         source "ADI adi_ip_xilinx.tcl (SIZE_LEFT)"}
    run                 {set {} get {progress status directory}
                         source "UG835 wait_on_runs (PROGRESS); UG912 run (STATUS, DIRECTORY)"}
    timing_path         {set {} get {slack}
                         source "ADI adi_project_xilinx.tcl (SLACK of get_timing_paths)"}
    bd_cell             {set {} get {}
                         source "(the IP-specific CONFIG.* are under bd_cell:<ip>)"}
    bd_pin              {set {} get {}
                         source "(no property used)"}
    bd_intf_pin         {set {} get {}
                         source "(no property used)"}
    bd_addr_space       {set {} get {}
                         source "(no property used)"}
    bd_addr_seg         {set {} get {}
                         source "(no property used)"}
    board_part          {set {} get {}
                         source "(no property used)"}
    bd_cell:zynq_ultra_ps_e {set {CONFIG.PSU__USE__M_AXI_GP0 CONFIG.PSU__MAXIGP0__DATA_WIDTH CONFIG.PSU__USE__M_AXI_GP1
                              CONFIG.PSU__USE__M_AXI_GP2 CONFIG.PSU__USE__S_AXI_GP2 CONFIG.PSU__SAXIGP2__DATA_WIDTH
                              CONFIG.PSU__FPGA_PL0_ENABLE CONFIG.PSU__CRL_APB__PL0_REF_CTRL__SRCSEL
                              CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ CONFIG.PSU__USE__IRQ0}
                         get {}
                         source "PYNQ base.tcl (all but PSU__MAXIGP0__DATA_WIDTH); HWH (PSU__MAXIGP0__DATA_WIDTH); FINN templates.py (PSU__USE__S_AXI_GP2, PSU__USE__M_AXI_GP1, PL0_REF_CTRL__FREQMHZ)"}
    bd_cell:smartconnect {set {CONFIG.NUM_SI CONFIG.NUM_MI} get {}
                         source "PG247 SmartConnect; FINN templates.py (CONFIG.NUM_SI)"}
    bd_cell:axi_intc    {set {CONFIG.C_IRQ_CONNECTION} get {}
                         source "PG099 AXI INTC; PYNQ base.tcl (axi_intc_0 CONFIG.C_IRQ_CONNECTION {1})"}
    bd_cell:xlconcat    {set {CONFIG.NUM_PORTS} get {}
                         source "PYNQ boards/Pynq-Z2/petalinux_bsp/hardware_project/pynqz2.tcl (xlconcat_0 CONFIG.NUM_PORTS {1}), ZCU104 base.tcl (xlconcat0 CONFIG.NUM_PORTS {9}); HWH (xlconcat_0 NUM_PORTS 1)"}
    bd_cell:proc_sys_reset {set {} get {}
                         source "(no property used)"}
    bd_cell:sps_core    {set {} get {}
                         source "(no property used)"}
}
