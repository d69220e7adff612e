// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// AXI4 read engine: turns one (address, beats) request into INCR bursts and streams the data beats out.

`default_nettype none

module sps_axi_rd #(
  parameter int unsigned AddrWidth = 40,
  parameter int unsigned DataWidth = 128,
  parameter int unsigned IdWidth   = 1
) (
  input  wire logic                 clk_i,
  input  wire logic                 rst_ni,

  // request: `beats` data beats from a beat-aligned byte address
  input  wire logic                 req_valid_i,
  output logic                      req_ready_o,
  input  wire logic [AddrWidth-1:0] req_addr_i,
  input  wire logic [31:0]          req_beats_i,

  // data beats, in order
  output logic                      beat_valid_o,
  input  wire logic                 beat_ready_i,
  output logic [DataWidth-1:0]      beat_data_o,

  input  wire logic                 abort_i,     // stop issuing; swallow the beats still in flight
  output logic                      idle_o,      // nothing requested and nothing in flight
  output logic                      err_o,       // an SLVERR/DECERR was seen (sticky until clear_i)
  input  wire logic                 clear_i,

  // AXI4 master, read channels
  output logic [IdWidth-1:0]        m_axi_arid,
  output logic [AddrWidth-1:0]      m_axi_araddr,
  output logic [7:0]                m_axi_arlen,
  output logic [2:0]                m_axi_arsize,
  output logic [1:0]                m_axi_arburst,
  output logic                      m_axi_arlock,
  output logic [3:0]                m_axi_arcache,
  output logic [2:0]                m_axi_arprot,
  output logic                      m_axi_arvalid,
  input  wire logic                 m_axi_arready,
  input  wire logic [IdWidth-1:0]   m_axi_rid,
  input  wire logic [DataWidth-1:0] m_axi_rdata,
  input  wire logic [1:0]           m_axi_rresp,
  input  wire logic                 m_axi_rlast,
  input  wire logic                 m_axi_rvalid,
  output logic                      m_axi_rready
);
  localparam int unsigned BeatBytes = DataWidth / 8;
  localparam int unsigned BeatShift = $clog2(BeatBytes);
  localparam int unsigned PageBeats = 4096 / BeatBytes;   // bursts never cross a 4 KiB boundary

  logic [AddrWidth-1:0] ar_addr_q;
  logic [31:0] ar_left_q;      // beats not yet requested on AR
  logic [31:0] r_left_q;       // beats not yet received on R
  logic draining_q;            // abort: swallow beats
  logic err_q;
  logic [31:0] page_left, burst_beats;
  logic ar_fire, r_fire;

  assign page_left = 32'(PageBeats) - 32'(ar_addr_q[11:BeatShift]);
  always_comb begin
    burst_beats = ar_left_q;
    if (burst_beats > 32'd256) burst_beats = 32'd256;
    if (burst_beats > page_left) burst_beats = page_left;
  end

  assign m_axi_arid = '0;
  assign m_axi_araddr = ar_addr_q;
  assign m_axi_arlen = 8'(burst_beats - 32'd1);
  assign m_axi_arsize = 3'(BeatShift);
  assign m_axi_arburst = 2'b01;     // INCR
  assign m_axi_arlock = 1'b0;
  assign m_axi_arcache = 4'b0011;   // normal, non-cacheable, bufferable
  assign m_axi_arprot = 3'b000;
  assign m_axi_arvalid = (ar_left_q != '0) && !draining_q;
  assign ar_fire = m_axi_arvalid && m_axi_arready;

  assign m_axi_rready = draining_q || beat_ready_i;
  assign beat_valid_o = m_axi_rvalid && !draining_q;
  assign beat_data_o = m_axi_rdata;
  assign r_fire = m_axi_rvalid && m_axi_rready;

  // A new request is taken once every burst of the one before is on AR, while its beats may still be due: the
  // slave returns them in order (one ID), so a loader can keep the next read's latency behind the current beats.
  assign req_ready_o = (ar_left_q == '0) && !draining_q;
  assign idle_o = (ar_left_q == '0) && (r_left_q == '0);
  assign err_o = err_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      ar_addr_q <= '0;
      ar_left_q <= '0;
      r_left_q <= '0;
      draining_q <= 1'b0;
      err_q <= 1'b0;
    end else begin
      if (req_valid_i && req_ready_o) begin
        ar_addr_q <= req_addr_i;
        ar_left_q <= req_beats_i;
      end else if (ar_fire) begin
        ar_addr_q <= ar_addr_q + (AddrWidth'(burst_beats) << BeatShift);
        ar_left_q <= ar_left_q - burst_beats;
      end
      r_left_q <= r_left_q + ((req_valid_i && req_ready_o) ? req_beats_i : 32'd0) - (r_fire ? 32'd1 : 32'd0);
      if (r_fire && m_axi_rresp[1]) err_q <= 1'b1;
      if (abort_i) begin
        // Beats already requested must still be accepted; the rest is never requested.
        draining_q <= 1'b1;
        ar_left_q <= '0;
        r_left_q <= (r_fire ? r_left_q - 32'd1 : r_left_q) - (ar_left_q - (ar_fire ? burst_beats : 32'd0));
      end else if (draining_q && r_left_q == '0) begin
        draining_q <= 1'b0;
      end
      if (clear_i) err_q <= 1'b0;
    end
  end

  logic unused;
  assign unused = ^{m_axi_rid, m_axi_rlast, m_axi_rresp[0]};

  // Assertions (simulation only).
`ifndef SYNTHESIS
  // The slave never returns more beats than were requested.
  NoUnexpectedBeat: assert property (@(posedge clk_i) disable iff (!rst_ni) m_axi_rvalid |-> r_left_q != '0);
  BurstNotEmpty: assert property (@(posedge clk_i) disable iff (!rst_ni) m_axi_arvalid |-> burst_beats != '0);
`endif

endmodule

`default_nettype wire
