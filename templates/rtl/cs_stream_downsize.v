// Split one input beat into R = IN_LANES/OUT_LANES output beats (low lanes
// first). Emits a beat every cycle; the next input is taken with the last piece.
module cs_stream_downsize #(
    parameter integer IN_LANES = 2,
    parameter integer OUT_LANES = 1,
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
    localparam integer R = IN_LANES / OUT_LANES;
    localparam integer OW_ = OUT_LANES * EB;
    localparam integer CW_ = (R > 1) ? $clog2(R) : 1;
    localparam integer LAST_I = R - 1;
    localparam [CW_-1:0] LAST = LAST_I[CW_-1:0];
    reg [IN_LANES*EB-1:0] word;
    reg [CW_-1:0] cnt;
    reg full;
    // a shift register instead of a read multiplexer: the next piece moves down
    assign out_tdata = word[OW_-1:0];
    assign out_tvalid = full;
    wire out_fire = full && out_tready;
    assign in_tready = !full || (out_fire && cnt == LAST);
    wire in_fire = in_tvalid && in_tready;
    always @(posedge clk) begin
        if (in_fire) word <= in_tdata;
        else if (out_fire) word <= word >> OW_;
    end
    always @(posedge clk) begin
        if (rst) begin
            cnt <= {CW_{1'b0}};
            full <= 1'b0;
        end else begin
            if (out_fire) cnt <= (cnt == LAST) ? {CW_{1'b0}} : cnt + 1'b1;
            if (in_fire) full <= 1'b1;
            else if (out_fire && cnt == LAST) full <= 1'b0;
        end
    end
endmodule
