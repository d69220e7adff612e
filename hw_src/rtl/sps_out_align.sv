// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Turns a segment of up to C output bytes at any byte address into one or two strobed AXI data beats.

`default_nettype none

module sps_out_align #(
  parameter int unsigned AddrWidth = 40,
  parameter int unsigned DataWidth = 128,
  parameter int unsigned SegBytes  = 16     // C, at most DataWidth / 8
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

  logic second_q;                         // the upper beat of a segment is being sent
  logic [BeatShift-1:0] off;
  logic [2*DataWidth-1:0] wide_data;
  logic [2*BeatBytes-1:0] wide_strb;
  logic [AddrWidth-1:0] beat0_addr;
  logic needs_second;

  assign off = seg_addr_i[BeatShift-1:0];
  assign wide_data = (2*DataWidth)'(seg_data_i) << {off, 3'b000};
  assign wide_strb = (((2*BeatBytes)'(1) << seg_len_i) - (2*BeatBytes)'(1)) << off;
  assign beat0_addr = {seg_addr_i[AddrWidth-1:BeatShift], BeatShift'(0)};
  assign needs_second = wide_strb[2*BeatBytes-1:BeatBytes] != '0;

  assign beat_valid_o = seg_valid_i;
  assign beat_addr_o = second_q ? beat0_addr + AddrWidth'(BeatBytes) : beat0_addr;
  assign beat_data_o = second_q ? wide_data[2*DataWidth-1:DataWidth] : wide_data[DataWidth-1:0];
  assign beat_strb_o = second_q ? wide_strb[2*BeatBytes-1:BeatBytes] : wide_strb[BeatBytes-1:0];
  assign seg_ready_o = beat_ready_i && (second_q || !needs_second);
  assign idle_o = !second_q && !seg_valid_i;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      second_q <= 1'b0;
    end else if (clear_i) begin
      second_q <= 1'b0;
    end else if (seg_valid_i && beat_ready_i) begin
      second_q <= !second_q && needs_second;
    end
  end

  if (SegBytes > BeatBytes) begin : gen_bad_seg
    $error("sps_out_align: a segment (C bytes) must fit one AXI beat");
  end

  // Assertions (simulation only).
`ifndef SYNTHESIS
  SegLenInRange: assert property (@(posedge clk_i) disable iff (!rst_ni)
      seg_valid_i |-> (seg_len_i >= 8'd1 && seg_len_i <= 8'(SegBytes)));
  SegHeldDuringSecondBeat: assert property (@(posedge clk_i) disable iff (!rst_ni) second_q |-> seg_valid_i);
`endif

endmodule

`default_nettype wire
