// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Load engine: read requests and beats -> descriptor words, activation buffer, weight buffer, parameter records.

`default_nettype none

module sps_load
  import sps_if_pkg::*;
  import sps_core_pkg::*;
#(
  parameter int unsigned Rows           = DefaultRows,
  parameter int unsigned Cols           = DefaultCols,
  parameter int unsigned AxiDataWidth   = DefaultAxiDataWidth,
  parameter int unsigned AxiAddrWidth   = 40,
  parameter int unsigned ActBufBytes    = DefaultActBufBytes,
  parameter int unsigned WeightBufBytes = DefaultWeightBufBytes,
  // derived
  parameter int unsigned RowAw      = $clog2(ActBufBytes) - $clog2(Cols),   // activation buffer row (C bytes)
  parameter int unsigned EntryWidth = $clog2(WeightBufBytes / Rows),        // weight buffer entry (R bytes)
  parameter int unsigned RowSel     = $clog2(Rows > 1 ? Rows : 2)
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,
  input  wire logic                      flush_i,        // abort or read error: drop the load in progress

  // one load per command, taken when idle or in the cycle of done_o
  input  wire logic                      cmd_valid_i,
  input  wire sps_core_pkg::ld_cmd_t     cmd_i,
  output logic                           busy_o,         // a load is in progress
  output logic                           receiving_o,    // its request was accepted: beats are due
  output logic                           wait_o,         // it waits on the read engine (request or beat)
  output logic                           done_o,         // its last beat is taken this cycle

  // read engine
  output logic                           rd_req_valid_o,
  input  wire logic                      rd_req_ready_i,
  output logic [AxiAddrWidth-1:0]        rd_req_addr_o,
  output logic [31:0]                    rd_req_beats_o,
  input  wire logic                      rd_beat_valid_i,
  output logic                           rd_beat_ready_o,
  input  wire logic [AxiDataWidth-1:0]   rd_beat_data_i,

  // descriptor words: word w at [32*w +: 32]
  output logic [32*DescWords-1:0]        desc_words_o,
  // parameter records: the record of row par_row_i in bank par_bank_i
  input  wire logic                      par_bank_i,
  input  wire logic [RowSel-1:0]         par_row_i,
  output sps_core_pkg::par_rec_t         par_rec_o,
  // activation buffer: byte a in row a / C, bank a mod C (act_skew_i: bank (a mod C) ^ (a / C) mod 2, an odd row
  // holds its byte pairs swapped); two read ports, each one row address per bank (port p, bank b at
  // [RowAw*(Cols*p + b)]), data a cycle later. Port 0 shares each bank's port with the writes of DstAct loads.
  input  wire logic                      act_skew_i,     // the running layer's mapping (derived_t.act_skew)
  input  wire logic [2*Cols*RowAw-1:0]   act_rrow_i,
  output logic [2*Cols*8-1:0]            act_rdata_o,
  // the same reads' whole words on port 0: the bytes at that position in every slice (slice l of bank b at
  // [8*(ActLanes*b + l) +: 8]); shared classes read ActLanes channels at a time from slice 0's addresses
  output logic [Cols*ActLanes*8-1:0]     act_rword_o,
  // a kept output row (hw/residency.py): C bytes into buffer row keep_row_i through port 1 (the reads of the
  // layers that keep, shared classes and ADD, use port 0 only)
  input  wire logic                      keep_we_i,
  input  wire logic                      keep_skew_i,    // in the skewed mapping (odd rows' byte pairs swapped)
  input  wire logic [RowAw-1:0]          keep_row_i,
  input  wire logic [Cols*8-1:0]         keep_data_i,
  // DstAct with stream: the bytes the buffer would take, one write's worth a cycle (min(C, beat) bytes, part
  // idx mod ActParts of a row), to the ADD instead; last with the load's final part
  output logic                           stream_valid_o,
  input  wire logic                      stream_ready_i,
  output logic [((Cols < AxiDataWidth / 8) ? Cols : AxiDataWidth / 8)*8-1:0] stream_data_o,
  output logic                           stream_last_o,
  // weight buffer: entry of R weights, a cycle later
  input  wire logic [EntryWidth-1:0]     wgt_raddr_i,
  output logic [Rows*8-1:0]              wgt_rdata_o
);
  localparam int unsigned BeatBytes = AxiDataWidth / 8;
  localparam int unsigned BeatShift = $clog2(BeatBytes);
  localparam int unsigned BeatWords = BeatBytes / 4;
  // The activation buffer takes WrBytes bytes a cycle: a row of C bytes (several a beat), or when C exceeds the
  // beat a beat's worth, ActParts of them a row (banks ActParts-th by ActParts-th).
  localparam int unsigned WrBytes   = (Cols < BeatBytes) ? Cols : BeatBytes;
  localparam int unsigned WrShift   = $clog2(WrBytes);
  localparam int unsigned ActSubs   = BeatBytes / WrBytes;       // buffer writes per beat
  localparam int unsigned ActParts  = Cols / WrBytes;            // buffer writes per row
  localparam int unsigned PartShift = $clog2(ActParts);
  localparam int unsigned WgtSubs   = BeatBytes / Rows;          // weight entries per beat
  localparam int unsigned WgtDepth  = WeightBufBytes / Rows;
  localparam int unsigned RecWords  = ParamRecordBytes / 4;      // bias, M, S, 0
  // The activation buffer is ActLanes slices of SliceBytes: row a / C of byte a is word (row mod WordDepth) of
  // slice row / WordDepth, and each bank stores the ActLanes slices' bytes of one word side by side.
  localparam int unsigned LaneShift  = $clog2(ActLanes);
  localparam int unsigned SliceBytes = ActBufBytes / ActLanes;
  localparam int unsigned WordAw     = RowAw - LaneShift;

  typedef enum logic [1:0] {LdIdle, LdReq, LdData} ld_state_e;

  ld_state_e state_q, state_d;
  sps_core_pkg::ld_cmd_t cmd_q, cmd_d;   // the load in progress
  logic [31:0] left_q, left_d;           // beats still to come
  logic [31:0] idx_q, idx_d;             // where the next beat (part) lands: beat, weight entry, or buffer write
                                         // (DstAct: WrBytes-byte unit, row idx / ActParts, part idx mod ActParts)
  logic [7:0] sub_q, sub_d;              // part of the beat written next (the buffers take C or R bytes a cycle)
  logic [63:0] at_q, at_d;               // DstAct: DDR byte address of the current read's first byte
  logic [31:0] pos_q, pos_d;             // DstAct: buffer byte where that byte lands
  logic [15:0] chans_q, chans_d;         // DstAct: reads left, the current one included
  logic [63:0] rq_at_q, rq_at_d;         // DstAct: DDR address of the next plane to request
  logic [15:0] rq_chans_q, rq_chans_d;   // DstAct: planes not yet requested
  logic [LaneShift-1:0] ln_q, ln_d;      // DstAct with lanes: the current plane's slice
  logic last_sub, beat_fire, beat_done;

  // ------------------------------------------------------------------------------------------------
  // Read requests: one per load, at the command's address; an activation load (DstAct) one per channel plane
  // (one in all for a whole map), each from the beat below its first byte, landing `lead` bytes before that
  // byte's buffer position (a beat boundary: hw/bands.py chooses the buffer stride so). A band's later planes
  // are requested while the plane before still arrives (the read engine takes a request once the one before is
  // on AR), so a plane's read latency hides behind the beats of the one before.
  // ------------------------------------------------------------------------------------------------
  // Beats of a read of `len` bytes whose first byte is `lead` bytes into its first beat.
  function automatic logic [31:0] plane_beats(logic [BeatShift-1:0] lead, logic [47:0] len);
    return 32'((48'(lead) + len + 48'(BeatBytes - 1)) >> BeatShift);
  endfunction

  logic act, early_req;
  logic [BeatShift-1:0] lead, rq_lead, nxt_lead;
  logic [31:0] req_beats, act_row, rq_beats, nxt_beats, nxt_row, nxt_pos;
  logic [63:0] nxt_at;

  assign act = (cmd_q.dest == DstAct);
  assign lead = at_q[BeatShift-1:0];
  assign act_row = (pos_q - 32'(lead)) >> WrShift;
  always_comb begin
    req_beats = cmd_q.beats;
    if (act) req_beats = plane_beats(lead, cmd_q.len);
  end
  // the next plane of the data side: where its beats land, how many there are
  assign nxt_at = at_q + 64'(cmd_q.ddr_stride);
  assign nxt_lead = nxt_at[BeatShift-1:0];
  assign nxt_beats = plane_beats(nxt_lead, cmd_q.len);
  // buf_stride further on; with lanes the next slice, or after the last slice the next block in slice 0
  always_comb begin
    nxt_pos = pos_q + cmd_q.buf_stride;
    if (cmd_q.lanes) begin
      nxt_pos = (ln_q == LaneShift'(ActLanes - 1)) ? pos_q - 32'((ActLanes - 1) * SliceBytes) + cmd_q.buf_stride
                                                     : pos_q + 32'(SliceBytes);
    end
  end
  assign nxt_row = (nxt_pos - 32'(nxt_lead)) >> WrShift;
  // the request side's next plane
  assign rq_lead = rq_at_q[BeatShift-1:0];
  assign rq_beats = plane_beats(rq_lead, cmd_q.len);
  assign early_req = (state_q == LdData) && act && rq_chans_q != '0;

  assign rd_req_valid_o = (state_q == LdReq) || early_req;
  always_comb begin
    rd_req_addr_o = act ? {at_q[AxiAddrWidth-1:BeatShift], BeatShift'(0)} : cmd_q.addr[AxiAddrWidth-1:0];
    rd_req_beats_o = req_beats;
    if (early_req) begin
      rd_req_addr_o = {rq_at_q[AxiAddrWidth-1:BeatShift], BeatShift'(0)};
      rd_req_beats_o = rq_beats;
    end
  end

  // ------------------------------------------------------------------------------------------------
  // Beats: a whole beat at once into the descriptor or parameter registers; into the buffers C (or R) bytes
  // a cycle, the beat taken with its last part.
  // ------------------------------------------------------------------------------------------------
  always_comb begin
    unique case (cmd_q.dest)
      DstAct:  last_sub = (sub_q == 8'(ActSubs - 1));
      DstWgt:  last_sub = (sub_q == 8'(WgtSubs - 1));
      default: last_sub = 1'b1;
    endcase
  end
  logic stream, stream_hold;
  assign stream = cmd_q.dest == DstAct && cmd_q.stream;
  assign stream_hold = stream && !stream_ready_i;                  // the ADD cannot take the part yet
  assign rd_beat_ready_o = (state_q == LdData) && last_sub && !stream_hold;
  assign beat_fire = (state_q == LdData) && rd_beat_valid_i && !stream_hold;   // a (part of a) beat is used
  assign beat_done = beat_fire && rd_beat_ready_o;

  always_comb begin
    state_d = state_q;
    cmd_d = cmd_q;
    left_d = left_q;
    idx_d = idx_q;
    sub_d = sub_q;
    at_d = at_q;
    pos_d = pos_q;
    chans_d = chans_q;
    rq_at_d = rq_at_q;
    rq_chans_d = rq_chans_q;
    ln_d = ln_q;
    done_o = 1'b0;
    unique case (state_q)
      LdIdle: ;
      LdReq: begin
        left_d = req_beats;
        sub_d = '0;
        if (act) idx_d = act_row;
        if (rd_req_ready_i) begin
          state_d = LdData;
          if (act) begin                        // the band's other planes: requested from LdData on
            rq_at_d = nxt_at;
            rq_chans_d = chans_q - 16'd1;
          end
        end
      end
      LdData: begin
        if (early_req && rd_req_ready_i) begin
          rq_at_d = rq_at_q + 64'(cmd_q.ddr_stride);
          rq_chans_d = rq_chans_q - 16'd1;
        end
        if (beat_fire) begin
          idx_d = idx_q + 32'd1;
          sub_d = last_sub ? 8'd0 : sub_q + 8'd1;
        end
        if (beat_done) begin
          left_d = left_q - 32'd1;
          if (left_q == 32'd1 && act && chans_q > 16'd1) begin
            chans_d = chans_q - 16'd1;          // the next channel plane of a band (already requested)
            at_d = nxt_at;
            pos_d = nxt_pos;
            ln_d = ln_q + 1'b1;
            left_d = nxt_beats;
            idx_d = nxt_row;
          end else if (left_q == 32'd1) begin
            done_o = 1'b1;
            state_d = LdIdle;
          end
        end
      end
      default: state_d = LdIdle;
    endcase
    if (cmd_valid_i) begin
      cmd_d = cmd_i;
      idx_d = cmd_i.idx;
      at_d = cmd_i.addr;
      pos_d = cmd_i.buf_pos;
      chans_d = cmd_i.chans;
      rq_chans_d = '0;
      ln_d = '0;
      state_d = LdReq;
    end
    if (flush_i) begin
      state_d = LdIdle;
      rq_chans_d = '0;
    end
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q <= LdIdle;
      cmd_q <= '0;
      left_q <= '0;
      idx_q <= '0;
      sub_q <= '0;
      at_q <= '0;
      pos_q <= '0;
      chans_q <= '0;
      rq_at_q <= '0;
      rq_chans_q <= '0;
      ln_q <= '0;
    end else begin
      state_q <= state_d;
      cmd_q <= cmd_d;
      left_q <= left_d;
      idx_q <= idx_d;
      sub_q <= sub_d;
      at_q <= at_d;
      pos_q <= pos_d;
      chans_q <= chans_d;
      rq_at_q <= rq_at_d;
      rq_chans_q <= rq_chans_d;
      ln_q <= ln_d;
    end
  end

  assign busy_o = (state_q != LdIdle);
  assign receiving_o = (state_q == LdData);
  assign wait_o = (state_q == LdReq) || (state_q == LdData && !rd_beat_valid_i);

  // ------------------------------------------------------------------------------------------------
  // Descriptor words and parameter records (two banks of R records): register files written a beat at a time
  // ------------------------------------------------------------------------------------------------
  logic [31:0] desc_q [DescWords];
  logic [31:0] par_q [2*Rows*RecWords];
  logic desc_we, par_we;

  assign desc_we = beat_fire && cmd_q.dest == DstDesc;
  assign par_we = beat_fire && cmd_q.dest == DstParam;

  always_ff @(posedge clk_i) begin
    for (int w = 0; w < BeatWords; w++) begin
      if (desc_we) desc_q[idx_q * BeatWords + w] <= rd_beat_data_i[32*w +: 32];
      if (par_we) par_q[Rows * RecWords * cmd_q.pbank + idx_q * BeatWords + w] <= rd_beat_data_i[32*w +: 32];
    end
  end

  for (genvar w = 0; w < DescWords; w++) begin : gen_desc_word
    assign desc_words_o[32*w +: 32] = desc_q[w];
  end

  assign par_rec_o.bias  = par_q[Rows * RecWords * par_bank_i + RecWords * par_row_i];
  assign par_rec_o.mult  = par_q[Rows * RecWords * par_bank_i + RecWords * par_row_i + 1][30:0];
  assign par_rec_o.shift = par_q[Rows * RecWords * par_bank_i + RecWords * par_row_i + 2][5:0];

  // ------------------------------------------------------------------------------------------------
  // Activation buffer (C byte-wide banks, two ports each) and weight buffer (one R-byte entry per (i, k))
  // ------------------------------------------------------------------------------------------------
  logic act_we, wgt_we, act_swap, keep_swap;
  logic [RowAw-1:0] act_wrow;
  logic [31:0] act_part;
  logic [WrBytes*8-1:0] act_wrow_data;
  logic [Cols*8-1:0] act_wdata;
  logic [Cols-1:0] act_bank_we;
  logic [EntryWidth-1:0] wgt_waddr;
  logic [Rows*8-1:0] wgt_wdata;

  assign act_we = beat_fire && cmd_q.dest == DstAct && !cmd_q.stream;
  assign stream_valid_o = (state_q == LdData) && rd_beat_valid_i && stream;
  assign stream_data_o = act_wrow_data;
  assign stream_last_o = left_q == 32'd1 && last_sub;
  assign act_wrow = RowAw'(idx_q >> PartShift);
  assign act_part = idx_q & 32'(ActParts - 1);
  assign act_wrow_data = rd_beat_data_i[WrBytes * 8 * sub_q +: WrBytes * 8];
  assign act_swap = act_skew_i && act_wrow[0];
  assign keep_swap = keep_skew_i && keep_row_i[0];   // a kept row for a skewed reader: as a load would write it
  for (genvar b = 0; b < Cols; b++) begin : gen_act_wdata
    // byte j of the row goes to bank j, or to bank j ^ 1 in an odd row under the skew (a pair never straddles
    // two writes: WrBytes >= 2); the write holds bytes part * WrBytes .. + WrBytes - 1 of the row
    assign act_wdata[8*b +: 8] = act_wrow_data[8*((act_swap ? b ^ 1 : b) % WrBytes) +: 8];
    assign act_bank_we[b] = act_we && 32'(b / WrBytes) == act_part;
  end
  assign wgt_we = beat_fire && cmd_q.dest == DstWgt;
  assign wgt_waddr = EntryWidth'(idx_q);
  assign wgt_wdata = rd_beat_data_i[Rows * 8 * sub_q +: Rows * 8];

  for (genvar b = 0; b < Cols; b++) begin : gen_act_bank
    logic [RowAw-1:0] row_a, row_b;
    logic [LaneShift-1:0] lane_a_q, lane_b_q;
    logic [ActLanes*8-1:0] word_a, word_b;
    assign row_a = act_we ? act_wrow : act_rrow_i[RowAw*b +: RowAw];
    assign row_b = keep_we_i ? keep_row_i : act_rrow_i[RowAw*(Cols + b) +: RowAw];
    sps_ram_2rw #(.Width(ActLanes * 8), .Depth(ActBufBytes / Cols / ActLanes)) u_bank (
      .clk_i,
      .we_a_i(ActLanes'(act_bank_we[b]) << act_wrow[RowAw-1 -: LaneShift]),
      .addr_a_i(row_a[WordAw-1:0]),
      .wdata_a_i({ActLanes{act_wdata[8*b +: 8]}}),
      .rdata_a_o(word_a),
      .we_b_i(ActLanes'(keep_we_i) << keep_row_i[RowAw-1 -: LaneShift]),
      .addr_b_i(row_b[WordAw-1:0]),
      .wdata_b_i({ActLanes{keep_data_i[8*(keep_swap ? b ^ 1 : b) +: 8]}}),
      .rdata_b_o(word_b)
    );
    // the byte of the row read: its slice, a cycle later like the data
    always_ff @(posedge clk_i) begin
      lane_a_q <= row_a[RowAw-1 -: LaneShift];
      lane_b_q <= row_b[RowAw-1 -: LaneShift];
    end
    assign act_rdata_o[8*b +: 8] = word_a[8*lane_a_q +: 8];
    assign act_rdata_o[8*(Cols + b) +: 8] = word_b[8*lane_b_q +: 8];
    assign act_rword_o[ActLanes*8*b +: ActLanes*8] = word_a;
  end

  sps_ram_1r1w #(.Width(Rows * 8), .Depth(WgtDepth)) u_wgt (
    .clk_i,
    .we_i(wgt_we),
    .waddr_i(wgt_waddr),
    .wdata_i(wgt_wdata),
    .re_i(1'b1),
    .raddr_i(wgt_raddr_i),
    .rdata_o(wgt_rdata_o)
  );

  // Address bits above the AXI address width are zero.
  logic unused;
  assign unused = ^{cmd_q.addr[63:AxiAddrWidth], at_q[63:AxiAddrWidth], rq_at_q[63:AxiAddrWidth], act_row[31:RowAw]};

  // Assertions (simulation only).
`ifndef SYNTHESIS
  // A command comes only when the engine is free (idle, or its load ends this cycle).
  CmdWhenFree: assert property (@(posedge clk_i) disable iff (!rst_ni)
      cmd_valid_i |-> (state_q == LdIdle || done_o || flush_i));
  WeightWriteInRange: assert property (@(posedge clk_i) disable iff (!rst_ni)
      wgt_we |-> 32'(wgt_waddr) < 32'(WgtDepth));
  ActWriteInRange: assert property (@(posedge clk_i) disable iff (!rst_ni)
      act_we |-> idx_q < 32'(ActBufBytes / WrBytes));
  // A kept row never lands while a load writes the buffer (the layer that keeps has loaded its input).
  KeepNotDuringLoad: assert property (@(posedge clk_i) disable iff (!rst_ni) keep_we_i |-> !act_we);
`endif

endmodule

`default_nettype wire
