// Stream width converter between a layer with IN_LANES (its PE) and one
// with OUT_LANES (the next SIMD): element order is kept, low lanes first.
// OUT a multiple of IN: gather; IN a multiple of OUT: split; otherwise gather
// to lcm(IN, OUT) lanes and split (the stream length per sample must be a
// multiple of the lcm: the generator checks it). Equal widths: a wire.
module cs_width_converter #(
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
    function integer gcd(input integer a, input integer b);
        integer x, y, t;
        begin
            x = a;
            y = b;
            while (y != 0) begin
                t = x % y;
                x = y;
                y = t;
            end
            gcd = x;
        end
    endfunction
    localparam integer MID = IN_LANES / gcd(IN_LANES, OUT_LANES) * OUT_LANES;

    generate
        if (IN_LANES == OUT_LANES) begin : g_wire
            assign out_tdata = in_tdata;
            assign out_tvalid = in_tvalid;
            assign in_tready = out_tready;
            // clk/rst are unused in this case only
            /* verilator lint_off UNUSEDSIGNAL */
            wire unused = clk ^ rst;
            /* verilator lint_on UNUSEDSIGNAL */
        end else if (MID == OUT_LANES) begin : g_up
            cs_stream_upsize #(.IN_LANES(IN_LANES), .OUT_LANES(OUT_LANES), .EB(EB)) up (
                .clk(clk), .rst(rst), .in_tdata(in_tdata), .in_tvalid(in_tvalid), .in_tready(in_tready),
                .out_tdata(out_tdata), .out_tvalid(out_tvalid), .out_tready(out_tready));
        end else if (MID == IN_LANES) begin : g_down
            cs_stream_downsize #(.IN_LANES(IN_LANES), .OUT_LANES(OUT_LANES), .EB(EB)) down (
                .clk(clk), .rst(rst), .in_tdata(in_tdata), .in_tvalid(in_tvalid), .in_tready(in_tready),
                .out_tdata(out_tdata), .out_tvalid(out_tvalid), .out_tready(out_tready));
        end else begin : g_up_down
            wire [MID*EB-1:0] mid_tdata;
            wire mid_tvalid, mid_tready;
            cs_stream_upsize #(.IN_LANES(IN_LANES), .OUT_LANES(MID), .EB(EB)) up (
                .clk(clk), .rst(rst), .in_tdata(in_tdata), .in_tvalid(in_tvalid), .in_tready(in_tready),
                .out_tdata(mid_tdata), .out_tvalid(mid_tvalid), .out_tready(mid_tready));
            cs_stream_downsize #(.IN_LANES(MID), .OUT_LANES(OUT_LANES), .EB(EB)) down (
                .clk(clk), .rst(rst), .in_tdata(mid_tdata), .in_tvalid(mid_tvalid), .in_tready(mid_tready),
                .out_tdata(out_tdata), .out_tvalid(out_tvalid), .out_tready(out_tready));
        end
    endgenerate
endmodule
