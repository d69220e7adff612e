// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Turns a segment of up to C output bytes at any byte address into the strobed AXI data beats it spans
// (one or two when C fits a beat).

`default_nettype none

module sps_out_align #(
  parameter int unsigned AddrWidth = 40,
  parameter int unsigned DataWidth = 128,
  parameter int unsigned SegBytes  = 16     // C
) (
  input  wire logic                   clk_i,
  input  wire logic                   rst_ni,
  input  wire logic                   clear_i,

  input  wire logic                   seg_valid_i,
  output logic                        seg_ready_o,
  input  wire logic [AddrWidth-1:0]   seg_addr_i,     // address of byte 0
  input  wire logic [7:0]             seg_len_i,      // 1..SegBytes valid bytes
  input  wire logic [SegBytes*8-1:0]  seg_data_i,

  output logic                        beat_valid_o,
  input  wire logic                   beat_ready_i,
  output logic [AddrWidth-1:0]        beat_addr_o,
  output logic [DataWidth-1:0]        beat_data_o,
  output logic [DataWidth/8-1:0]      beat_strb_o,
  output logic                        idle_o
);
  localparam int unsigned BeatBytes = DataWidth / 8;
  localparam int unsigned BeatShift = $clog2(BeatBytes);
  localparam int unsigned NumBeats  = (SegBytes + BeatBytes - 1) / BeatBytes + 1;   // most beats a segment spans

  logic [7:0] part_q;                     // the beat of the segment being sent
  logic [BeatShift-1:0] off;
  logic [NumBeats*DataWidth-1:0] wide_data;
  logic [NumBeats*BeatBytes-1:0] wide_strb;
  logic [AddrWidth-1:0] beat0_addr;
  logic [7:0] last_part;

  assign off = seg_addr_i[BeatShift-1:0];
  assign wide_data = (NumBeats*DataWidth)'(seg_data_i) << {off, 3'b000};
  assign wide_strb = (((NumBeats*BeatBytes)'(1) << seg_len_i) - (NumBeats*BeatBytes)'(1)) << off;
  assign beat0_addr = {seg_addr_i[AddrWidth-1:BeatShift], BeatShift'(0)};
  assign last_part = 8'((32'(off) + 32'(seg_len_i) - 32'd1) >> BeatShift);

  assign beat_valid_o = seg_valid_i;
  assign beat_addr_o = beat0_addr + AddrWidth'(32'(part_q) * BeatBytes);
  assign beat_data_o = wide_data[DataWidth*part_q +: DataWidth];
  assign beat_strb_o = wide_strb[BeatBytes*part_q +: BeatBytes];
  assign seg_ready_o = beat_ready_i && part_q == last_part;
  assign idle_o = part_q == 8'd0 && !seg_valid_i;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      part_q <= '0;
    end else if (clear_i) begin
      part_q <= '0;
    end else if (seg_valid_i && beat_ready_i) begin
      part_q <= (part_q == last_part) ? 8'd0 : part_q + 8'd1;
    end
  end

  // Assertions (simulation only).
`ifndef SYNTHESIS
  SegLenInRange: assert property (@(posedge clk_i) disable iff (!rst_ni)
      seg_valid_i |-> (seg_len_i >= 8'd1 && seg_len_i <= 8'(SegBytes)));
  SegHeldDuringLaterBeats: assert property (@(posedge clk_i) disable iff (!rst_ni) part_q != 8'd0 |-> seg_valid_i);
`endif

endmodule

`default_nettype wire
