// Exit-decision (threshold) unit for one exit, exactly docs/policies.md.
// POLICY: 0 margin, 1 max_softmax, 2 entropy, 3 patience.
// Input beat: C signed logits of LB bits (logit j at bits [j*LB +: LB]);
// for patience the state {prev_count (CNT_BITS), prev_class (CLS_BITS)}
// sits above the logits.  `threshold`: the run-time register (tau, T, Th or
// n), signed TB bits (codesign.policies uses Th = -1 as entropy's "never";
// TB must hold the policy's threshold range plus a sign bit).  Tables (max_softmax, entropy): EXP_FILE (N words
// E[i], P+1 bits), LOG_FILE (2^M words, G+1 bits), as codesign/policies.py
// computes them.
// Output beat: {count (CNT_BITS; patience only, else 0), class (CLS_BITS),
// exit (1 bit)}.  class = argmax, lowest index on ties.
// Sequential: one logit per cycle, C+1 cycles per sample (margin,
// patience), 2C+1 (max_softmax, entropy); the next sample is accepted while
// the result waits on the output.
module cs_threshold_unit #(
    parameter integer C = 10,
    parameter integer LB = 16,
    parameter integer POLICY = 0,
    parameter integer TB = 32,
    parameter integer P = 8,
    parameter integer N = 64,
    parameter integer S = 0,
    parameter integer M = 5,
    parameter integer G = 8,
    parameter EXP_FILE = "exp.hex",
    parameter LOG_FILE = "log.hex",
    parameter integer CNT_BITS = 4,
    parameter integer FIRST_EXIT = 0,  // patience: exit 0 starts the count at 1
    // derived: do not override
    parameter integer CLS_BITS = (C > 1) ? $clog2(C) : 1,
    parameter integer STATE_BITS = (POLICY == 3) ? CNT_BITS + CLS_BITS : 0,
    parameter integer IN_BITS = C * LB + STATE_BITS,
    parameter integer OUT_BITS = CNT_BITS + CLS_BITS + 1
) (
    input wire clk,
    input wire rst,
    input wire [IN_BITS-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    input wire [TB-1:0] threshold,
    output reg [OUT_BITS-1:0] out_tdata,
    output reg out_tvalid,
    input wire out_tready
);
    localparam integer SOFT = (POLICY == 1 || POLICY == 2) ? 1 : 0;
    localparam integer JW = $clog2(C + 1);
    localparam integer DW = LB + 1;                    // top1 - z_j >= 0
    localparam integer SB = P + 1 + $clog2(C + 1);     // sum_e <= C * 2^P
    localparam integer NW = (N > 1) ? $clog2(N) : 1;
    localparam integer C_LAST_I = C - 1;
    localparam [JW-1:0] J_LAST = C_LAST_I[JW-1:0];
    localparam [1:0] IDLE = 2'd0, ARGMAX = 2'd1, SUMS = 2'd2, FINAL = 2'd3;

    reg [1:0] state;
    reg [JW-1:0] j;
    reg [C*LB-1:0] z;
    reg signed [LB-1:0] top1, top2;
    reg [CLS_BITS-1:0] cls;
    reg [SB-1:0] sum_e;

    wire signed [LB-1:0] zj = z[j*LB +: LB];

    assign in_tready = state == IDLE;
    wire start = in_tvalid && in_tready;
    wire can_emit = !out_tvalid || out_tready;

    localparam integer XW = ((TB > SB) ? TB : SB) + LB + 2;  // holds every score and threshold

    // ---- e(d) = E[d >> S] if (d >> S) < N else 0 ------------------------------
    wire [P:0] e;
    // ---- policy score and decision (valid in FINAL) ---------------------------
    wire decide;
    wire [CNT_BITS-1:0] count;

    generate
        if (SOFT != 0) begin : g_exp
            reg [P:0] exp_table [0:N-1];
            initial $readmemh(EXP_FILE, exp_table);
            wire signed [DW-1:0] d_signed = top1 - zj;  // d_j = top1 - z_j >= 0
            wire [DW-1:0] d = d_signed;
            wire [DW-1:0] idx = d >> S;
            wire [31:0] idx32 = {{(32-DW){1'b0}}, idx};  // logits are at most 31 bits
            assign e = (idx32 < N) ? exp_table[idx[NW-1:0]] : {(P+1){1'b0}};
        end else begin : g_no_exp
            assign e = {(P+1){1'b0}};
        end

        if (POLICY == 0) begin : g_margin
            wire [DW-1:0] score = top1 - top2;
            wire signed [XW-1:0] th = {{(XW-TB){threshold[TB-1]}}, threshold};
            assign decide = $signed({{(XW-DW){1'b0}}, score}) >= th;
            assign count = {CNT_BITS{1'b0}};
        end else if (POLICY == 1) begin : g_max_softmax
            wire signed [XW-1:0] th = {{(XW-TB){threshold[TB-1]}}, threshold};
            assign decide = $signed({{(XW-SB){1'b0}}, sum_e}) <= th;
            assign count = {CNT_BITS{1'b0}};
        end else if (POLICY == 2) begin : g_entropy
            localparam integer LWS = $clog2(SB) + G + 1;  // L(sum_e) width
            localparam integer LWE = $clog2(P + 1) + G + 1;
            localparam integer ELW = P + 1 + LWE + $clog2(C + 1);  // sum_j e_j L(e_j)
            localparam integer CW = ((SB + LWS > ELW) ? SB + LWS : ELW) + TB + SB + 2;
            localparam integer RW = TB + SB + 1;
            wire [LWS-1:0] l_sum;
            wire [LWE-1:0] l_e;
            cs_fixed_log2 #(.XW(SB), .M(M), .G(G), .LOG_FILE(LOG_FILE)) log_sum (.x(sum_e), .l(l_sum));
            cs_fixed_log2 #(.XW(P + 1), .M(M), .G(G), .LOG_FILE(LOG_FILE)) log_e (.x(e), .l(l_e));
            reg [ELW-1:0] sum_el;
            always @(posedge clk) begin
                if (start) sum_el <= {ELW{1'b0}};
                else if (state == SUMS && e != 0) sum_el <= sum_el + e * l_e;  // e = 0 terms are 0
            end
            // products in their full widths before they meet in one signed compare
            wire [SB+LWS-1:0] sum_l = sum_e * l_sum;
            wire signed [RW-1:0] th_sum = $signed(threshold) * $signed({1'b0, sum_e});
            wire signed [CW-1:0] lhs = $signed({{(CW-SB-LWS){1'b0}}, sum_l}) - $signed({{(CW-ELW){1'b0}}, sum_el});
            wire signed [CW-1:0] rhs = {{(CW-RW){th_sum[RW-1]}}, th_sum};
            assign decide = lhs <= rhs;
            assign count = {CNT_BITS{1'b0}};
        end else begin : g_patience
            reg [STATE_BITS-1:0] prev;
            always @(posedge clk) if (start) prev <= in_tdata[IN_BITS-1:C*LB];
            wire [CLS_BITS-1:0] prev_cls = prev[CLS_BITS-1:0];
            wire [CNT_BITS-1:0] prev_cnt = prev[CLS_BITS +: CNT_BITS];
            wire [CNT_BITS-1:0] grown = (prev_cnt == {CNT_BITS{1'b1}}) ? prev_cnt : prev_cnt + 1'b1;
            assign count = (FIRST_EXIT != 0 || cls != prev_cls) ? {{(CNT_BITS-1){1'b0}}, 1'b1} : grown;
            wire signed [XW-1:0] th = {{(XW-TB){threshold[TB-1]}}, threshold};
            assign decide = $signed({{(XW-CNT_BITS){1'b0}}, count}) >= th;
        end
    endgenerate

    // ---- sequencing -------------------------------------------------------
    always @(posedge clk) begin
        if (rst) begin
            state <= IDLE;
            out_tvalid <= 1'b0;
        end else begin
            if (out_tvalid && out_tready) out_tvalid <= 1'b0;
            case (state)
                IDLE: if (start) state <= (C > 1) ? ARGMAX : (SOFT != 0 ? SUMS : FINAL);
                ARGMAX: if (j == J_LAST) state <= (SOFT != 0) ? SUMS : FINAL;
                SUMS: if (j == J_LAST) state <= FINAL;
                default: if (can_emit) begin
                    state <= IDLE;
                    out_tvalid <= 1'b1;
                end
            endcase
        end
    end

    always @(posedge clk) begin
        case (state)
            IDLE: if (start) begin
                z <= in_tdata[C*LB-1:0];
                top1 <= in_tdata[LB-1:0];  // logit 0 starts the comparator chain
                top2 <= {1'b1, {(LB-1){1'b0}}};  // most negative: no second yet
                cls <= {CLS_BITS{1'b0}};
                sum_e <= {SB{1'b0}};
                j <= (C > 1) ? 1 : 0;
            end
            ARGMAX: begin
                // strictly greater replaces the maximum: lowest index wins ties;
                // an equal maximum becomes top2 (top2 == top1 when tied)
                if (zj > top1) begin
                    top2 <= top1;
                    top1 <= zj;
                    cls <= j[CLS_BITS-1:0];
                end else if (zj > top2) begin
                    top2 <= zj;
                end
                j <= (j == J_LAST) ? 0 : j + 1'b1;
            end
            SUMS: begin
                sum_e <= sum_e + {{(SB-P-1){1'b0}}, e};
                j <= (j == J_LAST) ? 0 : j + 1'b1;
            end
            default: if (can_emit) out_tdata <= {count, cls, decide};
        endcase
    end
endmodule
