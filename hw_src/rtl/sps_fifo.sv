// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Small synchronous FIFO (first word fall-through) with an occupancy count.

`default_nettype none

module sps_fifo #(
  parameter int unsigned Width = 8,
  parameter int unsigned Depth = 4     // power of two
) (
  input  wire logic             clk_i,
  input  wire logic             rst_ni,
  input  wire logic             clear_i,   // drop every entry
  // write side
  input  wire logic             wvalid_i,
  output logic                  wready_o,
  input  wire logic [Width-1:0] wdata_i,
  // read side
  output logic                  rvalid_o,
  input  wire logic             rready_i,
  output logic [Width-1:0]      rdata_o,
  output logic [$clog2(Depth):0] count_o
);
  localparam int unsigned Aw = $clog2(Depth);

  logic [Width-1:0] mem_q [Depth];
  logic [Aw-1:0] wptr_q, rptr_q;
  logic [Aw:0] count_q;
  logic push, pop;

  assign wready_o = (count_q != (Aw+1)'(Depth));
  assign rvalid_o = (count_q != '0);
  assign rdata_o = mem_q[rptr_q];
  assign count_o = count_q;
  assign push = wvalid_i && wready_o;
  assign pop = rvalid_o && rready_i;

  always_ff @(posedge clk_i) begin
    if (push) begin
      mem_q[wptr_q] <= wdata_i;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      wptr_q <= '0;
      rptr_q <= '0;
      count_q <= '0;
    end else if (clear_i) begin
      wptr_q <= '0;
      rptr_q <= '0;
      count_q <= '0;
    end else begin
      if (push) wptr_q <= wptr_q + 1'b1;
      if (pop) rptr_q <= rptr_q + 1'b1;
      count_q <= count_q + (Aw+1)'(push) - (Aw+1)'(pop);
    end
  end

  // Elaboration checks.
  if (Depth < 2 || (Depth & (Depth - 1)) != 0) begin : gen_bad_depth
    $error("sps_fifo: Depth must be a power of two >= 2");
  end

endmodule

`default_nettype wire
