// Matrix-vector unit (FINN-style, folded): out = requant(W x + b).
//   W: MH x MW signed narrow-range weights (WB bits), x: MW inputs (IB bits,
//   IN_SIGNED), b: integer bias at accumulator scale.
//   Input: SIMD elements per beat (element s at bits [s*IB +: IB]); a sample
//   is SF = MW/SIMD beats.  Output: PE elements per beat, NF = MH/PE beats;
//   element p of beat nf is row nf*PE + p.
//   HAS_ACT=1: out = clip(acc >>> SHIFT, 0, 2^OB-1) (SHIFT < 0: left shift);
//   HAS_ACT=0: out = acc (ACC_BITS, signed: logits).
// Schedule: the SF beats of a sample are read from the stream during neuron
// fold 0 and kept in an input buffer for folds 1..NF-1, so a sample takes
// exactly SF*NF cycles when the stream keeps up and the output is ready.
// Weight ROM word at address nf*SF + sf holds PE*SIMD weights, weight of
// (row nf*PE+p, column sf*SIMD+s) at bits [(p*SIMD+s)*WB +: WB]: one ROM
// row feeds all PEs (the per-PE ROMs side by side). Bias ROM word nf holds PE
// biases of ACC_BITS bits. Backpressure stalls the whole pipeline.
module cs_mvu #(
    parameter integer MW = 16,
    parameter integer MH = 8,
    parameter integer PE = 2,
    parameter integer SIMD = 4,
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
    // derived: do not override
    parameter integer OUT_BITS = (HAS_ACT != 0) ? OB : ACC_BITS
) (
    input wire clk,
    input wire rst,
    input wire [SIMD*IB-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    output wire [PE*OUT_BITS-1:0] out_tdata,
    output wire out_tvalid,
    input wire out_tready
);
    localparam integer SF = MW / SIMD;
    localparam integer NF = MH / PE;
    localparam integer SFW = (SF > 1) ? $clog2(SF) : 1;
    localparam integer NFW = (NF > 1) ? $clog2(NF) : 1;
    localparam integer WAW = (SF * NF > 1) ? $clog2(SF * NF) : 1;
    localparam integer SF_LAST_I = SF - 1;
    localparam integer NF_LAST_I = NF - 1;
    localparam integer WA_LAST_I = SF * NF - 1;
    localparam [SFW-1:0] SF_LAST = SF_LAST_I[SFW-1:0];
    localparam [NFW-1:0] NF_LAST = NF_LAST_I[NFW-1:0];
    localparam [WAW-1:0] WA_LAST = WA_LAST_I[WAW-1:0];

    reg out_valid;
    // The pipeline moves when the output register is free or being emptied.
    wire en = !out_valid || out_tready;

    // ---- issue: one (nf, sf) step per cycle --------------------------------
    reg [SFW-1:0] sf;
    reg [NFW-1:0] nf;
    reg [WAW-1:0] waddr;
    wire from_stream = (nf == {NFW{1'b0}});
    wire issue = en && (!from_stream || in_tvalid);
    assign in_tready = en && from_stream;

    reg [SIMD*IB-1:0] ibuf [0:SF-1];
    wire [SIMD*IB-1:0] x_now = from_stream ? in_tdata : ibuf[sf];
    always @(posedge clk) if (issue && from_stream) ibuf[sf] <= in_tdata;

    always @(posedge clk) begin
        if (rst) begin
            sf <= {SFW{1'b0}};
            nf <= {NFW{1'b0}};
            waddr <= {WAW{1'b0}};
        end else if (issue) begin
            sf <= (sf == SF_LAST) ? {SFW{1'b0}} : sf + 1'b1;
            if (sf == SF_LAST) nf <= (nf == NF_LAST) ? {NFW{1'b0}} : nf + 1'b1;
            waddr <= (waddr == WA_LAST) ? {WAW{1'b0}} : waddr + 1'b1;
        end
    end

    // ---- stage 1: operands registered, weights/bias read --------------------
    reg s1_valid, s1_first, s1_last;
    reg [SIMD*IB-1:0] x_q;
    wire [PE*SIMD*WB-1:0] w_q;
    wire [PE*ACC_BITS-1:0] b_q;
    cs_rom #(.DEPTH(SF * NF), .WIDTH(PE * SIMD * WB), .BLOCK(ROM_BLOCK), .FILE(WEIGHT_FILE)) weight_rom (
        .clk(clk), .en(en), .addr(waddr), .q(w_q));
    cs_rom #(.DEPTH(NF), .WIDTH(PE * ACC_BITS), .BLOCK(0), .FILE(BIAS_FILE)) bias_rom (
        .clk(clk), .en(en), .addr(nf), .q(b_q));

    always @(posedge clk) begin
        if (rst) begin
            s1_valid <= 1'b0;
            s1_first <= 1'b0;
            s1_last <= 1'b0;
            x_q <= {SIMD*IB{1'b0}};
        end else if (en) begin
            s1_valid <= issue;
            s1_first <= sf == {SFW{1'b0}};
            s1_last <= sf == SF_LAST;
            x_q <= x_now;
        end
    end

    // ---- stage 2: multiply-accumulate per PE, requantise on the last fold ---
    always @(posedge clk) begin
        if (rst) out_valid <= 1'b0;
        else if (en) out_valid <= s1_valid && s1_last;
    end

    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            reg signed [ACC_BITS-1:0] acc;
            reg signed [ACC_BITS-1:0] dot;
            reg signed [ACC_BITS-1:0] prod;
            reg [OUT_BITS-1:0] out_q;
            integer s;
            always @* begin
                dot = {ACC_BITS{1'b0}};
                for (s = 0; s < SIMD; s = s + 1) begin
                    // unsigned inputs get a 0 sign bit, signed ones their own
                    prod = $signed(w_q[(p*SIMD+s)*WB +: WB])
                        * $signed({IN_SIGNED != 0 && x_q[s*IB+IB-1], x_q[s*IB +: IB]});
                    dot = dot + prod;
                end
            end
            wire signed [ACC_BITS-1:0] bias = b_q[p*ACC_BITS +: ACC_BITS];
            wire signed [ACC_BITS-1:0] acc_next = (s1_first ? bias : acc) + dot;
            wire [OUT_BITS-1:0] result;
            if (HAS_ACT != 0) begin : g_act
                cs_requant #(.IW(ACC_BITS), .OB(OB), .SHIFT(SHIFT)) rq (.acc(acc_next), .q(result));
            end else begin : g_raw
                assign result = acc_next;
            end
            always @(posedge clk) begin
                if (en && s1_valid) begin
                    acc <= acc_next;
                    if (s1_last) out_q <= result;
                end
            end
            assign out_tdata[p*OUT_BITS +: OUT_BITS] = out_q;
        end
    endgenerate
    assign out_tvalid = out_valid;
endmodule
