// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// True dual-port RAM: each port writes (byte enables), or reads when it does not write. Inferable as BRAM (TDP
// with byte-wide write enables). The two ports never write the same word in one cycle (their users keep apart).

`default_nettype none

module sps_ram_2rw #(
  parameter int unsigned Width = 8,          // a multiple of 8
  parameter int unsigned Depth = 1024
) (
  input  wire logic                     clk_i,

  // port A: a write, else a registered read of addr_a_i
  input  wire logic [Width/8-1:0]       we_a_i,      // per byte
  input  wire logic [$clog2(Depth)-1:0] addr_a_i,
  input  wire logic [Width-1:0]         wdata_a_i,
  output logic [Width-1:0]              rdata_a_o,

  // port B: the same
  input  wire logic [Width/8-1:0]       we_b_i,
  input  wire logic [$clog2(Depth)-1:0] addr_b_i,
  input  wire logic [Width-1:0]         wdata_b_i,
  output logic [Width-1:0]              rdata_b_o
);
  logic [Width-1:0] mem_q [Depth];

  always_ff @(posedge clk_i) begin
    for (int b = 0; b < Width / 8; b++) begin
      if (we_a_i[b]) mem_q[addr_a_i][8*b +: 8] <= wdata_a_i[8*b +: 8];
    end
    if (we_a_i == '0) begin
      rdata_a_o <= mem_q[addr_a_i];
    end
  end

  always_ff @(posedge clk_i) begin
    for (int b = 0; b < Width / 8; b++) begin
      if (we_b_i[b]) mem_q[addr_b_i][8*b +: 8] <= wdata_b_i[8*b +: 8];
    end
    if (we_b_i == '0) begin
      rdata_b_o <= mem_q[addr_b_i];
    end
  end

endmodule

`default_nettype wire
