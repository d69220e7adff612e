// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// Internal types and helpers of the SPS core: the decoded descriptor, load commands, the requantization tail.

`default_nettype none

// Yosys 0.70 (the synthesis check) cannot read another package's constants or types inside a package, and does
// not see a package's types through a module's import: the field widths below are literals, checked against
// sps_if_pkg's Desc*Width at elaboration (sps_desc_decode), and modules name these types with their package
// (sps_core_pkg::desc_t).
package sps_core_pkg;

  // Width of a product v * M: |v| < 2^39 and M < 2^31 (docs/arithmetic.md), plus sign and headroom.
  localparam int unsigned ProdWidth = 72;

  // ---------------------------------------------------------------------------------------------------------------
  // A layer descriptor (sps_pynq/hw/descriptor.py), decoded by sps_desc_decode
  // ---------------------------------------------------------------------------------------------------------------
  typedef struct packed {
    logic [3:0]   op;         // one of sps_if_pkg::op_e (anything else is ErrBadOp)
    logic         relu;       // ReLU before saturation
    logic         pps;        // CONV: taps from the pattern table instead of dense
    logic         share;      // PPS CONV: residue classes share row groups (slots of 2^slot_shift rows)
    logic [2:0]   slot_shift;
    logic         keep;       // shared CONV, ADD: the output also goes into the activation buffer (hw/residency.py)
    logic         resident;   // the input (ADD: input 1) is already in the buffer: no load
    logic         in_half;    // with resident: the input is in the upper half of each slice
    logic         keep_skew;  // with keep: the kept map in the skewed mapping (for a reader with an even stride)
    logic [31:0]  in_off;     // input map (int8 CHW), byte offset in the arena
    logic [31:0]  in_c;
    logic [15:0]  in_h;
    logic [15:0]  in_w;
    logic [31:0]  out_off;    // output map, byte offset in the arena
    logic [31:0]  out_c;
    logic [15:0]  out_h;
    logic [15:0]  out_w;
    logic [7:0]   kh;         // kernel / window
    logic [7:0]   kw;
    logic [7:0]   stride_h;
    logic [7:0]   stride_w;
    logic [7:0]   pad_top;
    logic [7:0]   pad_left;
    logic [7:0]   patterns;   // P
    logic [7:0]   nnz;        // K
    logic [31:0]  w_off;      // CONV: packed weight row groups
    logic [31:0]  p_off;      // CONV: per-row parameter records
    logic [31:0]  in2_off;    // ADD: second input map
    logic [31:0]  mult;       // ADD: M of input 1; AVGPOOL: M
    logic [31:0]  mult2;      // ADD: M of input 2
    logic [7:0]   shift;      // ADD, AVGPOOL: S
    logic [15:0]  in_map_h;   // CONV, pools: rows of the whole input map (0: in_h); a band reads in_h of them
    logic [15:0]  out_map_h;  // CONV, pools: rows of the whole output map (0: out_h)
    logic [143:0] masks;      // PPS: the 3x3 mask of pattern j at [9*j +: 9] (MaxPatterns = 16 patterns)
  } desc_t;

  // Products of the descriptor's fields, registered by sps_desc_decode (first step, then second step).
  typedef struct packed {
    logic [31:0]        in_plane;    // in_h * in_w: bytes of one input channel in the activation buffer
    logic [31:0]        out_pixels;  // out_h * out_w
    logic [47:0]        steps;       // in_c * nnz: (i, k) steps per tile = weight entries of a row group
    logic [23:0]        ow_sw;       // out_w * stride_w
    logic [15:0]        kk;          // kh * kw: window taps
    logic [7:0]         p_eff;       // residue classes: P for a PPS CONV, else 1
    logic [31:0]        pt_w;        // pad_top * in_w
    logic [31:0]        in_cs;       // (in_map_h or in_h) * in_w: DDR bytes between input channel planes
    logic [31:0]        out_cs;      // (out_map_h or out_h) * out_w: DDR bytes between output channel planes
    logic [31:0]        act_stride;  // activation-buffer bytes between input planes (hw/bands.py act_load)
    logic [31:0]        act_lead;    // buffer offset of the input's first byte: in_off mod the AXI beat, plus
                                     // half a slice for an input in the upper half (in_half)
    logic               act_skew;    // CONV / pools with an even stride_w: the skewed bank mapping (odd rows
                                     // of the activation buffer hold their byte pairs swapped)
    logic signed [31:0] row_step;    // stride_h * in_w - out_w * stride_w (second step)
    logic [31:0]        out_total;   // out_c * out_pixels: bytes of the output map (second step)
    logic [47:0]        act_end;     // lead + (in_c - 1) * act_stride + in_plane: buffer bytes used (second step;
                                     // shared classes: ActLanes times the bytes used in one slice)
    logic               share;       // a PPS CONV whose classes share row groups (desc.share)
    logic [7:0]         slots;       // S = min(P, Rows >> slot_shift): classes a shared group holds
    logic [7:0]         rows_used;   // S << slot_shift: rows of a shared group that hold filters
    logic [31:0]        keep_rows;   // keep: buffer rows between kept planes in a slice ((out_pixels + beat) / C)
    logic               lanes_in;    // the input is in the shared layout: channel c in slice c mod ActLanes
                                     // (shared classes and pools, and every resident layer)
  } derived_t;

  // ---------------------------------------------------------------------------------------------------------------
  // Loads (sps_load): read beats -> descriptor words, activation buffer, weight buffer or parameter records
  // ---------------------------------------------------------------------------------------------------------------
  typedef enum logic [1:0] {DstDesc, DstAct, DstWgt, DstParam} ld_dest_e;

  // DstDesc, DstWgt, DstParam: one read of `beats` beats from the beat-aligned `addr`, landing at `idx`.
  // DstAct: `chans` reads of `len` bytes each, from the byte address `addr` (any alignment), then `ddr_stride`
  // further on; read c starts at the beat below its first byte and lands so that the byte sits at buffer byte
  // `buf_pos + c * buf_stride` (a whole map is one read: chans 1, len = the map; a band one read per channel).
  // With `lanes` (shared classes) read c lands in slice c mod ActLanes instead, at `buf_pos + (c / ActLanes) *
  // buf_stride` of that slice (slice l starts at byte l * ActBufBytes / ActLanes).
  typedef struct packed {
    ld_dest_e     dest;
    logic [63:0]  addr;       // DDR byte address; bits above the AXI address width are zero
    logic [31:0]  beats;      // AXI data beats to read (not DstAct)
    logic [31:0]  idx;        // where the first beat lands: descriptor / parameter beat, weight entry (not DstAct)
    logic         pbank;      // DstParam: which of the two parameter banks
    logic [15:0]  chans;      // DstAct: reads, one per channel plane (>= 1)
    logic [47:0]  len;        // DstAct: bytes of each read, from its first byte
    logic [31:0]  ddr_stride; // DstAct: DDR bytes from one read's first byte to the next's
    logic [31:0]  buf_pos;    // DstAct: buffer byte of the first read's first byte
    logic [31:0]  buf_stride; // DstAct: buffer bytes from one read's first byte to the next's
    logic         lanes;      // DstAct: planes go to the slices in turn (shared classes)
    logic         stream;     // DstAct: the bytes go to the stream port (the ADD's second input), not the buffer
  } ld_cmd_t;

  // One row's requantization parameters (layout.py's 16-byte record: bias, M, S, 0).
  typedef struct packed {
    logic [31:0]  bias;       // int32, added to the accumulator
    logic [30:0]  mult;       // M, 0..2^31-1
    logic [5:0]   shift;      // S, 0..63
  } par_rec_t;

  // requant tail: (p + R) >>> S with R = 1 << (S - 1) (0 when S == 0), then ReLU, then saturation to int8.
  function automatic logic [7:0] round_shift_sat(input logic signed [ProdWidth-1:0] p,
                                                 input logic [5:0] s,
                                                 input logic relu);
    logic signed [ProdWidth:0] t;
    logic signed [ProdWidth:0] y;
    t = {p[ProdWidth-1], p};
    if (s != 6'd0) begin
      t = t + ((ProdWidth+1)'(1) <<< (s - 6'd1));
    end
    y = t >>> s;
    if (relu && y < 0) begin
      y = '0;
    end
    if (y > (ProdWidth+1)'(127)) begin
      return 8'h7f;
    end else if (y < -(ProdWidth+1)'(128)) begin
      return 8'h80;
    end
    return y[7:0];
  endfunction

endpackage

`default_nettype wire
