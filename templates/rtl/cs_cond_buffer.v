// Conditional buffer: holds a stage's features, BEATS beats per sample, for
// up to DEPTH samples until that sample's exit decision arrives.
// Decision beat (one per sample, in sample order): bit 0 = exited (drop the
// features), bits [META_BITS:1] = the sample's meta data (tag, patience
// state) passed on with a forwarded sample on meta_out. Forward: meta beat
// first, then the BEATS feature beats; drop: the sample's beats are removed
// at once. A full buffer deasserts in_tready (stalls upstream), never drops.
module cs_cond_buffer #(
    parameter integer WIDTH = 8,
    parameter integer BEATS = 4,
    parameter integer DEPTH = 2,
    parameter integer META_BITS = 8
) (
    input wire clk,
    input wire rst,
    input wire [WIDTH-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    input wire [META_BITS:0] dec_tdata,
    input wire dec_tvalid,
    output wire dec_tready,
    output wire [WIDTH-1:0] out_tdata,
    output wire out_tvalid,
    input wire out_tready,
    output wire [META_BITS-1:0] meta_tdata,
    output wire meta_tvalid,
    input wire meta_tready
);
    localparam integer CAP = DEPTH * BEATS;
    localparam integer PW = (CAP > 1) ? $clog2(CAP) : 1;
    localparam integer CW = $clog2(CAP + 1);
    localparam integer BW = (BEATS > 1) ? $clog2(BEATS) : 1;
    localparam integer CAP_LAST_I = CAP - 1;
    localparam integer BEAT_LAST_I = BEATS - 1;
    localparam [PW-1:0] CAP_LAST = CAP_LAST_I[PW-1:0];
    localparam [CW-1:0] FULL = CAP[CW-1:0];
    localparam [CW-1:0] SAMPLE = BEATS[CW-1:0];
    localparam [PW:0] WRAP = CAP[PW:0];
    localparam [PW:0] SKIP = BEATS[PW:0];
    localparam [BW-1:0] BEAT_LAST = BEAT_LAST_I[BW-1:0];

    reg [WIDTH-1:0] mem [0:CAP-1];
    reg [PW-1:0] wptr, rptr;
    reg [CW-1:0] count;
    reg [BW-1:0] beat;       // beats of the head sample already forwarded
    reg meta_sent;

    wire drop = dec_tdata[0];
    wire forward = dec_tvalid && !drop;
    wire whole_sample = count >= SAMPLE;

    assign in_tready = count != FULL;
    wire push = in_tvalid && in_tready;

    assign meta_tdata = dec_tdata[META_BITS:1];
    assign meta_tvalid = forward && !meta_sent;
    wire meta_fire = meta_tvalid && meta_tready;

    assign out_tdata = mem[rptr];
    assign out_tvalid = forward && meta_sent && count != {CW{1'b0}};
    wire pop = out_tvalid && out_tready;

    wire drop_now = dec_tvalid && drop && whole_sample;
    assign dec_tready = drop_now || (pop && beat == BEAT_LAST);

    // read pointer after a drop: skip a whole sample, wrapping at CAP
    wire [PW:0] skipped = {1'b0, rptr} + SKIP;
    // after the wrap the value is < CAP, so its top bit is always 0
    /* verilator lint_off UNUSEDSIGNAL */
    wire [PW:0] skipped_wrapped = (skipped >= WRAP) ? skipped - WRAP : skipped;
    /* verilator lint_on UNUSEDSIGNAL */

    always @(posedge clk) if (push) mem[wptr] <= in_tdata;

    always @(posedge clk) begin
        if (rst) begin
            wptr <= {PW{1'b0}};
            rptr <= {PW{1'b0}};
            count <= {CW{1'b0}};
            beat <= {BW{1'b0}};
            meta_sent <= 1'b0;
        end else begin
            if (push) wptr <= (wptr == CAP_LAST) ? {PW{1'b0}} : wptr + 1'b1;
            if (pop) begin
                rptr <= (rptr == CAP_LAST) ? {PW{1'b0}} : rptr + 1'b1;
                beat <= (beat == BEAT_LAST) ? {BW{1'b0}} : beat + 1'b1;
            end else if (drop_now) begin
                rptr <= skipped_wrapped[PW-1:0];
            end
            count <= count + {{(CW-1){1'b0}}, push}
                     - (pop ? {{(CW-1){1'b0}}, 1'b1} : drop_now ? SAMPLE : {CW{1'b0}});
            if (dec_tvalid && dec_tready) meta_sent <= 1'b0;
            else if (meta_fire) meta_sent <= 1'b1;
        end
    end
endmodule
