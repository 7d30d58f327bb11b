// Set/get a Verilator port of any width from/to little-endian 32-bit words.
// Verilator maps ports to CData/SData/IData (<= 32 bits), QData (<= 64) and
// VlWide<N> (wider); overloads keep the testbench free of per-width code.
#pragma once
#include <cstdint>
#include <vector>
#include "verilated.h"

static inline uint32_t tb_word(const std::vector<uint32_t>& w, size_t i) { return i < w.size() ? w[i] : 0u; }

static inline void tb_set(CData& s, const std::vector<uint32_t>& w) { s = (CData)tb_word(w, 0); }
static inline void tb_set(SData& s, const std::vector<uint32_t>& w) { s = (SData)tb_word(w, 0); }
static inline void tb_set(IData& s, const std::vector<uint32_t>& w) { s = tb_word(w, 0); }
static inline void tb_set(QData& s, const std::vector<uint32_t>& w) {
    s = (QData)tb_word(w, 0) | ((QData)tb_word(w, 1) << 32);
}
template <std::size_t N>
static inline void tb_set(VlWide<N>& s, const std::vector<uint32_t>& w) {
    for (std::size_t i = 0; i < N; ++i) s[i] = tb_word(w, i);
}

// Outputs: Verilator keeps bits above the port width at zero.
static inline void tb_get(const CData& s, std::vector<uint32_t>& w, int) { w.assign(1, s); }
static inline void tb_get(const SData& s, std::vector<uint32_t>& w, int) { w.assign(1, s); }
static inline void tb_get(const IData& s, std::vector<uint32_t>& w, int) { w.assign(1, s); }
static inline void tb_get(const QData& s, std::vector<uint32_t>& w, int) {
    w.assign({(uint32_t)s, (uint32_t)(s >> 32)});
}
template <std::size_t N>
static inline void tb_get(const VlWide<N>& s, std::vector<uint32_t>& w, int) {
    w.resize(N);
    for (std::size_t i = 0; i < N; ++i) w[i] = s[i];
}

// One bit of a packed valid/ready vector (stream arrays of up to 64 lanes).
template <typename T>
static inline void tb_set_bit(T& s, int bit, int v) {
    const T m = (T)((T)1 << bit);
    s = v ? (T)(s | m) : (T)(s & (T)~m);
}

// A bit field [lsb, lsb+bits) of a word vector (streams packed into one port).
static inline void tb_insert(std::vector<uint32_t>& dst, const std::vector<uint32_t>& src, int lsb, int bits) {
    for (int b = 0; b < bits; ++b) {
        const int d = lsb + b;
        if ((int)dst.size() <= d / 32) dst.resize(d / 32 + 1, 0);
        const uint32_t bit = (tb_word(src, b / 32) >> (b % 32)) & 1u;
        dst[d / 32] = (dst[d / 32] & ~(1u << (d % 32))) | (bit << (d % 32));
    }
}
static inline void tb_extract(std::vector<uint32_t>& dst, const std::vector<uint32_t>& src, int lsb, int bits) {
    dst.assign((bits + 31) / 32, 0);
    for (int b = 0; b < bits; ++b) {
        const int s = lsb + b;
        dst[b / 32] |= ((tb_word(src, s / 32) >> (s % 32)) & 1u) << (b % 32);
    }
}
