// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// SPS accelerator top: AXI4-Lite control slave, AXI4 master to DDR, interrupt; runs a whole layer program.

`default_nettype none

module sps_top
  import sps_if_pkg::*;
#(
  parameter int unsigned Rows           = DefaultRows,           // R: filters computed at once
  parameter int unsigned Cols           = DefaultCols,           // C: output pixels computed at once
  parameter int unsigned AxiDataWidth   = DefaultAxiDataWidth,   // 64 or 128
  parameter int unsigned AxiAddrWidth   = 40,
  parameter int unsigned AxiIdWidth     = 1,
  parameter int unsigned ActBufBytes    = DefaultActBufBytes,
  parameter int unsigned WeightBufBytes = DefaultWeightBufBytes
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,

  // AXI4-Lite slave: control and status registers
  input  wire logic [7:0]                s_axil_awaddr,
  input  wire logic [2:0]                s_axil_awprot,
  input  wire logic                      s_axil_awvalid,
  output logic                           s_axil_awready,
  input  wire logic [31:0]               s_axil_wdata,
  input  wire logic [3:0]                s_axil_wstrb,
  input  wire logic                      s_axil_wvalid,
  output logic                           s_axil_wready,
  output logic [1:0]                     s_axil_bresp,
  output logic                           s_axil_bvalid,
  input  wire logic                      s_axil_bready,
  input  wire logic [7:0]                s_axil_araddr,
  input  wire logic [2:0]                s_axil_arprot,
  input  wire logic                      s_axil_arvalid,
  output logic                           s_axil_arready,
  output logic [31:0]                    s_axil_rdata,
  output logic [1:0]                     s_axil_rresp,
  output logic                           s_axil_rvalid,
  input  wire logic                      s_axil_rready,

  // AXI4 master: descriptors, weights, parameters and feature maps in DDR
  output logic [AxiIdWidth-1:0]          m_axi_awid,
  output logic [AxiAddrWidth-1:0]        m_axi_awaddr,
  output logic [7:0]                     m_axi_awlen,
  output logic [2:0]                     m_axi_awsize,
  output logic [1:0]                     m_axi_awburst,
  output logic                           m_axi_awlock,
  output logic [3:0]                     m_axi_awcache,
  output logic [2:0]                     m_axi_awprot,
  output logic                           m_axi_awvalid,
  input  wire logic                      m_axi_awready,
  output logic [AxiDataWidth-1:0]        m_axi_wdata,
  output logic [AxiDataWidth/8-1:0]      m_axi_wstrb,
  output logic                           m_axi_wlast,
  output logic                           m_axi_wvalid,
  input  wire logic                      m_axi_wready,
  input  wire logic [AxiIdWidth-1:0]     m_axi_bid,
  input  wire logic [1:0]                m_axi_bresp,
  input  wire logic                      m_axi_bvalid,
  output logic                           m_axi_bready,
  output logic [AxiIdWidth-1:0]          m_axi_arid,
  output logic [AxiAddrWidth-1:0]        m_axi_araddr,
  output logic [7:0]                     m_axi_arlen,
  output logic [2:0]                     m_axi_arsize,
  output logic [1:0]                     m_axi_arburst,
  output logic                           m_axi_arlock,
  output logic [3:0]                     m_axi_arcache,
  output logic [2:0]                     m_axi_arprot,
  output logic                           m_axi_arvalid,
  input  wire logic                      m_axi_arready,
  input  wire logic [AxiIdWidth-1:0]     m_axi_rid,
  input  wire logic [AxiDataWidth-1:0]   m_axi_rdata,
  input  wire logic [1:0]                m_axi_rresp,
  input  wire logic                      m_axi_rlast,
  input  wire logic                      m_axi_rvalid,
  output logic                           m_axi_rready,

  output logic                           irq_o
);
  // HW_CONFIG / HW_BUFFERS: the same words as HwConfig.fingerprint / buffers_word (generated functions).
  localparam logic [31:0] HwConfigWord = hw_config_word(Rows, Cols, AxiDataWidth, MaxPatterns);
  localparam logic [31:0] HwBuffersWord = hw_buffers_word(ActBufBytes, WeightBufBytes);

  logic start, abort, stats_enable, busy, finish;
  logic [63:0] arena;
  logic [31:0] prog_offset, num_layers, stats_offset, cur_layer;
  logic [7:0] err_code;
  logic [63:0] cycles, mac_cycles, stall_cycles, bytes_rd, bytes_wr;

  sps_regs #(.HwConfigWord(HwConfigWord), .HwBuffersWord(HwBuffersWord)) u_regs (
    .clk_i, .rst_ni,
    .s_axil_awaddr, .s_axil_awprot, .s_axil_awvalid, .s_axil_awready,
    .s_axil_wdata, .s_axil_wstrb, .s_axil_wvalid, .s_axil_wready,
    .s_axil_bresp, .s_axil_bvalid, .s_axil_bready,
    .s_axil_araddr, .s_axil_arprot, .s_axil_arvalid, .s_axil_arready,
    .s_axil_rdata, .s_axil_rresp, .s_axil_rvalid, .s_axil_rready,
    .start_o(start), .abort_o(abort),
    .arena_o(arena), .prog_offset_o(prog_offset), .num_layers_o(num_layers),
    .stats_offset_o(stats_offset), .stats_enable_o(stats_enable),
    .busy_i(busy), .finish_i(finish), .err_code_i(err_code), .cur_layer_i(cur_layer),
    .cycles_i(cycles), .mac_cycles_i(mac_cycles), .stall_cycles_i(stall_cycles),
    .bytes_rd_i(bytes_rd), .bytes_wr_i(bytes_wr),
    .irq_o
  );

  logic rd_req_valid, rd_req_ready, rd_beat_valid, rd_beat_ready, rd_abort, rd_idle, rd_err, rd_clear;
  logic [AxiAddrWidth-1:0] rd_req_addr;
  logic [31:0] rd_req_beats;
  logic [AxiDataWidth-1:0] rd_beat_data;

  sps_axi_rd #(.AddrWidth(AxiAddrWidth), .DataWidth(AxiDataWidth), .IdWidth(AxiIdWidth)) u_rd (
    .clk_i, .rst_ni,
    .req_valid_i(rd_req_valid), .req_ready_o(rd_req_ready), .req_addr_i(rd_req_addr), .req_beats_i(rd_req_beats),
    .beat_valid_o(rd_beat_valid), .beat_ready_i(rd_beat_ready), .beat_data_o(rd_beat_data),
    .abort_i(rd_abort), .idle_o(rd_idle), .err_o(rd_err), .clear_i(rd_clear),
    .m_axi_arid, .m_axi_araddr, .m_axi_arlen, .m_axi_arsize, .m_axi_arburst, .m_axi_arlock,
    .m_axi_arcache, .m_axi_arprot, .m_axi_arvalid, .m_axi_arready,
    .m_axi_rid, .m_axi_rdata, .m_axi_rresp, .m_axi_rlast, .m_axi_rvalid, .m_axi_rready
  );

  logic wr_beat_valid, wr_beat_ready, wr_idle, wr_err, wr_clear;
  logic [AxiAddrWidth-1:0] wr_beat_addr;
  logic [AxiDataWidth-1:0] wr_beat_data;
  logic [AxiDataWidth/8-1:0] wr_beat_strb;

  sps_axi_wr #(.AddrWidth(AxiAddrWidth), .DataWidth(AxiDataWidth), .IdWidth(AxiIdWidth)) u_wr (
    .clk_i, .rst_ni,
    .beat_valid_i(wr_beat_valid), .beat_ready_o(wr_beat_ready), .beat_addr_i(wr_beat_addr),
    .beat_data_i(wr_beat_data), .beat_strb_i(wr_beat_strb),
    .idle_o(wr_idle), .err_o(wr_err), .clear_i(wr_clear),
    .m_axi_awid, .m_axi_awaddr, .m_axi_awlen, .m_axi_awsize, .m_axi_awburst, .m_axi_awlock,
    .m_axi_awcache, .m_axi_awprot, .m_axi_awvalid, .m_axi_awready,
    .m_axi_wdata, .m_axi_wstrb, .m_axi_wlast, .m_axi_wvalid, .m_axi_wready,
    .m_axi_bid, .m_axi_bresp, .m_axi_bvalid, .m_axi_bready
  );

  sps_core #(
    .Rows(Rows), .Cols(Cols), .AxiDataWidth(AxiDataWidth), .AxiAddrWidth(AxiAddrWidth),
    .ActBufBytes(ActBufBytes), .WeightBufBytes(WeightBufBytes)
  ) u_core (
    .clk_i, .rst_ni,
    .start_i(start), .abort_i(abort), .arena_i(arena), .prog_offset_i(prog_offset),
    .num_layers_i(num_layers), .stats_offset_i(stats_offset), .stats_enable_i(stats_enable),
    .busy_o(busy), .finish_o(finish), .err_code_o(err_code), .cur_layer_o(cur_layer),
    .cycles_o(cycles), .mac_cycles_o(mac_cycles), .stall_cycles_o(stall_cycles),
    .bytes_rd_o(bytes_rd), .bytes_wr_o(bytes_wr),
    .rd_req_valid_o(rd_req_valid), .rd_req_ready_i(rd_req_ready), .rd_req_addr_o(rd_req_addr),
    .rd_req_beats_o(rd_req_beats), .rd_beat_valid_i(rd_beat_valid), .rd_beat_ready_o(rd_beat_ready),
    .rd_beat_data_i(rd_beat_data), .rd_abort_o(rd_abort), .rd_idle_i(rd_idle), .rd_err_i(rd_err),
    .rd_clear_o(rd_clear),
    .wr_beat_valid_o(wr_beat_valid), .wr_beat_ready_i(wr_beat_ready), .wr_beat_addr_o(wr_beat_addr),
    .wr_beat_data_o(wr_beat_data), .wr_beat_strb_o(wr_beat_strb), .wr_idle_i(wr_idle), .wr_err_i(wr_err),
    .wr_clear_o(wr_clear)
  );

  // Elaboration checks shared with HwConfig.__post_init__.
  if (Rows < 1 || Rows > 255 || Cols < 1 || Cols > 255) begin : gen_bad_shape
    $error("sps_top: Rows and Cols must be in 1..255");
  end

endmodule

`default_nettype wire
