// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Verilog-2001 top of the SPS core for Vivado's IP packager: literal parameter defaults, flat ports, sps_top inside.
//
// UG1118 asks for a Verilog or VHDL top when the design is SystemVerilog: the packager parses only this file for
// the IP's ports and generics, so it never has to evaluate sps_if_pkg's constants (IP_Flow 19-587). The defaults
// are configuration "zcu104" (sps_pynq/hw/config.py); the build passes the configuration's values explicitly
// (hw_src/Makefile HW_PARAMS), and host_tests/test_vivado_flow.py checks both the defaults and that the ports are
// exactly sps_top's. The AXI master's address (40 bits, the IP's address space of 2^40 bytes) and ID (1 bit) widths
// are fixed here, not generics.

`default_nettype none

module sps_ip_top #(
  parameter integer Rows           = 16,       // R: filters computed at once
  parameter integer Cols           = 16,       // C: output pixels computed at once
  parameter integer AxiDataWidth   = 128,      // 64 or 128
  parameter integer ActBufBytes    = 131072,
  parameter integer WeightBufBytes = 147456
) (
  input  wire                        clk_i,
  input  wire                        rst_ni,

  // AXI4-Lite slave: control and status registers
  input  wire [7:0]                  s_axil_awaddr,
  input  wire [2:0]                  s_axil_awprot,
  input  wire                        s_axil_awvalid,
  output wire                        s_axil_awready,
  input  wire [31:0]                 s_axil_wdata,
  input  wire [3:0]                  s_axil_wstrb,
  input  wire                        s_axil_wvalid,
  output wire                        s_axil_wready,
  output wire [1:0]                  s_axil_bresp,
  output wire                        s_axil_bvalid,
  input  wire                        s_axil_bready,
  input  wire [7:0]                  s_axil_araddr,
  input  wire [2:0]                  s_axil_arprot,
  input  wire                        s_axil_arvalid,
  output wire                        s_axil_arready,
  output wire [31:0]                 s_axil_rdata,
  output wire [1:0]                  s_axil_rresp,
  output wire                        s_axil_rvalid,
  input  wire                        s_axil_rready,

  // AXI4 master: descriptors, weights, parameters and feature maps in DDR
  output wire [0:0]                  m_axi_awid,
  output wire [39:0]                 m_axi_awaddr,
  output wire [7:0]                  m_axi_awlen,
  output wire [2:0]                  m_axi_awsize,
  output wire [1:0]                  m_axi_awburst,
  output wire                        m_axi_awlock,
  output wire [3:0]                  m_axi_awcache,
  output wire [2:0]                  m_axi_awprot,
  output wire                        m_axi_awvalid,
  input  wire                        m_axi_awready,
  output wire [AxiDataWidth-1:0]     m_axi_wdata,
  output wire [AxiDataWidth/8-1:0]   m_axi_wstrb,
  output wire                        m_axi_wlast,
  output wire                        m_axi_wvalid,
  input  wire                        m_axi_wready,
  input  wire [0:0]                  m_axi_bid,
  input  wire [1:0]                  m_axi_bresp,
  input  wire                        m_axi_bvalid,
  output wire                        m_axi_bready,
  output wire [0:0]                  m_axi_arid,
  output wire [39:0]                 m_axi_araddr,
  output wire [7:0]                  m_axi_arlen,
  output wire [2:0]                  m_axi_arsize,
  output wire [1:0]                  m_axi_arburst,
  output wire                        m_axi_arlock,
  output wire [3:0]                  m_axi_arcache,
  output wire [2:0]                  m_axi_arprot,
  output wire                        m_axi_arvalid,
  input  wire                        m_axi_arready,
  input  wire [0:0]                  m_axi_rid,
  input  wire [AxiDataWidth-1:0]     m_axi_rdata,
  input  wire [1:0]                  m_axi_rresp,
  input  wire                        m_axi_rlast,
  input  wire                        m_axi_rvalid,
  output wire                        m_axi_rready,

  // Level-high interrupt: a run finished or failed (ISR & IER, GIE)
  output wire                        irq_o
);

  sps_top #(
    .Rows(Rows),
    .Cols(Cols),
    .AxiDataWidth(AxiDataWidth),
    .AxiAddrWidth(40),
    .AxiIdWidth(1),
    .ActBufBytes(ActBufBytes),
    .WeightBufBytes(WeightBufBytes)
  ) u_sps_top (
    .clk_i(clk_i),
    .rst_ni(rst_ni),
    .s_axil_awaddr(s_axil_awaddr),
    .s_axil_awprot(s_axil_awprot),
    .s_axil_awvalid(s_axil_awvalid),
    .s_axil_awready(s_axil_awready),
    .s_axil_wdata(s_axil_wdata),
    .s_axil_wstrb(s_axil_wstrb),
    .s_axil_wvalid(s_axil_wvalid),
    .s_axil_wready(s_axil_wready),
    .s_axil_bresp(s_axil_bresp),
    .s_axil_bvalid(s_axil_bvalid),
    .s_axil_bready(s_axil_bready),
    .s_axil_araddr(s_axil_araddr),
    .s_axil_arprot(s_axil_arprot),
    .s_axil_arvalid(s_axil_arvalid),
    .s_axil_arready(s_axil_arready),
    .s_axil_rdata(s_axil_rdata),
    .s_axil_rresp(s_axil_rresp),
    .s_axil_rvalid(s_axil_rvalid),
    .s_axil_rready(s_axil_rready),
    .m_axi_awid(m_axi_awid),
    .m_axi_awaddr(m_axi_awaddr),
    .m_axi_awlen(m_axi_awlen),
    .m_axi_awsize(m_axi_awsize),
    .m_axi_awburst(m_axi_awburst),
    .m_axi_awlock(m_axi_awlock),
    .m_axi_awcache(m_axi_awcache),
    .m_axi_awprot(m_axi_awprot),
    .m_axi_awvalid(m_axi_awvalid),
    .m_axi_awready(m_axi_awready),
    .m_axi_wdata(m_axi_wdata),
    .m_axi_wstrb(m_axi_wstrb),
    .m_axi_wlast(m_axi_wlast),
    .m_axi_wvalid(m_axi_wvalid),
    .m_axi_wready(m_axi_wready),
    .m_axi_bid(m_axi_bid),
    .m_axi_bresp(m_axi_bresp),
    .m_axi_bvalid(m_axi_bvalid),
    .m_axi_bready(m_axi_bready),
    .m_axi_arid(m_axi_arid),
    .m_axi_araddr(m_axi_araddr),
    .m_axi_arlen(m_axi_arlen),
    .m_axi_arsize(m_axi_arsize),
    .m_axi_arburst(m_axi_arburst),
    .m_axi_arlock(m_axi_arlock),
    .m_axi_arcache(m_axi_arcache),
    .m_axi_arprot(m_axi_arprot),
    .m_axi_arvalid(m_axi_arvalid),
    .m_axi_arready(m_axi_arready),
    .m_axi_rid(m_axi_rid),
    .m_axi_rdata(m_axi_rdata),
    .m_axi_rresp(m_axi_rresp),
    .m_axi_rlast(m_axi_rlast),
    .m_axi_rvalid(m_axi_rvalid),
    .m_axi_rready(m_axi_rready),
    .irq_o(irq_o)
  );

endmodule

`default_nettype wire
