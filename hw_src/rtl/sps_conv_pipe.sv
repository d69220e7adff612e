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
  parameter int unsigned RowAw = ActAw - ColShift
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,

  // configuration of the running layer and row group (stable between init_i and !busy_o)
  input  wire logic [15:0]               in_h_i,
  input  wire logic [15:0]               in_w_i,
  input  wire logic [15:0]               out_w_i,
  input  wire logic [31:0]               out_pixels_i,   // out_h * out_w
  input  wire logic [31:0]               in_plane_i,     // in_h * in_w: bytes per input channel
  input  wire logic [7:0]                stride_h_i,
  input  wire logic [7:0]                stride_w_i,
  input  wire logic [7:0]                pad_top_i,
  input  wire logic [7:0]                pad_left_i,
  input  wire logic [23:0]               out_w_stride_i, // out_w * stride_w
  input  wire logic                      linear_i,       // stride 1 and out_w == in_w: one read per column per cycle
  input  wire logic                      pps_i,
  input  wire logic [7:0]                patterns_i,
  input  wire logic [7:0]                nnz_i,
  input  wire logic [15:0]               in_c_i,
  input  wire logic [7:0]                kw_i,
  input  wire logic [3:0]                residue_i,
  input  wire logic [MaxPatterns*9-1:0]  masks_i,

  input  wire logic                      init_i,         // start the tiles of a row group
  input  wire logic                      stop_i,         // abort: drop the tiles left and the shadow bank
  output logic                           busy_o,         // tiles left or steps in flight
  output logic                           mac_o,          // the array accumulates this cycle

  // activation buffer: one row address per bank, data one cycle later
  output logic [Cols*RowAw-1:0]          act_row_o,
  input  wire logic [Cols*8-1:0]         act_data_i,
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
  // by/bx are the input coordinates of the window origin: y * stride - pad.
  // ---------------------------------------------------------------------------------------------
  logic signed [19:0] cur_by_q [Cols], cur_bx_q [Cols], nxt_by_q [Cols], nxt_bx_q [Cols];
  logic [16:0] nxt_x_q [Cols];
  logic [Cols-1:0] cur_act_q;                  // column holds a real pixel (< out_pixels)
  logic [Cols-1:0] nxt_norm;                   // column's nxt_x still >= out_w
  logic [31:0] nxt_base_q, cap_base_q, shadow_base_q;
  logic [7:0] ncols_q;                         // real pixels in the current tile
  logic cur_valid_q, nxt_ok, nxt_more, advance;
  logic run_q;                                 // between init_i and the last tile: tiles may start
  logic [7:0] j_q;                             // serial path: column being read
  logic [31:0] chan_base_q;                    // i * in_plane
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
  // Stage 0: choose the step, per-column bounds check.
  // ---------------------------------------------------------------------------------------------
  logic j_last, tile_last_step, last_in_flight, issue;
  logic [Cols-1:0] mask0;
  logic signed [19:0] sel_by, sel_bx;
  logic v1_q, v2_q, v3_q, first1_q, first2_q, first3_q, last1_q, last2_q, last3_q;

  assign j_last = linear_i || (j_q == ncols_q - 8'd1);
  assign tile_last_step = idx_last && j_last;
  assign last_in_flight = (v1_q && last1_q) || (v2_q && last2_q) || (v3_q && last3_q);
  // The last step of a tile waits until the shadow bank is free (it is the step that fills it).
  assign issue = cur_valid_q && (!tile_last_step || (!shadow_full_q && !last_in_flight));
  assign idx_step = issue && j_last;

  assign sel_by = linear_i ? cur_by_q[0] : cur_by_q[j_q[ColShift-1:0]];
  assign sel_bx = linear_i ? cur_bx_q[0] : cur_bx_q[j_q[ColShift-1:0]];

  for (genvar c = 0; c < Cols; c++) begin : gen_col
    logic signed [19:0] iy, ix;
    assign iy = cur_by_q[c] + $signed({12'b0, ky});
    assign ix = cur_bx_q[c] + $signed({12'b0, kx});
    assign mask0[c] = cur_act_q[c] && iy >= 0 && iy < $signed({4'b0, in_h_i})
                      && ix >= 0 && ix < $signed({4'b0, in_w_i})
                      && (linear_i || j_q == 8'(c));
    assign nxt_norm[c] = nxt_x_q[c] >= {1'b0, out_w_i};

    always_ff @(posedge clk_i or negedge rst_ni) begin
      if (!rst_ni) begin
        cur_by_q[c] <= '0;
        cur_bx_q[c] <= '0;
        nxt_by_q[c] <= '0;
        nxt_bx_q[c] <= '0;
        nxt_x_q[c] <= '0;
      end else if (init_i) begin
        nxt_x_q[c] <= 17'(c);
        nxt_by_q[c] <= -$signed({12'b0, pad_top_i});
        nxt_bx_q[c] <= $signed(20'(c) * {12'b0, stride_w_i}) - $signed({12'b0, pad_left_i});
      end else if (advance) begin
        cur_by_q[c] <= nxt_by_q[c];
        cur_bx_q[c] <= nxt_bx_q[c];
        nxt_x_q[c] <= nxt_x_q[c] + 17'(Cols);
        nxt_bx_q[c] <= nxt_bx_q[c] + $signed(20'(Cols) * {12'b0, stride_w_i});
      end else if (nxt_norm[c]) begin
        nxt_x_q[c] <= nxt_x_q[c] - {1'b0, out_w_i};
        nxt_bx_q[c] <= nxt_bx_q[c] - $signed({1'b0, out_w_stride_i[18:0]});
        nxt_by_q[c] <= nxt_by_q[c] + $signed({12'b0, stride_h_i});
      end
    end
  end

  assign nxt_ok = (nxt_norm == '0);
  assign nxt_more = run_q && (nxt_base_q < out_pixels_i);
  assign advance = !init_i && nxt_ok && nxt_more && (!cur_valid_q || (issue && tile_last_step));

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      cur_valid_q <= 1'b0;
      nxt_base_q <= '0;
      cur_act_q <= '0;
      ncols_q <= '0;
      j_q <= '0;
      chan_base_q <= '0;
    end else if (init_i || stop_i) begin
      cur_valid_q <= 1'b0;
      run_q <= !stop_i;
      nxt_base_q <= '0;
      j_q <= '0;
      chan_base_q <= '0;
    end else begin
      if (advance) begin
        cur_valid_q <= 1'b1;
        nxt_base_q <= nxt_base_q + 32'(Cols);
        ncols_q <= (out_pixels_i - nxt_base_q >= 32'(Cols)) ? 8'(Cols) : 8'(out_pixels_i - nxt_base_q);
        for (int c = 0; c < Cols; c++) begin
          cur_act_q[c] <= (nxt_base_q + 32'(c) < out_pixels_i);
        end
      end else if (issue && tile_last_step) begin
        cur_valid_q <= 1'b0;
      end
      if (!cur_valid_q && nxt_base_q >= out_pixels_i) begin
        run_q <= 1'b0;       // every tile of the group has been issued
      end
      if (issue && !linear_i) begin
        j_q <= j_last ? 8'd0 : j_q + 8'd1;
      end
      if (idx_step && idx_k_last) begin
        chan_base_q <= idx_last ? 32'd0 : chan_base_q + in_plane_i;
      end
    end
  end

  // ---------------------------------------------------------------------------------------------
  // Stage 1: input address of the selected column (one multiplier for the whole array).
  // ---------------------------------------------------------------------------------------------
  logic [Cols-1:0] mask1_q, mask2_q, mask3_q;
  logic signed [19:0] iy1_q, ix1_q;
  logic [31:0] cb1_q;
  logic [7:0] j1_q;
  logic [EntryWidth-1:0] entry1_q, entry2_q;
  logic signed [47:0] addr1;
  logic [ActAw-1:0] base2_q;
  logic [ColShift-1:0] rot3_q;

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
    first1_q <= idx_first && j_q == 8'd0;
    last1_q <= tile_last_step;
    mask1_q <= mask0;
    iy1_q <= sel_by + $signed({12'b0, ky});
    ix1_q <= sel_bx + $signed({12'b0, kx});
    cb1_q <= chan_base_q;
    j1_q <= linear_i ? 8'd0 : j_q;
    entry1_q <= entry;
  end

  assign addr1 = $signed({16'b0, cb1_q}) + 48'(iy1_q) * $signed({32'b0, in_w_i}) + 48'(ix1_q)
                 - $signed({40'b0, j1_q});

  // ---------------------------------------------------------------------------------------------
  // Stage 2: bank rows. Column c reads address base + c, which lives in bank (base + c) mod C.
  // ---------------------------------------------------------------------------------------------
  always_ff @(posedge clk_i) begin
    first2_q <= first1_q;
    last2_q <= last1_q;
    mask2_q <= mask1_q;
    base2_q <= addr1[ActAw-1:0];
    entry2_q <= entry1_q;
  end

  for (genvar b = 0; b < Cols; b++) begin : gen_bank_row
    // (for the last bank the comparison is constant false, as it should be)
    /* verilator lint_off CMPCONST */
    assign act_row_o[RowAw*b +: RowAw] = base2_q[ActAw-1:ColShift]
                                         + RowAw'(ColShift'(b) < base2_q[ColShift-1:0]);
    /* verilator lint_on CMPCONST */
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
    rot3_q <= base2_q[ColShift-1:0];
  end

  for (genvar c = 0; c < Cols; c++) begin : gen_rot
    logic [ColShift-1:0] bank;
    assign bank = rot3_q + ColShift'(c);
    assign act3[8*c +: 8] = act_data_i[8*bank +: 8];
  end

  sps_pe_array #(.Rows(Rows), .Cols(Cols), .AccWidth(32)) u_array (
    .clk_i, .rst_ni,
    .valid_i(v3_q),
    .first_i(first3_q),
    .last_i(last3_q),
    .col_en_i(mask3_q),
    .act_i(act3),
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

  // Only the low address bits index the buffer; out-of-range addresses belong to masked columns.
  logic unused;
  assign unused = ^{addr1[47:ActAw], out_w_stride_i[23:19]};
  assign busy_o = cur_valid_q || nxt_more || v1_q || v2_q || v3_q;

  // Parameter checks.
  if (Cols < 2 || (Cols & (Cols - 1)) != 0) begin : gen_bad_cols
    $error("sps_conv_pipe: Cols must be a power of two >= 2 (the activation buffer is banked by address mod C)");
  end

endmodule

`default_nettype wire
