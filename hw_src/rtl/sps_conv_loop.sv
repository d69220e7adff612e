// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Layer loop on the tile engine: CONV row groups (weights, parameters, prefetch of the next group), pool channels.

`default_nettype none

module sps_conv_loop
  import sps_if_pkg::*;
  import sps_core_pkg::*;
#(
  parameter int unsigned Rows           = DefaultRows,
  parameter int unsigned AxiDataWidth   = DefaultAxiDataWidth,
  parameter int unsigned AxiAddrWidth   = 40,
  parameter int unsigned WeightBufBytes = DefaultWeightBufBytes,
  // derived
  parameter int unsigned EntryWidth     = $clog2(WeightBufBytes / Rows)    // weight buffer entry (R bytes)
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,
  input  wire logic                      flush_i,        // abort or read error: stop where it is

  // the layer (its input map is in the activation buffer)
  input  wire logic                      start_i,        // run the layer's row groups (pools: channels)
  output logic                           done_o,         // every group computed and drained into segments
  input  wire sps_core_pkg::desc_t       desc_i,
  input  wire sps_core_pkg::derived_t    der_i,
  input  wire logic [AxiAddrWidth-1:0]   arena_i,

  // loads: a row group's weights and parameter records
  output logic                           ld_valid_o,
  output sps_core_pkg::ld_cmd_t          ld_cmd_o,
  input  wire logic                      ld_done_i,

  // tile engine
  output logic                           pipe_init_o,    // start the tiles of a row group
  input  wire logic                      pipe_busy_i,
  input  wire logic                      shadow_full_i,
  output logic [3:0]                     residue_o,      // the group's residue class r
  output logic [31:0]                    chan_off_o,     // buffer byte of input plane 0 (pools: of the channel)
  output logic [$clog2(ActLanes)-1:0]    lane_base_o,    // shared pools: the slice of the group's first channel
  input  wire logic [EntryWidth-1:0]     pipe_wgt_addr_i,
  output logic [EntryWidth-1:0]          wgt_raddr_o,    // in the weight-buffer half of the group

  // drain
  input  wire logic                      drain_active_i,
  input  wire logic                      drain_busy_i,
  output logic                           par_bank_o,     // parameter bank of the group
  output logic [31:0]                    o_first_o,      // the group's first filter (pools: the channel)
  output logic [AxiAddrWidth-1:0]        group_addr_o,   // output address of its pixel 0
  output logic [31:0]                    chan_step_o,    // output bytes from one of its rows to the next

  output logic                           run_o,          // a group computes (the prefetch may be loading)
  output logic                           stall_o         // the next group's prefetch holds up the layer
);
  localparam int unsigned AW         = AxiAddrWidth;
  localparam int unsigned BeatBytes  = AxiDataWidth / 8;
  localparam int unsigned BeatShift  = $clog2(BeatBytes);
  localparam int unsigned WgtHalf    = WeightBufBytes / Rows / 2;           // entries of half the buffer
  localparam int unsigned GroupPars  = Rows * ParamRecordBytes;             // parameter bytes of a group
  localparam int unsigned ParamBeats = GroupPars / BeatBytes;
  localparam int unsigned LaneShift  = $clog2(ActLanes);

  typedef enum logic [2:0] {CvIdle, CvGroup, CvWgt, CvParams, CvPar, CvStart, CvRun, CvPoolChan} cv_state_e;

  // Prefetch of the next row group's weights and parameters into the other half of the weight buffer and the
  // other parameter bank while the current group computes (when a group fits half the buffer).
  typedef enum logic [2:0] {PfIdle, PfNone, PfWgt, PfPar, PfDone} pf_state_e;

  cv_state_e state_q, state_d;
  pf_state_e pf_q, pf_d;
  logic [4:0] residue_q, residue_d;       // class r; one wider than a pattern index so that it can reach P = 16
  logic [31:0] o_first_q, o_first_d;      // the group's first filter
  logic [31:0] wg_off_q, wg_off_d;        // its weights' offset from w_off
  logic [31:0] pm_off_q, pm_off_d;        // its parameter records' offset from p_off
  logic wbank_q, wbank_d;                 // weight half / parameter bank the group computes from
  logic dbuf_q, dbuf_d;                   // the layer's groups fit half the weight buffer: prefetch
  logic pf_ready_q, pf_ready_d;           // the next group's weights and parameters are already loaded
  logic [31:0] pc_q, pc_d;                // pools: channel
  logic [31:0] pchan_q, pchan_d;          // pools: pc * act_stride (shared: (pc / ActLanes) * act_stride)
  logic [AW-1:0] group_addr_q, group_addr_d;
  logic [31:0] chan_step_q, chan_step_d;

  logic pool;
  logic [47:0] group_bytes;
  logic [31:0] group_beats, next_o_first, out_chan_bytes;
  logic next_exists;
  logic [AW-1:0] ld_addr;

  assign pool = (desc_i.op == 4'(OpMaxpool)) || (desc_i.op == 4'(OpAvgpool));

  // ------------------------------------------------------------------------------------------------
  // Where a row group's data is. Weights: groups of I*K entries of R bytes (16-byte aligned) from w_off;
  // parameters: R records per group from p_off. Output: filter o's plane starts o * out_chan_bytes after
  // out_off, and the group's rows (filters o, o + P, ...) are P planes apart. (out_chan_bytes is the whole
  // map's plane: a band writes its rows into the planes of a larger map.)
  // ------------------------------------------------------------------------------------------------
  assign group_bytes = ((der_i.steps * 48'(Rows)) + 48'(GroupAlign - 1)) & ~48'(GroupAlign - 1);
  assign group_beats = 32'(group_bytes >> BeatShift);
  assign out_chan_bytes = der_i.out_cs;

  // The group after the current one: the next R filters of this class, else the first of the next class.
  // Shared classes: one group per S classes, the next starts at class residue + S.
  always_comb begin
    if (der_i.share) begin
      next_o_first = o_first_q + 32'(der_i.slots);
      next_exists = 8'(residue_q) + der_i.slots < der_i.p_eff && next_o_first < desc_i.out_c;
    end else begin
      next_o_first = o_first_q + 32'(der_i.p_eff) * 32'(Rows);
      next_exists = next_o_first < desc_i.out_c
                    || (8'(residue_q) + 8'd1 < der_i.p_eff && 32'(residue_q) + 32'd1 < desc_i.out_c);
    end
  end

  // ------------------------------------------------------------------------------------------------
  // Groups: load the weights and parameters (unless prefetched), start the tiles, prefetch the next group
  // while they run, wait for the tile engine and the drain, next group. Pools: one channel per group.
  // ------------------------------------------------------------------------------------------------
  always_comb begin
    state_d = state_q;
    pf_d = pf_q;
    residue_d = residue_q;
    o_first_d = o_first_q;
    wg_off_d = wg_off_q;
    pm_off_d = pm_off_q;
    wbank_d = wbank_q;
    dbuf_d = dbuf_q;
    pf_ready_d = pf_ready_q;
    pc_d = pc_q;
    pchan_d = pchan_q;
    group_addr_d = group_addr_q;
    chan_step_d = chan_step_q;
    done_o = 1'b0;
    ld_valid_o = 1'b0;
    ld_cmd_o = '0;
    ld_addr = '0;

    if (flush_i) begin
      state_d = CvIdle;
      pf_d = PfIdle;
    end else begin
      unique case (state_q)
        CvIdle: begin
          if (start_i) begin
            residue_d = '0;
            o_first_d = '0;
            wg_off_d = '0;
            pm_off_d = '0;
            wbank_d = 1'b0;
            dbuf_d = !pool && der_i.steps <= 48'(WgtHalf);
            pf_d = PfIdle;
            pf_ready_d = 1'b0;
            pc_d = '0;
            pchan_d = '0;
            chan_step_d = 32'(der_i.p_eff) * out_chan_bytes;
            state_d = pool ? CvPoolChan : CvGroup;
          end
        end

        CvGroup: begin
          if (8'(residue_q) == der_i.p_eff) begin
            done_o = 1'b1;
            state_d = CvIdle;
          end else if (o_first_q >= desc_i.out_c) begin
            residue_d = residue_q + 5'd1;       // no filter left in this class
            o_first_d = 32'(residue_q) + 32'd1;
          end else if (pf_ready_q) begin
            pf_ready_d = 1'b0;                  // prefetched while the previous group computed
            state_d = CvStart;
          end else begin
            ld_valid_o = 1'b1;
            ld_cmd_o.dest = DstWgt;
            ld_addr = arena_i + AW'(desc_i.w_off) + AW'(wg_off_q);
            ld_cmd_o.beats = group_beats;
            ld_cmd_o.idx = wbank_q ? 32'(WgtHalf) : '0;
            state_d = CvWgt;
          end
        end

        CvWgt: begin
          if (ld_done_i) state_d = CvParams;
        end

        CvParams: begin
          ld_valid_o = 1'b1;
          ld_cmd_o.dest = DstParam;
          ld_addr = arena_i + AW'(desc_i.p_off) + AW'(pm_off_q);
          ld_cmd_o.beats = 32'(ParamBeats);
          ld_cmd_o.pbank = wbank_q;
          state_d = CvPar;
        end

        CvPar: begin
          if (ld_done_i) state_d = CvStart;
        end

        CvStart: begin
          group_addr_d = arena_i + AW'(desc_i.out_off) + AW'(o_first_q * out_chan_bytes);
          state_d = CvRun;
        end

        CvRun: begin
          unique case (pf_q)
            PfIdle: begin
              if (dbuf_q && next_exists) begin
                ld_valid_o = 1'b1;
                ld_cmd_o.dest = DstWgt;
                ld_addr = arena_i + AW'(desc_i.w_off) + AW'(wg_off_q) + AW'(group_bytes);
                ld_cmd_o.beats = group_beats;
                ld_cmd_o.idx = wbank_q ? '0 : 32'(WgtHalf);
                pf_d = PfWgt;
              end else begin
                pf_d = PfNone;
              end
            end
            PfWgt: begin
              if (ld_done_i) begin
                ld_valid_o = 1'b1;
                ld_cmd_o.dest = DstParam;
                ld_addr = arena_i + AW'(desc_i.p_off) + AW'(pm_off_q) + AW'(GroupPars);
                ld_cmd_o.beats = 32'(ParamBeats);
                ld_cmd_o.pbank = !wbank_q;
                pf_d = PfPar;
              end
            end
            PfPar: begin
              if (ld_done_i) pf_d = PfDone;
            end
            default: ;
          endcase
          if (!pipe_busy_i && !shadow_full_i && !drain_busy_i && (pf_q == PfNone || pf_q == PfDone)) begin
            wg_off_d = wg_off_q + 32'(group_bytes);
            pm_off_d = pm_off_q + 32'(GroupPars);
            o_first_d = next_o_first;
            if (der_i.share) residue_d = residue_q + 5'(der_i.slots);
            if (pf_q == PfDone) begin
              wbank_d = !wbank_q;
              pf_ready_d = 1'b1;
            end
            pf_d = PfIdle;
            state_d = CvGroup;
            if (pool) begin
              // shared pools: the next rows_used channels, the next plane of slice 0 after the last slice
              pc_d = pc_q + (der_i.share ? 32'(der_i.rows_used) : 32'd1);
              if (!der_i.share || pc_d[LaneShift-1:0] == '0) pchan_d = pchan_q + der_i.act_stride;
              state_d = CvPoolChan;
            end
          end
        end

        CvPoolChan: begin
          if (pc_q >= desc_i.out_c) begin
            done_o = 1'b1;
            state_d = CvIdle;
          end else begin
            o_first_d = pc_q;
            state_d = CvStart;
          end
        end

        default: state_d = CvIdle;
      endcase
    end
    ld_cmd_o.addr = 64'(ld_addr);
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      state_q <= CvIdle;
      pf_q <= PfIdle;
      residue_q <= '0;
      o_first_q <= '0;
      wg_off_q <= '0;
      pm_off_q <= '0;
      wbank_q <= 1'b0;
      dbuf_q <= 1'b0;
      pf_ready_q <= 1'b0;
      pc_q <= '0;
      pchan_q <= '0;
      group_addr_q <= '0;
      chan_step_q <= '0;
    end else begin
      state_q <= state_d;
      pf_q <= pf_d;
      residue_q <= residue_d;
      o_first_q <= o_first_d;
      wg_off_q <= wg_off_d;
      pm_off_q <= pm_off_d;
      wbank_q <= wbank_d;
      dbuf_q <= dbuf_d;
      pf_ready_q <= pf_ready_d;
      pc_q <= pc_d;
      pchan_q <= pchan_d;
      group_addr_q <= group_addr_d;
      chan_step_q <= chan_step_d;
    end
  end

  assign pipe_init_o = (state_q == CvStart);
  assign residue_o = residue_q[3:0];
  assign chan_off_o = 32'(der_i.act_lead) + (pool ? pchan_q : 32'd0);
  assign lane_base_o = pool ? pc_q[LaneShift-1:0] : '0;
  assign wgt_raddr_o = pipe_wgt_addr_i + (wbank_q ? EntryWidth'(WgtHalf) : '0);
  assign par_bank_o = wbank_q;
  assign o_first_o = o_first_q;
  assign group_addr_o = group_addr_q;
  assign chan_step_o = chan_step_q;
  assign run_o = (state_q == CvRun);
  assign stall_o = (state_q == CvRun) && !pipe_busy_i && !drain_active_i && pf_q != PfNone && pf_q != PfDone;

  // Fields of the descriptor the loop does not read.
  logic unused;
  assign unused = ^{desc_i, der_i};

  // Assertions (simulation only).
`ifndef SYNTHESIS
  // A layer starts only when the loop is idle.
  StartWhenIdle: assert property (@(posedge clk_i) disable iff (!rst_ni) start_i |-> state_q == CvIdle);
  // The prefetch runs only while a group computes.
  PrefetchInRun: assert property (@(posedge clk_i) disable iff (!rst_ni)
      (pf_q == PfWgt || pf_q == PfPar) |-> state_q == CvRun);
`endif

endmodule

`default_nettype wire
