// Generic stream testbench: drives every input stream of the top from
// <dir>/in<i>.hex (one beat per line, hex), holds static ports from
// <dir>/static.txt ("name hex" lines; <dir>/static_at.txt: "cycle name hex" lines
// change them during the run, in cycle order), and records every output handshake to
// <dir>/out<j>.txt ("cycle hex").  Input valid is raised with probability
// p_valid on each cycle a beat is waiting and held until accepted (AXI rule);
// output ready is drawn with probability p_ready every cycle.  Input accept
// cycles go to <dir>/acc<i>.txt, a summary to <dir>/summary.txt.  Probes
// (observed output ports, tb_ports.h) are sampled every cycle where the
// handshakes are evaluated: "level" probes keep their maximum and sum, "flags"
// probes a count of cycles per set bit; both go to <dir>/probes.txt
// ("name level MAX SUM" / "name flags C0 C1 ..."). Counting stays in C++ so a
// probe costs a port read per cycle.
//
// usage: V<top> DIR SEED P_VALID P_READY MAX_CYCLES TAIL EXPECTED0,EXPECTED1,... [WAVE]
//   P_VALID, P_READY: one probability, or one per stream (comma separated;
//   the last one repeats).  WAVE: waveform file, VCD from a --trace build,
//   FST from a --trace-fst build (needs the lz4 and zlib headers).
//   EXPECTED_j < 0: output j's count is unknown; the run stops TAIL cycles
//   after the last activity.  Otherwise it stops TAIL cycles after every
//   input is consumed and every output has reached its count (the tail
//   catches extra, duplicated beats).
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>
#include "tb_ports.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
typedef VerilatedFstC TbWave;
#elif VM_TRACE
#include "verilated_vcd_c.h"
typedef VerilatedVcdC TbWave;
#endif

typedef std::vector<uint32_t> Words;

static Words parse_hex(const std::string& h) {
    Words w;
    for (int end = (int)h.size(); end > 0; end -= 8) {
        const int begin = end >= 8 ? end - 8 : 0;
        w.push_back((uint32_t)std::stoul(h.substr(begin, end - begin), nullptr, 16));
    }
    return w;
}

static std::string to_hex(const Words& w, int bits) {
    std::string s;
    char buf[16];
    const int nwords = (bits + 31) / 32;
    for (int i = nwords - 1; i >= 0; --i) {
        std::snprintf(buf, sizeof buf, i == nwords - 1 ? "%x" : "%08x", i < (int)w.size() ? w[i] : 0u);
        s += buf;
    }
    return s;
}

static std::vector<Words> read_beats(const std::string& path) {
    std::vector<Words> beats;
    std::ifstream f(path);
    std::string line;
    while (std::getline(f, line))
        if (!line.empty()) beats.push_back(parse_hex(line));
    return beats;
}

static std::vector<double> parse_probs(const char* text, int n) {
    std::vector<double> p;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, ',')) if (!item.empty()) p.push_back(std::atof(item.c_str()));
    if (p.empty()) p.push_back(1.0);
    while ((int)p.size() < n) p.push_back(p.back());
    return p;
}

