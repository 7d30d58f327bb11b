// Stream FIFO, DEPTH beats of WIDTH bits, one push and one pop per cycle.
// in_tready depends only on the fill level (never on out_tready), so a FIFO
// cuts the combinational ready chain between units. Asynchronous read
// (distributed RAM / registers): the head beat is visible without a cycle
// of latency.
module cs_fifo #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 4
) (
    input wire clk,
    input wire rst,
    input wire [WIDTH-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    output wire [WIDTH-1:0] out_tdata,
    output wire out_tvalid,
    input wire out_tready
);
    localparam integer PW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam integer CW = $clog2(DEPTH + 1);
    localparam integer LAST_I = DEPTH - 1;
    localparam [PW-1:0] LAST = LAST_I[PW-1:0];
    localparam [CW-1:0] FULL = DEPTH[CW-1:0];
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [PW-1:0] wptr, rptr;
    reg [CW-1:0] count;
    wire push = in_tvalid && in_tready;
    wire pop = out_tvalid && out_tready;

    assign in_tready = count != FULL;
    assign out_tvalid = count != {CW{1'b0}};
    assign out_tdata = mem[rptr];

    always @(posedge clk) if (push) mem[wptr] <= in_tdata;

    always @(posedge clk) begin
        if (rst) begin
            wptr <= {PW{1'b0}};
            rptr <= {PW{1'b0}};
            count <= {CW{1'b0}};
        end else begin
            if (push) wptr <= (wptr == LAST) ? {PW{1'b0}} : wptr + 1'b1;
            if (pop) rptr <= (rptr == LAST) ? {PW{1'b0}} : rptr + 1'b1;
            count <= count + {{(CW-1){1'b0}}, push} - {{(CW-1){1'b0}}, pop};
        end
    end
endmodule
