// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Requantizer lane: y = sat8(relu?((v * M + R) >>> S)), two pipeline stages (multiply, round/shift/saturate).

`default_nettype none

module sps_requant
  import sps_core_pkg::*;
(
  input  wire logic               clk_i,
  input  wire logic signed [39:0] v_i,       // accumulator plus bias (|v| < 2^39)
  input  wire logic [30:0]        mult_i,    // M, 0..2^31-1
  input  wire logic [5:0]         shift_i,   // S, 0..63
  input  wire logic               relu_i,
  output logic [7:0]              y_o        // int8, two cycles after the inputs
);
  logic signed [ProdWidth-1:0] prod_q;
  logic [5:0] shift_q;
  logic relu_q;

  always_ff @(posedge clk_i) begin
    prod_q <= ProdWidth'(v_i) * $signed({1'b0, mult_i});
    shift_q <= shift_i;
    relu_q <= relu_i;
    y_o <= round_shift_sat(prod_q, shift_q, relu_q);
  end

endmodule

`default_nettype wire
