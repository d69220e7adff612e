// Copyright sps-pynq contributors. Licensed under Apache-2.0.
// AXI4-Lite control/status registers of the SPS core (map generated into sps_if_pkg from regmap.py).

`default_nettype none

module sps_regs
  import sps_if_pkg::*;
#(
  parameter logic [31:0] HwConfigWord  = 32'h0,   // HW_CONFIG fingerprint (HwConfig.fingerprint)
  parameter logic [31:0] HwBuffersWord = 32'h0    // HW_BUFFERS (HwConfig.buffers_word)
) (
  input  wire logic        clk_i,
  input  wire logic        rst_ni,

  // AXI4-Lite slave
  input  wire logic [7:0]  s_axil_awaddr,
  input  wire logic [2:0]  s_axil_awprot,
  input  wire logic        s_axil_awvalid,
  output logic             s_axil_awready,
  input  wire logic [31:0] s_axil_wdata,
  input  wire logic [3:0]  s_axil_wstrb,
  input  wire logic        s_axil_wvalid,
  output logic             s_axil_wready,
  output logic [1:0]       s_axil_bresp,
  output logic             s_axil_bvalid,
  input  wire logic        s_axil_bready,
  input  wire logic [7:0]  s_axil_araddr,
  input  wire logic [2:0]  s_axil_arprot,
  input  wire logic        s_axil_arvalid,
  output logic             s_axil_arready,
  output logic [31:0]      s_axil_rdata,
  output logic [1:0]       s_axil_rresp,
  output logic             s_axil_rvalid,
  input  wire logic        s_axil_rready,

  // to the core
  output logic             start_o,         // pulse: run the program
  output logic             abort_o,         // pulse: CTRL.SOFT_RESET
  output logic [63:0]      arena_o,
  output logic [31:0]      prog_offset_o,
  output logic [31:0]      num_layers_o,
  output logic [31:0]      stats_offset_o,
  output logic             stats_enable_o,

  // from the core
  input  wire logic        busy_i,          // a run is in progress
  input  wire logic        finish_i,        // pulse: the run ended (normally or with an error)
  input  wire logic [7:0]  err_code_i,      // valid with finish_i; 0 = success
  input  wire logic [31:0] cur_layer_i,
  input  wire logic [63:0] cycles_i,
  input  wire logic [63:0] mac_cycles_i,
  input  wire logic [63:0] stall_cycles_i,
  input  wire logic [63:0] bytes_rd_i,
  input  wire logic [63:0] bytes_wr_i,

  output logic             irq_o
);
  logic done_q, error_q, gie_q;
  logic [1:0] ier_q, isr_q;
  logic [7:0] err_code_q;
  logic [63:0] arena_q;
  logic [31:0] prog_offset_q, num_layers_q, stats_offset_q;
  logic stats_enable_q;

  logic wr_fire, rd_fire;
  logic [31:0] wdata;
  logic [31:0] rdata_d, rdata_q;
  logic bvalid_q, rvalid_q;

  // A write happens when address and data are both present; both are accepted in the same cycle.
  assign wr_fire = s_axil_awvalid && s_axil_wvalid && !bvalid_q;
  assign s_axil_awready = wr_fire;
  assign s_axil_wready = wr_fire;
  assign s_axil_bvalid = bvalid_q;
  assign s_axil_bresp = 2'b00;
  assign rd_fire = s_axil_arvalid && !rvalid_q;
  assign s_axil_arready = rd_fire;
  assign s_axil_rvalid = rvalid_q;
  assign s_axil_rdata = rdata_q;
  assign s_axil_rresp = 2'b00;

  // Byte strobes apply to the rw registers (CTRL acts on whole-word writes of its bits).
  always_comb begin
    wdata = s_axil_wdata;
    for (int b = 0; b < 4; b++) begin
      if (!s_axil_wstrb[b]) wdata[8*b +: 8] = 8'h00;
    end
  end

  assign start_o = wr_fire && s_axil_awaddr == RegCtrl && wdata[CtrlStartBit] && !busy_i;
  assign abort_o = wr_fire && s_axil_awaddr == RegCtrl && wdata[CtrlSoftResetBit];

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      bvalid_q <= 1'b0;
      done_q <= 1'b0;
      error_q <= 1'b0;
      err_code_q <= 8'h00;
      gie_q <= 1'b0;
      ier_q <= 2'b00;
      isr_q <= 2'b00;
      arena_q <= '0;
      prog_offset_q <= '0;
      num_layers_q <= '0;
      stats_offset_q <= '0;
      stats_enable_q <= 1'b0;
    end else begin
      if (wr_fire) begin
        bvalid_q <= 1'b1;
        unique case (s_axil_awaddr)
          RegGie: gie_q <= wdata[0];
          RegIer: ier_q <= wdata[1:0];
          RegIsr: isr_q <= isr_q & ~wdata[1:0];
          RegArenaLo: arena_q[31:0] <= wdata;
          RegArenaHi: arena_q[63:32] <= wdata;
          RegProgOffset: prog_offset_q <= wdata;
          RegNumLayers: num_layers_q <= wdata;
          RegStatsOffset: stats_offset_q <= wdata;
          RegStatsEnable: stats_enable_q <= wdata[0];
          default: ;
        endcase
      end else if (bvalid_q && s_axil_bready) begin
        bvalid_q <= 1'b0;
      end
      if (start_o || abort_o) begin
        done_q <= 1'b0;
        error_q <= 1'b0;
        if (start_o) err_code_q <= 8'h00;
      end
      if (finish_i) begin
        // An error also ends the run: DONE and ERROR are both set so that polling DONE never hangs.
        done_q <= 1'b1;
        error_q <= (err_code_i != 8'h00);
        err_code_q <= err_code_i;
        isr_q <= isr_q | {err_code_i != 8'h00, 1'b1};
      end
    end
  end

  always_comb begin
    rdata_d = 32'h0;
    unique case (s_axil_araddr)
      RegCtrl: begin
        rdata_d[CtrlStartBit] = busy_i;
        rdata_d[CtrlDoneBit] = done_q;
        rdata_d[CtrlIdleBit] = !busy_i;
        rdata_d[CtrlErrorBit] = error_q;
      end
      RegGie: rdata_d = {31'h0, gie_q};
      RegIer: rdata_d = {30'h0, ier_q};
      RegIsr: rdata_d = {30'h0, isr_q};
      RegHwId: rdata_d = HwIdMagic;
      RegHwConfig: rdata_d = HwConfigWord;
      RegHwBuffers: rdata_d = HwBuffersWord;
      RegErrorCode: rdata_d = {24'h0, err_code_q};
      RegArenaLo: rdata_d = arena_q[31:0];
      RegArenaHi: rdata_d = arena_q[63:32];
      RegProgOffset: rdata_d = prog_offset_q;
      RegNumLayers: rdata_d = num_layers_q;
      RegCurLayer: rdata_d = cur_layer_i;
      RegStatsOffset: rdata_d = stats_offset_q;
      RegStatsEnable: rdata_d = {31'h0, stats_enable_q};
      RegCyclesLo: rdata_d = cycles_i[31:0];
      RegCyclesHi: rdata_d = cycles_i[63:32];
      RegMacCyclesLo: rdata_d = mac_cycles_i[31:0];
      RegMacCyclesHi: rdata_d = mac_cycles_i[63:32];
      RegStallCyclesLo: rdata_d = stall_cycles_i[31:0];
      RegStallCyclesHi: rdata_d = stall_cycles_i[63:32];
      RegBytesRdLo: rdata_d = bytes_rd_i[31:0];
      RegBytesRdHi: rdata_d = bytes_rd_i[63:32];
      RegBytesWrLo: rdata_d = bytes_wr_i[31:0];
      RegBytesWrHi: rdata_d = bytes_wr_i[63:32];
      default: rdata_d = 32'h0;
    endcase
  end

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      rvalid_q <= 1'b0;
      rdata_q <= '0;
    end else if (rd_fire) begin
      rvalid_q <= 1'b1;
      rdata_q <= rdata_d;
    end else if (rvalid_q && s_axil_rready) begin
      rvalid_q <= 1'b0;
    end
  end

  assign arena_o = arena_q;
  assign prog_offset_o = prog_offset_q;
  assign num_layers_o = num_layers_q;
  assign stats_offset_o = stats_offset_q;
  assign stats_enable_o = stats_enable_q;
  assign irq_o = gie_q && |(isr_q & ier_q);

  // The protection bits carry no meaning here.
  logic unused_prot;
  assign unused_prot = ^{s_axil_awprot, s_axil_arprot};

endmodule

`default_nettype wire
