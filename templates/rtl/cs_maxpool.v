// MaxPool2D (no padding, floor mode) on an HWC stream of unsigned elements:
// a sliding-window unit (any kernel/stride, overlapping or not) followed by a
// window-max reducer. LANES channels per beat in and out.
// Cycles per sample ~ OH*OW*KH*KW*(C/LANES) (the window walk).
module cs_maxpool #(
    parameter integer C = 4,
    parameter integer IH = 8,
    parameter integer IW = 8,
    parameter integer KH = 2,
    parameter integer KW = 2,
    parameter integer SH = 2,
    parameter integer SW = 2,
    parameter integer LANES = 1,
    parameter integer EB = 4
) (
    input wire clk,
    input wire rst,
    input wire [LANES*EB-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    output wire [LANES*EB-1:0] out_tdata,
    output wire out_tvalid,
    input wire out_tready
);
    wire [LANES*EB-1:0] win_tdata;
    wire win_tvalid, win_tready;
    cs_swu #(.IC(C), .IH(IH), .IW(IW), .KH(KH), .KW(KW), .SH(SH), .SW(SW), .PH(0), .PW(0),
             .SIMD(LANES), .IB(EB)) window (
        .clk(clk), .rst(rst),
        .in_tdata(in_tdata), .in_tvalid(in_tvalid), .in_tready(in_tready),
        .out_tdata(win_tdata), .out_tvalid(win_tvalid), .out_tready(win_tready));
    cs_window_max #(.KK(KH * KW), .CF(C / LANES), .LANES(LANES), .EB(EB)) reduce (
        .clk(clk), .rst(rst),
        .in_tdata(win_tdata), .in_tvalid(win_tvalid), .in_tready(win_tready),
        .out_tdata(out_tdata), .out_tvalid(out_tvalid), .out_tready(out_tready));
endmodule
