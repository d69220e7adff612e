// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// AXI4 write engine: one single-beat burst with byte strobes per input beat, responses counted.

`default_nettype none

module sps_axi_wr #(
  parameter int unsigned AddrWidth = 40,
  parameter int unsigned DataWidth = 128,
  parameter int unsigned IdWidth   = 1,
  parameter int unsigned MaxOutstanding = 16
) (
  input  wire logic                   clk_i,
  input  wire logic                   rst_ni,

  // beats to write: beat-aligned address, data, byte strobes
  input  wire logic                   beat_valid_i,
  output logic                        beat_ready_o,
  input  wire logic [AddrWidth-1:0]   beat_addr_i,
  input  wire logic [DataWidth-1:0]   beat_data_i,
  input  wire logic [DataWidth/8-1:0] beat_strb_i,

  output logic                        idle_o,     // every accepted beat is written and acknowledged
  output logic                        err_o,      // a write response was SLVERR/DECERR (sticky until clear_i)
  input  wire logic                   clear_i,

  // AXI4 master, write channels
  output logic [IdWidth-1:0]          m_axi_awid,
  output logic [AddrWidth-1:0]        m_axi_awaddr,
  output logic [7:0]                  m_axi_awlen,
  output logic [2:0]                  m_axi_awsize,
  output logic [1:0]                  m_axi_awburst,
  output logic                        m_axi_awlock,
  output logic [3:0]                  m_axi_awcache,
  output logic [2:0]                  m_axi_awprot,
  output logic                        m_axi_awvalid,
  input  wire logic                   m_axi_awready,
  output logic [DataWidth-1:0]        m_axi_wdata,
  output logic [DataWidth/8-1:0]      m_axi_wstrb,
  output logic                        m_axi_wlast,
  output logic                        m_axi_wvalid,
  input  wire logic                   m_axi_wready,
  input  wire logic [IdWidth-1:0]     m_axi_bid,
  input  wire logic [1:0]             m_axi_bresp,
  input  wire logic                   m_axi_bvalid,
  output logic                        m_axi_bready
);
  localparam int unsigned BeatShift = $clog2(DataWidth / 8);
  localparam int unsigned CntWidth = $clog2(MaxOutstanding + 1);

  logic aw_pend_q, w_pend_q;
  logic [AddrWidth-1:0] addr_q;
  logic [DataWidth-1:0] data_q;
  logic [DataWidth/8-1:0] strb_q;
  logic [CntWidth-1:0] outstanding_q;
  logic err_q;
  logic aw_fire, w_fire, b_fire, accept;

  assign aw_fire = m_axi_awvalid && m_axi_awready;
  assign w_fire = m_axi_wvalid && m_axi_wready;
  assign b_fire = m_axi_bvalid && m_axi_bready;
  // The holding register frees up in the cycle its last handshake completes.
  assign beat_ready_o = (!aw_pend_q || m_axi_awready) && (!w_pend_q || m_axi_wready)
                        && (outstanding_q < CntWidth'(MaxOutstanding - 1));
  assign accept = beat_valid_i && beat_ready_o;

  assign m_axi_awid = '0;
  assign m_axi_awaddr = addr_q;
  assign m_axi_awlen = 8'd0;
  assign m_axi_awsize = 3'(BeatShift);
  assign m_axi_awburst = 2'b01;
  assign m_axi_awlock = 1'b0;
  assign m_axi_awcache = 4'b0011;
  assign m_axi_awprot = 3'b000;
  assign m_axi_awvalid = aw_pend_q;
  assign m_axi_wdata = data_q;
  assign m_axi_wstrb = strb_q;
  assign m_axi_wlast = 1'b1;
  assign m_axi_wvalid = w_pend_q;
  assign m_axi_bready = 1'b1;

  assign idle_o = !aw_pend_q && !w_pend_q && outstanding_q == '0;
  assign err_o = err_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      aw_pend_q <= 1'b0;
      w_pend_q <= 1'b0;
      addr_q <= '0;
      data_q <= '0;
      strb_q <= '0;
      outstanding_q <= '0;
      err_q <= 1'b0;
    end else begin
      if (accept) begin
        aw_pend_q <= 1'b1;
        w_pend_q <= 1'b1;
        addr_q <= {beat_addr_i[AddrWidth-1:BeatShift], BeatShift'(0)};
        data_q <= beat_data_i;
        strb_q <= beat_strb_i;
      end else begin
        if (aw_fire) aw_pend_q <= 1'b0;
        if (w_fire) w_pend_q <= 1'b0;
      end
      outstanding_q <= outstanding_q + CntWidth'(aw_fire) - CntWidth'(b_fire);
      if (b_fire && m_axi_bresp[1]) err_q <= 1'b1;
      if (clear_i) err_q <= 1'b0;
    end
  end

  logic unused;
  assign unused = ^{m_axi_bid, m_axi_bresp[0], beat_addr_i[BeatShift-1:0]};

  // Assertions (simulation only).
`ifndef SYNTHESIS
  NoUnexpectedResponse: assert property (@(posedge clk_i) disable iff (!rst_ni) b_fire |-> outstanding_q != '0);
  StrobesNotEmpty: assert property (@(posedge clk_i) disable iff (!rst_ni) accept |-> beat_strb_i != '0);
`endif

endmodule

`default_nettype wire
