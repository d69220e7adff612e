// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// SPS core: sequencer, descriptor decode, load engine, CONV / pool / ADD engines, output path and counters.

`default_nettype none

module sps_core
  import sps_if_pkg::*;
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
  localparam int unsigned AW         = AxiAddrWidth;
  localparam int unsigned BeatBytes  = AxiDataWidth / 8;
  localparam int unsigned RowAw      = $clog2(ActBufBytes) - $clog2(Cols);   // activation buffer row (C bytes)
  localparam int unsigned EntryWidth = $clog2(WeightBufBytes / Rows);        // weight buffer entry (R bytes)
  localparam int unsigned RowSel     = $clog2(Rows > 1 ? Rows : 2);

  // ------------------------------------------------------------------------------------------------
  // Signals between the units, grouped by the unit that drives them
  // ------------------------------------------------------------------------------------------------
  // sequencer
  logic [AW-1:0] arena;
  logic flush, stop, decode, derive, derive2, check, seq_ld_valid, cv_start, add_start;
  logic stats_valid, layer_start, layer_hold, wr_wait;
  logic [AW-1:0] stats_addr;
  sps_core_pkg::ld_cmd_t seq_ld_cmd;
  // descriptor decode
  sps_core_pkg::desc_t desc;
  sps_core_pkg::derived_t der;
  logic pool;
  logic [47:0] in_bytes;
  logic [7:0] desc_err;
  // load engine
  logic ld_valid, ld_busy, ld_receiving, ld_wait, ld_done;
  sps_core_pkg::ld_cmd_t ld_cmd;
  logic [32*DescWords-1:0] desc_words;
  sps_core_pkg::par_rec_t par_rec;
  logic [2*Cols*RowAw-1:0] act_rrow;        // two read ports (port p, bank b at [RowAw*(Cols*p + b)])
  logic [2*Cols*8-1:0] act_rdata;
  logic [Cols*ActLanes*8-1:0] act_rword;    // port 0's whole words (shared classes)
  logic [EntryWidth-1:0] wgt_raddr;
  logic [Rows*8-1:0] wgt_rdata;
  // tile engine
  logic pipe_init, pipe_busy, pipe_mac, shadow_full, shadow_release;
  logic [31:0] shadow_base;
  logic [Cols*32-1:0] shadow_row;
  logic [2*Cols*RowAw-1:0] pipe_act_row;
  logic [EntryWidth-1:0] pipe_wgt_addr;
  // row-group loop
  logic cv_done, cv_ld_valid, cv_run, cv_stall, cv_par_bank;
  sps_core_pkg::ld_cmd_t cv_ld_cmd;
  logic [3:0] cv_residue;
  logic [31:0] cv_chan_off, cv_o_first, cv_chan_step;
  logic [$clog2(ActLanes)-1:0] cv_lane_base;
  logic [AW-1:0] cv_group_addr;
  // drain
  logic [RowSel-1:0] drain_row;
  logic drain_active, drain_busy, drain_stall;
  logic drain_seg_valid, drain_seg_ready;
  logic [AW-1:0] drain_seg_addr;
  logic [7:0] drain_seg_len;
  logic [Cols*8-1:0] drain_seg_data;
  // ADD
  logic add_done, add_ld_valid, add_act_rd, add_stall;
  sps_core_pkg::ld_cmd_t add_ld_cmd;
  logic [RowAw-1:0] add_act_row;
  logic ld_stream_valid, ld_stream_last, add_stream_ready;
  logic [((Cols < AxiDataWidth / 8) ? Cols : AxiDataWidth / 8)*8-1:0] ld_stream_data;
  logic add_seg_valid, add_seg_ready;
  logic [AW-1:0] add_seg_addr;
  logic [7:0] add_seg_len;
  logic [Cols*8-1:0] add_seg_data;
  // kept output rows (hw/residency.py): from the drain or the ADD into the activation buffer
  logic drain_keep_we, add_keep_we, keep_we;
  logic [RowAw-1:0] drain_keep_row, add_keep_row, keep_row;
  logic [Cols*8-1:0] drain_keep_data, add_keep_data, keep_data;
  logic run_start, layer_end;
  // output path
  logic stats_last, aln_seg_valid, aln_seg_ready, aln_idle;
  logic [AW-1:0] aln_seg_addr;
  logic [7:0] aln_seg_len;
  logic [Cols*8-1:0] aln_seg_data;
  // counters
  logic stall;
  logic [8*StatsRecordBytes-1:0] st_record;

  // ------------------------------------------------------------------------------------------------
  // Sequencer: fetch, decode, check, input map, CONV / pool / ADD, statistics record, errors
  // ------------------------------------------------------------------------------------------------
  sps_sequencer #(.AxiDataWidth(AxiDataWidth), .AxiAddrWidth(AxiAddrWidth)) u_sequencer (
    .clk_i, .rst_ni,
    .start_i, .abort_i, .arena_i, .prog_offset_i, .num_layers_i, .stats_offset_i, .stats_enable_i,
    .busy_o, .finish_o, .err_code_o, .cur_layer_o,
    .arena_o(arena),
    .flush_o(flush),
    .stop_o(stop),
    .decode_o(decode),
    .derive_o(derive),
    .derive2_o(derive2),
    .check_o(check),
    .desc_i(desc),
    .der_i(der),
    .in_bytes_i(in_bytes),
    .desc_err_i(desc_err),
    .ld_valid_o(seq_ld_valid),
    .ld_cmd_o(seq_ld_cmd),
    .ld_receiving_i(ld_receiving),
    .ld_done_i(ld_done),
    .cv_start_o(cv_start),
    .cv_run_i(cv_run),
    .cv_done_i(cv_done),
    .add_start_o(add_start),
    .add_done_i(add_done),
    .outputs_idle_i(!add_seg_valid && !drain_seg_valid && aln_idle),
    .aln_idle_i(aln_idle),
    .stats_valid_o(stats_valid),
    .stats_addr_o(stats_addr),
    .stats_last_i(stats_last),
    .run_start_o(run_start),
    .layer_end_o(layer_end),
    .layer_start_o(layer_start),
    .layer_hold_o(layer_hold),
    .wr_wait_o(wr_wait),
    .rd_idle_i, .rd_err_i, .wr_idle_i, .wr_err_i
  );

  // ------------------------------------------------------------------------------------------------
  // Descriptor decode, derive and check
  // ------------------------------------------------------------------------------------------------
  sps_desc_decode #(
    .Rows(Rows), .Cols(Cols), .AxiDataWidth(AxiDataWidth), .ActBufBytes(ActBufBytes),
    .WeightBufBytes(WeightBufBytes)
  ) u_decode (
    .clk_i, .rst_ni,
    .words_i(desc_words),
    .decode_i(decode),
    .derive_i(derive),
    .derive2_i(derive2),
    .check_i(check),
    .run_start_i(run_start),
    .layer_end_i(layer_end),
    .desc_o(desc),
    .der_o(der),
    .pool_o(pool),
    .in_bytes_o(in_bytes),
    .err_o(desc_err)
  );

  // ------------------------------------------------------------------------------------------------
  // Load engine: descriptor words, activation and weight buffers, parameter records
  // ------------------------------------------------------------------------------------------------
  // One requester at a time: the sequencer (descriptor, input map), the row-group loop or the ADD.
  assign ld_valid = seq_ld_valid || cv_ld_valid || add_ld_valid;
  always_comb begin
    ld_cmd = seq_ld_cmd;
    if (cv_ld_valid) ld_cmd = cv_ld_cmd;
    if (add_ld_valid) ld_cmd = add_ld_cmd;
  end

  // The activation buffer is read by the tile engine (both ports), or by the ADD (one row address for every
  // bank on port 0: input 1's row; port 1 keeps the tile engine's addresses, unused, or takes a kept row).
  for (genvar b = 0; b < Cols; b++) begin : gen_act_rrow
    assign act_rrow[RowAw*b +: RowAw] = add_act_rd ? add_act_row : pipe_act_row[RowAw*b +: RowAw];
    assign act_rrow[RowAw*(Cols+b) +: RowAw] = pipe_act_row[RowAw*(Cols+b) +: RowAw];
  end

  sps_load #(
    .Rows(Rows), .Cols(Cols), .AxiDataWidth(AxiDataWidth), .AxiAddrWidth(AxiAddrWidth),
    .ActBufBytes(ActBufBytes), .WeightBufBytes(WeightBufBytes)
  ) u_load (
    .clk_i, .rst_ni,
    .flush_i(flush),
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
    .act_skew_i(der.act_skew),
    .act_rrow_i(act_rrow),
    .act_rdata_o(act_rdata),
    .act_rword_o(act_rword),
    .keep_we_i(keep_we),
    .keep_skew_i(desc.keep_skew),
    .keep_row_i(keep_row),
    .keep_data_i(keep_data),
    .stream_valid_o(ld_stream_valid),
    .stream_ready_i(add_stream_ready),
    .stream_data_o(ld_stream_data),
    .stream_last_o(ld_stream_last),
    .wgt_raddr_i(wgt_raddr),
    .wgt_rdata_o(wgt_rdata)
  );

  // ------------------------------------------------------------------------------------------------
  // CONV and pools: the row-group loop, the tile engine, the drain (shadow bank -> requantizers -> segments)
  // ------------------------------------------------------------------------------------------------
  sps_conv_loop #(
    .Rows(Rows), .AxiDataWidth(AxiDataWidth), .AxiAddrWidth(AxiAddrWidth), .WeightBufBytes(WeightBufBytes)
  ) u_conv_loop (
    .clk_i, .rst_ni,
    .flush_i(flush),
    .start_i(cv_start),
    .done_o(cv_done),
    .desc_i(desc),
    .der_i(der),
    .arena_i(arena),
    .ld_valid_o(cv_ld_valid),
    .ld_cmd_o(cv_ld_cmd),
    .ld_done_i(ld_done),
    .pipe_init_o(pipe_init),
    .pipe_busy_i(pipe_busy),
    .shadow_full_i(shadow_full),
    .residue_o(cv_residue),
    .chan_off_o(cv_chan_off),
    .lane_base_o(cv_lane_base),
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

  // Pools run on the tile engine one channel per group: K = kh * kw window taps walked like a dense kernel
  // over one input channel, every weight 1 (sums for AVGPOOL; MAXPOOL takes maxima and ignores them).
  sps_conv_pipe #(
    .Rows(Rows), .Cols(Cols), .ActBufBytes(ActBufBytes), .EntryWidth(EntryWidth)
  ) u_pipe (
    .clk_i, .rst_ni,
    .in_h_i(desc.in_h), .in_w_i(desc.in_w), .out_w_i(desc.out_w),
    .out_pixels_i(der.out_pixels), .in_plane_i(der.act_stride),
    .stride_h_i(desc.stride_h), .stride_w_i(desc.stride_w), .pad_top_i(desc.pad_top), .pad_left_i(desc.pad_left),
    .out_w_stride_i(der.ow_sw), .row_step_i(der.row_step), .pad_top_w_i(der.pt_w),
    .pps_i(desc.pps && !pool), .patterns_i(der.p_eff), .nnz_i(pool ? der.kk : 16'(desc.nnz)),
    .in_c_i(pool ? 16'd1 : desc.in_c[15:0]), .chan_off_i(cv_chan_off),
    .max_mode_i(desc.op == 4'(OpMaxpool)), .kw_i(desc.kw), .act_skew_i(der.act_skew),
    .share_i(der.share), .slot_shift_i(desc.slot_shift), .pool_lanes_i(der.share && pool), .lane_base_i(cv_lane_base),
    .lanes_i(der.lanes_in),
    .residue_i(cv_residue), .masks_i(desc.masks),
    .init_i(pipe_init),
    .stop_i(stop),
    .busy_o(pipe_busy),
    .mac_o(pipe_mac),
    .act_row_o(pipe_act_row),
    .act_data_i(act_rdata),
    .act_word_i(act_rword),
    .wgt_addr_o(pipe_wgt_addr),
    .wgt_data_i(pool ? {Rows{8'h01}} : wgt_rdata),
    .shadow_full_o(shadow_full),
    .shadow_base_o(shadow_base),
    .shadow_release_i(shadow_release),
    .shadow_row_i(drain_row),
    .shadow_row_o(shadow_row)
  );

  sps_conv_drain #(.Rows(Rows), .Cols(Cols), .AddrWidth(AW), .ActBufBytes(ActBufBytes)) u_drain (
    .clk_i, .rst_ni,
    .abort_i(stop),
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
    .keep_we_o(drain_keep_we),
    .keep_row_o(drain_keep_row),
    .keep_data_o(drain_keep_data),
    .active_o(drain_active),
    .busy_o(drain_busy),
    .stall_o(drain_stall)
  );

  // ------------------------------------------------------------------------------------------------
  // ADD engine and its packer
  // ------------------------------------------------------------------------------------------------
  sps_add #(
    .Cols(Cols), .AxiAddrWidth(AxiAddrWidth), .ActBufBytes(ActBufBytes), .AxiDataWidth(AxiDataWidth)
  ) u_add (
    .clk_i, .rst_ni,
    .flush_i(flush),
    .abort_i(stop),
    .start_i(add_start),
    .done_o(add_done),
    .desc_i(desc),
    .der_i(der),
    .arena_i(arena),
    .ld_valid_o(add_ld_valid),
    .ld_cmd_o(add_ld_cmd),
    .ld_done_i(ld_done),
    .stream_valid_i(ld_stream_valid),
    .stream_ready_o(add_stream_ready),
    .stream_data_i(ld_stream_data),
    .stream_last_i(ld_stream_last),
    .act_rd_o(add_act_rd),
    .act_row_o(add_act_row),
    .act_rdata_i(act_rdata),
    .seg_valid_o(add_seg_valid),
    .seg_ready_i(add_seg_ready),
    .seg_addr_o(add_seg_addr),
    .seg_len_o(add_seg_len),
    .seg_data_o(add_seg_data),
    .keep_we_o(add_keep_we),
    .keep_row_o(add_keep_row),
    .keep_data_o(add_keep_data),
    .stall_o(add_stall)
  );

  // One layer runs at a time: the drain's kept rows or the ADD's.
  assign keep_we = drain_keep_we || add_keep_we;
  assign keep_row = add_keep_we ? add_keep_row : drain_keep_row;
  assign keep_data = add_keep_we ? add_keep_data : drain_keep_data;

  // ------------------------------------------------------------------------------------------------
  // Output path: the statistics record, the ADD packer or the CONV drain -> segments -> strobed beats
  // ------------------------------------------------------------------------------------------------
  sps_out_mux #(.Cols(Cols), .AddrWidth(AW)) u_out_mux (
    .clk_i, .rst_ni,
    .stats_valid_i(stats_valid),
    .stats_addr_i(stats_addr),
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
    .clear_i(stop),
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

  // ------------------------------------------------------------------------------------------------
  // Counters
  // ------------------------------------------------------------------------------------------------
  // A unit waits for the AXI master: a load (not the prefetch, which overlaps a group's compute), the write
  // responses at the end of a layer, the drain, the prefetch holding up the next group, the ADD's packer.
  assign stall = (ld_wait && !cv_run) || wr_wait || drain_stall || cv_stall || add_stall;

  sps_counters #(.AxiDataWidth(AxiDataWidth)) u_counters (
    .clk_i, .rst_ni,
    .idle_i(!busy_o),
    .start_i,
    .layer_start_i(layer_start),
    .layer_hold_i(layer_hold),
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

  // ------------------------------------------------------------------------------------------------
  // AXI engines: abort the reads in flight with the run or on a read error; clear the errors at START
  // ------------------------------------------------------------------------------------------------
  assign rd_abort_o = (ld_busy || cv_run) && (abort_i || rd_err_i);
  assign rd_clear_o = start_i;
  assign wr_clear_o = start_i;

  // ------------------------------------------------------------------------------------------------
  // Parameter checks
  // ------------------------------------------------------------------------------------------------
  if (AxiDataWidth != 64 && AxiDataWidth != 128) begin : gen_bad_axi
    $error("sps_core: AxiDataWidth must be 64 or 128");
  end
  if (Cols < 2 || (Cols & (Cols - 1)) != 0 || Cols > 2 * BeatBytes) begin : gen_bad_cols
    $error("sps_core: Cols must be a power of two in 2..AxiDataWidth/4");
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
