// Requantisation of an accumulator: q = clip(acc >>> SHIFT, 0, 2^OB - 1).
// >>> on a signed value is floor division by 2^SHIFT (docs/ir.md); a
// negative SHIFT is a left shift, done in a wider word so nothing overflows
// before the clip.
module cs_requant #(
    parameter integer IW = 16,
    parameter integer OB = 4,
    parameter integer SHIFT = 0
) (
    input wire signed [IW-1:0] acc,
    output wire [OB-1:0] q
);
    localparam integer LSH = (SHIFT < 0) ? -SHIFT : 0;
    localparam integer RSH = (SHIFT > 0) ? SHIFT : 0;
    localparam integer XW = ((IW + LSH > OB) ? IW + LSH : OB) + 2;
    wire signed [XW-1:0] wide = {{(XW-IW){acc[IW-1]}}, acc};
    wire signed [XW-1:0] shifted = (wide <<< LSH) >>> RSH;
    wire negative = shifted[XW-1];
    wire too_big = |shifted[XW-2:OB];
    assign q = negative ? {OB{1'b0}} : too_big ? {OB{1'b1}} : shifted[OB-1:0];
endmodule
