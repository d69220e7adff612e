// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// ADD engine: both inputs in chunks through the activation buffer, C requant lanes, a packer into output segments.

`default_nettype none

module sps_add
  import sps_if_pkg::*;
  import sps_core_pkg::*;
#(
  parameter int unsigned Cols         = DefaultCols,
  parameter int unsigned AxiAddrWidth = 40,
  parameter int unsigned ActBufBytes  = DefaultActBufBytes,
  // derived
  parameter int unsigned RowAw        = $clog2(ActBufBytes) - $clog2(Cols)   // activation buffer row (C bytes)
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,
  input  wire logic                      flush_i,        // abort or read error: stop where it is
  input  wire logic                      abort_i,        // abort: drop the packed segment too

  // the layer
  input  wire logic                      start_i,
  output logic                           done_o,         // every output row handed to the packer
  input  wire sps_core_pkg::desc_t       desc_i,
  input  wire sps_core_pkg::derived_t    der_i,
  input  wire logic [AxiAddrWidth-1:0]   arena_i,

  // loads: chunks of input 1 into the lower half of the activation buffer, of input 2 into the upper half
  output logic                           ld_valid_o,
  output sps_core_pkg::ld_cmd_t          ld_cmd_o,
  input  wire logic                      ld_done_i,

  // activation buffer reads: one row address for every bank, data the next cycle
  output logic                           act_rd_o,       // the ADD drives the read address this cycle
  output logic [RowAw-1:0]               act_row_o,
  input  wire logic [Cols*8-1:0]         act_rdata_i,

  // output segments (one buffer row of results each)
  output logic                           seg_valid_o,
  input  wire logic                      seg_ready_i,
  output logic [AxiAddrWidth-1:0]        seg_addr_o,
  output logic [7:0]                     seg_len_o,
  output logic [Cols*8-1:0]              seg_data_o,

  output logic                           stall_o         // results wait for the packer
);
  localparam int unsigned AW        = AxiAddrWidth;
  localparam int unsigned ColShift  = $clog2(Cols);
  localparam int unsigned HalfBytes = ActBufBytes / 2;      // input 1 in the lower half, input 2 above

  typedef enum logic [3:0] {
    AdIdle, AdChunk, AdLoadA, AdIssueB, AdLoadB, AdRdA, AdRdB, AdLatch, AdMul, AdRnd, AdOut
  } add_state_e;

  add_state_e state_q, state_d;
  logic [31:0] off_q, off_d;              // byte of the maps where the chunk starts
  logic [31:0] chunk_q, chunk_d;          // bytes in the chunk
  logic [RowAw-1:0] row_q, row_d;         // buffer row (C elements) of the chunk
  logic [Cols*8-1:0] a_q, a_d, b_q, b_d;  // the row of each input
  logic [31:0] out_idx_q, out_idx_d;      // output byte of the next segment
  logic [Cols*8-1:0] y;                   // the C results of the row
  logic [7:0] cnt;                        // results in the row
  logic [31:0] chunk_left;
  logic [AW-1:0] ld_addr;
  logic pk_full_q, pk_full_d, pk_take;

  assign chunk_left = der_i.out_total - off_q;
  assign cnt = (chunk_q - 32'({row_q, ColShift'(0)}) >= 32'(Cols)) ? 8'(Cols)
               : 8'(chunk_q - 32'({row_q, ColShift'(0)}));
  assign pk_take = (state_q == AdOut) && !pk_full_q;    // the packer takes the row's results

  // ------------------------------------------------------------------------------------------------
  // Chunks of up to ActBufBytes / 2 bytes of both inputs; per buffer row: read both, multiply, round, pack
  // ------------------------------------------------------------------------------------------------
  always_comb begin
    state_d = state_q;
    off_d = off_q;
    chunk_d = chunk_q;
    row_d = row_q;
    a_d = a_q;
    b_d = b_q;
    out_idx_d = out_idx_q;
    done_o = 1'b0;
    ld_valid_o = 1'b0;
    ld_cmd_o = '0;
    ld_addr = '0;

    if (flush_i) begin
      state_d = AdIdle;
    end else begin
      unique case (state_q)
        AdIdle: begin
          if (start_i) begin
            off_d = '0;
            out_idx_d = '0;
            state_d = AdChunk;
          end
        end

        AdChunk: begin
          if (off_q >= der_i.out_total) begin
            done_o = 1'b1;
            state_d = AdIdle;
          end else begin
            chunk_d = (chunk_left > 32'(HalfBytes)) ? 32'(HalfBytes) : chunk_left;
            ld_valid_o = 1'b1;
            ld_cmd_o.dest = DstAct;
            ld_addr = arena_i + AW'(desc_i.in_off) + AW'(off_q);
            ld_cmd_o.chans = 16'd1;                 // one read of the chunk into the lower half
            ld_cmd_o.len = 48'((chunk_left > 32'(HalfBytes)) ? 32'(HalfBytes) : chunk_left);
            state_d = AdLoadA;
          end
        end

        AdLoadA: begin
          if (ld_done_i) state_d = AdIssueB;
        end

        AdIssueB: begin
          ld_valid_o = 1'b1;
          ld_cmd_o.dest = DstAct;
          ld_addr = arena_i + AW'(desc_i.in2_off) + AW'(off_q);
          ld_cmd_o.chans = 16'd1;                   // input 2's chunk into the upper half
          ld_cmd_o.len = 48'(chunk_q);
          ld_cmd_o.buf_pos = 32'(HalfBytes);
          row_d = '0;
          state_d = AdLoadB;
        end

        AdLoadB: begin
          if (ld_done_i) state_d = AdRdA;
        end

        AdRdA: state_d = AdRdB;

        AdRdB: begin
          a_d = act_rdata_i;
          state_d = AdLatch;
        end

        AdLatch: begin
          b_d = act_rdata_i;
          state_d = AdMul;
        end

        AdMul: state_d = AdRnd;

        AdRnd: state_d = AdOut;

        AdOut: begin
          if (pk_take) begin
            out_idx_d = out_idx_q + 32'(cnt);
            if (32'({row_q, ColShift'(0)}) + 32'(Cols) >= chunk_q) begin
              off_d = off_q + 32'(HalfBytes);
              state_d = AdChunk;
            end else begin
              row_d = row_q + 1'b1;
              state_d = AdRdA;
            end
          end
        end

        default: state_d = AdIdle;
      endcase
    end
    ld_cmd_o.addr = 64'(ld_addr);
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q <= AdIdle;
      off_q <= '0;
      chunk_q <= '0;
      row_q <= '0;
      a_q <= '0;
      b_q <= '0;
      out_idx_q <= '0;
    end else begin
      state_q <= state_d;
      off_q <= off_d;
      chunk_q <= chunk_d;
      row_q <= row_d;
      a_q <= a_d;
      b_q <= b_d;
      out_idx_q <= out_idx_d;
    end
  end

  // Buffer reads: input 1's row, then input 2's (one row address for every bank).
  always_comb begin
    act_rd_o = 1'b1;
    act_row_o = row_q;
    unique case (state_q)
      AdRdA: act_row_o = row_q;
      AdRdB: act_row_o = row_q + RowAw'(HalfBytes / Cols);
      default: act_rd_o = 1'b0;
    endcase
  end

  // ------------------------------------------------------------------------------------------------
  // C lanes: a * M + b * M2, then round, shift, ReLU, saturate (docs/arithmetic.md)
  // ------------------------------------------------------------------------------------------------
  for (genvar c = 0; c < Cols; c++) begin : gen_lane
    logic signed [ProdWidth-1:0] sum_q, sum_d;
    logic [7:0] y_q, y_d;

    always_comb begin
      sum_d = sum_q;
      y_d = y_q;
      if (state_q == AdMul) begin
        sum_d = ProdWidth'($signed(a_q[8*c +: 8])) * $signed({1'b0, desc_i.mult[30:0]})
                + ProdWidth'($signed(b_q[8*c +: 8])) * $signed({1'b0, desc_i.mult2[30:0]});
      end
      if (state_q == AdRnd) begin
        y_d = round_shift_sat(sum_q, desc_i.shift[5:0], desc_i.relu);
      end
    end

    always_ff @(posedge clk_i) begin
      sum_q <= sum_d;
      y_q <= y_d;
    end

    assign y[8*c +: 8] = y_q;
  end

  // ------------------------------------------------------------------------------------------------
  // Packer: holds one segment (a C-aligned row of results; the output map is 64-byte aligned) until the output
  // mux takes it
  // ------------------------------------------------------------------------------------------------
  logic [7:0] pk_cnt_q, pk_cnt_d;
  logic [AW-1:0] pk_addr_q, pk_addr_d;
  logic [Cols*8-1:0] pk_data_q, pk_data_d;

  always_comb begin
    pk_full_d = pk_full_q;
    pk_cnt_d = pk_cnt_q;
    pk_addr_d = pk_addr_q;
    pk_data_d = pk_data_q;
    if (abort_i) begin
      pk_full_d = 1'b0;
      pk_cnt_d = '0;
    end else if (pk_full_q) begin
      if (seg_ready_i) begin
        pk_full_d = 1'b0;
        pk_cnt_d = '0;
      end
    end else if (pk_take) begin
      pk_addr_d = arena_i + AW'(desc_i.out_off) + AW'(out_idx_q);
      pk_data_d = y;
      pk_cnt_d = cnt;
      pk_full_d = 1'b1;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      pk_full_q <= 1'b0;
      pk_cnt_q <= '0;
      pk_addr_q <= '0;
      pk_data_q <= '0;
    end else begin
      pk_full_q <= pk_full_d;
      pk_cnt_q <= pk_cnt_d;
      pk_addr_q <= pk_addr_d;
      pk_data_q <= pk_data_d;
    end
  end

  assign seg_valid_o = pk_full_q;
  assign seg_addr_o = pk_addr_q;
  assign seg_len_o = pk_cnt_q;
  assign seg_data_o = pk_data_q;
  assign stall_o = (state_q == AdOut) && pk_full_q;

  // Fields of the descriptor the ADD does not read (the sign bits of M, M2 and the top bits of S are zero).
  logic unused;
  assign unused = ^{desc_i, der_i};

  // Assertions (simulation only).
`ifndef SYNTHESIS
  StartWhenIdle: assert property (@(posedge clk_i) disable iff (!rst_ni) start_i |-> state_q == AdIdle);
`endif

endmodule

`default_nettype wire
