// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Layer sequencer: runs the program (fetch, decode, check, input load, CONV / pool / ADD, statistics, errors).

`default_nettype none

module sps_sequencer
  import sps_if_pkg::*;
  import sps_core_pkg::*;
#(
  parameter int unsigned AxiDataWidth = DefaultAxiDataWidth,
  parameter int unsigned AxiAddrWidth = 40
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

  // to every unit
  output logic [AxiAddrWidth-1:0]        arena_o,        // the run's arena base
  output logic                           flush_o,        // abort or read error: loads and engines stop
  output logic                           stop_o,         // aborted: the datapath drops what is in flight

  // descriptor decode (sps_desc_decode): one step per cycle
  output logic                           decode_o,
  output logic                           derive_o,
  output logic                           derive2_o,
  output logic                           check_o,
  output logic                           run_start_o,    // a run starts (forget what a layer kept)
  output logic                           layer_end_o,    // a layer ends without error (what it kept is valid)
  input  wire sps_core_pkg::desc_t       desc_i,
  input  wire sps_core_pkg::derived_t    der_i,
  input  wire logic [47:0]               in_bytes_i,
  input  wire logic [7:0]                desc_err_i,

  // loads: the descriptor and the input map
  output logic                           ld_valid_o,
  output sps_core_pkg::ld_cmd_t          ld_cmd_o,
  input  wire logic                      ld_receiving_i,
  input  wire logic                      ld_done_i,

  // the layer's engines
  output logic                           cv_start_o,     // CONV, pools: sps_conv_loop
  input  wire logic                      cv_run_i,
  input  wire logic                      cv_done_i,
  output logic                           add_start_o,    // ADD: sps_add
  input  wire logic                      add_done_i,

  // the end of a layer: its outputs written, then its statistics record
  input  wire logic                      outputs_idle_i, // nothing left in the packer, the drain, the aligner
  input  wire logic                      aln_idle_i,
  output logic                           stats_valid_o,
  output logic [AxiAddrWidth-1:0]        stats_addr_o,
  input  wire logic                      stats_last_i,

  // counters
  output logic                           layer_start_o,  // restart the layer's record
  output logic                           layer_hold_o,   // the layer's record is being written
  output logic                           wr_wait_o,      // waiting for write responses (stall)

  // AXI engines
  input  wire logic                      rd_idle_i,
  input  wire logic                      rd_err_i,
  input  wire logic                      wr_idle_i,
  input  wire logic                      wr_err_i
);
  localparam int unsigned AW        = AxiAddrWidth;
  localparam int unsigned BeatBytes = AxiDataWidth / 8;
  localparam int unsigned BeatShift = $clog2(BeatBytes);

  typedef enum logic [4:0] {
    StIdle, StFetch, StDescLoad, StDecode, StDerive, StDerive2, StCheck, StActLoad, StConv, StAdd,
    StLayerEnd, StStats, StStatsWait, StError, StAbort, StFinish
  } seq_state_e;

  seq_state_e state_q, state_d;
  logic [AW-1:0] arena_q, arena_d;
  logic [31:0] prog_q, prog_d, num_layers_q, num_layers_d, stats_off_q, stats_off_d, layer_q, layer_d;
  logic stats_en_q, stats_en_d;
  logic [7:0] err_q, err_d;
  logic [AW-1:0] ld_addr;

  always_comb begin
    state_d = state_q;
    arena_d = arena_q;
    prog_d = prog_q;
    num_layers_d = num_layers_q;
    stats_off_d = stats_off_q;
    stats_en_d = stats_en_q;
    layer_d = layer_q;
    err_d = err_q;
    ld_valid_o = 1'b0;
    ld_cmd_o = '0;
    ld_addr = '0;
    cv_start_o = 1'b0;
    add_start_o = 1'b0;

    if (abort_i && state_q != StIdle) begin
      state_d = StAbort;
    end else begin
      unique case (state_q)
        StIdle: begin
          if (start_i) begin
            arena_d = arena_i[AW-1:0];
            prog_d = prog_offset_i;
            num_layers_d = num_layers_i;
            stats_off_d = stats_offset_i;
            stats_en_d = stats_enable_i;
            layer_d = '0;
            err_d = 8'(ErrNone);
            if (arena_i[BeatShift-1:0] != '0 || prog_offset_i[BeatShift-1:0] != '0) begin
              err_d = 8'(ErrMisaligned);
              state_d = StError;
            end else begin
              state_d = StFetch;
            end
          end
        end

        StFetch: begin
          if (layer_q == num_layers_q) begin
            state_d = StFinish;
          end else begin
            ld_valid_o = 1'b1;
            ld_cmd_o.dest = DstDesc;
            ld_addr = arena_q + AW'(prog_q) + AW'(layer_q) * AW'(DescBytes);
            ld_cmd_o.beats = 32'(DescBytes / BeatBytes);
            state_d = StDescLoad;
          end
        end

        StDescLoad: begin
          if (rd_err_i && ld_receiving_i) begin
            err_d = 8'(ErrAxiError);
            state_d = StError;
          end else if (ld_done_i) begin
            state_d = StDecode;
          end
        end

        StDecode: state_d = StDerive;

        StDerive: state_d = StDerive2;

        StDerive2: state_d = StCheck;

        StCheck: begin
          if (desc_err_i != 8'(ErrNone)) begin
            err_d = desc_err_i;
            state_d = StError;
          end else if (desc_i.op == 4'(OpAdd)) begin
            add_start_o = 1'b1;         // the ADD streams its inputs itself
            state_d = StAdd;
          end else if (desc_i.resident) begin
            cv_start_o = 1'b1;          // the layer before kept the input in the buffer
            state_d = StConv;
          end else begin
            // CONV and pools start by loading their input into the activation buffer: a whole map in one
            // read, the rows of a band (planes further apart in DDR than it reads) in one read per channel, and
            // so do shared classes, whose planes go to the buffer's slices in turn.
            ld_valid_o = 1'b1;
            ld_cmd_o.dest = DstAct;
            ld_addr = arena_q + AW'(desc_i.in_off);
            ld_cmd_o.buf_pos = 32'(der_i.act_lead);
            ld_cmd_o.ddr_stride = der_i.in_cs;
            ld_cmd_o.buf_stride = der_i.act_stride;
            ld_cmd_o.lanes = der_i.share;
            if (der_i.in_cs == der_i.in_plane && !der_i.share) begin
              ld_cmd_o.chans = 16'd1;
              ld_cmd_o.len = in_bytes_i;
            end else begin
              ld_cmd_o.chans = desc_i.in_c[15:0];
              ld_cmd_o.len = 48'(der_i.in_plane);
            end
            state_d = StActLoad;
          end
        end

        StActLoad: begin
          if (rd_err_i && ld_receiving_i) begin
            err_d = 8'(ErrAxiError);
            state_d = StError;
          end else if (ld_done_i) begin
            cv_start_o = 1'b1;
            state_d = StConv;
          end
        end

        StConv: begin
          if (rd_err_i && (cv_run_i || ld_receiving_i)) begin
            err_d = 8'(ErrAxiError);
            state_d = StError;
          end else if (cv_done_i) begin
            state_d = StLayerEnd;
          end
        end

        StAdd: begin
          if (rd_err_i && ld_receiving_i) begin
            err_d = 8'(ErrAxiError);
            state_d = StError;
          end else if (add_done_i) begin
            state_d = StLayerEnd;
          end
        end

        StLayerEnd: begin
          if (outputs_idle_i && wr_idle_i) begin
            if (wr_err_i) begin
              err_d = 8'(ErrAxiError);
              state_d = StError;
            end else if (stats_en_q) begin
              state_d = StStats;
            end else begin
              layer_d = layer_q + 32'd1;
              state_d = StFetch;
            end
          end
        end

        StStats: begin
          if (stats_last_i) state_d = StStatsWait;
        end

        StStatsWait: begin
          if (aln_idle_i && wr_idle_i) begin
            layer_d = layer_q + 32'd1;
            if (wr_err_i) begin
              err_d = 8'(ErrAxiError);
              state_d = StError;
            end else begin
              state_d = StFetch;
            end
          end
        end

        StError, StAbort: begin
          // Let the read engine swallow what it requested and every accepted write complete.
          if (rd_idle_i && wr_idle_i && aln_idle_i) state_d = (state_q == StError) ? StFinish : StIdle;
        end

        StFinish: state_d = StIdle;

        default: state_d = StIdle;
      endcase
    end
    ld_cmd_o.addr = 64'(ld_addr);
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q <= StIdle;
      arena_q <= '0;
      prog_q <= '0;
      num_layers_q <= '0;
      stats_off_q <= '0;
      stats_en_q <= 1'b0;
      layer_q <= '0;
      err_q <= '0;
    end else begin
      state_q <= state_d;
      arena_q <= arena_d;
      prog_q <= prog_d;
      num_layers_q <= num_layers_d;
      stats_off_q <= stats_off_d;
      stats_en_q <= stats_en_d;
      layer_q <= layer_d;
      err_q <= err_d;
    end
  end

  assign busy_o = (state_q != StIdle);
  assign finish_o = (state_q == StFinish);
  assign err_code_o = err_q;
  assign cur_layer_o = layer_q;
  assign arena_o = arena_q;
  // The loads and the layer's engines stop with an abort or a read error (the only ways to stop while they run;
  // from the registered state and the inputs, not from state_d, so that their done signals are no loop).
  assign flush_o = (abort_i && state_q != StIdle) || (rd_err_i && (ld_receiving_i || cv_run_i));
  assign stop_o = (state_q == StAbort);
  assign decode_o = (state_q == StDecode);
  assign derive_o = (state_q == StDerive);
  assign derive2_o = (state_q == StDerive2);
  assign check_o = (state_q == StCheck);
  assign run_start_o = (state_q == StIdle) && start_i;
  assign layer_end_o = (state_q == StLayerEnd) && outputs_idle_i && wr_idle_i && !wr_err_i && !abort_i;
  assign stats_valid_o = (state_q == StStats);
  assign stats_addr_o = arena_q + AW'(stats_off_q) + AW'(layer_q * StatsRecordBytes);
  assign layer_start_o = (state_q == StFetch);
  assign layer_hold_o = (state_q == StStats) || (state_q == StStatsWait);
  assign wr_wait_o = (state_q == StLayerEnd || state_q == StStatsWait) && !wr_idle_i;

  // Address bits above the AXI address width; the descriptor fields other units read.
  logic unused;
  assign unused = ^{arena_i[63:AW], desc_i, der_i};

  // Assertions (simulation only).
`ifndef SYNTHESIS
  // Every way into StError names the error.
  ErrorHasCode: assert property (@(posedge clk_i) disable iff (!rst_ni)
      (state_q == StError) |-> err_q != 8'(ErrNone));
  // A flush stops the run.
  FlushStops: assert property (@(posedge clk_i) disable iff (!rst_ni)
      flush_o |-> (state_d == StError || state_d == StAbort));
  // The layer's engines never start in a cycle the run stops.
  NoStartOnFlush: assert property (@(posedge clk_i) disable iff (!rst_ni)
      flush_o |-> !cv_start_o && !add_start_o && !ld_valid_o);
`endif

endmodule

`default_nettype wire
