// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// CONV drain: the tile engine's shadow bank, one row a cycle, through C requantizers into output segments.

`default_nettype none

module sps_conv_drain
  import sps_if_pkg::*;
  import sps_core_pkg::*;
#(
  parameter int unsigned Rows      = DefaultRows,
  parameter int unsigned Cols      = DefaultCols,
  parameter int unsigned AddrWidth = 40,
  parameter int unsigned ActBufBytes = DefaultActBufBytes,
  // derived
  parameter int unsigned RowSel    = $clog2(Rows > 1 ? Rows : 2),
  parameter int unsigned RowAw     = $clog2(ActBufBytes) - $clog2(Cols)   // activation buffer row (C bytes)
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,
  input  wire logic                      abort_i,        // drop the rows in flight and the queued segments

  // the layer and the row group being drained
  input  wire sps_core_pkg::desc_t       desc_i,
  input  wire sps_core_pkg::derived_t    der_i,
  input  wire logic [AddrWidth-1:0]      group_addr_i,   // output address of pixel 0 of the group's first filter
  input  wire logic [31:0]               chan_step_i,    // bytes from one row's filter to the next (o -> o + P)
  input  wire logic [31:0]               o_first_i,      // the group's first filter (pools: the channel)

  // the tile engine's shadow bank: R rows of C accumulators
  input  wire logic                      shadow_full_i,
  input  wire logic [31:0]               shadow_base_i,  // output pixel of column 0
  output logic                           shadow_release_o,
  output logic [RowSel-1:0]              row_o,          // the row read this cycle (and its parameter record)
  input  wire logic [Cols*32-1:0]        shadow_row_i,
  input  wire sps_core_pkg::par_rec_t    rec_i,          // that row's parameter record (CONV)

  // segments of up to C output bytes
  output logic                           seg_valid_o,
  input  wire logic                      seg_ready_i,
  output logic [AddrWidth-1:0]           seg_addr_o,
  output logic [7:0]                     seg_len_o,
  output logic [Cols*8-1:0]              seg_data_o,

  // keep (hw/residency.py): the same rows into the activation buffer, filter o's plane in slice o mod ActLanes
  output logic                           keep_we_o,
  output logic [RowAw-1:0]               keep_row_o,
  output logic [Cols*8-1:0]              keep_data_o,

  output logic                           active_o,       // a shadow bank is being read
  output logic                           busy_o,         // active, or rows in the requantizers
  output logic                           stall_o         // a row waits for room in the segment FIFO
);
  localparam int unsigned SegDepth = 4;
  localparam int unsigned ColShift = $clog2(Cols);
  localparam int unsigned LaneShift = $clog2(ActLanes);
  localparam int unsigned WordAw = RowAw - LaneShift;     // a slice's rows
  localparam int unsigned SegWidth = AddrWidth + 8 + Cols * 8;

  logic pool, issue, last;
  sps_core_pkg::par_rec_t rec;
  logic [Cols*8-1:0] rq_y;

  // ------------------------------------------------------------------------------------------------
  // Row walk: rows 0.. of the shadow bank, filters o_first, o_first + P, ... (pools: row 0 only), each one
  // segment of min(C, pixels left) bytes at group_addr + pixel + row * chan_step. A row is issued when the FIFO
  // has room for it and the rows still in the two requantizer stages (credits).
  // Shared classes: row d * n + j (slot d, n = 2^slot_shift) is filter o_first + d + P * j, one plane further
  // for each slot; rows up to rows_used, those past the last filter (o >= out_c) write nothing.
  // ------------------------------------------------------------------------------------------------
  logic active_q, active_d;
  logic [RowSel-1:0] row_q, row_d;
  logic [31:0] o_q, o_d;                    // filter of the row
  logic [AddrWidth-1:0] addr_q, addr_d;     // its segment's address
  logic [7:0] n_q, n_d;                     // bytes per segment of this tile
  logic v1_q, v1_d, v2_q, v2_d;             // a row in requantizer stage 1, 2
  logic [AddrWidth-1:0] a1_q, a1_d, a2_q, a2_d;
  logic [7:0] n1_q, n1_d, n2_q, n2_d;
  logic [$clog2(SegDepth):0] seg_count;
  logic [7:0] j_q, j_d;                     // shared classes: the row's place in its slot
  logic [31:0] slot_o_q, slot_o_d;          // and the slot's first filter
  logic [AddrWidth-1:0] slot_addr_q, slot_addr_d;
  logic slot_end, skip;
  logic [WordAw-2:0] tile_row_q, tile_row_d;  // keep: the tile's first pixel in buffer rows
  logic [RowAw-1:0] krow, k1_q, k2_q;          // keep: the buffer row of the row issued, then per stage
  // Kept plane o: slice o mod ActLanes, the half the input is not in, (o div ActLanes) * keep_rows rows on.
  logic [WordAw-2:0] kblock;
  // (a product within half a slice: the operands' low WordAw - 1 bits decide it)
  assign kblock = (WordAw-1)'(o_q >> LaneShift) * (WordAw-1)'(der_i.keep_rows);
  assign krow = {o_q[LaneShift-1:0], !desc_i.in_half, kblock + tile_row_q};

  assign pool = (desc_i.op == 4'(OpMaxpool)) || (desc_i.op == 4'(OpAvgpool));
  assign issue = active_q && (32'(seg_count) + 32'(v1_q) + 32'(v2_q) < 32'(SegDepth));
  assign slot_end = j_q == 8'((1 << desc_i.slot_shift) - 1);
  assign skip = der_i.share && o_q >= desc_i.out_c;
  always_comb begin
    if (der_i.share) last = 32'(row_q) + 32'd1 == 32'(der_i.rows_used);
    else last = pool || (32'(row_q) == 32'(Rows - 1)) || (o_q + 32'(der_i.p_eff) >= desc_i.out_c);
  end
  assign shadow_release_o = issue && last;

  always_comb begin
    active_d = active_q;
    row_d = row_q;
    o_d = o_q;
    addr_d = addr_q;
    n_d = n_q;
    v1_d = v1_q;
    a1_d = a1_q;
    n1_d = n1_q;
    v2_d = v2_q;
    a2_d = a2_q;
    n2_d = n2_q;
    j_d = j_q;
    slot_o_d = slot_o_q;
    slot_addr_d = slot_addr_q;
    tile_row_d = tile_row_q;
    if (abort_i) begin
      active_d = 1'b0;
      v1_d = 1'b0;
      v2_d = 1'b0;
    end else begin
      if (!active_q && shadow_full_i) begin
        active_d = 1'b1;
        row_d = '0;
        o_d = o_first_i;
        addr_d = group_addr_i + AddrWidth'(shadow_base_i);
        n_d = (der_i.out_pixels - shadow_base_i >= 32'(Cols)) ? 8'(Cols) : 8'(der_i.out_pixels - shadow_base_i);
        j_d = '0;
        slot_o_d = o_first_i;
        slot_addr_d = group_addr_i + AddrWidth'(shadow_base_i);
        tile_row_d = (WordAw-1)'(shadow_base_i >> ColShift);
      end else if (issue) begin
        active_d = !last;
        row_d = row_q + 1'b1;
        o_d = o_q + 32'(der_i.p_eff);
        addr_d = addr_q + AddrWidth'(chan_step_i);
        j_d = j_q + 8'd1;
        if (der_i.share && slot_end) begin
          j_d = '0;
          slot_o_d = slot_o_q + 32'd1;
          slot_addr_d = slot_addr_q + AddrWidth'(der_i.out_cs);
          o_d = slot_o_q + 32'd1;
          addr_d = slot_addr_q + AddrWidth'(der_i.out_cs);
        end
      end
      v1_d = issue && !skip;
      a1_d = addr_q;
      n1_d = n_q;
      v2_d = v1_q;
      a2_d = a1_q;
      n2_d = n1_q;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      active_q <= 1'b0;
      row_q <= '0;
      o_q <= '0;
      addr_q <= '0;
      n_q <= '0;
      v1_q <= 1'b0;
      a1_q <= '0;
      n1_q <= '0;
      v2_q <= 1'b0;
      a2_q <= '0;
      n2_q <= '0;
      j_q <= '0;
      slot_o_q <= '0;
      slot_addr_q <= '0;
      tile_row_q <= '0;
      k1_q <= '0;
      k2_q <= '0;
    end else begin
      active_q <= active_d;
      row_q <= row_d;
      o_q <= o_d;
      addr_q <= addr_d;
      n_q <= n_d;
      v1_q <= v1_d;
      a1_q <= a1_d;
      n1_q <= n1_d;
      v2_q <= v2_d;
      a2_q <= a2_d;
      n2_q <= n2_d;
      j_q <= j_d;
      slot_o_q <= slot_o_d;
      slot_addr_q <= slot_addr_d;
      tile_row_q <= tile_row_d;
      k1_q <= krow;
      k2_q <= k1_q;
    end
  end

  assign row_o = row_q;
  assign active_o = active_q;
  assign busy_o = active_q || v1_q || v2_q;
  assign stall_o = active_q && !issue;

  // ------------------------------------------------------------------------------------------------
  // Requantizers: C lanes, (acc + bias) * M, round, S, ReLU, saturation; two stages
  // ------------------------------------------------------------------------------------------------
  // Pools: bias 0 and the descriptor's M and S (MAXPOOL passes the maximum through: M = 1, S = 0).
  always_comb begin
    rec = rec_i;
    if (pool) begin
      rec.bias = '0;
      rec.mult = (desc_i.op == 4'(OpMaxpool)) ? 31'd1 : desc_i.mult[30:0];
      rec.shift = (desc_i.op == 4'(OpMaxpool)) ? 6'd0 : desc_i.shift[5:0];
    end
  end

  for (genvar c = 0; c < Cols; c++) begin : gen_lane
    // acc + bias is an int32 register sum: it wraps like the accumulators (reference: _wrap_int32).
    logic signed [31:0] v;
    assign v = $signed(shadow_row_i[32*c +: 32]) + $signed(rec.bias);
    sps_requant u_rq (
      .clk_i,
      .v_i(40'(v)),
      .mult_i(rec.mult),
      .shift_i(rec.shift),
      .relu_i(desc_i.relu),
      .y_o(rq_y[8*c +: 8])
    );
  end

  // ------------------------------------------------------------------------------------------------
  // Segment FIFO between the requantizers and the output mux (the credits keep it from overflowing)
  // ------------------------------------------------------------------------------------------------
  logic fifo_wready;

  sps_fifo #(.Width(SegWidth), .Depth(SegDepth)) u_seg_fifo (
    .clk_i, .rst_ni,
    .clear_i(abort_i),
    .wvalid_i(v2_q),
    .wready_o(fifo_wready),
    .wdata_i({a2_q, n2_q, rq_y}),
    .rvalid_o(seg_valid_o),
    .rready_i(seg_ready_i),
    .rdata_o({seg_addr_o, seg_len_o, seg_data_o}),
    .count_o(seg_count)
  );

  // keep: the row leaves the requantizers into the segment FIFO and, in the same cycle, the buffer
  assign keep_we_o = v2_q && desc_i.keep;
  assign keep_row_o = k2_q;
  assign keep_data_o = rq_y;

  // Fields of the descriptor a drain does not read (the sign bit of M and the top bits of S are zero); the FIFO
  // never refuses a row (credits).
  logic unused;
  assign unused = ^{desc_i, der_i, fifo_wready};

  // Assertions (simulation only).
`ifndef SYNTHESIS
  // The credits keep the segment FIFO from ever refusing a requantized row.
  SegFifoNeverFull: assert property (@(posedge clk_i) disable iff (!rst_ni) v2_q |-> fifo_wready);
`endif

endmodule

`default_nettype wire
