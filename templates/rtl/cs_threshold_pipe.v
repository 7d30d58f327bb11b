// Pipelined exit-decision (threshold) unit: the ports, parameters and
// results of cs_threshold_unit (docs/policies.md bit for bit), but all C
// logits are processed in parallel and a new sample is taken every cycle
// (II = 1) for every policy.  Used where the sequential unit (C+1 / 2C+1
// cycles per sample) would be slower than the stage feeding it
// (hw_models.rtl_cost.threshold_parallel decides; codesign/rtl.py follows).
//
// Pipeline (global stall: every register advances when the output register
// is free, so in_tready = !out_tvalid || out_tready; no valid depends on
// ready), one register stage each:
//   input      z, patience state
//   L levels   argmax tree, L = clog2(C): a node keeps {max, second, index};
//              the lower-index side wins ties, and the second largest value
//              of a multiset equals the max on ties (top2 == top1)
//   X1         (max_softmax, entropy) e_j = E[(top1 - z_j) >> S] for all j
//   X2         sum_e = sum_j e_j; entropy: L(e_j) (0 where e_j = 0)
//   X3, X4     (entropy) e_j * L(e_j) and sum_e * L(sum_e); then sum_j e_j L(e_j)
//   output     {count, class, exit}: the policy's comparison with `threshold`
// Latency: 2 + L + X cycles from the input handshake to out_tvalid (X = 0, 2, 4 stages
// above: margin / patience, max_softmax, entropy).
// `threshold` is read in the output stage (once per sample, when it decides).
module cs_threshold_pipe #(
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
    parameter integer OUT_BITS = CNT_BITS + CLS_BITS + 1,
    parameter integer L = (C > 1) ? $clog2(C) : 1
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
    localparam integer ENT = (POLICY == 2) ? 1 : 0;
    localparam integer XS = SOFT * 2 + ENT * 2;        // stages after the tree
    // cycles from the input handshake to out_tvalid (hw_models.rtl_cost.threshold_pipe_latency)
    localparam integer LATENCY = 2 + L + XS;
    localparam integer NV = LATENCY - 1;               // register stages before the output
    localparam integer DW = LB + 1;                    // top1 - z_j >= 0
    localparam integer EB = P + 1;                     // exp table values
    localparam integer SB = P + 1 + $clog2(C + 1);     // sum_e <= C * 2^P
    localparam integer NW = (N > 1) ? $clog2(N) : 1;
    localparam integer ZW = C * LB;
    localparam integer XW = ((TB > SB) ? TB : SB) + LB + 2;  // holds every score and threshold
    localparam [LB-1:0] MOST_NEG = {1'b1, {(LB-1){1'b0}}};

    // nodes of tree level l (level 0: the C logits) and their offset in the flat node vectors
    function integer nodes(input integer l);
        nodes = (C + (1 << l) - 1) >> l;
    endfunction
    function integer base(input integer l);
        integer i;
        begin
            base = 0;
            for (i = 0; i < l; i = i + 1) base = base + ((C + (1 << i) - 1) >> i);
        end
    endfunction
    localparam integer NODES = base(L + 1);

    wire adv = !out_tvalid || out_tready;   // global stall: the whole pipe moves together
    assign in_tready = adv;

    reg [NV-1:0] v;                          // valid bit of each register stage
    always @(posedge clk) begin
        if (rst) v <= {NV{1'b0}};
        else if (adv) v <= {v[NV-2:0], in_tvalid};
    end

    // ---- input stage: the logits enter the delay line (data moves whenever the pipe does; v says if it counts)
    localparam integer ZD = (SOFT != 0) ? L + 1 : 1;  // softmax needs z again after the tree
    reg [ZD*ZW-1:0] zd;
    wire [ZW-1:0] z0 = zd[ZW-1:0];
    generate
        if (ZD > 1) begin : g_zd
            always @(posedge clk) if (adv) zd <= {zd[(ZD-1)*ZW-1:0], in_tdata[ZW-1:0]};
        end else begin : g_z0
            always @(posedge clk) if (adv) zd <= in_tdata[ZW-1:0];
        end
    endgenerate

    // ---- argmax tree: flat node vectors, level l node i at index base(l) + i
    wire [NODES*LB-1:0] m1;          // maximum
    // the root's second maximum is read by margin only
    /* verilator lint_off UNUSEDSIGNAL */
    wire [NODES*LB-1:0] m2;          // second maximum (most negative: none yet)
    /* verilator lint_on UNUSEDSIGNAL */
    wire [NODES*CLS_BITS-1:0] mi;    // class of the maximum

    genvar gl, gi, gj;
    generate
        for (gi = 0; gi < C; gi = gi + 1) begin : g_leaf
            localparam integer JI = gi;
            localparam [CLS_BITS-1:0] JC = JI[CLS_BITS-1:0];
            assign m1[gi*LB +: LB] = z0[gi*LB +: LB];
            assign m2[gi*LB +: LB] = MOST_NEG;
            assign mi[gi*CLS_BITS +: CLS_BITS] = JC;
        end
        for (gl = 1; gl <= L; gl = gl + 1) begin : g_level
            localparam integer NP = nodes(gl - 1);
            localparam integer NN = nodes(gl);
            localparam integer BP = base(gl - 1);
            localparam integer BN = base(gl);
            for (gi = 0; gi < NN; gi = gi + 1) begin : g_node
                reg signed [LB-1:0] r1, r2;
                reg [CLS_BITS-1:0] ri;
                wire signed [LB-1:0] a1 = m1[(BP + 2*gi)*LB +: LB];
                wire signed [LB-1:0] a2 = m2[(BP + 2*gi)*LB +: LB];
                wire [CLS_BITS-1:0] ai = mi[(BP + 2*gi)*CLS_BITS +: CLS_BITS];
                if (2*gi + 1 < NP) begin : g_merge
                    wire signed [LB-1:0] b1 = m1[(BP + 2*gi + 1)*LB +: LB];
                    wire signed [LB-1:0] b2 = m2[(BP + 2*gi + 1)*LB +: LB];
                    wire [CLS_BITS-1:0] bi = mi[(BP + 2*gi + 1)*CLS_BITS +: CLS_BITS];
                    // a holds the lower indices: b wins only when strictly greater
                    wire take_b = b1 > a1;
                    always @(posedge clk) if (adv) begin
                        r1 <= take_b ? b1 : a1;
                        r2 <= take_b ? ((a1 > b2) ? a1 : b2) : ((b1 > a2) ? b1 : a2);
                        ri <= take_b ? bi : ai;
                    end
                end else begin : g_pass
                    always @(posedge clk) if (adv) begin
                        r1 <= a1;
                        r2 <= a2;
                        ri <= ai;
                    end
                end
                assign m1[(BN + gi)*LB +: LB] = r1;
                assign m2[(BN + gi)*LB +: LB] = r2;
                assign mi[(BN + gi)*CLS_BITS +: CLS_BITS] = ri;
            end
        end
    endgenerate

    localparam integer ROOT = base(L);
    // patience reads only the class
    /* verilator lint_off UNUSEDSIGNAL */
    wire signed [LB-1:0] top1 = m1[ROOT*LB +: LB];
    /* verilator lint_on UNUSEDSIGNAL */
    wire [CLS_BITS-1:0] cls_tree = mi[ROOT*CLS_BITS +: CLS_BITS];

    // ---- class, carried to the output stage
    wire [CLS_BITS-1:0] cls;
    generate
        if (XS > 0) begin : g_cls_delay
            reg [XS*CLS_BITS-1:0] cd;
            if (XS > 1) begin : g_more
                always @(posedge clk) if (adv) cd <= {cd[(XS-1)*CLS_BITS-1:0], cls_tree};
            end else begin : g_one
                always @(posedge clk) if (adv) cd <= cls_tree;
            end
            assign cls = cd[(XS-1)*CLS_BITS +: CLS_BITS];
        end else begin : g_cls_now
            assign cls = cls_tree;
        end
    endgenerate

    // ---- policy score and decision (combinational into the output register)
    wire decide;
    wire [CNT_BITS-1:0] count;
    generate
        if (POLICY == 0) begin : g_margin
            wire signed [LB-1:0] top2 = m2[ROOT*LB +: LB];
            wire [DW-1:0] score = top1 - top2;
            wire signed [XW-1:0] th = {{(XW-TB){threshold[TB-1]}}, threshold};
            assign decide = $signed({{(XW-DW){1'b0}}, score}) >= th;
            assign count = {CNT_BITS{1'b0}};
        end else if (POLICY == 3) begin : g_patience
            // the state {count, class} of the exit before, delayed beside the tree (XS = 0 here)
            reg [(L+1)*STATE_BITS-1:0] sd;
            always @(posedge clk) if (adv) sd <= {sd[L*STATE_BITS-1:0], in_tdata[IN_BITS-1:ZW]};
            wire [STATE_BITS-1:0] prev = sd[L*STATE_BITS +: STATE_BITS];
            wire [CLS_BITS-1:0] prev_cls = prev[CLS_BITS-1:0];
            wire [CNT_BITS-1:0] prev_cnt = prev[CLS_BITS +: CNT_BITS];
            wire [CNT_BITS-1:0] grown = (prev_cnt == {CNT_BITS{1'b1}}) ? prev_cnt : prev_cnt + 1'b1;
            assign count = (FIRST_EXIT != 0 || cls != prev_cls) ? {{(CNT_BITS-1){1'b0}}, 1'b1} : grown;
            wire signed [XW-1:0] th = {{(XW-TB){threshold[TB-1]}}, threshold};
            assign decide = $signed({{(XW-CNT_BITS){1'b0}}, count}) >= th;
        end else begin : g_soft
            // X1: one exp look-up per logit against the tree's maximum
            reg [EB-1:0] exp_table [0:N-1];
            initial $readmemh(EXP_FILE, exp_table);
            wire [ZW-1:0] zl = zd[L*ZW +: ZW];
            wire [C*EB-1:0] e_c;
            reg [C*EB-1:0] e1;
            always @(posedge clk) if (adv) e1 <= e_c;
            for (gj = 0; gj < C; gj = gj + 1) begin : g_exp
                wire signed [LB-1:0] zj = zl[gj*LB +: LB];
                wire signed [DW-1:0] d_signed = top1 - zj;  // d_j = top1 - z_j >= 0
                wire [DW-1:0] d = d_signed;
                wire [DW-1:0] idx = d >> S;
                wire [31:0] idx32 = {{(32-DW){1'b0}}, idx};  // logits are at most 31 bits
                assign e_c[gj*EB +: EB] = (idx32 < N) ? exp_table[idx[NW-1:0]] : {EB{1'b0}};
            end
            // X2: sum_e (a short adder chain of EB-bit terms)
            reg [SB-1:0] sum_c;
            integer j;
            always @* begin
                sum_c = {SB{1'b0}};
                for (j = 0; j < C; j = j + 1) sum_c = sum_c + {{(SB-EB){1'b0}}, e1[j*EB +: EB]};
            end
            reg [SB-1:0] sum2;
            always @(posedge clk) if (adv) sum2 <= sum_c;
            if (ENT == 0) begin : g_max_softmax
                wire signed [XW-1:0] th = {{(XW-TB){threshold[TB-1]}}, threshold};
                assign decide = $signed({{(XW-SB){1'b0}}, sum2}) <= th;
            end else begin : g_entropy
                localparam integer LWS = $clog2(SB) + G + 1;  // L(sum_e) width
                localparam integer LWE = $clog2(P + 1) + G + 1;
                localparam integer PB = EB + LWE;              // e_j * L(e_j)
                localparam integer ELW = PB + $clog2(C + 1);   // sum_j e_j L(e_j)
                localparam integer CW = ((SB + LWS > ELW) ? SB + LWS : ELW) + TB + SB + 2;
                localparam integer RW = TB + SB + 1;
                // X2: L(e_j), masked to 0 where e_j = 0 (those terms are 0)
                reg [C*EB-1:0] e2;
                reg [C*LWE-1:0] l2;
                wire [C*LWE-1:0] l_c;
                for (gj = 0; gj < C; gj = gj + 1) begin : g_log
                    wire [EB-1:0] ej = e1[gj*EB +: EB];
                    wire [LWE-1:0] lj;
                    cs_fixed_log2 #(.XW(EB), .M(M), .G(G), .LOG_FILE(LOG_FILE)) log_e (.x(ej), .l(lj));
                    assign l_c[gj*LWE +: LWE] = (ej != 0) ? lj : {LWE{1'b0}};
                end
                always @(posedge clk) if (adv) begin
                    e2 <= e1;
                    l2 <= l_c;
                end
                // X3: the products e_j * L(e_j) and sum_e * L(sum_e)
                wire [LWS-1:0] l_sum;
                cs_fixed_log2 #(.XW(SB), .M(M), .G(G), .LOG_FILE(LOG_FILE)) log_sum (.x(sum2), .l(l_sum));
                reg [C*PB-1:0] p3;
                wire [C*PB-1:0] p_c;
                reg [SB+LWS-1:0] sum_l3;
                reg [SB-1:0] sum3;
                for (gj = 0; gj < C; gj = gj + 1) begin : g_prod
                    assign p_c[gj*PB +: PB] = e2[gj*EB +: EB] * l2[gj*LWE +: LWE];
                end
                always @(posedge clk) if (adv) begin
                    p3 <= p_c;
                    sum_l3 <= sum2 * l_sum;
                    sum3 <= sum2;
                end
                // X4: sum_j e_j L(e_j)
                reg [ELW-1:0] el_c;
                integer k;
                always @* begin
                    el_c = {ELW{1'b0}};
                    for (k = 0; k < C; k = k + 1) el_c = el_c + {{(ELW-PB){1'b0}}, p3[k*PB +: PB]};
                end
                reg [ELW-1:0] sum_el4;
                reg [SB+LWS-1:0] sum_l4;
                reg [SB-1:0] sum4;
                always @(posedge clk) if (adv) begin
                    sum_el4 <= el_c;
                    sum_l4 <= sum_l3;
                    sum4 <= sum3;
                end
                // lhs = sum_e L(sum_e) - sum_j e_j L(e_j) <= Th * sum_e, in full widths
                wire signed [RW-1:0] th_sum = $signed(threshold) * $signed({1'b0, sum4});
                wire signed [CW-1:0] lhs = $signed({{(CW-SB-LWS){1'b0}}, sum_l4}) - $signed({{(CW-ELW){1'b0}}, sum_el4});
                wire signed [CW-1:0] rhs = {{(CW-RW){th_sum[RW-1]}}, th_sum};
                assign decide = lhs <= rhs;
            end
            assign count = {CNT_BITS{1'b0}};
        end
    endgenerate

    // ---- output register
    always @(posedge clk) begin
        if (rst) out_tvalid <= 1'b0;
        else if (adv) out_tvalid <= v[NV-1];
    end
    always @(posedge clk) if (adv) out_tdata <= {count, cls, decide};
endmodule
