// Broadcast one stream to N_OUT consumers (stage features -> exit head and
// conditional buffer). No buffering: each output keeps valid until it has
// taken the beat, the input is released when every output has; valid never
// depends on ready (no combinational handshake loops, no duplicates).
module cs_split #(
    parameter integer WIDTH = 8,
    parameter integer N_OUT = 2
) (
    input wire clk,
    input wire rst,
    input wire [WIDTH-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    output wire [WIDTH-1:0] out_tdata,        // shared by all outputs
    output wire [N_OUT-1:0] out_tvalid,
    input wire [N_OUT-1:0] out_tready
);
    reg [N_OUT-1:0] taken;  // outputs that already took the current beat
    wire [N_OUT-1:0] done = taken | (out_tvalid & out_tready);
    assign out_tdata = in_tdata;
    assign out_tvalid = {N_OUT{in_tvalid}} & ~taken;
    assign in_tready = &done;
    always @(posedge clk) begin
        if (rst) taken <= {N_OUT{1'b0}};
        else if (in_tvalid) taken <= in_tready ? {N_OUT{1'b0}} : done;
    end
endmodule
