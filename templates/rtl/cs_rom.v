// Synchronous-read ROM initialised by $readmemh (one hex word per line).
// BLOCK=1 asks yosys for block RAM: it maps constant ROMs to LUTs otherwise.
module cs_rom #(
    parameter integer DEPTH = 16,
    parameter integer WIDTH = 8,
    parameter integer BLOCK = 0,
    parameter FILE = "rom.hex",
    parameter integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1
) (
    input wire clk,
    input wire en,
    input wire [AW-1:0] addr,
    output wire [WIDTH-1:0] q
);
    generate
        if (BLOCK != 0) begin : g_block
            (* rom_style = "block" *) reg [WIDTH-1:0] mem [0:DEPTH-1];
            reg [WIDTH-1:0] q_r;
            initial $readmemh(FILE, mem);
            always @(posedge clk) if (en) q_r <= mem[addr];
            assign q = q_r;
        end else begin : g_logic
            reg [WIDTH-1:0] mem [0:DEPTH-1];
            reg [WIDTH-1:0] q_r;
            initial $readmemh(FILE, mem);
            always @(posedge clk) if (en) q_r <= mem[addr];
            assign q = q_r;
        end
    endgenerate
endmodule
