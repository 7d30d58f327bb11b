// Gather R = OUT_LANES/IN_LANES input beats into one output beat (first beat
// in the low lanes). Accepts a beat every cycle; one cycle of latency.
module cs_stream_upsize #(
    parameter integer IN_LANES = 1,
    parameter integer OUT_LANES = 2,
    parameter integer EB = 4
) (
    input wire clk,
    input wire rst,
    input wire [IN_LANES*EB-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    output wire [OUT_LANES*EB-1:0] out_tdata,
    output wire out_tvalid,
    input wire out_tready
);
    localparam integer R = OUT_LANES / IN_LANES;
    localparam integer IW_ = IN_LANES * EB;
    localparam integer CW_ = (R > 1) ? $clog2(R) : 1;
    localparam integer LAST_I = R - 1;
    localparam [CW_-1:0] LAST = LAST_I[CW_-1:0];
    reg [OUT_LANES*EB-1:0] word;
    reg [CW_-1:0] cnt;
    reg full;
    assign out_tdata = word;
    assign out_tvalid = full;
    assign in_tready = !full || out_tready;  // a taken word frees the register this cycle
    wire in_fire = in_tvalid && in_tready;
    wire out_fire = full && out_tready;
    // one write enable per piece: cheaper than a variable part-select
    genvar k;
    generate
        for (k = 0; k < R; k = k + 1) begin : g_piece
            always @(posedge clk) if (in_fire && cnt == k) word[k*IW_ +: IW_] <= in_tdata;
        end
    endgenerate
    always @(posedge clk) begin
        if (rst) begin
            cnt <= {CW_{1'b0}};
            full <= 1'b0;
        end else begin
            if (in_fire) cnt <= (cnt == LAST) ? {CW_{1'b0}} : cnt + 1'b1;
            if (in_fire && cnt == LAST) full <= 1'b1;
            else if (out_fire) full <= 1'b0;
        end
    end
endmodule
