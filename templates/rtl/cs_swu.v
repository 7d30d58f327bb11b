// Sliding-window unit (line buffer) for conv2d / maxpool, FINN-style.
// Input: pixels in HWC order, SIMD channels per beat (CF = IC/SIMD beats per
// pixel), IH x IW pixels per sample.  Output: for every output pixel (oy, ox)
// in raster order, the KH*KW*CF beats of its window in (ky, kx, channel
// fold) order; positions in the zero padding give zero beats.  One output
// beat per cycle when the consumer keeps up.
// Buffer: BUF_ROWS input rows in a circular buffer (rows of consecutive
// samples follow each other, so the next sample fills while this one drains).
// The default 2*KH+SH-1 rows lets the first rows of the next sample arrive
// while the last output row of this one is read, so the fill is hidden.
module cs_swu #(
    parameter integer IC = 4,
    parameter integer IH = 8,
    parameter integer IW = 8,
    parameter integer KH = 3,
    parameter integer KW = 3,
    parameter integer SH = 1,
    parameter integer SW = 1,
    parameter integer PH = 0,
    parameter integer PW = 0,
    parameter integer SIMD = 4,
    parameter integer IB = 4,
    parameter integer BUF_ROWS = 2 * KH + SH - 1
) (
    input wire clk,
    input wire rst,
    input wire [SIMD*IB-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    output wire [SIMD*IB-1:0] out_tdata,
    output wire out_tvalid,
    input wire out_tready
);
    localparam integer CF = IC / SIMD;
    localparam integer OH = (IH + 2 * PH - KH) / SH + 1;
    localparam integer OW = (IW + 2 * PW - KW) / SW + 1;
    localparam integer DEPTH = BUF_ROWS * IW * CF;
    localparam integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    // signed coordinates: enough for -P .. (O-1)*S - P + K and IH/IW
    localparam integer CRD = $clog2(IH + IW + 2 * (PH + PW + KH + KW + SH + SW) + 2) + 2;
    localparam integer RW = $clog2(BUF_ROWS + 1) + 1;  // row counts (0..BUF_ROWS), one spare bit
    localparam integer DW = SIMD * IB;

    // Coordinate arithmetic below mixes 32-bit integer parameters with
    // counters sized CRD/RW/AW bits; every value fits its declared width (see
    // the widths above), so the implicit extensions/truncations are intended.
    /* verilator lint_off WIDTHEXPAND */
    /* verilator lint_off WIDTHTRUNC */

    // ---- writer: rows land in consecutive slots ------------------------------
    reg [AW-1:0] waddr;
    reg [CRD-1:0] wx;
    reg [CRD-1:0] wcf;
    reg [RW-1:0] filled;  // complete rows not yet released
    wire mid_row = (wx != 0) || (wcf != 0);
    assign in_tready = mid_row || (filled < BUF_ROWS);
    wire in_fire = in_tvalid && in_tready;
    wire row_written = in_fire && (wx == IW - 1) && (wcf == CF - 1);

    reg [DW-1:0] mem [0:DEPTH-1];
    always @(posedge clk) if (in_fire) mem[waddr] <= in_tdata;

    always @(posedge clk) begin
        if (rst) begin
            waddr <= {AW{1'b0}};
            wx <= {CRD{1'b0}};
            wcf <= {CRD{1'b0}};
        end else if (in_fire) begin
            waddr <= (waddr == DEPTH - 1) ? {AW{1'b0}} : waddr + 1'b1;
            if (wcf == CF - 1) begin
                wcf <= {CRD{1'b0}};
                wx <= (wx == IW - 1) ? {CRD{1'b0}} : wx + 1'b1;
            end else begin
                wcf <= wcf + 1'b1;
            end
        end
    end

    // ---- reader: walks output pixels and their windows ------------------------
    reg signed [CRD-1:0] iy0, ix0;       // window origin: oy*SH-PH, ox*SW-PW
    reg [CRD-1:0] oy, ox, ky, kx, rcf;
    reg signed [CRD-1:0] rbase;          // input row held in slot base_slot
    reg [RW-1:0] base_slot;
    reg waiting;                         // row finished, rows to release not yet written
    reg signed [CRD-1:0] wait_target;

    // rows this output row needs: up to min(iy0 + KH - 1, IH - 1)
    wire signed [CRD-1:0] hi_row = (iy0 + KH - 1 > IH - 1) ? IH - 1 : iy0 + KH - 1;
    wire signed [CRD-1:0] need = hi_row - rbase + 1;
    wire rows_ready = $signed({1'b0, filled}) >= need;

    // credit for the 2-beat output queue: in-flight read + queued beats
    reg [1:0] pending;
    wire pop = out_tvalid && out_tready;
    wire issue = !waiting && rows_ready && (pending < 2'd2 || pop);

    wire signed [CRD-1:0] iy = iy0 + $signed(ky);
    wire signed [CRD-1:0] ix = ix0 + $signed(kx);
    wire in_image = (iy >= 0) && (iy < IH) && (ix >= 0) && (ix < IW);
    wire [RW-1:0] rel = iy - rbase;
    wire [RW:0] slot_sum = base_slot + rel;
    wire [RW:0] slot = (slot_sum >= BUF_ROWS) ? slot_sum - BUF_ROWS : slot_sum;
    wire [AW-1:0] raddr = (slot * IW + ix) * CF + rcf;

    wire last_cf = rcf == CF - 1;
    wire last_kx = kx == KW - 1;
    wire last_ky = ky == KH - 1;
    wire last_ox = ox == OW - 1;
    wire last_oy = oy == OH - 1;
    wire row_end = issue && last_cf && last_kx && last_ky && last_ox;

    // release rows below the next output row's window (all at the sample's end)
    wire signed [CRD-1:0] next_lo = (iy0 + SH < 0) ? 0 : iy0 + SH;
    wire signed [CRD-1:0] target_now = last_oy ? IH : next_lo;
    wire signed [CRD-1:0] target = waiting ? wait_target : target_now;
    wire signed [CRD-1:0] nfree = target - rbase;
    wire release_ok = (waiting || row_end) && ($signed({1'b0, filled}) >= nfree);
    wire [RW-1:0] freed = release_ok ? nfree : {RW{1'b0}};

    always @(posedge clk) begin
        if (rst) filled <= {RW{1'b0}};
        else filled <= filled + row_written - freed;
    end

    always @(posedge clk) begin
        if (rst) begin
            iy0 <= -PH;
            ix0 <= -PW;
            oy <= 0; ox <= 0; ky <= 0; kx <= 0; rcf <= 0;
            rbase <= 0;
            base_slot <= 0;
            waiting <= 1'b0;
            wait_target <= 0;
        end else begin
            if (issue) begin
                rcf <= last_cf ? 0 : rcf + 1'b1;
                if (last_cf) begin
                    kx <= last_kx ? 0 : kx + 1'b1;
                    if (last_kx) begin
                        ky <= last_ky ? 0 : ky + 1'b1;
                        if (last_ky) begin
                            ox <= last_ox ? 0 : ox + 1'b1;
                            ix0 <= last_ox ? -PW : ix0 + SW;
                            if (last_ox) begin
                                oy <= last_oy ? 0 : oy + 1'b1;
                                iy0 <= last_oy ? -PH : iy0 + SH;
                            end
                        end
                    end
                end
            end
            if (release_ok) begin
                rbase <= (target == IH) ? 0 : target;
                base_slot <= (base_slot + nfree >= BUF_ROWS) ? base_slot + nfree - BUF_ROWS : base_slot + nfree;
                waiting <= 1'b0;
            end else if (row_end) begin
                waiting <= 1'b1;
                wait_target <= target_now;
            end
        end
    end

    // ---- read pipeline: synchronous read, zero for padding, 2-beat queue -------
    reg [DW-1:0] rd_q;
    reg rd_valid, rd_zero;
    always @(posedge clk) if (issue) rd_q <= mem[raddr];
    always @(posedge clk) begin
        if (rst) begin
            rd_valid <= 1'b0;
            rd_zero <= 1'b0;
            pending <= 2'd0;
        end else begin
            rd_valid <= issue;
            rd_zero <= !in_image;
            pending <= pending + issue - pop;
        end
    end

    /* verilator lint_on WIDTHEXPAND */
    /* verilator lint_on WIDTHTRUNC */

    // never low when a read arrives: `pending` reserved the slot at issue
    /* verilator lint_off UNUSEDSIGNAL */
    wire queue_ready;
    /* verilator lint_on UNUSEDSIGNAL */
    cs_fifo #(.WIDTH(DW), .DEPTH(2)) out_queue (
        .clk(clk), .rst(rst),
        .in_tdata(rd_zero ? {DW{1'b0}} : rd_q), .in_tvalid(rd_valid), .in_tready(queue_ready),
        .out_tdata(out_tdata), .out_tvalid(out_tvalid), .out_tready(out_tready));
endmodule
