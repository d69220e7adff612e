// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// CONV tile engine: tiles of C output pixels, indexing unit, banked activation reads and the R x C PE array.

`default_nettype none

module sps_conv_pipe
  import sps_if_pkg::*;
#(
  parameter int unsigned Rows = 2,
  parameter int unsigned Cols = 4,
  parameter int unsigned ActBufBytes = 16384,
  parameter int unsigned EntryWidth = 12,       // weight-buffer entry index width
  // derived
  parameter int unsigned ColShift = $clog2(Cols),
  parameter int unsigned ActAw = $clog2(ActBufBytes),
  parameter int unsigned RowAw = ActAw - ColShift,
  parameter int unsigned LaneShift = $clog2(ActLanes)
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,

  // configuration of the running layer and row group (stable between init_i and !busy_o)
  input  wire logic [15:0]               in_h_i,
  input  wire logic [15:0]               in_w_i,
  input  wire logic [15:0]               out_w_i,
  input  wire logic [31:0]               out_pixels_i,   // out_h * out_w
  input  wire logic [31:0]               in_plane_i,     // activation-buffer bytes from one input plane to the next
  input  wire logic [7:0]                stride_h_i,
  input  wire logic [7:0]                stride_w_i,
  input  wire logic [7:0]                pad_top_i,
  input  wire logic [7:0]                pad_left_i,
  input  wire logic [23:0]               out_w_stride_i, // out_w * stride_w
  input  wire logic signed [31:0]        row_step_i,     // stride_h * in_w - out_w * stride_w: pb change per output row
  input  wire logic [31:0]               pad_top_w_i,    // pad_top * in_w
  input  wire logic                      pps_i,
  input  wire logic [7:0]                patterns_i,
  input  wire logic [15:0]               nnz_i,
  input  wire logic [15:0]               in_c_i,
  input  wire logic [31:0]               chan_off_i,     // buffer byte of plane 0 (pools: of the group's channel)
  input  wire logic                      max_mode_i,     // MAXPOOL: the array takes maxima
  input  wire logic [7:0]                kw_i,
  input  wire logic [3:0]                residue_i,
  input  wire logic [MaxPatterns*9-1:0]  masks_i,
  input  wire logic                      act_skew_i,     // skewed bank mapping: bank (a mod C) ^ (a / C) mod 2
  input  wire logic                      share_i,        // shared classes: slot d of the rows reads lane i - d
  input  wire logic [2:0]                slot_shift_i,   // rows of a slot: 2^slot_shift
  input  wire logic                      pool_lanes_i,   // shared pools: row r reads slice lane_base + r
  input  wire logic                      lanes_i,        // the input in the shared layout (shared layers, and
                                                         // resident ones): channel i in slice i mod ActLanes
  input  wire logic [LaneShift-1:0]      lane_base_i,

  input  wire logic                      init_i,         // start the tiles of a row group
  input  wire logic                      stop_i,         // abort: drop the tiles left and the shadow bank
  output logic                           busy_o,         // tiles left or steps in flight
  output logic                           mac_o,          // the array accumulates this cycle

  // activation buffer, two read ports: one row address per port and bank (port p, bank b at
  // [RowAw*(Cols*p + b)]), data one cycle later
  output logic [2*Cols*RowAw-1:0]        act_row_o,
  input  wire logic [2*Cols*8-1:0]       act_data_i,
  // port 0's whole words: the ActLanes slices' bytes (bank b, slice l at [8*(ActLanes*b + l) +: 8])
  input  wire logic [Cols*ActLanes*8-1:0] act_word_i,
  // weight buffer: entry address, R weights one cycle later
  output logic [EntryWidth-1:0]          wgt_addr_o,
  input  wire logic [Rows*8-1:0]         wgt_data_i,

  // finished tile: accumulators of R x C outputs of pixels shadow_base_o .. + C - 1
  output logic                           shadow_full_o,
  output logic [31:0]                    shadow_base_o,
  input  wire logic                      shadow_release_i,
  input  wire logic [$clog2(Rows > 1 ? Rows : 2)-1:0] shadow_row_i,
  output logic [Cols*32-1:0]             shadow_row_o
);
  // ---------------------------------------------------------------------------------------------
  // Per-column output coordinates: cur_* for the tile being issued, nxt_* for the next one (advanced
  // by C pixels and renormalized in the background, so a new tile starts without a bubble).
  // by/bx are the input coordinates of the window origin (y * stride - pad, x * stride - pad), pb its
  // offset in the channel plane (by * in_w + bx), all kept incrementally (no per-column multiplier).
  // ---------------------------------------------------------------------------------------------
  logic signed [19:0] cur_by_q [Cols], cur_bx_q [Cols], nxt_by_q [Cols], nxt_bx_q [Cols];
  logic signed [31:0] cur_pb_q [Cols], nxt_pb_q [Cols];
  logic [16:0] nxt_x_q [Cols];
  logic [Cols-1:0] cur_act_q;                  // column holds a real pixel (< out_pixels)
  logic [Cols-1:0] nxt_norm;                   // column's nxt_x still >= out_w
  logic [31:0] nxt_base_q, cap_base_q, shadow_base_q;
  logic cur_valid_q, nxt_ok, nxt_more, advance;
  logic run_q;                                 // between init_i and the last tile: tiles may start
  logic [Cols-1:0] done_q;                     // columns already served for the current (i, k)
  logic [31:0] chan_base_q;                    // i * in_plane (shared classes: (i / ActLanes) * in_plane)
  logic [LaneShift-1:0] lane0_q;               // shared classes: i mod ActLanes, the slice of channel i
  logic shadow_full_q;

  // indexing unit
  logic [7:0] ky, kx;
  logic [EntryWidth-1:0] entry;
  logic idx_first, idx_k_last, idx_last, idx_step;

  sps_index_unit #(.EntryWidth(EntryWidth)) u_index (
    .clk_i, .rst_ni,
    .pps_i, .patterns_i, .nnz_i, .in_c_i, .kw_i, .residue_i, .masks_i,
    .init_i,
    .step_i(idx_step),
    .ky_o(ky), .kx_o(kx), .entry_o(entry),
    .first_o(idx_first), .k_last_o(idx_k_last), .last_o(idx_last)
  );

  // ---------------------------------------------------------------------------------------------
  // Stage 0: per-column bounds and bank of the (i, k) step; each bank serves two columns a cycle (two
  // read ports, the lowest pending column of the bank on port 0, the next on port 1), the columns left
  // in the cycles after. Stride-1 'same' convolutions read C consecutive addresses, one a bank; stride
  // 2 under the skew reads C addresses two apart, one a bank within an output row, so at most two
  // columns share a bank when a tile spans two output rows: one cycle per step either way.
  // ---------------------------------------------------------------------------------------------
  logic step_end, tile_last_step, last_in_flight, issue;
  logic [Cols-1:0] mask0, pending, served, port0;
  logic [ColShift-1:0] bank0 [Cols];
  logic [ColShift:0] step_low;                 // (chan_base + ky * in_w + kx) mod 2C
  logic v1_q, v2_q, v3_q, first1_q, first2_q, first3_q, last1_q, last2_q, last3_q;

  assign step_low = chan_base_q[ColShift:0] + (ColShift+1)'(ky[ColShift:0] * in_w_i[ColShift:0])
                    + kx[ColShift:0];

  for (genvar c = 0; c < Cols; c++) begin : gen_col
    logic signed [19:0] iy, ix;
    logic [ColShift:0] low;                    // address mod 2C: the bank and the row's parity
    assign iy = cur_by_q[c] + $signed({12'b0, ky});
    assign ix = cur_bx_q[c] + $signed({12'b0, kx});
    assign mask0[c] = cur_act_q[c] && iy >= 0 && iy < $signed({4'b0, in_h_i})
                      && ix >= 0 && ix < $signed({4'b0, in_w_i});
    assign low = step_low + cur_pb_q[c][ColShift:0];
    assign bank0[c] = low[ColShift-1:0] ^ ColShift'(act_skew_i && low[ColShift]);
    assign nxt_norm[c] = nxt_x_q[c] >= {1'b0, out_w_i};

    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        cur_by_q[c] <= '0;
        cur_bx_q[c] <= '0;
        cur_pb_q[c] <= '0;
        nxt_by_q[c] <= '0;
        nxt_bx_q[c] <= '0;
        nxt_pb_q[c] <= '0;
        nxt_x_q[c] <= '0;
      end else if (init_i) begin
        nxt_x_q[c] <= 17'(c);
        nxt_by_q[c] <= -$signed({12'b0, pad_top_i});
        nxt_bx_q[c] <= $signed(20'(c) * {12'b0, stride_w_i}) - $signed({12'b0, pad_left_i});
        nxt_pb_q[c] <= $signed(32'(c) * {24'b0, stride_w_i}) - $signed({24'b0, pad_left_i})
                       - $signed(pad_top_w_i);
      end else if (advance) begin
        cur_by_q[c] <= nxt_by_q[c];
        cur_bx_q[c] <= nxt_bx_q[c];
        cur_pb_q[c] <= nxt_pb_q[c];
        nxt_x_q[c] <= nxt_x_q[c] + 17'(Cols);
        nxt_bx_q[c] <= nxt_bx_q[c] + $signed(20'(Cols) * {12'b0, stride_w_i});
        nxt_pb_q[c] <= nxt_pb_q[c] + $signed(32'(Cols) * {24'b0, stride_w_i});
      end else if (nxt_norm[c]) begin
        nxt_x_q[c] <= nxt_x_q[c] - {1'b0, out_w_i};
        nxt_bx_q[c] <= nxt_bx_q[c] - $signed({1'b0, out_w_stride_i[18:0]});
        nxt_by_q[c] <= nxt_by_q[c] + $signed({12'b0, stride_h_i});
        nxt_pb_q[c] <= nxt_pb_q[c] + $signed(row_step_i);
      end
    end
  end

  // Bank conflict resolution: a column is served when fewer than two lower pending columns use its bank;
  // it reads port 1 when one does.
  assign pending = mask0 & ~done_q;
  always_comb begin
    served = '0;
    port0 = '0;
    for (int c = 0; c < Cols; c++) begin
      logic one, two;
      one = 1'b0;
      two = 1'b0;
      for (int d = 0; d < c; d++) begin
        if (pending[d] && bank0[d] == bank0[c]) begin
          two = two | one;
          one = 1'b1;
        end
      end
      served[c] = pending[c] && !two;
      port0[c] = one;
    end
  end

  assign step_end = (pending & ~served) == '0;
  assign tile_last_step = idx_last && step_end;
  assign last_in_flight = (v1_q && last1_q) || (v2_q && last2_q) || (v3_q && last3_q);
  // The last step of a tile waits until the shadow bank is free (it is the step that fills it).
  assign issue = cur_valid_q && (!tile_last_step || (!shadow_full_q && !last_in_flight));
  assign idx_step = issue && step_end;

  assign nxt_ok = (nxt_norm == '0);
  assign nxt_more = run_q && (nxt_base_q < out_pixels_i);
  assign advance = !init_i && nxt_ok && nxt_more && (!cur_valid_q || (issue && tile_last_step));

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      cur_valid_q <= 1'b0;
      run_q <= 1'b0;
      nxt_base_q <= '0;
      cur_act_q <= '0;
      done_q <= '0;
      chan_base_q <= '0;
      lane0_q <= '0;
    end else if (init_i || stop_i) begin
      cur_valid_q <= 1'b0;
      run_q <= !stop_i;
      nxt_base_q <= '0;
      done_q <= '0;
      chan_base_q <= chan_off_i;
      lane0_q <= '0;
    end else begin
      if (advance) begin
        cur_valid_q <= 1'b1;
        nxt_base_q <= nxt_base_q + 32'(Cols);
        for (int c = 0; c < Cols; c++) begin
          cur_act_q[c] <= (nxt_base_q + 32'(c) < out_pixels_i);
        end
      end else if (issue && tile_last_step) begin
        cur_valid_q <= 1'b0;
      end
      if (!cur_valid_q && nxt_base_q >= out_pixels_i) begin
        run_q <= 1'b0;       // every tile of the group has been issued
      end
      if (issue) begin
        done_q <= step_end ? '0 : done_q | served;
      end
      // The next input channel: the next plane, or with shared classes the next slice, the next plane of
      // slice 0 after the last slice.
      if (idx_step && idx_k_last) begin
        lane0_q <= idx_last ? '0 : lane0_q + 1'b1;
        if (idx_last) begin
          chan_base_q <= chan_off_i;
        end else if (!(share_i || lanes_i) || lane0_q == LaneShift'(ActLanes - 1)) begin
          chan_base_q <= chan_base_q + in_plane_i;
        end
      end
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Stage 1: input address of every column: chan_base + ky * in_w + kx + pb (one multiplier).
  // ---------------------------------------------------------------------------------------------
  logic [Cols-1:0] mask1_q, mask2_q, mask3_q;
  logic [31:0] step_off1_q;
  logic signed [31:0] pb1_q [Cols];
  logic [ColShift-1:0] bank1_q [Cols], bank2_q [Cols], bank3_q [Cols];
  logic [Cols-1:0] port1_q, port2_q, port3_q;
  logic [EntryWidth-1:0] entry1_q, entry2_q;
  logic [LaneShift-1:0] lane1_q, lane2_q, lane3_q;
  logic [RowAw-1:0] row2_q [Cols];

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      v1_q <= 1'b0;
      v2_q <= 1'b0;
      v3_q <= 1'b0;
    end else begin
      v1_q <= issue && !init_i && !stop_i;
      v2_q <= v1_q && !stop_i;
      v3_q <= v2_q && !stop_i;
    end
  end

  always_ff @(posedge clk_i) begin
    first1_q <= idx_first && done_q == '0;
    last1_q <= tile_last_step;
    mask1_q <= served;
    port1_q <= port0;
    step_off1_q <= chan_base_q + 32'(ky) * {16'b0, in_w_i} + 32'(kx);
    for (int c = 0; c < Cols; c++) begin
      pb1_q[c] <= cur_pb_q[c];
      bank1_q[c] <= bank0[c];
    end
    entry1_q <= entry;
    lane1_q <= lane0_q;
  end

  // ---------------------------------------------------------------------------------------------
  // Stage 2: each bank's port reads the row of the (at most one) served column that maps to it.
  // ---------------------------------------------------------------------------------------------
  always_ff @(posedge clk_i) begin
    first2_q <= first1_q;
    last2_q <= last1_q;
    mask2_q <= mask1_q;
    port2_q <= port1_q;
    for (int c = 0; c < Cols; c++) begin
      // only the low ActAw bits address the buffer; out-of-range addresses belong to masked columns. In the
      // shared layout the address is within slice 0 and channel i's slice is the row's top bits (a plain layer
      // reading a kept map picks its byte there; shared layers read the whole word).
      row2_q[c] <= RowAw'((step_off1_q + 32'(pb1_q[c])) >> ColShift)
                   | (lanes_i ? RowAw'(lane1_q) << (RowAw - LaneShift) : '0);
      bank2_q[c] <= bank1_q[c];
    end
    entry2_q <= entry1_q;
    lane2_q <= lane1_q;
  end

  for (genvar p = 0; p < 2; p++) begin : gen_port_row
    for (genvar b = 0; b < Cols; b++) begin : gen_bank_row
      always_comb begin
        logic [RowAw-1:0] row;
        row = '0;
        for (int c = 0; c < Cols; c++) begin
          if (mask2_q[c] && bank2_q[c] == ColShift'(b) && port2_q[c] == 1'(p)) row = row | row2_q[c];
        end
        act_row_o[RowAw*(Cols*p + b) +: RowAw] = row;
      end
    end
  end
  assign wgt_addr_o = entry2_q;

  // ---------------------------------------------------------------------------------------------
  // Stage 3: rotate bank data to columns, multiply-accumulate.
  // ---------------------------------------------------------------------------------------------
  logic [Cols*8-1:0] act3;

  always_ff @(posedge clk_i) begin
    first3_q <= first2_q;
    last3_q <= last2_q;
    mask3_q <= mask2_q;
    port3_q <= port2_q;
    for (int c = 0; c < Cols; c++) bank3_q[c] <= bank2_q[c];
    lane3_q <= lane2_q;
  end

  // Column c takes the byte of its own bank and port (a 2C x C crossbar of bytes).
  for (genvar c = 0; c < Cols; c++) begin : gen_route
    assign act3[8*c +: 8] = act_data_i[8*{port3_q[c], bank3_q[c]} +: 8];
  end

  // Shared classes: the columns read C consecutive addresses of slice 0 (stride 1, out_w == in_w), so column c
  // is bank (bank of column 0 + c) mod C on port 0: a rotation of the banks' words (log2 C stages of muxes).
  // Row r (slot r >> slot_shift) takes from each column the byte of slice (i - slot) mod ActLanes; a shared
  // pool's row r the byte of slice lane_base + r (channel pc + r).
  logic [ActLanes*8-1:0] word3 [Cols];
  always_comb begin
    logic [ActLanes*8-1:0] stage [Cols];
    for (int c = 0; c < Cols; c++) stage[c] = act_word_i[ActLanes*8*c +: ActLanes*8];
    for (int s = 0; s < ColShift; s++) begin
      logic [ActLanes*8-1:0] prev [Cols];
      prev = stage;
      if (bank3_q[0][s]) begin
        for (int c = 0; c < Cols; c++) stage[c] = prev[(c + (1 << s)) % Cols];
      end
    end
    word3 = stage;
  end

  logic [Rows*Cols*8-1:0] act_rows3;
  for (genvar r = 0; r < Rows; r++) begin : gen_row_act
    logic [LaneShift-1:0] lane;
    assign lane = pool_lanes_i ? lane_base_i + LaneShift'(r) : lane3_q - LaneShift'(r >> slot_shift_i);
    for (genvar c = 0; c < Cols; c++) begin : gen_row_col
      assign act_rows3[8*(Cols*r + c) +: 8] = share_i ? word3[c][8*lane +: 8] : act3[8*c +: 8];
    end
  end

  sps_pe_array #(.Rows(Rows), .Cols(Cols), .AccWidth(32)) u_array (
    .clk_i, .rst_ni,
    .max_mode_i,
    .valid_i(v3_q),
    .first_i(first3_q),
    .last_i(last3_q),
    .col_en_i(mask3_q),
    .act_i(act_rows3),
    .wgt_i(wgt_data_i),
    .shadow_row_i,
    .shadow_row_o
  );

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      shadow_full_q <= 1'b0;
      cap_base_q <= '0;
      shadow_base_q <= '0;
    end else if (init_i || stop_i) begin
      shadow_full_q <= 1'b0;
      cap_base_q <= '0;
    end else begin
      if (v3_q && last3_q) begin
        shadow_full_q <= 1'b1;
        shadow_base_q <= cap_base_q;
        cap_base_q <= cap_base_q + 32'(Cols);
      end else if (shadow_release_i) begin
        shadow_full_q <= 1'b0;
      end
    end
  end

  assign shadow_full_o = shadow_full_q;
  assign shadow_base_o = shadow_base_q;
  assign mac_o = v3_q;

  logic unused;
  assign unused = ^out_w_stride_i[23:19];
  assign busy_o = cur_valid_q || nxt_more || v1_q || v2_q || v3_q;

  // Parameter checks.
  if (Cols < 2 || (Cols & (Cols - 1)) != 0) begin : gen_bad_cols
    $error("sps_conv_pipe: Cols must be a power of two >= 2 (the activation buffer is banked by address mod C)");
  end

  // Assertions (simulation only).
`ifndef SYNTHESIS
  logic served_clash;
  always_comb begin
    served_clash = 1'b0;
    for (int c = 0; c < Cols; c++) begin
      for (int d = 0; d < c; d++) begin
        if (served[c] && served[d] && bank0[c] == bank0[d] && port0[c] == port0[d]) served_clash = 1'b1;
      end
    end
  end
  // Two columns served in one cycle never read the same port of a bank.
  ServedPortsDistinct: assert property (@(posedge clk_i) disable iff (!rst_ni) issue |-> !served_clash);
  // Shared classes and pools: every column that counts reads port 0 of bank (bank of column 0 + c) mod C, the
  // rotation stage 3 assumes (the share rules: stride 1 with out_w == in_w, or one output pixel).
  logic rotation_broken;
  always_comb begin
    rotation_broken = 1'b0;
    for (int c = 0; c < Cols; c++) begin
      if (mask3_q[c] && (port3_q[c] || bank3_q[c] != ColShift'(bank3_q[0] + ColShift'(c)))) rotation_broken = 1'b1;
    end
  end
  SharedReadsRotate: assert property (@(posedge clk_i) disable iff (!rst_ni) (v3_q && share_i) |-> !rotation_broken);
  // A finished tile never overwrites one the drain has not taken yet.
  ShadowNotOverwritten: assert property (@(posedge clk_i) disable iff (!rst_ni) (v3_q && last3_q) |-> !shadow_full_q);
`endif

endmodule

`default_nettype wire
