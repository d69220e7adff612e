// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Descriptor decode, derive and check: the fetched words -> desc_t, derived_t and the layer's error decision.

`default_nettype none

module sps_desc_decode
  import sps_if_pkg::*;
  import sps_core_pkg::*;
#(
  parameter int unsigned Rows           = DefaultRows,
  parameter int unsigned Cols           = DefaultCols,
  parameter int unsigned AxiDataWidth   = DefaultAxiDataWidth,
  parameter int unsigned ActBufBytes    = DefaultActBufBytes,
  parameter int unsigned WeightBufBytes = DefaultWeightBufBytes
) (
  input  wire logic                      clk_i,
  input  wire logic                      rst_ni,

  // the fetched descriptor: word w at [32*w +: 32]
  input  wire logic [32*DescWords-1:0]   words_i,

  // four steps in successive cycles; each output is valid from the cycle after its step
  input  wire logic                      decode_i,     // the fields of words_i -> desc_o
  input  wire logic                      derive_i,     // first products of the fields -> der_o
  input  wire logic                      derive2_i,    // second products -> row_step, out_total, act_end
  input  wire logic                      check_i,      // err_o is the layer's error decision
  // the run's start and each layer's successful end: what the layer before kept (the resident check)
  input  wire logic                      run_start_i,
  input  wire logic                      layer_end_i,

  output sps_core_pkg::desc_t            desc_o,
  output sps_core_pkg::derived_t         der_o,       // every field valid with check_i
  output logic                           pool_o,      // MAXPOOL or AVGPOOL
  output logic [47:0]                    in_bytes_o,  // in_c * in_h * in_w: the input map (CONV, pools)
  output logic [7:0]                     err_o        // with check_i: ErrNone, or why the layer cannot run
);
  localparam int unsigned BeatBytes = AxiDataWidth / 8;
  localparam int unsigned BeatShift = $clog2(BeatBytes);
  localparam int unsigned WgtDepth  = WeightBufBytes / Rows;     // weight entries (R bytes each)
  localparam int unsigned LaneShift = $clog2(ActLanes);
  localparam int unsigned ColShift  = $clog2(Cols);
  localparam int unsigned HalfSlice = ActBufBytes / ActLanes / 2;   // hw/residency.py half_bytes
  // a kept map's planes: rounded up to whole beats and buffer rows (bands.kept_stride)
  localparam int unsigned KeptAlign = (Cols > BeatBytes) ? Cols : BeatBytes;

  sps_core_pkg::desc_t desc_q, desc_d;
  sps_core_pkg::derived_t der_q, der_d;

  // ------------------------------------------------------------------------------------------------
  // Decode and derive
  // ------------------------------------------------------------------------------------------------
  // A kept plane in the buffer: rounded up to whole beats and buffer rows (bands.kept_stride).
  function automatic logic [31:0] kept_stride(logic [31:0] plane);
    return (plane + 32'(KeptAlign - 1)) & ~32'(KeptAlign - 1);
  endfunction

  logic [47:0] kept_end_q, kept_end_d;     // keep: bytes of each slice the kept output takes (hw/residency.py)

  always_comb begin
    desc_d = desc_q;
    der_d = der_q;
    kept_end_d = kept_end_q;
    if (decode_i) begin
      desc_d.op       = words_i[32*DescOpWord + DescOpLsb +: DescOpWidth];
      desc_d.relu     = words_i[32*DescReluWord + DescReluLsb];
      desc_d.pps      = words_i[32*DescPpsWord + DescPpsLsb];
      desc_d.share    = words_i[32*DescShareWord + DescShareLsb];
      desc_d.slot_shift = words_i[32*DescSlotShiftWord + DescSlotShiftLsb +: DescSlotShiftWidth];
      desc_d.keep     = words_i[32*DescKeepWord + DescKeepLsb];
      desc_d.resident = words_i[32*DescResidentWord + DescResidentLsb];
      desc_d.in_half  = words_i[32*DescInHalfWord + DescInHalfLsb];
      desc_d.keep_skew = words_i[32*DescKeepSkewWord + DescKeepSkewLsb];
      desc_d.in_off   = words_i[32*DescInOffsetWord + DescInOffsetLsb +: DescInOffsetWidth];
      desc_d.in_c     = words_i[32*DescInCWord + DescInCLsb +: DescInCWidth];
      desc_d.in_h     = words_i[32*DescInHWord + DescInHLsb +: DescInHWidth];
      desc_d.in_w     = words_i[32*DescInWWord + DescInWLsb +: DescInWWidth];
      desc_d.out_off  = words_i[32*DescOutOffsetWord + DescOutOffsetLsb +: DescOutOffsetWidth];
      desc_d.out_c    = words_i[32*DescOutCWord + DescOutCLsb +: DescOutCWidth];
      desc_d.out_h    = words_i[32*DescOutHWord + DescOutHLsb +: DescOutHWidth];
      desc_d.out_w    = words_i[32*DescOutWWord + DescOutWLsb +: DescOutWWidth];
      desc_d.kh       = words_i[32*DescKhWord + DescKhLsb +: DescKhWidth];
      desc_d.kw       = words_i[32*DescKwWord + DescKwLsb +: DescKwWidth];
      desc_d.stride_h = words_i[32*DescStrideHWord + DescStrideHLsb +: DescStrideHWidth];
      desc_d.stride_w = words_i[32*DescStrideWWord + DescStrideWLsb +: DescStrideWWidth];
      desc_d.pad_top  = words_i[32*DescPadTopWord + DescPadTopLsb +: DescPadTopWidth];
      desc_d.pad_left = words_i[32*DescPadLeftWord + DescPadLeftLsb +: DescPadLeftWidth];
      desc_d.patterns = words_i[32*DescPatternsWord + DescPatternsLsb +: DescPatternsWidth];
      desc_d.nnz      = words_i[32*DescNnzWord + DescNnzLsb +: DescNnzWidth];
      desc_d.w_off    = words_i[32*DescWeightOffsetWord + DescWeightOffsetLsb +: DescWeightOffsetWidth];
      desc_d.p_off    = words_i[32*DescParamOffsetWord + DescParamOffsetLsb +: DescParamOffsetWidth];
      desc_d.in2_off  = words_i[32*DescIn2OffsetWord + DescIn2OffsetLsb +: DescIn2OffsetWidth];
      desc_d.mult     = words_i[32*DescMultWord + DescMultLsb +: DescMultWidth];
      desc_d.mult2    = words_i[32*DescMult2Word + DescMult2Lsb +: DescMult2Width];
      desc_d.shift    = words_i[32*DescShiftWord + DescShiftLsb +: DescShiftWidth];
      desc_d.in_map_h = words_i[32*DescInMapHWord + DescInMapHLsb +: DescInMapHWidth];
      desc_d.out_map_h = words_i[32*DescOutMapHWord + DescOutMapHLsb +: DescOutMapHWidth];
      for (int j = 0; j < MaxPatterns; j++) begin
        desc_d.masks[DescPattern0Width*j +: DescPattern0Width] =
            words_i[32*(DescPattern0Word + j) + DescPattern0Lsb +: DescPattern0Width];
      end
    end
    if (derive_i) begin
      der_d.in_plane   = in_plane;
      der_d.in_cs      = 32'(desc_q.in_map_h == '0 ? desc_q.in_h : desc_q.in_map_h) * 32'(desc_q.in_w);
      der_d.out_cs     = 32'(desc_q.out_map_h == '0 ? desc_q.out_h : desc_q.out_map_h) * 32'(desc_q.out_w);
      der_d.act_stride = act_stride;
      der_d.act_lead   = 32'(desc_q.in_off[BeatShift-1:0]) + (desc_q.in_half ? 32'(HalfSlice) : 32'd0);
      // Stride-2 (any even stride) windows read every other byte: the skew puts those bytes in distinct banks.
      der_d.act_skew   = desc_q.op != 4'(OpAdd) && !desc_q.stride_w[0];
      der_d.out_pixels = 32'(desc_q.out_h) * 32'(desc_q.out_w);
      der_d.steps      = 48'(desc_q.in_c) * 48'(desc_q.nnz);
      der_d.ow_sw      = 24'(desc_q.out_w) * 24'(desc_q.stride_w);
      der_d.kk         = 16'(desc_q.kh) * 16'(desc_q.kw);
      der_d.p_eff      = (desc_q.pps && desc_q.op == 4'(OpConv)) ? desc_q.patterns : 8'd1;
      der_d.pt_w       = 32'(desc_q.pad_top) * 32'(desc_q.in_w);
      der_d.share      = shared;
      der_d.lanes_in   = shared || desc_q.resident;
      der_d.slots      = slots;
      der_d.rows_used  = shared_pool ? slots : 8'(slots << desc_q.slot_shift);
    end
    if (derive2_i) begin
      der_d.row_step   = $signed(32'(desc_q.stride_h) * 32'(desc_q.in_w)) - $signed(32'(der_q.ow_sw));
      der_d.out_total  = desc_q.out_c * der_q.out_pixels;
      der_d.keep_rows  = kept_stride(der_q.out_pixels) >> ColShift;
      kept_end_d       = 48'(32'((desc_q.out_c + 32'(ActLanes - 1)) >> LaneShift) - 32'd1)
                         * 48'(kept_stride(der_q.out_pixels)) + 48'(der_q.out_pixels);
      der_d.act_end    = 48'(der_q.act_lead) + 48'(desc_q.in_c - 32'd1) * 48'(der_q.act_stride)
                         + 48'(der_q.in_plane);
      // Shared classes and pools: the planes of a block of ActLanes channels sit side by side in the buffer's
      // ActLanes slices, so one slice holds ceil(in_c / ActLanes) planes; ActLanes times that is checked
      // against the buffer.
      if (der_q.lanes_in) begin
        der_d.act_end  = (48'(der_q.act_lead) + 48'(32'((desc_q.in_c + 32'(ActLanes - 1)) >> LaneShift) - 32'd1)
                          * 48'(der_q.act_stride) + 48'(der_q.in_plane)) << LaneShift;
      end
    end
  end

  // Shared classes: S = min(P, Rows >> slot_shift) classes a group (layout.py share_slots). Shared pools: a
  // group of min(Rows, ActLanes) channels, one a row (slots of one row).
  logic shared, shared_pool;
  logic [7:0] slots, rows_per_slot;
  always_comb begin
    shared_pool = (desc_q.op == 4'(OpMaxpool) || desc_q.op == 4'(OpAvgpool)) && desc_q.share;
    shared = (desc_q.op == 4'(OpConv) || shared_pool) && desc_q.share;
    rows_per_slot = 8'(Rows >> desc_q.slot_shift);
    slots = (rows_per_slot == '0) ? 8'd1 : (desc_q.patterns < rows_per_slot ? desc_q.patterns : rows_per_slot);
    if (shared_pool) slots = 8'((Rows < ActLanes) ? Rows : ActLanes);
  end

  // The activation-buffer stride of the input planes (hw/bands.py act_load): a whole map is contiguous; the
  // planes of a band are at least in_plane + beat - 1 bytes apart and keep the DDR stride's residue mod the beat,
  // ((map_h - in_h) * in_w - beat + 1) mod beat, which needs only the low bits of the two factors.
  logic [31:0] in_plane, act_stride;
  logic [BeatShift-1:0] dh, dh_w_low;
  always_comb begin
    in_plane = 32'(desc_q.in_h) * 32'(desc_q.in_w);
    dh = BeatShift'(desc_q.in_map_h - desc_q.in_h);
    dh_w_low = BeatShift'(dh * desc_q.in_w[BeatShift-1:0]) + BeatShift'(1);
    act_stride = in_plane;
    // a band, or the shared layout (one read per plane, whose DDR stride is a multiple of the beat: dh_w_low = 1);
    // a resident input lies as it was kept
    if ((desc_q.in_map_h != '0 && desc_q.in_map_h != desc_q.in_h) || shared) begin
      act_stride = in_plane + 32'(BeatBytes - 1) + 32'(dh_w_low);
    end
    if (desc_q.resident) act_stride = kept_stride(in_plane);
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      desc_q <= '0;
      der_q <= '0;
      kept_end_q <= '0;
    end else begin
      desc_q <= desc_d;
      der_q <= der_d;
      kept_end_q <= kept_end_d;
    end
  end

  // What the layer before kept in the buffer: valid from the end of a layer with keep to the end of the next one.
  logic kept_q, kept_half_q, kept_skew_q;
  logic [31:0] kept_off_q, kept_c_q;
  logic [15:0] kept_h_q, kept_w_q;

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      kept_q <= 1'b0;
      kept_half_q <= 1'b0;
      kept_skew_q <= 1'b0;
      kept_off_q <= '0;
      kept_c_q <= '0;
      kept_h_q <= '0;
      kept_w_q <= '0;
    end else if (run_start_i) begin
      kept_q <= 1'b0;
    end else if (layer_end_i) begin
      kept_q <= desc_q.keep;
      kept_half_q <= !desc_q.in_half;         // into the other half than its input's
      kept_skew_q <= desc_q.keep_skew;
      kept_off_q <= desc_q.out_off;
      kept_c_q <= desc_q.out_c;
      kept_h_q <= desc_q.out_h;
      kept_w_q <= desc_q.out_w;
    end
  end

  assign desc_o = desc_q;
  assign der_o = der_q;
  assign pool_o = (desc_q.op == 4'(OpMaxpool)) || (desc_q.op == 4'(OpAvgpool));
  assign in_bytes_o = 48'(desc_q.in_c) * 48'(der_q.in_plane);

  // ------------------------------------------------------------------------------------------------
  // Check: the first reason the layer cannot run, in the order of the ErrorCode list
  // ------------------------------------------------------------------------------------------------
  logic shape_bad, pattern_bad, misaligned, residency_bad;

  // Kept outputs (hw/residency.py problem(): the same rules; any of them broken is BAD_SHAPE).
  always_comb begin
    residency_bad = (desc_q.in_half && !desc_q.resident) || (desc_q.keep_skew && !desc_q.keep);
    if (desc_q.keep) begin
      residency_bad = residency_bad || !((desc_q.op == 4'(OpConv) && desc_q.share) || desc_q.op == 4'(OpAdd))
                      || desc_q.out_map_h != '0
                      || der_q.out_pixels[ColShift-1:0] != '0 || desc_q.out_off[BeatShift-1:0] != '0
                      || kept_end_q > 48'(HalfSlice);
      // an input loaded into half 0 stays there (an ADD's input 1 flat from byte 0)
      if (!desc_q.resident) begin
        residency_bad = residency_bad || (desc_q.op == 4'(OpAdd) ? in_bytes_o > 48'(HalfSlice)
                                                                 : der_q.act_end > 48'(HalfSlice) << LaneShift);
      end
    end
    if (desc_q.resident) begin
      residency_bad = residency_bad
                      || !(desc_q.op == 4'(OpAdd) || desc_q.op == 4'(OpConv) || der_q.share)
                      || desc_q.in_map_h != '0
                      || !(kept_q && kept_off_q == desc_q.in_off && kept_c_q == desc_q.in_c
                           && kept_h_q == desc_q.in_h && kept_w_q == desc_q.in_w && kept_half_q == desc_q.in_half
                           && kept_skew_q == der_q.act_skew);
    end
  end

  always_comb begin
    pattern_bad = 1'b0;
    for (int j = 0; j < MaxPatterns; j++) begin
      if (j < 32'(desc_q.patterns)
          && 8'($countones(desc_q.masks[DescPattern0Width*j +: DescPattern0Width])) != desc_q.nnz) begin
        pattern_bad = 1'b1;
      end
    end
    shape_bad = desc_q.in_c == '0 || desc_q.in_h == '0 || desc_q.in_w == '0 || desc_q.out_c == '0
                || desc_q.out_h == '0 || desc_q.out_w == '0 || desc_q.in_c > 32'd65535;
    // A band is never higher than its map; an ADD reads and writes whole maps.
    if (desc_q.op == 4'(OpAdd)) begin
      shape_bad = shape_bad || desc_q.in_map_h != '0 || desc_q.out_map_h != '0;
    end else begin
      shape_bad = shape_bad || (desc_q.in_map_h != '0 && desc_q.in_map_h < desc_q.in_h)
                  || (desc_q.out_map_h != '0 && desc_q.out_map_h < desc_q.out_h);
    end
    unique case (desc_q.op)
      4'(OpConv): begin
        shape_bad = shape_bad || desc_q.kh == '0 || desc_q.kw == '0 || desc_q.stride_h == '0
                    || desc_q.stride_w == '0 || desc_q.nnz == '0;
        if (desc_q.pps) begin
          shape_bad = shape_bad || desc_q.patterns == '0 || 32'(desc_q.patterns) > MaxPatterns
                      || desc_q.kh != 8'd3 || desc_q.kw != 8'd3 || desc_q.nnz > 8'd9 || pattern_bad;
        end else begin
          shape_bad = shape_bad || 16'(desc_q.nnz) != der_q.kk || desc_q.share;
        end
        // Shared classes (layout.share_problem): P divides ActLanes, I a multiple of it, stride 1 with
        // out_w == in_w (a tile reads consecutive bytes), DDR planes a whole number of beats apart, and every
        // class within one slot: ceil(O / P) <= 2^slot_shift <= Rows.
        if (desc_q.share) begin
          shape_bad = shape_bad || desc_q.patterns > 8'(ActLanes)
                      || (8'(ActLanes) % (desc_q.patterns == '0 ? 8'd1 : desc_q.patterns)) != '0
                      || desc_q.in_c[LaneShift-1:0] != '0 || desc_q.stride_h != 8'd1 || desc_q.stride_w != 8'd1
                      || desc_q.out_w != desc_q.in_w || der_q.in_cs[BeatShift-1:0] != '0
                      || (32'd1 << desc_q.slot_shift) > 32'(Rows)
                      || 40'(desc_q.out_c) > 40'(desc_q.patterns) << desc_q.slot_shift;
        end
      end
      4'(OpMaxpool), 4'(OpAvgpool): begin
        shape_bad = shape_bad || desc_q.kh == '0 || desc_q.kw == '0 || desc_q.stride_h == '0
                    || desc_q.stride_w == '0 || desc_q.in_c != desc_q.out_c;
        // Shared pools (layout.share_problem): DDR planes a whole number of beats apart, and the active columns
        // read consecutive bytes: stride 1 with out_w == in_w, or a single output pixel.
        if (desc_q.share) begin
          shape_bad = shape_bad || der_q.in_cs[BeatShift-1:0] != '0
                      || !((desc_q.stride_h == 8'd1 && desc_q.stride_w == 8'd1 && desc_q.out_w == desc_q.in_w)
                           || der_q.out_pixels == 32'd1);
        end
      end
      default: begin   // ADD
        shape_bad = shape_bad || desc_q.in_c != desc_q.out_c || desc_q.in_h != desc_q.out_h
                    || desc_q.in_w != desc_q.out_w;
      end
    endcase
    // CONV and pool maps may start anywhere (bands start at any row); weights, records and ADD maps on beats.
    misaligned = (desc_q.op == 4'(OpAdd) && desc_q.in_off[BeatShift-1:0] != '0)
                 || (desc_q.op == 4'(OpConv)
                     && (desc_q.w_off[BeatShift-1:0] != '0 || desc_q.p_off[BeatShift-1:0] != '0))
                 || (desc_q.op == 4'(OpAdd) && desc_q.in2_off[BeatShift-1:0] != '0);

    err_o = 8'(ErrNone);
    if (desc_q.op > 4'(OpAdd)) begin
      err_o = 8'(ErrBadOp);
    end else if (shape_bad || residency_bad) begin
      err_o = 8'(ErrBadShape);
    end else if (misaligned) begin
      err_o = 8'(ErrMisaligned);
    end else if (desc_q.op != 4'(OpAdd) && der_q.act_end > 48'(ActBufBytes)) begin
      err_o = 8'(ErrActBufOverflow);
    end else if (desc_q.op == 4'(OpConv) && der_q.steps > 48'(WgtDepth)) begin
      err_o = 8'(ErrWeightBufOverflow);
    end
  end

  // ------------------------------------------------------------------------------------------------
  // desc_t must hold every field at the width of the descriptor layout (sps_if_pkg, generated)
  // ------------------------------------------------------------------------------------------------
  if ($bits(desc_q.op) != DescOpWidth || $bits(desc_q.relu) != DescReluWidth || $bits(desc_q.pps) != DescPpsWidth
      || $bits(desc_q.share) != DescShareWidth || $bits(desc_q.slot_shift) != DescSlotShiftWidth
      || $bits(desc_q.keep) != DescKeepWidth || $bits(desc_q.resident) != DescResidentWidth
      || $bits(desc_q.in_half) != DescInHalfWidth || $bits(desc_q.keep_skew) != DescKeepSkewWidth
      || $bits(desc_q.in_off) != DescInOffsetWidth || $bits(desc_q.in_c) != DescInCWidth
      || $bits(desc_q.in_h) != DescInHWidth || $bits(desc_q.in_w) != DescInWWidth
      || $bits(desc_q.out_off) != DescOutOffsetWidth || $bits(desc_q.out_c) != DescOutCWidth
      || $bits(desc_q.out_h) != DescOutHWidth || $bits(desc_q.out_w) != DescOutWWidth
      || $bits(desc_q.kh) != DescKhWidth || $bits(desc_q.kw) != DescKwWidth
      || $bits(desc_q.stride_h) != DescStrideHWidth || $bits(desc_q.stride_w) != DescStrideWWidth
      || $bits(desc_q.pad_top) != DescPadTopWidth || $bits(desc_q.pad_left) != DescPadLeftWidth
      || $bits(desc_q.patterns) != DescPatternsWidth || $bits(desc_q.nnz) != DescNnzWidth
      || $bits(desc_q.w_off) != DescWeightOffsetWidth || $bits(desc_q.p_off) != DescParamOffsetWidth
      || $bits(desc_q.in2_off) != DescIn2OffsetWidth || $bits(desc_q.mult) != DescMultWidth
      || $bits(desc_q.mult2) != DescMult2Width || $bits(desc_q.shift) != DescShiftWidth
      || $bits(desc_q.in_map_h) != DescInMapHWidth || $bits(desc_q.out_map_h) != DescOutMapHWidth
      || $bits(desc_q.masks) != MaxPatterns * DescPattern0Width) begin : gen_bad_desc_t
    $error("sps_desc_decode: sps_core_pkg::desc_t does not match the descriptor fields of sps_if_pkg");
  end

  // Assertions (simulation only).
`ifndef SYNTHESIS
  // The four steps come one at a time.
  StepsOneAtATime: assert property (@(posedge clk_i) disable iff (!rst_ni)
      $onehot0({decode_i, derive_i, derive2_i, check_i}));
`endif

endmodule

`default_nettype wire
