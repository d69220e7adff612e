// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Indexing unit: walks (input channel i, nonzero k) and maps it through the pattern table to a tap (ky, kx).

`default_nettype none

module sps_index_unit
  import sps_if_pkg::*;
#(
  parameter int unsigned EntryWidth = 13    // width of the weight-buffer entry index i * K + k
) (
  input  wire logic                    clk_i,
  input  wire logic                    rst_ni,

  // layer / row-group configuration (stable while running)
  input  wire logic                    pps_i,        // PPS: taps from the pattern table; else dense
  input  wire logic [7:0]              patterns_i,   // P (1..MaxPatterns)
  input  wire logic [15:0]             nnz_i,        // K (pools: the kh * kw window taps)
  input  wire logic [15:0]             in_c_i,       // I
  input  wire logic [7:0]              kw_i,         // dense: kernel width
  input  wire logic [3:0]              residue_i,    // r: the row group's class, r < P
  input  wire logic [MaxPatterns*9-1:0] masks_i,     // pattern j: bits [9j +: 9], bit t = tap ky*3+kx

  input  wire logic                    init_i,       // restart at (i, k) = (0, 0) of the first tile
  input  wire logic                    step_i,       // advance to the next (i, k); wraps to (0, 0) after the last

  output logic [7:0]                   ky_o,         // tap of the current (i, k)
  output logic [7:0]                   kx_o,
  output logic [EntryWidth-1:0]        entry_o,      // weight-buffer entry i * K + k
  output logic                         first_o,      // (i, k) == (0, 0)
  output logic                         k_last_o,     // k == K - 1: the next step moves to channel i + 1
  output logic                         last_o        // (i, k) == (I - 1, K - 1)
);
  logic [15:0] i_q;
  logic [15:0] k_q;
  logic [7:0] dky_q, dkx_q;
  logic [3:0] pat_q;
  logic [EntryWidth-1:0] entry_q;
  logic [8:0] mask;
  logic [3:0] tap;

  assign k_last_o = (k_q == nnz_i - 16'd1);
  assign last_o = k_last_o && (i_q == in_c_i - 16'd1);
  assign first_o = (i_q == '0) && (k_q == '0);
  assign entry_o = entry_q;

  // Pattern of kernel (o, i) for a filter of class r: (r + i) mod P, kept as a running counter.
  assign mask = masks_i[9 * pat_q +: 9];

  // Tap = position of the k-th set bit of the mask (taps in increasing order, as layout.taps_of_mask).
  always_comb begin
    logic [3:0] seen;
    tap = 4'd0;
    seen = 4'd0;
    for (int t = 0; t < 9; t++) begin
      if (mask[t]) begin
        if (16'(seen) == k_q) tap = 4'(t);
        seen = seen + 4'd1;
      end
    end
  end

  always_comb begin
    if (pps_i) begin
      unique case (tap)
        4'd0, 4'd1, 4'd2: ky_o = 8'd0;
        4'd3, 4'd4, 4'd5: ky_o = 8'd1;
        default: ky_o = 8'd2;
      endcase
      unique case (tap)
        4'd0, 4'd3, 4'd6: kx_o = 8'd0;
        4'd1, 4'd4, 4'd7: kx_o = 8'd1;
        default: kx_o = 8'd2;
      endcase
    end else begin
      ky_o = dky_q;
      kx_o = dkx_q;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      i_q <= '0;
      k_q <= '0;
      dky_q <= '0;
      dkx_q <= '0;
      pat_q <= '0;
      entry_q <= '0;
    end else if (init_i || (step_i && last_o)) begin
      i_q <= '0;
      k_q <= '0;
      dky_q <= '0;
      dkx_q <= '0;
      pat_q <= residue_i;
      entry_q <= '0;
    end else if (step_i) begin
      entry_q <= entry_q + 1'b1;
      if (k_last_o) begin
        k_q <= '0;
        dky_q <= '0;
        dkx_q <= '0;
        i_q <= i_q + 16'd1;
        pat_q <= (8'(pat_q) + 8'd1 == patterns_i) ? 4'd0 : pat_q + 4'd1;
      end else begin
        k_q <= k_q + 16'd1;
        if (dkx_q + 8'd1 == kw_i) begin
          dkx_q <= '0;
          dky_q <= dky_q + 8'd1;
        end else begin
          dkx_q <= dkx_q + 8'd1;
        end
      end
    end
  end

endmodule

`default_nettype wire
