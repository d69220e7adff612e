// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Performance counters of a run (cycles, MAC cycles, stall cycles, bytes) and the per-layer statistics record.

`default_nettype none

module sps_counters
  import sps_if_pkg::*;
#(
  parameter int unsigned AxiDataWidth = DefaultAxiDataWidth
) (
  input  wire logic                          clk_i,
  input  wire logic                          rst_ni,

  // the sequencer
  input  wire logic                          idle_i,          // no run: the counters hold
  input  wire logic                          start_i,         // a run starts (with idle_i): clear them
  input  wire logic                          layer_start_i,   // a layer's descriptor is fetched: restart the record
  input  wire logic                          layer_hold_i,    // the layer's record is being written: hold it

  // what happens this cycle
  input  wire logic                          mac_i,           // the PE array accumulates
  input  wire logic                          stall_i,         // a unit waits for the AXI master
  input  wire logic                          rd_beat_i,       // a read beat is accepted
  input  wire logic                          wr_beat_i,       // a write beat is accepted
  input  wire logic [AxiDataWidth/8-1:0]     wr_strb_i,       // with these byte strobes

  output logic [63:0]                        cycles_o,
  output logic [63:0]                        mac_cycles_o,
  output logic [63:0]                        stall_cycles_o,  // cycles without MACs waiting for the AXI master
  output logic [63:0]                        bytes_rd_o,
  output logic [63:0]                        bytes_wr_o,
  output logic [8*StatsRecordBytes-1:0]      record_o         // the layer's record: cycles, MAC, stall cycles, 0
);
  localparam int unsigned BeatBytes = AxiDataWidth / 8;

  logic stall;
  logic [63:0] cycles_q, cycles_d, mac_q, mac_d, stall_q, stall_d, rd_q, rd_d, wr_q, wr_d;
  logic [31:0] lcyc_q, lcyc_d, lmac_q, lmac_d, lstall_q, lstall_d;

  assign stall = !mac_i && stall_i;

  always_comb begin
    cycles_d = cycles_q;
    mac_d = mac_q;
    stall_d = stall_q;
    rd_d = rd_q;
    wr_d = wr_q;
    lcyc_d = lcyc_q;
    lmac_d = lmac_q;
    lstall_d = lstall_q;
    if (idle_i) begin
      if (start_i) begin
        cycles_d = '0;
        mac_d = '0;
        stall_d = '0;
        rd_d = '0;
        wr_d = '0;
      end
    end else begin
      cycles_d = cycles_q + 64'd1;
      mac_d = mac_q + 64'(mac_i);
      stall_d = stall_q + 64'(stall);
      if (rd_beat_i) rd_d = rd_q + 64'(BeatBytes);
      if (wr_beat_i) wr_d = wr_q + 64'($countones(wr_strb_i));
      if (layer_start_i) begin
        lcyc_d = 32'd1;
        lmac_d = '0;
        lstall_d = '0;
      end else if (!layer_hold_i) begin
        lcyc_d = lcyc_q + 32'd1;
        lmac_d = lmac_q + 32'(mac_i);
        lstall_d = lstall_q + 32'(stall);
      end
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      cycles_q <= '0;
      mac_q <= '0;
      stall_q <= '0;
      rd_q <= '0;
      wr_q <= '0;
      lcyc_q <= '0;
      lmac_q <= '0;
      lstall_q <= '0;
    end else begin
      cycles_q <= cycles_d;
      mac_q <= mac_d;
      stall_q <= stall_d;
      rd_q <= rd_d;
      wr_q <= wr_d;
      lcyc_q <= lcyc_d;
      lmac_q <= lmac_d;
      lstall_q <= lstall_d;
    end
  end

  assign cycles_o = cycles_q;
  assign mac_cycles_o = mac_q;
  assign stall_cycles_o = stall_q;
  assign bytes_rd_o = rd_q;
  assign bytes_wr_o = wr_q;

  always_comb begin
    record_o = '0;
    record_o[32*StatsCyclesWord +: 32] = lcyc_q;
    record_o[32*StatsMacCyclesWord +: 32] = lmac_q;
    record_o[32*StatsStallCyclesWord +: 32] = lstall_q;
  end

endmodule

`default_nettype wire
