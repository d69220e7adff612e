// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// ADD engine: input 1 in chunks through the activation buffer (or already there, kept by the layer before), input 2
// streamed past it, C requant lanes, a packer into output segments (and kept rows into the buffer).

`default_nettype none

module sps_add
  import sps_if_pkg::*;
  import sps_core_pkg::*;
#(
  parameter int unsigned Cols         = DefaultCols,
  parameter int unsigned AxiAddrWidth = 40,
  parameter int unsigned ActBufBytes  = DefaultActBufBytes,
  parameter int unsigned AxiDataWidth = DefaultAxiDataWidth,
  // derived
  parameter int unsigned RowAw        = $clog2(ActBufBytes) - $clog2(Cols),  // activation buffer row (C bytes)
  parameter int unsigned UnitBytes    = (Cols < AxiDataWidth / 8) ? Cols : AxiDataWidth / 8  // stream part
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

  // loads: chunks of input 1 into the lower half of the activation buffer; input 2's chunk streamed (parts of
  // min(C, beat) bytes, a row's parts in order)
  output logic                           ld_valid_o,
  output sps_core_pkg::ld_cmd_t          ld_cmd_o,
  input  wire logic                      ld_done_i,
  input  wire logic                      stream_valid_i,
  output logic                           stream_ready_o,
  input  wire logic [UnitBytes*8-1:0]    stream_data_i,
  input  wire logic                      stream_last_i,

  // activation buffer reads: input 1's row on port 0 (one row address for every bank; the ADD reads nothing on
  // port 1, which takes the kept rows when it keeps), data the next cycle
  output logic                           act_rd_o,       // the ADD drives the read addresses this cycle
  output logic [RowAw-1:0]               act_row_o,
  input  wire logic [2*Cols*8-1:0]       act_rdata_i,    // port 0 in the low half, port 1 in the high half

  // output segments (one buffer row of results each)
  output logic                           seg_valid_o,
  input  wire logic                      seg_ready_i,
  output logic [AxiAddrWidth-1:0]        seg_addr_o,
  output logic [7:0]                     seg_len_o,
  output logic [Cols*8-1:0]              seg_data_o,

  // keep (hw/residency.py): the result rows into the activation buffer too, plane o in slice o mod ActLanes
  output logic                           keep_we_o,
  output logic [RowAw-1:0]               keep_row_o,
  output logic [Cols*8-1:0]              keep_data_o,

  output logic                           stall_o         // a row waits for room among the results
);
  localparam int unsigned AW        = AxiAddrWidth;
  localparam int unsigned ColShift  = $clog2(Cols);
  localparam int unsigned HalfBytes = ActBufBytes / 2;      // input 1's chunks
  localparam int unsigned Parts     = Cols / UnitBytes;     // stream parts a row
  // A row of C elements a cycle, as soon as input 2's row has streamed in: read input 1's row, latch both,
  // multiply, round, into the result FIFO. A row is read only when the FIFO has room for it and for every row
  // still in the pipeline (credits), so no stage ever has to stop; the packer empties the FIFO one segment a
  // cycle. Input 2's chunk streams in while the rows before are computed and written: an ADD takes about the
  // time of reading its two inputs.
  localparam int unsigned Stages    = 4;                    // read data, latched rows, sums, results
  localparam int unsigned ResDepth  = 8;                    // result FIFO, >= Stages for one row a cycle
  localparam int unsigned ResWidth  = AW + 8 + Cols * 8;    // address, count, results
  localparam int unsigned LaneShift = $clog2(ActLanes);
  localparam int unsigned WordAw    = RowAw - LaneShift;    // a slice's rows

  typedef enum logic [2:0] {AdIdle, AdChunk, AdLoadA, AdIssueB, AdRows, AdDrainB, AdFinish} add_state_e;

  add_state_e state_q, state_d;
  logic [31:0] off_q, off_d;              // byte of the maps where the chunk starts
  logic [31:0] chunk_q, chunk_d;          // bytes in the chunk
  logic [RowAw-1:0] row_q, row_d;         // buffer row (C elements) of the chunk read next
  logic [7:0] cnt;                        // results in the row read now
  logic [31:0] chunk_left;
  logic [AW-1:0] ld_addr;
  logic issue, can_issue, last_row;
  // input 2's row being assembled from the stream, and the row taken by the issue
  logic [Cols*8-1:0] brow_q, b0_q;
  logic [$clog2(Parts > 1 ? Parts : 2)-1:0] bpart_q;
  logic bfull_q, take, b_done_q;         // a whole row (or the stream's last part) is in; the stream ended

  logic [Stages-1:0] v_q;                 // a row in stage s (0: its data at the buffer's output)
  logic [AW-1:0] addr_q [Stages];         // per stage: the row's output address
  logic [7:0] cnt_q [Stages];             //            and its number of results
  logic [Cols*8-1:0] a_q, b_q;            // stage 1: the rows of both inputs
  logic [Cols*8-1:0] y;                   // stage 3: the C results

  logic [$clog2(ResDepth):0] res_count;
  logic res_wready, res_rvalid, res_pop;
  logic [ResWidth-1:0] res_rdata;

  // Resident input 1 and kept results (one chunk: the whole map) are in the shared layout: row t of plane o in
  // slice o mod ActLanes, (o div ActLanes) * keep_rows + t rows into its half. The row issued next: plane o
  // (its low bits the slice), block start and row within the plane, counted as rows issue.
  logic [31:0] pl_t_q, pl_o_q;
  logic [WordAw-2:0] pl_blk_q;
  logic [WordAw-2:0] pl_word;
  logic [RowAw-1:0] rd_row, krow;
  logic [RowAw-1:0] krow_q [Stages];
  assign pl_word = pl_blk_q + (WordAw-1)'(pl_t_q);
  assign rd_row = desc_i.resident ? {pl_o_q[LaneShift-1:0], desc_i.in_half, pl_word} : row_q;
  assign krow = {pl_o_q[LaneShift-1:0], !desc_i.in_half, pl_word};

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      pl_t_q <= '0;
      pl_o_q <= '0;
      pl_blk_q <= '0;
    end else if (state_q == AdIssueB) begin
      pl_t_q <= '0;
      pl_o_q <= '0;
      pl_blk_q <= '0;
    end else if (issue) begin
      pl_t_q <= pl_t_q + 32'd1;
      if (pl_t_q + 32'd1 == der_i.out_pixels >> ColShift) begin
        pl_t_q <= '0;
        pl_o_q <= pl_o_q + 32'd1;
        if (pl_o_q[LaneShift-1:0] == LaneShift'(ActLanes - 1)) pl_blk_q <= pl_blk_q + (WordAw-1)'(der_i.keep_rows);
      end
    end
  end

  assign chunk_left = der_i.out_total - off_q;
  assign cnt = (chunk_q - 32'({row_q, ColShift'(0)}) >= 32'(Cols)) ? 8'(Cols)
               : 8'(chunk_q - 32'({row_q, ColShift'(0)}));
  assign last_row = 32'({row_q, ColShift'(0)}) + 32'(Cols) >= chunk_q;
  assign can_issue = 32'(res_count) + 32'($countones(v_q)) < 32'(ResDepth);
  assign issue = (state_q == AdRows) && can_issue && bfull_q && !flush_i;
  // a part is taken when the row register has room (or its row issues now); after the chunk's last row the
  // stream's extra parts (whole beats past the chunk's end) are dropped
  assign stream_ready_o = !bfull_q || issue || state_q == AdDrainB;
  assign take = stream_valid_i && stream_ready_o;

  // ------------------------------------------------------------------------------------------------
  // Chunks of up to ActBufBytes / 2 bytes of both inputs, loaded one after the other; then the chunk's rows
  // ------------------------------------------------------------------------------------------------
  always_comb begin
    state_d = state_q;
    off_d = off_q;
    chunk_d = chunk_q;
    row_d = row_q;
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
            state_d = AdChunk;
          end
        end

        AdChunk: begin
          // Every row of the chunk before was read; the last one's data is latched this cycle, before the
          // load asked for here can write the buffer (a request and a beat later at the earliest).
          if (off_q >= der_i.out_total) begin
            state_d = AdFinish;
          end else if (desc_i.resident) begin
            chunk_d = chunk_left;                   // input 1 is in the buffer already: the whole map
            state_d = AdIssueB;
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
          ld_cmd_o.chans = 16'd1;                   // input 2's chunk, streamed
          ld_cmd_o.len = 48'(chunk_q);
          ld_cmd_o.stream = 1'b1;
          row_d = '0;
          state_d = AdRows;
        end

        AdRows: begin
          if (issue) begin
            if (last_row) begin
              off_d = off_q + 32'(HalfBytes);
              // the next chunk's load once this one's stream has ended
              state_d = (b_done_q || (take && stream_last_i)) ? AdChunk : AdDrainB;
            end else begin
              row_d = row_q + 1'b1;
            end
          end
        end

        AdDrainB: begin
          if (b_done_q || (take && stream_last_i)) state_d = AdChunk;
        end

        AdFinish: begin
          // every row handed to the packer
          if (v_q == '0 && res_count == '0) begin
            done_o = 1'b1;
            state_d = AdIdle;
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
      v_q <= '0;
      bfull_q <= 1'b0;
      bpart_q <= '0;
      b_done_q <= 1'b0;
    end else begin
      state_q <= state_d;
      off_q <= off_d;
      chunk_q <= chunk_d;
      row_q <= row_d;
      v_q <= flush_i ? '0 : {v_q[Stages-2:0], issue};
      // input 2's row register: parts in order; full at a row's last part or the stream's last part
      if (flush_i || state_q == AdIssueB) begin
        bfull_q <= 1'b0;
        bpart_q <= '0;
        b_done_q <= 1'b0;
      end else begin
        if (issue) bfull_q <= 1'b0;
        if (take && state_q != AdDrainB) begin
          if (bpart_q == $bits(bpart_q)'(Parts - 1) || stream_last_i) begin
            bfull_q <= 1'b1;
            bpart_q <= '0;
          end else begin
            bpart_q <= bpart_q + 1'b1;
          end
        end
        if (take && stream_last_i) b_done_q <= 1'b1;
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (take) brow_q[UnitBytes*8*bpart_q +: UnitBytes*8] <= stream_data_i;
    if (issue) b0_q <= brow_q;
  end

  // Buffer reads: in the cycle a row issues, input 1's row on port 0.
  assign act_rd_o = issue;
  assign act_row_o = rd_row;

  // ------------------------------------------------------------------------------------------------
  // The row pipeline: latch both rows, C lanes a * M + b * M2, then round, shift, ReLU, saturate
  // (docs/arithmetic.md); each stage's output address and count travel with it.
  // ------------------------------------------------------------------------------------------------
  always_ff @(posedge clk_i) begin
    addr_q[0] <= arena_i + AW'(desc_i.out_off) + AW'(off_q) + AW'({row_q, ColShift'(0)});
    cnt_q[0] <= cnt;
    krow_q[0] <= krow;
    for (int st = 1; st < Stages; st++) begin
      addr_q[st] <= addr_q[st-1];
      cnt_q[st] <= cnt_q[st-1];
      krow_q[st] <= krow_q[st-1];
    end
    if (v_q[0]) begin
      a_q <= act_rdata_i[Cols*8-1:0];
      b_q <= b0_q;
    end
  end

  for (genvar c = 0; c < Cols; c++) begin : gen_lane
    logic signed [ProdWidth-1:0] sum_q;
    logic [7:0] y_q;

    always_ff @(posedge clk_i) begin
      sum_q <= ProdWidth'($signed(a_q[8*c +: 8])) * $signed({1'b0, desc_i.mult[30:0]})
               + ProdWidth'($signed(b_q[8*c +: 8])) * $signed({1'b0, desc_i.mult2[30:0]});
      y_q <= round_shift_sat(sum_q, desc_i.shift[5:0], desc_i.relu);
    end

    assign y[8*c +: 8] = y_q;
  end

  sps_fifo #(.Width(ResWidth), .Depth(ResDepth)) u_results (
    .clk_i, .rst_ni,
    .clear_i(flush_i || abort_i),
    .wvalid_i(v_q[Stages-1]),
    .wready_o(res_wready),
    .wdata_i({addr_q[Stages-1], cnt_q[Stages-1], y}),
    .rvalid_o(res_rvalid),
    .rready_i(res_pop),
    .rdata_o(res_rdata),
    .count_o(res_count)
  );

  // ------------------------------------------------------------------------------------------------
  // Packer: holds one segment (a C-aligned row of results; the output map is 64-byte aligned) until the output
  // mux takes it, and takes the next from the FIFO in the same cycle
  // ------------------------------------------------------------------------------------------------
  logic pk_full_q, pk_full_d;
  logic [7:0] pk_cnt_q, pk_cnt_d;
  logic [AW-1:0] pk_addr_q, pk_addr_d;
  logic [Cols*8-1:0] pk_data_q, pk_data_d;

  assign res_pop = res_rvalid && (!pk_full_q || seg_ready_i) && !abort_i;

  always_comb begin
    pk_full_d = pk_full_q;
    pk_cnt_d = pk_cnt_q;
    pk_addr_d = pk_addr_q;
    pk_data_d = pk_data_q;
    if (abort_i) begin
      pk_full_d = 1'b0;
      pk_cnt_d = '0;
    end else begin
      if (pk_full_q && seg_ready_i) begin
        pk_full_d = 1'b0;
        pk_cnt_d = '0;
      end
      if (res_pop) begin
        {pk_addr_d, pk_cnt_d, pk_data_d} = res_rdata;
        pk_full_d = 1'b1;
      end
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
  assign stall_o = (state_q == AdRows) && !can_issue;
  // keep: a result row enters the FIFO and, in the same cycle, the buffer
  assign keep_we_o = v_q[Stages-1] && desc_i.keep;
  assign keep_row_o = krow_q[Stages-1];
  assign keep_data_o = y;

  // Fields of the descriptor the ADD does not read (the sign bits of M, M2 and the top bits of S are zero).
  logic unused;
  assign unused = ^{desc_i, der_i, act_rdata_i[2*Cols*8-1:Cols*8]};

  // Assertions (simulation only).
`ifndef SYNTHESIS
  StartWhenIdle: assert property (@(posedge clk_i) disable iff (!rst_ni) start_i |-> state_q == AdIdle);
  // The credits keep room for every row in flight.
  ResultsHaveRoom: assert property (@(posedge clk_i) disable iff (!rst_ni) v_q[Stages-1] |-> res_wready);
`endif

endmodule

`default_nettype wire
