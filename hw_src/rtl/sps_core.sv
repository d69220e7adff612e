// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Layer sequencer of the SPS core: fetches descriptors and runs CONV, MAXPOOL, AVGPOOL and ADD layers.

`default_nettype none

module sps_core
  import sps_if_pkg::*;
  import sps_core_pkg::*;
#(
  parameter int unsigned Rows           = DefaultRows,
  parameter int unsigned Cols           = DefaultCols,
  parameter int unsigned AxiDataWidth   = DefaultAxiDataWidth,
  parameter int unsigned AxiAddrWidth   = 40,
  parameter int unsigned ActBufBytes    = DefaultActBufBytes,
  parameter int unsigned WeightBufBytes = DefaultWeightBufBytes
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,

  // control from the register file
  input  wire logic                      start_i,
  input  wire logic                      abort_i,
  input  wire logic [63:0]               arena_i,
  input  wire logic [31:0]               prog_offset_i,
  input  wire logic [31:0]               num_layers_i,
  input  wire logic [31:0]               stats_offset_i,
  input  wire logic                      stats_enable_i,

  // status to the register file
  output logic                           busy_o,
  output logic                           finish_o,       // pulse at the end of a run
  output logic [7:0]                     err_code_o,     // with finish_o
  output logic [31:0]                    cur_layer_o,
  output logic [63:0]                    cycles_o,
  output logic [63:0]                    mac_cycles_o,
  output logic [63:0]                    stall_cycles_o,
  output logic [63:0]                    bytes_rd_o,
  output logic [63:0]                    bytes_wr_o,

  // read engine
  output logic                           rd_req_valid_o,
  input  wire logic                      rd_req_ready_i,
  output logic [AxiAddrWidth-1:0]        rd_req_addr_o,
  output logic [31:0]                    rd_req_beats_o,
  input  wire logic                      rd_beat_valid_i,
  output logic                           rd_beat_ready_o,
  input  wire logic [AxiDataWidth-1:0]   rd_beat_data_i,
  output logic                           rd_abort_o,
  input  wire logic                      rd_idle_i,
  input  wire logic                      rd_err_i,
  output logic                           rd_clear_o,

  // write engine
  output logic                           wr_beat_valid_o,
  input  wire logic                      wr_beat_ready_i,
  output logic [AxiAddrWidth-1:0]        wr_beat_addr_o,
  output logic [AxiDataWidth-1:0]        wr_beat_data_o,
  output logic [AxiDataWidth/8-1:0]      wr_beat_strb_o,
  input  wire logic                      wr_idle_i,
  input  wire logic                      wr_err_i,
  output logic                           wr_clear_o
);
  localparam int unsigned BeatBytes  = AxiDataWidth / 8;
  localparam int unsigned BeatShift  = $clog2(BeatBytes);
  localparam int unsigned ColShift   = $clog2(Cols);
  localparam int unsigned ActAw      = $clog2(ActBufBytes);
  localparam int unsigned RowAw      = ActAw - ColShift;
  localparam int unsigned WgtDepth   = WeightBufBytes / Rows;
  localparam int unsigned EntryWidth = $clog2(WgtDepth);
  localparam int unsigned RowSel     = $clog2(Rows > 1 ? Rows : 2);
  localparam int unsigned AW         = AxiAddrWidth;

  typedef enum logic [4:0] {
    StIdle, StFetch, StLoad, StDecode, StDerive, StCheck,
    StConv,
    StAdd,
    StLayerEnd, StStats, StStatsWait, StError, StAbort, StFinish
  } state_e;

  state_e state_q, ld_next_q;

  // ------------------------------------------------------------------------------------------------
  // Run state and the descriptor being executed
  // ------------------------------------------------------------------------------------------------
  logic [AW-1:0] arena_q;
  logic [31:0] prog_q, num_layers_q, stats_off_q, layer_q;
  logic stats_en_q;
  logic [7:0] err_q;

  // the descriptor being executed (sps_desc_decode)
  sps_core_pkg::desc_t desc;
  sps_core_pkg::derived_t der;
  logic [47:0] in_bytes;
  logic [7:0] desc_err;
  logic pool;                         // MAXPOOL / AVGPOOL: one channel per group on the tile engine

  // load engine
  logic ld_valid, ld_flush, ld_busy, ld_receiving, ld_wait, ld_done;
  sps_core_pkg::ld_cmd_t ld_cmd;
  logic [AW-1:0] ld_addr;
  sps_core_pkg::par_rec_t par_rec;

  // CONV row groups and pool channels on the tile engine (sps_conv_loop)
  logic cv_start, cv_done, cv_ld_valid, cv_run, cv_stall, cv_par_bank;
  sps_core_pkg::ld_cmd_t cv_ld_cmd, seq_ld_cmd;
  logic seq_ld_valid;
  logic [3:0] cv_residue;
  logic [31:0] cv_chan_off, cv_o_first, cv_chan_step;
  logic [AW-1:0] cv_group_addr;
  logic [EntryWidth-1:0] pipe_wgt_addr;

  // counters
  logic stall;
  logic [8*StatsRecordBytes-1:0] st_record;

  // ------------------------------------------------------------------------------------------------
  // Descriptor decode, derive and check
  // ------------------------------------------------------------------------------------------------
  logic [32*DescWords-1:0] desc_words;

  sps_desc_decode #(
    .Rows(Rows), .AxiDataWidth(AxiDataWidth), .ActBufBytes(ActBufBytes), .WeightBufBytes(WeightBufBytes)
  ) u_decode (
    .clk_i, .rst_ni,
    .words_i(desc_words),
    .decode_i(state_q == StDecode),
    .derive_i(state_q == StDerive),
    .check_i(state_q == StCheck),
    .desc_o(desc),
    .der_o(der),
    .pool_o(pool),
    .in_bytes_o(in_bytes),
    .err_o(desc_err)
  );

  // ------------------------------------------------------------------------------------------------
  // Load engine: descriptor words, activation and weight buffers, parameter records
  // ------------------------------------------------------------------------------------------------
  logic [Cols*8-1:0] act_rdata;
  logic [Cols*RowAw-1:0] act_rrow, pipe_act_row;
  logic [EntryWidth-1:0] wgt_raddr;
  logic [Rows*8-1:0] wgt_rdata;

  for (genvar b = 0; b < Cols; b++) begin : gen_act_rrow
    assign act_rrow[RowAw*b +: RowAw] = add_act_rd ? add_act_row : pipe_act_row[RowAw*b +: RowAw];
  end

  sps_load #(
    .Rows(Rows), .Cols(Cols), .AxiDataWidth(AxiDataWidth), .AxiAddrWidth(AxiAddrWidth),
    .ActBufBytes(ActBufBytes), .WeightBufBytes(WeightBufBytes)
  ) u_load (
    .clk_i, .rst_ni,
    .flush_i(ld_flush),
    .cmd_valid_i(ld_valid),
    .cmd_i(ld_cmd),
    .busy_o(ld_busy),
    .receiving_o(ld_receiving),
    .wait_o(ld_wait),
    .done_o(ld_done),
    .rd_req_valid_o, .rd_req_ready_i, .rd_req_addr_o, .rd_req_beats_o,
    .rd_beat_valid_i, .rd_beat_ready_o, .rd_beat_data_i,
    .desc_words_o(desc_words),
    .par_bank_i(cv_par_bank),
    .par_row_i(drain_row),
    .par_rec_o(par_rec),
    .act_rrow_i(act_rrow),
    .act_rdata_o(act_rdata),
    .wgt_raddr_i(wgt_raddr),
    .wgt_rdata_o(wgt_rdata)
  );

  // ------------------------------------------------------------------------------------------------
  // CONV tile engine and the drain (shadow bank -> C requantizers -> segments of C output bytes)
  // ------------------------------------------------------------------------------------------------
  logic pipe_init, pipe_busy, pipe_mac, shadow_full, shadow_release;
  logic [31:0] shadow_base;
  logic [Cols*32-1:0] shadow_row;
  logic [RowSel-1:0] drain_row;
  logic drain_active, drain_busy, drain_stall;
  logic drain_seg_valid, drain_seg_ready;
  logic [AW-1:0] drain_seg_addr;
  logic [7:0] drain_seg_len;
  logic [Cols*8-1:0] drain_seg_data;
  logic fifo_clear;

  sps_conv_pipe #(
    .Rows(Rows), .Cols(Cols), .ActBufBytes(ActBufBytes), .EntryWidth(EntryWidth)
  ) u_pipe (
    .clk_i, .rst_ni,
    .in_h_i(desc.in_h), .in_w_i(desc.in_w), .out_w_i(desc.out_w),
    .out_pixels_i(der.out_pixels), .in_plane_i(der.in_plane),
    .stride_h_i(desc.stride_h), .stride_w_i(desc.stride_w), .pad_top_i(desc.pad_top), .pad_left_i(desc.pad_left),
    .out_w_stride_i(der.ow_sw), .row_step_i(der.row_step), .pad_top_w_i(der.pt_w),
    .pps_i(desc.pps && !pool), .patterns_i(der.p_eff), .nnz_i(pool ? der.kk : 16'(desc.nnz)),
    .in_c_i(pool ? 16'd1 : desc.in_c[15:0]), .chan_off_i(cv_chan_off),
    .max_mode_i(desc.op == 4'(OpMaxpool)), .kw_i(desc.kw),
    .residue_i(cv_residue), .masks_i(desc.masks),
    .init_i(pipe_init),
    .stop_i(state_q == StAbort),
    .busy_o(pipe_busy),
    .mac_o(pipe_mac),
    .act_row_o(pipe_act_row),
    .act_data_i(act_rdata),
    .wgt_addr_o(pipe_wgt_addr),
    .wgt_data_i(pool ? {Rows{8'h01}} : wgt_rdata),   // pools: every weight 1 (sums, or ignored by max)
    .shadow_full_o(shadow_full),
    .shadow_base_o(shadow_base),
    .shadow_release_i(shadow_release),
    .shadow_row_i(drain_row),
    .shadow_row_o(shadow_row)
  );

  sps_conv_drain #(.Rows(Rows), .Cols(Cols), .AddrWidth(AW)) u_drain (
    .clk_i, .rst_ni,
    .abort_i(state_q == StAbort),
    .desc_i(desc),
    .der_i(der),
    .group_addr_i(cv_group_addr),
    .chan_step_i(cv_chan_step),
    .o_first_i(cv_o_first),
    .shadow_full_i(shadow_full),
    .shadow_base_i(shadow_base),
    .shadow_release_o(shadow_release),
    .row_o(drain_row),
    .shadow_row_i(shadow_row),
    .rec_i(par_rec),
    .seg_valid_o(drain_seg_valid),
    .seg_ready_i(drain_seg_ready),
    .seg_addr_o(drain_seg_addr),
    .seg_len_o(drain_seg_len),
    .seg_data_o(drain_seg_data),
    .active_o(drain_active),
    .busy_o(drain_busy),
    .stall_o(drain_stall)
  );

  sps_conv_loop #(
    .Rows(Rows), .AxiDataWidth(AxiDataWidth), .AxiAddrWidth(AxiAddrWidth), .WeightBufBytes(WeightBufBytes)
  ) u_conv_loop (
    .clk_i, .rst_ni,
    .flush_i(ld_flush),
    .start_i(cv_start),
    .done_o(cv_done),
    .desc_i(desc),
    .der_i(der),
    .arena_i(arena_q),
    .ld_valid_o(cv_ld_valid),
    .ld_cmd_o(cv_ld_cmd),
    .ld_done_i(ld_done),
    .pipe_init_o(pipe_init),
    .pipe_busy_i(pipe_busy),
    .shadow_full_i(shadow_full),
    .residue_o(cv_residue),
    .chan_off_o(cv_chan_off),
    .pipe_wgt_addr_i(pipe_wgt_addr),
    .wgt_raddr_o(wgt_raddr),
    .drain_active_i(drain_active),
    .drain_busy_i(drain_busy),
    .par_bank_o(cv_par_bank),
    .o_first_o(cv_o_first),
    .group_addr_o(cv_group_addr),
    .chan_step_o(cv_chan_step),
    .run_o(cv_run),
    .stall_o(cv_stall)
  );

  // ------------------------------------------------------------------------------------------------
  // ADD engine and its packer
  // ------------------------------------------------------------------------------------------------
  logic add_start, add_done, add_ld_valid, add_act_rd, add_stall;
  sps_core_pkg::ld_cmd_t add_ld_cmd;
  logic [RowAw-1:0] add_act_row;
  logic add_seg_valid, add_seg_ready;
  logic [AW-1:0] add_seg_addr;
  logic [7:0] add_seg_len;
  logic [Cols*8-1:0] add_seg_data;

  sps_add #(
    .Cols(Cols), .AxiDataWidth(AxiDataWidth), .AxiAddrWidth(AxiAddrWidth), .ActBufBytes(ActBufBytes)
  ) u_add (
    .clk_i, .rst_ni,
    .flush_i(ld_flush),
    .abort_i(state_q == StAbort),
    .start_i(add_start),
    .done_o(add_done),
    .desc_i(desc),
    .der_i(der),
    .arena_i(arena_q),
    .ld_valid_o(add_ld_valid),
    .ld_cmd_o(add_ld_cmd),
    .ld_done_i(ld_done),
    .act_rd_o(add_act_rd),
    .act_row_o(add_act_row),
    .act_rdata_i(act_rdata),
    .seg_valid_o(add_seg_valid),
    .seg_ready_i(add_seg_ready),
    .seg_addr_o(add_seg_addr),
    .seg_len_o(add_seg_len),
    .seg_data_o(add_seg_data),
    .stall_o(add_stall)
  );

  // ------------------------------------------------------------------------------------------------
  // Output path: the statistics record, the ADD packer or the CONV drain -> segments -> strobed beats
  // ------------------------------------------------------------------------------------------------
  logic stats_last, aln_seg_valid, aln_seg_ready, aln_idle;
  logic [AW-1:0] aln_seg_addr;
  logic [7:0] aln_seg_len;
  logic [Cols*8-1:0] aln_seg_data;

  sps_out_mux #(.Cols(Cols), .AddrWidth(AW)) u_out_mux (
    .clk_i, .rst_ni,
    .stats_valid_i(state_q == StStats),
    .stats_addr_i(arena_q + AW'(stats_off_q) + AW'(layer_q * StatsRecordBytes)),
    .stats_record_i(st_record),
    .stats_last_o(stats_last),
    .pk_valid_i(add_seg_valid),
    .pk_ready_o(add_seg_ready),
    .pk_addr_i(add_seg_addr),
    .pk_len_i(add_seg_len),
    .pk_data_i(add_seg_data),
    .dr_valid_i(drain_seg_valid),
    .dr_ready_o(drain_seg_ready),
    .dr_addr_i(drain_seg_addr),
    .dr_len_i(drain_seg_len),
    .dr_data_i(drain_seg_data),
    .seg_valid_o(aln_seg_valid),
    .seg_ready_i(aln_seg_ready),
    .seg_addr_o(aln_seg_addr),
    .seg_len_o(aln_seg_len),
    .seg_data_o(aln_seg_data)
  );

  sps_out_align #(.AddrWidth(AW), .DataWidth(AxiDataWidth), .SegBytes(Cols)) u_align (
    .clk_i, .rst_ni,
    .clear_i(fifo_clear),
    .seg_valid_i(aln_seg_valid),
    .seg_ready_o(aln_seg_ready),
    .seg_addr_i(aln_seg_addr),
    .seg_len_i(aln_seg_len),
    .seg_data_i(aln_seg_data),
    .beat_valid_o(wr_beat_valid_o),
    .beat_ready_i(wr_beat_ready_i),
    .beat_addr_o(wr_beat_addr_o),
    .beat_data_o(wr_beat_data_o),
    .beat_strb_o(wr_beat_strb_o),
    .idle_o(aln_idle)
  );

  assign fifo_clear = (state_q == StAbort);

  // ------------------------------------------------------------------------------------------------
  // Load commands (at most one a cycle): the descriptor, the input map, a row group's weights and
  // parameters (or the next group's, prefetched while this one computes), the chunks of both ADD inputs
  // ------------------------------------------------------------------------------------------------
  always_comb begin
    seq_ld_valid = 1'b0;
    seq_ld_cmd = '0;
    ld_addr = '0;
    unique case (state_q)
      StFetch: begin
        if (layer_q != num_layers_q) begin
          seq_ld_valid = 1'b1;
          seq_ld_cmd.dest = DstDesc;
          ld_addr = arena_q + AW'(prog_q) + AW'(layer_q) * AW'(DescBytes);
          seq_ld_cmd.beats = 32'(DescBytes / BeatBytes);
        end
      end
      StCheck: begin
        // Every op but ADD starts by loading the whole input map into the activation buffer.
        if (desc_err == 8'(ErrNone) && desc.op != 4'(OpAdd)) begin
          seq_ld_valid = 1'b1;
          seq_ld_cmd.dest = DstAct;
          ld_addr = arena_q + AW'(desc.in_off);
          seq_ld_cmd.beats = 32'((in_bytes + 48'(BeatBytes - 1)) >> BeatShift);
        end
      end
      default: ;
    endcase
    seq_ld_cmd.addr = 64'(ld_addr);
  end

  // One requester at a time: the sequencer (descriptor, input map), the row-group loop or the ADD.
  assign ld_valid = seq_ld_valid || cv_ld_valid || add_ld_valid;
  always_comb begin
    ld_cmd = seq_ld_cmd;
    if (cv_ld_valid) ld_cmd = cv_ld_cmd;
    if (add_ld_valid) ld_cmd = add_ld_cmd;
  end

  // A load in progress ends with the run (abort) or with an error of the read engine.
  assign ld_flush = (abort_i && state_q != StIdle)
                    || (rd_err_i && (ld_receiving || cv_run));

  // ------------------------------------------------------------------------------------------------
  // The sequencer
  // ------------------------------------------------------------------------------------------------
  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q <= StIdle;
      ld_next_q <= StIdle;
      arena_q <= '0;
      prog_q <= '0;
      num_layers_q <= '0;
      stats_off_q <= '0;
      stats_en_q <= 1'b0;
      layer_q <= '0;
      err_q <= '0;
    end else if (abort_i && state_q != StIdle) begin
      state_q <= StAbort;
    end else begin
      unique case (state_q)
        StIdle: begin
          if (start_i) begin
            arena_q <= arena_i[AW-1:0];
            prog_q <= prog_offset_i;
            num_layers_q <= num_layers_i;
            stats_off_q <= stats_offset_i;
            stats_en_q <= stats_enable_i;
            layer_q <= '0;
            err_q <= 8'(ErrNone);
            if (arena_i[BeatShift-1:0] != '0 || prog_offset_i[BeatShift-1:0] != '0) begin
              err_q <= 8'(ErrMisaligned);
              state_q <= StError;
            end else begin
              state_q <= StFetch;
            end
          end
        end

        StFetch: begin
          if (layer_q == num_layers_q) begin
            state_q <= StFinish;
          end else begin
            ld_next_q <= StDecode;
            state_q <= StLoad;        // the descriptor
          end
        end

        StLoad: begin
          if (rd_err_i && ld_receiving) begin
            err_q <= 8'(ErrAxiError);
            state_q <= StError;
          end else if (ld_done) begin
            state_q <= ld_next_q;
          end
        end

        StDecode: state_q <= StDerive;

        StDerive: state_q <= StCheck;

        StCheck: begin
          if (desc_err != 8'(ErrNone)) begin
            err_q <= desc_err;
            state_q <= StError;
          end else begin
            state_q <= StLoad;        // every op but ADD: the input map
            unique case (desc.op)
              4'(OpConv), 4'(OpMaxpool), 4'(OpAvgpool): ld_next_q <= StConv;
              default: state_q <= StAdd;
            endcase
          end
        end

        // ---------------- CONV row groups, pool channels (sps_conv_loop) ----------------
        StConv: begin
          if (rd_err_i && (cv_run || ld_receiving)) begin
            err_q <= 8'(ErrAxiError);
            state_q <= StError;
          end else if (cv_done) begin
            state_q <= StLayerEnd;
          end
        end

        // ---------------- ADD (sps_add) ----------------
        StAdd: begin
          if (rd_err_i && ld_receiving) begin
            err_q <= 8'(ErrAxiError);
            state_q <= StError;
          end else if (add_done) begin
            state_q <= StLayerEnd;
          end
        end

        // ---------------- end of a layer ----------------
        StLayerEnd: begin
          if (!add_seg_valid && !drain_seg_valid && aln_idle && wr_idle_i) begin
            if (wr_err_i) begin
              err_q <= 8'(ErrAxiError);
              state_q <= StError;
            end else if (stats_en_q) begin
              state_q <= StStats;
            end else begin
              layer_q <= layer_q + 32'd1;
              state_q <= StFetch;
            end
          end
        end

        StStats: begin
          if (stats_last) state_q <= StStatsWait;
        end

        StStatsWait: begin
          if (aln_idle && wr_idle_i) begin
            layer_q <= layer_q + 32'd1;
            state_q <= wr_err_i ? StError : StFetch;
            if (wr_err_i) err_q <= 8'(ErrAxiError);
          end
        end

        StError, StAbort: begin
          // Let the read engine swallow what it requested and every accepted write complete.
          if (rd_idle_i && wr_idle_i && aln_idle) state_q <= (state_q == StError) ? StFinish : StIdle;
        end

        StFinish: begin
          state_q <= StIdle;
        end

        default: state_q <= StIdle;
      endcase
    end
  end

  // The row-group loop starts when the input map is in the buffer.
  assign cv_start = (state_q == StLoad) && (ld_next_q == StConv) && ld_done;
  // The ADD streams its inputs itself.
  assign add_start = (state_q == StCheck) && desc_err == 8'(ErrNone) && desc.op == 4'(OpAdd);

  // ------------------------------------------------------------------------------------------------
  // Counters
  // ------------------------------------------------------------------------------------------------
  // A unit waits for the AXI master: a load (not the prefetch, which overlaps a group's compute), the write
  // responses at the end of a layer, the drain, the prefetch holding up the next group, the ADD's packer.
  assign stall = (ld_wait && !cv_run)
                 || ((state_q == StLayerEnd || state_q == StStatsWait) && !wr_idle_i)
                 || drain_stall
                 || cv_stall
                 || add_stall;

  sps_counters #(.AxiDataWidth(AxiDataWidth)) u_counters (
    .clk_i, .rst_ni,
    .idle_i(state_q == StIdle),
    .start_i,
    .layer_start_i(state_q == StFetch),
    .layer_hold_i(state_q == StStats || state_q == StStatsWait),
    .mac_i(pipe_mac),
    .stall_i(stall),
    .rd_beat_i(rd_beat_valid_i && rd_beat_ready_o),
    .wr_beat_i(wr_beat_valid_o && wr_beat_ready_i),
    .wr_strb_i(wr_beat_strb_o),
    .cycles_o,
    .mac_cycles_o,
    .stall_cycles_o,
    .bytes_rd_o,
    .bytes_wr_o,
    .record_o(st_record)
  );

  assign busy_o = (state_q != StIdle);
  assign finish_o = (state_q == StFinish);
  assign err_code_o = err_q;
  assign cur_layer_o = layer_q;
  assign rd_abort_o = (ld_busy || cv_run) && (abort_i || rd_err_i);
  assign rd_clear_o = start_i;
  assign wr_clear_o = start_i;

  // Upper address bits beyond the AXI address width, the sign bits of M and the top bits of S are unused
  // (the descriptor and the parameter records keep them zero); the FIFO never fills (credits).
  logic unused;
  assign unused = ^{arena_i[63:AW], desc.mult[31], desc.mult2[31], desc.shift[7:6], desc.out_h, desc.kh,
                    desc.patterns};

  // ------------------------------------------------------------------------------------------------
  // Parameter checks
  // ------------------------------------------------------------------------------------------------
  if (AxiDataWidth != 64 && AxiDataWidth != 128) begin : gen_bad_axi
    $error("sps_core: AxiDataWidth must be 64 or 128");
  end
  if (Cols < 2 || (Cols & (Cols - 1)) != 0 || Cols > BeatBytes) begin : gen_bad_cols
    $error("sps_core: Cols must be a power of two in 2..AxiDataWidth/8");
  end
  if ((Rows & (Rows - 1)) != 0 || Rows > BeatBytes) begin : gen_bad_rows
    $error("sps_core: Rows must be a power of two in 1..AxiDataWidth/8");
  end
  if (ActBufBytes % (2 * BeatBytes) != 0 || (ActBufBytes & (ActBufBytes - 1)) != 0) begin : gen_bad_act
    $error("sps_core: ActBufBytes must be a power of two");
  end
  if (WeightBufBytes % GroupAlign != 0 || WeightBufBytes % Rows != 0) begin : gen_bad_wgt
    $error("sps_core: WeightBufBytes must be a multiple of 16 and of Rows");
  end

  // Assertions (simulation only).
`ifndef SYNTHESIS
  // The sequencer, the row-group loop and the ADD never ask for a load in the same cycle.
  OneLoadRequester: assert property (@(posedge clk_i) disable iff (!rst_ni)
      $onehot0({seq_ld_valid, cv_ld_valid, add_ld_valid}));
`endif

endmodule

`default_nettype wire
