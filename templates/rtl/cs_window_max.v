// Max over the KK = KH*KW window positions of a sliding-window stream.
// Input order per output pixel: (k, channel fold), LANES unsigned elements
// of EB bits per beat; output: the CF = C/LANES beats of the pixel's maxima.
// The running maxima of the first KK-1 positions are kept per channel fold;
// the last position's beats pass straight through the comparators.
module cs_window_max #(
    parameter integer KK = 4,
    parameter integer CF = 1,
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
    localparam integer KW_ = (KK > 1) ? $clog2(KK) : 1;
    localparam integer CW_ = (CF > 1) ? $clog2(CF) : 1;
    localparam integer K_LAST_I = KK - 1;
    localparam integer C_LAST_I = CF - 1;
    localparam [KW_-1:0] K_LAST = K_LAST_I[KW_-1:0];
    localparam [CW_-1:0] C_LAST = C_LAST_I[CW_-1:0];

    reg [KW_-1:0] k;
    reg [CW_-1:0] c;
    reg [LANES*EB-1:0] run_max [0:CF-1];
    wire last_k = k == K_LAST;
    wire [LANES*EB-1:0] held = run_max[c];
    wire first = k == {KW_{1'b0}};

    reg [LANES*EB-1:0] merged;
    integer l;
    always @* begin
        for (l = 0; l < LANES; l = l + 1)
            merged[l*EB +: EB] = (first || in_tdata[l*EB +: EB] > held[l*EB +: EB])
                ? in_tdata[l*EB +: EB] : held[l*EB +: EB];
    end

    assign out_tdata = merged;
    assign out_tvalid = in_tvalid && last_k;
    assign in_tready = !last_k || out_tready;
    wire fire = in_tvalid && in_tready;

    always @(posedge clk) if (fire && !last_k) run_max[c] <= merged;
    always @(posedge clk) begin
        if (rst) begin
            k <= {KW_{1'b0}};
            c <= {CW_{1'b0}};
        end else if (fire) begin
            c <= (c == C_LAST) ? {CW_{1'b0}} : c + 1'b1;
            if (c == C_LAST) k <= last_k ? {KW_{1'b0}} : k + 1'b1;
        end
    end
endmodule
