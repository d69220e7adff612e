// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Output mux: the layer's statistics record, the ADD packer or the CONV drain's segments -> sps_out_align.

`default_nettype none

module sps_out_mux
  import sps_if_pkg::*;
#(
  parameter int unsigned Cols      = DefaultCols,
  parameter int unsigned AddrWidth = 40
) (
  input  wire logic                         clk_i,
  input  wire logic                         rst_ni,

  // the layer's statistics record, sent in segments of C bytes (first priority)
  input  wire logic                         stats_valid_i,
  input  wire logic [AddrWidth-1:0]         stats_addr_i,    // where the record goes
  input  wire logic [8*StatsRecordBytes-1:0] stats_record_i,
  output logic                              stats_last_o,    // its last segment is taken this cycle

  // the ADD packer (second)
  input  wire logic                         pk_valid_i,
  output logic                              pk_ready_o,
  input  wire logic [AddrWidth-1:0]         pk_addr_i,
  input  wire logic [7:0]                   pk_len_i,
  input  wire logic [Cols*8-1:0]            pk_data_i,

  // the CONV drain's segment FIFO (third)
  input  wire logic                         dr_valid_i,
  output logic                              dr_ready_o,
  input  wire logic [AddrWidth-1:0]         dr_addr_i,
  input  wire logic [7:0]                   dr_len_i,
  input  wire logic [Cols*8-1:0]            dr_data_i,

  // to sps_out_align
  output logic                              seg_valid_o,
  input  wire logic                         seg_ready_i,
  output logic [AddrWidth-1:0]              seg_addr_o,
  output logic [7:0]                        seg_len_o,
  output logic [Cols*8-1:0]                 seg_data_o
);
  // The record goes out in segments of C bytes, or in one when C is larger than the record.
  localparam int unsigned StatsSegBytes = (Cols < StatsRecordBytes) ? Cols : StatsRecordBytes;
  localparam int unsigned StatsSegs = StatsRecordBytes / StatsSegBytes;

  logic [7:0] st_idx_q, st_idx_d;    // segment of the record sent next

  always_comb begin
    st_idx_d = '0;
    if (stats_valid_i) begin
      st_idx_d = seg_ready_i ? st_idx_q + 8'd1 : st_idx_q;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      st_idx_q <= '0;
    end else begin
      st_idx_q <= st_idx_d;
    end
  end

  assign stats_last_o = stats_valid_i && seg_ready_i && 32'(st_idx_q) == 32'(StatsSegs - 1);

  always_comb begin
    seg_valid_o = dr_valid_i;
    seg_addr_o = dr_addr_i;
    seg_len_o = dr_len_i;
    seg_data_o = dr_data_i;
    if (stats_valid_i) begin
      seg_valid_o = 1'b1;
      seg_addr_o = stats_addr_i + AddrWidth'(32'(st_idx_q) * StatsSegBytes);
      seg_len_o = 8'(StatsSegBytes);
      seg_data_o = (Cols*8)'(stats_record_i[StatsSegBytes * 8 * st_idx_q +: StatsSegBytes * 8]);
    end else if (pk_valid_i) begin
      seg_valid_o = 1'b1;
      seg_addr_o = pk_addr_i;
      seg_len_o = pk_len_i;
      seg_data_o = pk_data_i;
    end
  end

  assign pk_ready_o = !stats_valid_i && seg_ready_i;
  assign dr_ready_o = !stats_valid_i && !pk_valid_i && seg_ready_i;

  if (StatsRecordBytes % StatsSegBytes != 0) begin : gen_bad_cols
    $error("sps_out_mux: the statistics record must be a whole number of segments");
  end

  // Assertions (simulation only).
`ifndef SYNTHESIS
  // A layer's record is written after all of its outputs.
  StatsAfterOutputs: assert property (@(posedge clk_i) disable iff (!rst_ni)
      stats_valid_i |-> !pk_valid_i && !dr_valid_i);
`endif

endmodule

`default_nettype wire