int main(int argc, char** argv) {
    if (argc < 8) {
        std::fprintf(stderr, "usage: %s DIR SEED P_VALID P_READY MAX_CYCLES TAIL EXPECTED,...\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    std::mt19937_64 rng(std::strtoull(argv[2], nullptr, 10));
    const std::vector<double> p_valid = parse_probs(argv[3], TB_N_IN), p_ready = parse_probs(argv[4], TB_N_OUT);
    const long long max_cycles = std::atoll(argv[5]), tail = std::atoll(argv[6]);
    std::vector<long long> expected;
    {
        std::stringstream ss(argv[7]);
        std::string item;
        while (std::getline(ss, item, ',')) if (!item.empty()) expected.push_back(std::atoll(item.c_str()));
    }
    expected.resize(TB_N_OUT, -1);
    std::uniform_real_distribution<double> uni(0.0, 1.0);

    const std::unique_ptr<VerilatedContext> ctx{new VerilatedContext};
    ctx->commandArgs(1, argv);  // no plusargs: keep $readmemh paths parameters
    const std::unique_ptr<TbTop> top{new TbTop{ctx.get()}};
#if VM_TRACE
    std::unique_ptr<TbWave> wave;
    if (argc > 8) {
        ctx->traceEverOn(true);
        wave.reset(new TbWave);
        top->trace(wave.get(), 99);
        wave->open(argv[8]);
    }
#define TB_DUMP(t) do { if (wave) wave->dump(t); } while (0)
#else
#define TB_DUMP(t) do { } while (0)
#endif

    std::vector<std::vector<Words>> in(TB_N_IN);
    std::vector<size_t> next(TB_N_IN, 0);
    std::vector<int> valid(TB_N_IN, 0);
    std::vector<std::ofstream> acc(TB_N_IN);
    for (int i = 0; i < TB_N_IN; ++i) {
        in[i] = read_beats(dir + "/in" + std::to_string(i) + ".hex");
        acc[i].open(dir + "/acc" + std::to_string(i) + ".txt");
    }
    {
        std::ifstream f(dir + "/static.txt");
        std::string name, hex;
        while (f >> name >> hex)
            if (!tb_static(top.get(), name, parse_hex(hex))) {
                std::fprintf(stderr, "unknown static port %s\n", name.c_str());
                return 2;
            }
    }
    // run-time register writes: "<cycle> <name> <hex>" lines, applied at the start of that cycle
    std::vector<std::pair<long long, std::pair<std::string, Words>>> changes;
    {
        std::ifstream f(dir + "/static_at.txt");
        long long at;
        std::string name, hex;
        while (f >> at >> name >> hex) changes.push_back({at, {name, parse_hex(hex)}});
    }
    size_t next_change = 0;
    std::vector<std::ofstream> out(TB_N_OUT);
    std::vector<long long> count(TB_N_OUT, 0);
    for (int j = 0; j < TB_N_OUT; ++j) out[j].open(dir + "/out" + std::to_string(j) + ".txt");

    // synchronous reset, inputs idle
    for (int i = 0; i < TB_N_IN; ++i) tb_in_valid(top.get(), i, 0);
    for (int j = 0; j < TB_N_OUT; ++j) tb_out_ready(top.get(), j, 0);
    tb_reset(top.get(), 1);
    for (int k = 0; k < 4; ++k) {
        tb_clock(top.get(), 0); top->eval();
        tb_clock(top.get(), 1); top->eval();
    }
    tb_reset(top.get(), 0);
    tb_clock(top.get(), 0); top->eval();

    long long cycle = 0, last_activity = 0, done_at = -1;
    // no-progress watchdog: no handshake on any stream for this many cycles = deadlock (0: off)
    long long watchdog = 0;
    { std::ifstream wf(dir + "/watchdog.txt"); if (wf) wf >> watchdog; }
    bool timeout = false;
    std::vector<int> ready(TB_N_OUT, 0);
    // probes: level -> max, sum; flags -> cycles per bit (64 slots per probe)
    std::vector<uint64_t> probe_max(TB_N_PROBE, 0), probe_sum(TB_N_PROBE, 0), probe_bits(64 * TB_N_PROBE, 0);
    Words w;
    for (;; ++cycle) {
        if (cycle >= max_cycles || (watchdog > 0 && cycle - last_activity > watchdog)) { timeout = true; break; }
        for (; next_change < changes.size() && changes[next_change].first <= cycle; ++next_change)
            if (!tb_static(top.get(), changes[next_change].second.first, changes[next_change].second.second)) {
                std::fprintf(stderr, "unknown static port %s\n", changes[next_change].second.first.c_str());
                return 2;
            }
        bool inputs_done = true, outputs_done = true, any_unknown = false;
        for (int i = 0; i < TB_N_IN; ++i) {
            if (!valid[i] && next[i] < in[i].size() && uni(rng) < p_valid[i]) {
                valid[i] = 1;
                tb_in_data(top.get(), i, in[i][next[i]]);
            }
            tb_in_valid(top.get(), i, valid[i]);
            inputs_done = inputs_done && next[i] >= in[i].size();
        }
        for (int j = 0; j < TB_N_OUT; ++j) {
            ready[j] = done_at >= 0 || uni(rng) < p_ready[j];  // drain the tail at full speed
            tb_out_ready(top.get(), j, ready[j]);
            if (expected[j] < 0) any_unknown = true;
            else outputs_done = outputs_done && count[j] >= expected[j];
        }
        if (done_at < 0 && inputs_done && (any_unknown ? cycle - last_activity > tail : outputs_done))
            done_at = cycle;
        if (done_at >= 0 && (any_unknown || cycle - done_at >= tail)) break;
        top->eval();  // settle combinational paths with the clock low
        for (int p = 0; p < TB_N_PROBE; ++p) {
            const uint64_t v = tb_probe(top.get(), p);
            if (TB_PROBE_KIND[p]) {
                for (uint64_t b = v; b; b &= b - 1) ++probe_bits[64 * p + __builtin_ctzll(b)];
            } else {
                probe_sum[p] += v;
                if (v > probe_max[p]) probe_max[p] = v;
            }
        }
        for (int j = 0; j < TB_N_OUT; ++j) {
            if (!(ready[j] && tb_out_valid(top.get(), j))) continue;
            tb_out_data(top.get(), j, w);
            out[j] << cycle << ' ' << to_hex(w, TB_OUT_BITS[j]) << '\n';
            ++count[j];
            last_activity = cycle;
        }
        for (int i = 0; i < TB_N_IN; ++i) {
            if (!(valid[i] && tb_in_ready(top.get(), i))) continue;
            acc[i] << cycle << '\n';
            ++next[i];
            valid[i] = 0;
            last_activity = cycle;
        }
        TB_DUMP(2 * (uint64_t)cycle);
        tb_clock(top.get(), 1);
        top->eval();
        TB_DUMP(2 * (uint64_t)cycle + 1);
        tb_clock(top.get(), 0);
        top->eval();
    }
    std::ofstream summary(dir + "/summary.txt");
    summary << "cycles " << cycle << "\ntimeout " << (timeout ? 1 : 0) << "\n";
    for (int i = 0; i < TB_N_IN; ++i) summary << "consumed" << i << ' ' << next[i] << '\n';
    for (int j = 0; j < TB_N_OUT; ++j) summary << "produced" << j << ' ' << count[j] << '\n';
    std::ofstream probes(dir + "/probes.txt");
    for (int p = 0; p < TB_N_PROBE; ++p) {
        probes << TB_PROBE_NAME[p];
        if (TB_PROBE_KIND[p]) {
            probes << " flags";
            for (int b = 0; b < TB_PROBE_BITS[p]; ++b) probes << ' ' << probe_bits[64 * p + b];
        } else {
            probes << " level " << probe_max[p] << ' ' << probe_sum[p];
        }
        probes << '\n';
    }
    top->final();
#if VM_TRACE
    if (wave) wave->close();
#endif
    return 0;
}
