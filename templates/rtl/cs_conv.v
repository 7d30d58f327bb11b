// conv2d layer: sliding-window unit feeding a matrix-vector unit.
// The MVU matrix is [OC, KH*KW*IC] in (ky, kx, c) column order
// (sim.rtl.conv_weight_matrix); output: OH*OW pixels, HWC, PE channels per beat.
// SIMD divides IC (one kernel position per beat, IN_LANES = SIMD inputs per
// beat) or is KP*IC with KP dividing KH*KW (KP kernel positions per beat,
// cs_swu's parallel-window mode; the input stays IN_LANES = IC per beat).
// IPB pixels per input beat (IN_LANES = IC only, IPB dividing IW): for the
// network's first layer, whose image would otherwise take IH*IW cycles to read
// (hw_models.geometry.input_pixels_per_beat decides it).
module cs_conv #(
    parameter integer IC = 4,
    parameter integer OC = 4,
    parameter integer IH = 8,
    parameter integer IW = 8,
    parameter integer KH = 3,
    parameter integer KW = 3,
    parameter integer SH = 1,
    parameter integer SW = 1,
    parameter integer PH = 0,
    parameter integer PW = 0,
    parameter integer PE = 1,
    parameter integer SIMD = 1,
    parameter integer IB = 4,
    parameter integer IN_SIGNED = 0,
    parameter integer WB = 4,
    parameter integer ACC_BITS = 16,
    parameter integer HAS_ACT = 1,
    parameter integer OB = 4,
    parameter integer SHIFT = 0,
    parameter WEIGHT_FILE = "weights.hex",
    parameter BIAS_FILE = "bias.hex",
    parameter integer ROM_BLOCK = 0,
    parameter integer BUF_ROWS = 2 * KH + SH - 1,
    parameter integer IPB = 1,
    // derived: do not override
    parameter integer OUT_BITS = (HAS_ACT != 0) ? OB : ACC_BITS,
    parameter integer KP = (SIMD > IC) ? SIMD / IC : 1,
    parameter integer IN_LANES = SIMD / KP
) (
    input wire clk,
    input wire rst,
    input wire [IPB*IN_LANES*IB-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    output wire [PE*OUT_BITS-1:0] out_tdata,
    output wire out_tvalid,
    input wire out_tready
);
    wire [SIMD*IB-1:0] win_tdata;
    wire win_tvalid, win_tready;
    cs_swu #(.IC(IC), .IH(IH), .IW(IW), .KH(KH), .KW(KW), .SH(SH), .SW(SW), .PH(PH), .PW(PW),
             .SIMD(SIMD), .IB(IB), .BUF_ROWS(BUF_ROWS), .IPB(IPB)) window (
        .clk(clk), .rst(rst),
        .in_tdata(in_tdata), .in_tvalid(in_tvalid), .in_tready(in_tready),
        .out_tdata(win_tdata), .out_tvalid(win_tvalid), .out_tready(win_tready));
    cs_mvu #(.MW(KH * KW * IC), .MH(OC), .PE(PE), .SIMD(SIMD), .IB(IB), .IN_SIGNED(IN_SIGNED),
             .WB(WB), .ACC_BITS(ACC_BITS), .HAS_ACT(HAS_ACT), .OB(OB), .SHIFT(SHIFT),
             .WEIGHT_FILE(WEIGHT_FILE), .BIAS_FILE(BIAS_FILE), .ROM_BLOCK(ROM_BLOCK)) mvu (
        .clk(clk), .rst(rst),
        .in_tdata(win_tdata), .in_tvalid(win_tvalid), .in_tready(win_tready),
        .out_tdata(out_tdata), .out_tvalid(out_tvalid), .out_tready(out_tready));
endmodule
