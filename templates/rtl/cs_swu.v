// Sliding-window unit (line buffer) for conv2d / maxpool, FINN-style.
// Input: pixels in HWC order, IL channels per beat (CF = IC/IL beats per
// pixel), IH x IW pixels per sample.  Output: for every output pixel (oy, ox)
// in raster order, its window in (ky, kx, channel) order, SIMD elements per
// beat; positions in the zero padding give zeros.  One output beat per cycle
// when the consumer keeps up.  Two modes, chosen by SIMD:
// - SIMD divides IC (KP = 1): KH*KW*CF beats per window in (ky, kx, channel
//   fold) order; IL = SIMD.
// - SIMD = KP*IC with KP dividing KH*KW ("parallel window"): a beat holds KP
//   kernel positions with all IC channels each, lane l of beat s being window
//   position p = s*KP + l in (ky, kx) flatten order, so the beat is columns
//   [s*SIMD, (s+1)*SIMD) of the MVU's (ky, kx, c) matrix; KH*KW/KP beats per
//   window; IL = IC (one pixel per beat, unless IPB says more).  Each lane
//   has its own padding check and read port on the line buffer: a layer with
//   few channels (a 1-channel image) is no longer bound to KH*KW cycles per
//   output pixel.
// IPB > 1 (only with CF = 1, IPB dividing IW): a beat carries IPB consecutive
// pixels of a row (pixel i at bits [i*IL*IB +: IL*IB]).  Without it a layer
// that makes an output pixel per cycle would still need IH*IW cycles to read
// its image (a valid 5x5 conv on 28x28: 784 cycles to read, 576 to compute).
// A buffer word is a whole beat, so the writer keeps one write port and one
// word per beat; each read lane fetches the word holding its pixel and picks
// the pixel after the synchronous read.
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
    parameter integer BUF_ROWS = 2 * KH + SH - 1,
    parameter integer IPB = 1,             // input pixels per beat (CF = 1 only; divides IW)
    // derived: do not override (kernel positions per beat, input lanes)
    parameter integer KP = (SIMD > IC) ? SIMD / IC : 1,
    parameter integer IL = SIMD / KP
) (
    input wire clk,
    input wire rst,
    input wire [IPB*IL*IB-1:0] in_tdata,
    input wire in_tvalid,
    output wire in_tready,
    output wire [SIMD*IB-1:0] out_tdata,
    output wire out_tvalid,
    input wire out_tready
);
    localparam integer CF = IC / IL;
    localparam integer NS = KH * KW / KP;  // beats per window and channel fold
    localparam integer SW_BITS = $clog2(NS + 1);
    localparam integer OH = (IH + 2 * PH - KH) / SH + 1;
    localparam integer OW = (IW + 2 * PW - KW) / SW + 1;
    localparam integer WPR = IW / IPB;     // buffer words per input row
    localparam integer DEPTH = BUF_ROWS * WPR * CF;
    localparam integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    // signed coordinates: enough for -P .. (O-1)*S - P + K and IH/IW
    localparam integer CRD = $clog2(IH + IW + 2 * (PH + PW + KH + KW + SH + SW) + 2) + 2;
    localparam integer RW = $clog2(BUF_ROWS + 1) + 1;  // row counts (0..BUF_ROWS), one spare bit
    localparam integer PXW = IL * IB;      // IL channels of a pixel
    localparam integer DW = IPB * PXW;     // one buffer word = one input beat
    localparam integer SELW = (IPB > 1) ? $clog2(IPB) : 1;
    localparam integer XB = $clog2(IW + 1);  // an in-image column
    localparam integer OW_BITS = SIMD * IB;
    localparam integer DKX = KP % KW;       // a lane's window position advances by KP per beat
    localparam integer DKY = KP / KW;

    // Coordinate arithmetic below mixes 32-bit integer parameters with
    // counters sized CRD/RW/AW bits; every value fits its declared width (see
    // the widths above), so the implicit extensions/truncations are intended.
    /* verilator lint_off WIDTHEXPAND */
    /* verilator lint_off WIDTHTRUNC */

    // IPB at a column's width: divide and modulo by IPB in the 32 bits of an integer parameter cost
    // yosys 0.23 ~4k LUTs per read lane (IPB = 3, IW = 12, 9 lanes: 38.8k LUTs; 0.9k at XB bits)
    localparam [XB-1:0] IPB_X = IPB;

    // ---- writer: rows land in consecutive slots ------------------------------
    reg [AW-1:0] waddr;
    reg [CRD-1:0] wx;
    reg [CRD-1:0] wcf;
    reg [RW-1:0] filled;  // complete rows not yet released
    wire mid_row = (wx != 0) || (wcf != 0);
    assign in_tready = mid_row || (filled < BUF_ROWS);
    wire in_fire = in_tvalid && in_tready;
    wire row_written = in_fire && (wx == IW - IPB) && (wcf == CF - 1);

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
                wx <= (wx == IW - IPB) ? {CRD{1'b0}} : wx + IPB;
            end else begin
                wcf <= wcf + 1'b1;
            end
        end
    end

    // ---- reader: walks output pixels and their windows ------------------------
    reg signed [CRD-1:0] iy0, ix0;       // window origin: oy*SH-PH, ox*SW-PW
    reg [CRD-1:0] oy, ox, rcf;
    reg [SW_BITS-1:0] st;                // beat of the window (KP positions each)
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

    wire last_cf = rcf == CF - 1;
    wire last_st = st == NS - 1;
    wire last_ox = ox == OW - 1;
    wire last_oy = oy == OH - 1;
    wire step = issue && last_cf;        // the lanes move to their next window positions
    wire row_end = step && last_st && last_ox;

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
            oy <= 0; ox <= 0; st <= 0; rcf <= 0;
            rbase <= 0;
            base_slot <= 0;
            waiting <= 1'b0;
            wait_target <= 0;
        end else begin
            if (issue) begin
                rcf <= last_cf ? 0 : rcf + 1'b1;
                if (last_cf) begin
                    st <= last_st ? 0 : st + 1'b1;
                    if (last_st) begin
                        ox <= last_ox ? 0 : ox + 1'b1;
                        ix0 <= last_ox ? -PW : ix0 + SW;
                        if (last_ox) begin
                            oy <= last_oy ? 0 : oy + 1'b1;
                            iy0 <= last_oy ? -PH : iy0 + SH;
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

    // ---- KP read lanes: window position, padding check, synchronous read --------
    reg rd_valid;
    wire [OW_BITS-1:0] rd_word;  // the lanes' reads, padding zeroed
    genvar l;
    generate
        for (l = 0; l < KP; l = l + 1) begin : lane
            localparam integer KY0 = l / KW;  // position l of the window's first beat
            localparam integer KX0 = l % KW;
            reg [CRD-1:0] ky, kx;
            wire [CRD-1:0] kx_sum = kx + DKX;
            wire kx_wrap = kx_sum >= KW;
            always @(posedge clk) begin
                if (rst || (step && last_st)) begin
                    ky <= KY0;
                    kx <= KX0;
                end else if (step) begin
                    ky <= ky + DKY + kx_wrap;
                    kx <= kx_wrap ? kx_sum - KW : kx_sum;
                end
            end
            wire signed [CRD-1:0] iy = iy0 + $signed(ky);
            wire signed [CRD-1:0] ix = ix0 + $signed(kx);
            wire in_image = (iy >= 0) && (iy < IH) && (ix >= 0) && (ix < IW);
            wire [RW-1:0] rel = iy - rbase;
            wire [RW:0] slot_sum = base_slot + rel;
            wire [RW:0] slot = (slot_sum >= BUF_ROWS) ? slot_sum - BUF_ROWS : slot_sum;
            wire [XB-1:0] col = ix[XB-1:0];  // wrong only in the padding, whose reads are zeroed
            wire [XB-1:0] col_word = col / IPB_X;  // its own wire: inside raddr it would be 32 bits wide
            wire [AW-1:0] raddr = (slot * WPR + col_word) * CF + rcf;
            reg [DW-1:0] rd_q;
            reg [SELW-1:0] rd_sel;  // the lane's pixel within the word, known only at issue
            reg rd_zero;
            always @(posedge clk) if (issue) begin
                rd_q <= mem[raddr];
                rd_sel <= col % IPB_X;
            end
            always @(posedge clk) begin
                if (rst) rd_zero <= 1'b0;
                else rd_zero <= !in_image;
            end
            assign rd_word[l*PXW +: PXW] = rd_zero ? {PXW{1'b0}} : rd_q[rd_sel*PXW +: PXW];
        end
    endgenerate

    // ---- 2-beat output queue ---------------------------------------------------
    always @(posedge clk) begin
        if (rst) begin
            rd_valid <= 1'b0;
            pending <= 2'd0;
        end else begin
            rd_valid <= issue;
            pending <= pending + issue - pop;
        end
    end

    /* verilator lint_on WIDTHEXPAND */
    /* verilator lint_on WIDTHTRUNC */

    // never low when a read arrives: `pending` reserved the slot at issue
    /* verilator lint_off UNUSEDSIGNAL */
    wire queue_ready;
    /* verilator lint_on UNUSEDSIGNAL */
    cs_fifo #(.WIDTH(OW_BITS), .DEPTH(2)) out_queue (
        .clk(clk), .rst(rst),
        .in_tdata(rd_word), .in_tvalid(rd_valid), .in_tready(queue_ready),
        .out_tdata(out_tdata), .out_tvalid(out_tvalid), .out_tready(out_tready));
endmodule
