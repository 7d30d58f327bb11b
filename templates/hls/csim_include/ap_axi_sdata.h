// Stand-in for the vendor's ap_axi_sdata.h, used only by codesign's g++ C
// simulation (hls4ml ships ap_int/ap_fixed/hls_stream but not this header).
// Vitis HLS never sees this folder: its own header defines the same fields.
#ifndef CODESIGN_AP_AXI_SDATA_STANDIN_H_
#define CODESIGN_AP_AXI_SDATA_STANDIN_H_

#include "ap_int.h"

template <int D, int U, int TI, int TD>
struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<U> user;
    ap_uint<1> last;
    ap_uint<TI> id;
    ap_uint<TD> dest;
};

#endif
