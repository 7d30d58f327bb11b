// Conditional buffer: holds a stage's features, BEATS beats per sample, for
// up to DEPTH samples until that sample's exit decision arrives.
// Decision beat (one per sample, in sample order): bit 0 = exited (drop the
// features), bits [META_BITS:1] = the sample's meta data (tag, patience
// state) passed on with a forwarded sample on meta_out. Forward: meta beat
// first, then the BEATS feature beats; drop: the sample's beats are removed
// at once. A full buffer deasserts in_tready (stalls upstream), never drops.
//
// DEPTH slots of BEATS words (slot s at mem[s*BEATS +: BEATS]). A sample
// takes the lowest free slot with its first beat and holds it until it is
// dropped or its last beat has been forwarded. Once completely written, its
// slot index waits in the decision queue (sample order) for its decision,
// which is taken the cycle it is offered: drop -> the slot is free at once,
// wherever the sample sits (a continuing sample waiting for the next stage
// blocks no drop behind it); forward -> {meta, slot} go to the forward queue,
// read in order: meta beat, then the BEATS beats, then the slot is free.
// in_tready is low only when a new sample finds no free slot. Full rate: one
// beat per cycle in, and out after one meta cycle per forwarded sample.
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
    localparam integer AW = (CAP > 1) ? $clog2(CAP) : 1;       // word address
    localparam integer SW = (DEPTH > 1) ? $clog2(DEPTH) : 1;   // slot index
    localparam integer QW = $clog2(DEPTH + 1);                 // queue fill 0..DEPTH
    localparam integer BW = (BEATS > 1) ? $clog2(BEATS) : 1;
    localparam integer BEAT_LAST_I = BEATS - 1;
    localparam integer SLOT_LAST_I = DEPTH - 1;
    localparam [BW-1:0] BEAT_LAST = BEAT_LAST_I[BW-1:0];
    localparam [SW-1:0] SLOT_LAST = SLOT_LAST_I[SW-1:0];
    localparam [QW-1:0] QONE = 1;
    localparam [DEPTH-1:0] SLOT0 = 1;          // one-hot slot 0

    // first word of slot s (< CAP: the product's upper bits are always 0)
    /* verilator lint_off UNUSEDSIGNAL */
    function [AW-1:0] base_of(input [SW-1:0] s);
        integer t;
        begin
            t = s * BEATS;
            base_of = t[AW-1:0];
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    function [SW-1:0] next_slot(input [SW-1:0] s);
        next_slot = (s == SLOT_LAST) ? {SW{1'b0}} : s + 1'b1;
    endfunction

    reg [WIDTH-1:0] mem [0:CAP-1];
    reg [DEPTH-1:0] free;

    // lowest free slot (DEPTH <= 64: a short priority chain)
    reg [SW-1:0] alloc;
    integer i;
    always @* begin
        alloc = {SW{1'b0}};
        for (i = DEPTH - 1; i >= 0; i = i - 1)
            if (free[i]) alloc = i[SW-1:0];
    end

    // ---- writer: a sample takes a slot with its first beat
    reg [BW-1:0] wbeat;
    reg [SW-1:0] wslot;
    reg [AW-1:0] waddr;
    wire wfirst = wbeat == {BW{1'b0}};
    assign in_tready = !wfirst || (|free);
    wire push = in_tvalid && in_tready;
    wire [SW-1:0] cur_slot = wfirst ? alloc : wslot;
    wire [AW-1:0] cur_addr = wfirst ? base_of(alloc) : waddr;
    wire written = push && wbeat == BEAT_LAST;   // the sample is complete

    always @(posedge clk) if (push) mem[cur_addr] <= in_tdata;

    // ---- decision queue: slots of complete samples awaiting their decision, in order
    reg [SW-1:0] aq [0:DEPTH-1];
    reg [SW-1:0] aq_wp, aq_rp;
    reg [QW-1:0] aq_n;
    wire [SW-1:0] dslot = aq[aq_rp];
    assign dec_tready = aq_n != {QW{1'b0}};
    wire dec_fire = dec_tvalid && dec_tready;
    wire drop = dec_fire && dec_tdata[0];
    wire fwd = dec_fire && !dec_tdata[0];

    always @(posedge clk) if (written) aq[aq_wp] <= cur_slot;

    // ---- forward queue: {meta, slot} of forwarded samples, in order
    reg [META_BITS+SW-1:0] fq [0:DEPTH-1];
    reg [SW-1:0] fq_wp, fq_rp;
    reg [QW-1:0] fq_n;
    wire [META_BITS+SW-1:0] fhead = fq[fq_rp];
    wire [SW-1:0] rslot = fhead[SW-1:0];
    wire have = fq_n != {QW{1'b0}};

    always @(posedge clk) if (fwd) fq[fq_wp] <= {dec_tdata[META_BITS:1], dslot};

    // ---- reader: meta beat, then the slot's BEATS beats. The memory is read synchronously
    // (block RAM): rdata holds mem[raddr], the address of the beat on offer, which was
    // loaded with the slot's first word when the meta beat left. A slot being read is
    // never written, so there is no read-during-write case.
    reg meta_sent;
    reg [AW-1:0] raddr;
    reg [BW-1:0] rbeat;
    reg [WIDTH-1:0] rdata;
    assign meta_tdata = fhead[META_BITS+SW-1:SW];
    assign meta_tvalid = have && !meta_sent;
    wire meta_fire = meta_tvalid && meta_tready;
    assign out_tdata = rdata;
    assign out_tvalid = have && meta_sent;
    wire pop = out_tvalid && out_tready;
    wire done = pop && rbeat == BEAT_LAST;       // the slot is free
    wire [AW-1:0] raddr_next = meta_fire ? base_of(rslot) : pop ? raddr + 1'b1 : raddr;

    always @(posedge clk) rdata <= mem[raddr_next];

    always @(posedge clk) begin
        if (rst) begin
            free <= {DEPTH{1'b1}};
            wbeat <= {BW{1'b0}};
            wslot <= {SW{1'b0}};
            waddr <= {AW{1'b0}};
            aq_wp <= {SW{1'b0}};
            aq_rp <= {SW{1'b0}};
            aq_n <= {QW{1'b0}};
            fq_wp <= {SW{1'b0}};
            fq_rp <= {SW{1'b0}};
            fq_n <= {QW{1'b0}};
            meta_sent <= 1'b0;
            raddr <= {AW{1'b0}};
            rbeat <= {BW{1'b0}};
        end else begin
            // the slots a write takes and a drop / the last forwarded beat free are distinct
            free <= (free & ~(push && wfirst ? (SLOT0 << alloc) : {DEPTH{1'b0}}))
                    | (drop ? (SLOT0 << dslot) : {DEPTH{1'b0}})
                    | (done ? (SLOT0 << rslot) : {DEPTH{1'b0}});
            if (push) begin
                wbeat <= (wbeat == BEAT_LAST) ? {BW{1'b0}} : wbeat + 1'b1;
                wslot <= cur_slot;
                waddr <= cur_addr + 1'b1;
            end
            if (written) aq_wp <= next_slot(aq_wp);
            if (dec_fire) aq_rp <= next_slot(aq_rp);
            aq_n <= aq_n + (written ? QONE : {QW{1'b0}}) - (dec_fire ? QONE : {QW{1'b0}});
            if (fwd) fq_wp <= next_slot(fq_wp);
            if (done) fq_rp <= next_slot(fq_rp);
            fq_n <= fq_n + (fwd ? QONE : {QW{1'b0}}) - (done ? QONE : {QW{1'b0}});
            raddr <= raddr_next;
            if (meta_fire) begin
                meta_sent <= 1'b1;
                rbeat <= {BW{1'b0}};
            end else if (pop) begin
                rbeat <= rbeat + 1'b1;
            end
            if (done) meta_sent <= 1'b0;
        end
    end
endmodule
