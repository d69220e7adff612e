// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Internal helpers of the SPS core: the rounding, ReLU and saturation tail of docs/arithmetic.md.

`default_nettype none

package sps_core_pkg;

  // Width of a product v * M: |v| < 2^39 and M < 2^31 (docs/arithmetic.md), plus sign and headroom.
  localparam int unsigned ProdWidth = 72;

  // requant tail: (p + R) >>> S with R = 1 << (S - 1) (0 when S == 0), then ReLU, then saturation to int8.
  function automatic logic [7:0] round_shift_sat(input logic signed [ProdWidth-1:0] p,
                                                 input logic [5:0] s,
                                                 input logic relu);
    logic signed [ProdWidth:0] t;
    logic signed [ProdWidth:0] y;
    t = {p[ProdWidth-1], p};
    if (s != 6'd0) begin
      t = t + ((ProdWidth+1)'(1) <<< (s - 6'd1));
    end
    y = t >>> s;
    if (relu && y < 0) begin
      y = '0;
    end
    if (y > (ProdWidth+1)'(127)) begin
      return 8'h7f;
    end else if (y < -(ProdWidth+1)'(128)) begin
      return 8'h80;
    end
    return y[7:0];
  endfunction

endpackage

`default_nettype wire
