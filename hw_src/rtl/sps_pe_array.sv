// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Output-stationary R x C array of int8 MACs with a shadow bank so a finished tile drains while the next runs.
// Each row has its own activations (shared classes: a slot's rows read other channels than the next slot's).

`default_nettype none

module sps_pe_array #(
  parameter int unsigned Rows = 2,
  parameter int unsigned Cols = 4,
  parameter int unsigned AccWidth = 32
) (
  input  wire logic                         clk_i,
  input  wire logic                         rst_ni,

  // one (i, k) step: row weights shared along a row, activations per row and column
  input  wire logic                         max_mode_i,  // MAXPOOL: acc = max(acc, act), weights unused
  input  wire logic                         valid_i,
  input  wire logic                         first_i,     // first step of a tile: accumulators restart at 0
  input  wire logic                         last_i,      // last step of a tile: results move to the shadow bank
  input  wire logic [Cols-1:0]              col_en_i,    // columns whose activation counts (else padding = 0)
  input  wire logic [Rows*Cols*8-1:0]       act_i,       // int8 activation of row r, column c at [8(Cr + c) +: 8]
  input  wire logic [Rows*8-1:0]            wgt_i,       // int8 weight of row r at [8r +: 8]

  // shadow bank, read one row at a time by the drain
  input  wire logic [$clog2(Rows > 1 ? Rows : 2)-1:0] shadow_row_i,
  output logic [Cols*AccWidth-1:0]          shadow_row_o
);
  localparam int unsigned RowSelWidth = $clog2(Rows > 1 ? Rows : 2);

  logic [Cols*AccWidth-1:0] shadow_q [Rows];

  for (genvar r = 0; r < Rows; r++) begin : gen_row
    logic [Cols*AccWidth-1:0] acc_next;
    for (genvar c = 0; c < Cols; c++) begin : gen_col
      logic signed [AccWidth-1:0] acc_q, acc_d, base;
      logic signed [15:0] prod;
      assign prod = $signed(wgt_i[8*r +: 8]) * $signed(act_i[8*(Cols*r + c) +: 8]);
      logic signed [AccWidth-1:0] act;
      assign act = AccWidth'($signed(act_i[8*(Cols*r + c) +: 8]));
      always_comb begin
        if (max_mode_i) begin
          base = first_i ? -AccWidth'(128) : acc_q;
          acc_d = (col_en_i[c] && act > base) ? act : base;
        end else begin
          base = first_i ? '0 : acc_q;
          acc_d = base + (col_en_i[c] ? AccWidth'(prod) : '0);
        end
      end
      assign acc_next[AccWidth*c +: AccWidth] = acc_d;
      always_ff @(posedge clk_i or negedge rst_ni) begin
        if (!rst_ni) begin
          acc_q <= '0;
        end else if (valid_i) begin
          acc_q <= acc_d;
        end
      end
    end
    always_ff @(posedge clk_i) begin
      if (valid_i && last_i) begin
        shadow_q[r] <= acc_next;
      end
    end
  end

  assign shadow_row_o = shadow_q[shadow_row_i];

  logic unused;
  if (Rows == 1) begin : gen_one_row
    assign unused = ^shadow_row_i;
  end else begin : gen_rows
    assign unused = 1'b0;
  end

  if (RowSelWidth == 0) begin : gen_bad
    $error("sps_pe_array: unreachable");
  end

endmodule

`default_nettype wire
