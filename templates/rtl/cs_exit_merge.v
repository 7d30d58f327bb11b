// Exit merge: round-robin arbiter over K result streams (one per exit).
// Output beat = {exit index (IXW bits), input beat}; every input beat leaves
// exactly once. The grant starts after the last granted input, so no exit
// can starve another. One registered output beat; a beat per cycle.
module cs_exit_merge #(
    parameter integer K = 2,
    parameter integer WIDTH = 8,
    parameter integer IXW = (K > 1) ? $clog2(K) : 1
) (
    input wire clk,
    input wire rst,
    input wire [K*WIDTH-1:0] in_tdata,
    input wire [K-1:0] in_tvalid,
    output reg [K-1:0] in_tready,
    output reg [IXW+WIDTH-1:0] out_tdata,
    output reg out_tvalid,
    input wire out_tready
);
    reg [IXW-1:0] last;
    reg [IXW-1:0] sel;
    reg any;
    wire load = !out_tvalid || out_tready;
    // j = (last + i) mod K by one conditional subtraction (last < K, 1 <= i <= K):
    // a `%` here would synthesise a divider per candidate
    reg [IXW:0] j;
    integer i;
    always @* begin
        any = 1'b0;
        sel = last;
        // scan from last+K down to last+1 so the first valid after `last` wins
        for (i = K; i >= 1; i = i - 1) begin
            j = {1'b0, last} + i[IXW:0];
            if (j >= K[IXW:0]) j = j - K[IXW:0];
            if (in_tvalid[j[IXW-1:0]]) begin
                any = 1'b1;
                sel = j[IXW-1:0];
            end
        end
        in_tready = {K{1'b0}};
        if (load && any) in_tready[sel] = 1'b1;
    end
    always @(posedge clk) begin
        if (rst) begin
            out_tvalid <= 1'b0;
            last <= {IXW{1'b0}};
            out_tdata <= {(IXW+WIDTH){1'b0}};
        end else if (load) begin
            out_tvalid <= any;
            if (any) begin
                out_tdata <= {sel, in_tdata[sel*WIDTH +: WIDTH]};
                last <= sel;
            end
        end
    end
endmodule
