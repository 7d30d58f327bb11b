// Fixed-point log2 of docs/policies.md (entropy policy), combinational:
//   p = position of the leading one of x, m = the M bits after it
//   (zero-padded when x is short), L(x) = p * 2^G + LOG[m],
//   LOG[m] = round(2^G * log2(1 + m / 2^M)) from LOG_FILE (2^M words).
// x = 0 gives L = LOG[0] (callers mask it: terms with e = 0 count as 0).
module cs_fixed_log2 #(
    parameter integer XW = 12,
    parameter integer M = 5,
    parameter integer G = 8,
    parameter LOG_FILE = "log.hex",
    // derived: do not override
    parameter integer PW = (XW > 1) ? $clog2(XW) : 1,
    parameter integer LW = PW + G + 1
) (
    input wire [XW-1:0] x,
    output wire [LW-1:0] l
);
    reg [G:0] log_table [0:(1<<M)-1];
    initial $readmemh(LOG_FILE, log_table);

    reg [PW-1:0] p;
    integer i;
    always @* begin
        p = {PW{1'b0}};
        for (i = 0; i < XW; i = i + 1)
            if (x[i]) p = i[PW-1:0];
    end
    // shifting {x, M zeros} right by p leaves the leading one at bit M and
    // the M bits after it (zero-padded) below it
    // (only those M bits are read: the rest is the shifted-out prefix)
    /* verilator lint_off UNUSEDSIGNAL */
    wire [XW+M-1:0] aligned = {x, {M{1'b0}}} >> p;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [M-1:0] m = aligned[M-1:0];
    assign l = {p, {G{1'b0}}} + {{(LW-G-1){1'b0}}, log_table[m]};
endmodule
