"""Analytical model (hw_models) vs measurement: throughput vs Verilator, resources vs yosys.

    .venv/bin/python benchmarks/model_validation.py [--work DIR] [--samples N] [--no-synth] [--quick]

The result JSON records the exact command that wrote it; rerunning that command in a fresh --work
folder reproduces it (no merged inputs). Work-folder caches are keyed on content: base runs through
`codesign flow`'s content stamps, variants rebuilt from their base every time (generate_rtl rewrites
only what changed), yosys results keyed on the sha256 of the generated RTL.

Networks: digits MLP, digits CNN, three-exit digits MLP (trained, exported and
calibrated once into --work). Each design variant (folding from a per-stage
cycle target, buffer depths) is generated (`codesign rtl`) and replayed under
several forced exit distributions (i.i.d. near and away from the stages'
balance point, bursty Markov traffic) with codesign.commands.sim_run.run_traffic; each
variant is synthesised once with codesign.rtl.synth_run.synth_run.

Throughput figures per configuration:
  measured       run_traffic: samples / (last output - first input), fill and drain included
  steady         inputs accepted per cycle between the 10th and 90th percentile sample (RTL)
  predicted      hw_models.estimate at the run's realised exit fractions (run_traffic's figure)
  replay         hw_models' event model replayed over the very exit sequence of the run
  error          hw_models.estimate at the exit fractions of that window vs steady (the model predicts
                 steady state; a short run's exit fractions drift, which near the balance point
                 moves throughput by several %); run error: run_traffic's predicted vs measured
Writes benchmarks/results/model_validation.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NETWORKS = {"digits_mlp": {}, "digits_cnn": {"epochs": 15}, "digits_mlp3": {"epochs": 25}}

# (network, variant name, cycle target per stage, buffer depth per boundary, traffic specs)
VARIANTS = [
    # near critical load with 64-deep buffers: 8,000 samples read up to 19 % high, steady state needs ~80,000
    ("digits_mlp", "mlp_40_1024_d64", [40, 1024], [64],
     ["iid:0.958", "iid:0.97", "iid:0.9", "markov:0.958,8", "markov:0.97,32"]),
    ("digits_mlp", "mlp_40_1024_d4", [40, 1024], [4], ["iid:0.958", "markov:0.958,8"]),
    ("digits_mlp", "mlp_64_256_d8", [64, 256], [8], ["iid:0.75", "iid:0.5", "markov:0.75,8", "markov:0.75,64"]),
    # depth 1 and 2 at and past the balance point (tests/test_model_validation.py at 2000 samples): a
    # sample's 64 beats span stage 0's whole II, so slots taken at the first beat decide (rule 10)
    ("digits_mlp", "mlp_64_256_d1", [64, 256], [1], ["iid:0.75", "iid:0.7", "markov:0.75,8"]),
    ("digits_mlp", "mlp_64_256_d2", [64, 256], [2], ["iid:0.75", "markov:0.7,4"]),
    ("digits_cnn", "cnn_576_2304_d8", [576, 2304], [8], ["iid:0.75", "iid:0.8", "markov:0.75,16"]),
    ("digits_cnn", "cnn_576_1152_d2", [576, 1152], [2], ["iid:0.5", "markov:0.5,8"]),
    ("digits_mlp3", "mlp3_a_d8", [64, 256, 512], [8, 8], ["iid:0.75,0.15", "iid:0.6,0.2", "markov:0.75,0.15,8"]),
    ("digits_mlp3", "mlp3_b_d2_16", [128, 128, 1024], [2, 16], ["iid:0.8,0.1", "markov:0.8,0.1,16"]),
    # stage 0 faster than the sequential threshold unit (21 cycles): the pipelined one (cs_threshold_pipe)
    ("digits_mlp", "mlp_8_256_d64", [8, 256], [64], ["iid:0.958", "iid:0.9", "markov:0.958,8"]),  # 80,000 (above)
    # the 3x3 conv on one channel with SIMD over kernel positions (cs_swu parallel window, KP = 9)
    ("digits_cnn", "cnn_128_1152_d4", [128, 1152], [4], ["iid:0.75", "markov:0.75,16"]),
]


# variants whose throughput configs need more samples to reach steady state (see VARIANTS)
LONG_VARIANTS = {"mlp_40_1024_d64": 80_000, "mlp_8_256_d64": 80_000}


def prepare(work: Path, name: str) -> Path:
    """Train + export + calibrate (max_softmax, 1 point accuracy budget) an example; `codesign flow`'s
    content stamps redo only what a changed config or data set needs."""
    import yaml

    from codesign.commands.flow import run_flow

    data = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
    data.setdefault("train", {}).update(NETWORKS[name])
    data["policy"] = {"kind": "max_softmax", "accuracy_delta": 1.0}
    cfg = work / "configs" / f"{name}.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    run = work / "runs" / name
    run_flow(cfg, run, "train..calibrate")
    return run


def fold_for_targets(design, targets: list[float]) -> dict[str, dict[str, int]]:
    """Per compute layer the cheapest (PE*SIMD) legal folding with cycles <= its stage's target."""
    from hw_models.exit_subsets import fold_for_ii
    from hw_models.geometry import input_layer_name

    first = input_layer_name(design.stages)  # may read several input pixels per beat
    return {layer.name: fold_for_ii(layer, targets[k], layer.name == first)
            for k, stage in enumerate(design.stages) for layer in stage.all_layers if layer.computes}


def make_variant(base: Path, work: Path, name: str, targets: list[float], depths: list[int]) -> Path:
    from codesign.design import ir
    from codesign.rtl import generate_rtl

    run = work / "variants" / name
    run.mkdir(parents=True, exist_ok=True)
    for entry in ("config.yaml", "export", "policy.json"):  # the base's artifacts, as they are now
        src, dst = base / entry, run / entry
        if dst.is_dir():
            shutil.rmtree(dst)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
    design = ir.load_design(base)
    design._root = run
    fold = fold_for_targets(design, targets)
    for k, stage in enumerate(design.stages):
        for layer in stage.all_layers:
            if layer.name in fold:
                layer.folding.pe, layer.folding.simd = fold[layer.name]["pe"], fold[layer.name]["simd"]
        if k < len(depths):
            stage.buffer_depth = depths[k]
    ir.save_design(design, run)
    generate_rtl(run)  # rewrites only the files whose text changed
    return run


def synthesise(run: Path) -> dict:
    """synth_run, once per distinct RTL: keyed on the sha256 of the generated sources and ROM files."""
    from codesign.design import ir
    from codesign.store.digests import digest
    from codesign.rtl.synth_run import synth_run, with_model

    key = digest(run / "rtl")
    cache = run / "synth_cache.json"
    if cache.is_file():
        held = json.loads(cache.read_text())
        if held.get("rtl_sha256") == key:  # the model's side is recomputed: coefficients may have been refit
            return {**with_model(held["synth"], ir.load_design(run)), "yosys_seconds": held["yosys_seconds"]}
    s = synth_run(run)
    cache.write_text(json.dumps({"rtl_sha256": key, "yosys_seconds": s["yosys_seconds"], "synth": s}, indent=1) + "\n")
    return s


def steady_and_replay(run: Path, spec: str, samples: int) -> dict:
    """Steady-state RTL acceptance rate and the model's replay of the same exit sequence."""
    from codesign import rtl
    from codesign.design import ir
    from hw_models import estimate
    from hw_models.flow_sim import BufferTiming, simulate_flow
    from codesign.commands.sim_run import predicted_throughput
    from sim.traffic import exit_sequence, parse_traffic

    design = rtl.require_design(run)
    traffic = parse_traffic(spec, design.num_exits)
    test_x = rtl.split_inputs(run)
    x = np.resize(test_x, (samples, *test_x.shape[1:]))
    forced = exit_sequence(traffic, samples, 0)
    _, res = rtl.simulate(run, x, forced=forced.tolist(), expected_exits=forced, seed=1, max_cycles=2_000_000_000)
    beats = rtl.load_manifest(run)["input"]["beats_per_sample"]
    starts_rtl = np.asarray(res.in_cycles[0], dtype=float)[::beats][:samples]
    lo, hi = samples // 10, samples - samples // 10
    fr = [float(np.mean(forced == k)) for k in range(design.num_exits)]
    est = estimate(design, [design.device], fr, burst_length=1.0)
    bt = est["buffer_timing"]
    timing = BufferTiming(order=bt["order"], decision_latency=bt["decision_latency_cycles"],
                          input_queue=tuple(bt["input_queue_samples"]),
                          decision_capacity=tuple(bt["decision_capacity_samples"]),
                          drain=tuple(bt["drain_cycles"]), write_span=tuple(bt["write_span_cycles"]))
    ii = np.array([[s["ii_cycles"] for s in est["stages"]]])
    starts = np.zeros((samples, 1))
    depths = [int(s.buffer_depth or 2) for s in design.stages[:-1]]
    simulate_flow(ii, depths, None, 1.0, timing, samples=samples, warmup=0, exits=forced[:, None], starts=starts)
    steady = (hi - lo) / (starts_rtl[hi] - starts_rtl[lo])
    replay = (hi - lo) / (starts[hi, 0] - starts[lo, 0])
    window = forced[lo:hi]
    fr_window = [float(np.mean(window == k)) for k in range(design.num_exits)]
    burst = traffic.burst_length if traffic.kind == "markov" else 1.0
    predicted = predicted_throughput(design, fr_window, burst)
    _ = ir
    return {"steady_samples_per_cycle": float(steady), "replay_samples_per_cycle": float(replay),
            "replay_error": float((replay - steady) / steady), "window_exit_fractions": fr_window,
            "predicted_window_samples_per_cycle": float(predicted)}


def summary(errors: list[float]) -> dict:
    a = np.abs(np.asarray([e for e in errors if e is not None and np.isfinite(e)], dtype=float))
    return {"n": int(a.size), "mean_abs": float(a.mean()) if a.size else None,
            "worst_abs": float(a.max()) if a.size else None}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/codesign_model_validation"))
    ap.add_argument("--samples", type=int, default=8000, help="per i.i.d. config (3x for Markov traffic)")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--quick", action="store_true", help="first traffic spec of each variant only")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "model_validation.json")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    from codesign.design import ir
    from codesign.commands.sim_run import run_traffic

    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    only = [v for v in args.only.split(",") if v]
    variants = [v for v in VARIANTS if not only or v[1] in only]
    bases = {n: prepare(args.work, n) for n in {v[0] for v in variants}}
    configs, designs = [], []
    for net, name, targets, depths, specs in variants:
        run = make_variant(bases[net], args.work, name, targets, depths)
        est = ir.load_design(run)
        ii = [s["ii_cycles"] for s in __import__("hw_models").estimate(est, [est.device], [1.0 / est.num_exits] * est.num_exits)["stages"]]
        for spec in specs[:1] if args.quick else specs:
            base_n = max(args.samples, LONG_VARIANTS.get(name, 0))
            n = base_n * (3 if spec.startswith("markov") and name not in LONG_VARIANTS else 1)  # bursts: fewer independent runs
            r = run_traffic(run, spec, samples=n, write=False)
            sr = steady_and_replay(run, spec, n)
            pred = r["predicted_throughput_samples_per_cycle"]
            row = {"network": net, "variant": name, "traffic": spec, "buffer_depths": depths, "ii_cycles": ii,
                   "samples": n, "measured_samples_per_cycle": r["throughput_samples_per_cycle"],
                   **sr, "predicted_samples_per_cycle": pred,
                   "error": (sr["predicted_window_samples_per_cycle"] - sr["steady_samples_per_cycle"])
                   / sr["steady_samples_per_cycle"],
                   "run_error": r["model_error"], "scoreboard": r["scoreboard"], "deadlock": r["deadlock"]}
            configs.append(row)
            print(f"{name:18s} {spec:20s} meas {row['measured_samples_per_cycle']:.5f} steady "
                  f"{row['steady_samples_per_cycle']:.5f} pred {sr['predicted_window_samples_per_cycle']:.5f} err {row['error']*100:+.2f}% "
                  f"run {row['run_error']*100:+.2f}% replay {row['replay_error']*100:+.2f}%", flush=True)
        if not args.no_synth:
            s = synthesise(run)
            # relative to --work: the JSON names no machine's folder
            designs.append({"network": net, "variant": name, "run": run.relative_to(args.work).as_posix(),
                            "top": s["top"],
                            "stages": s["stages"], "yosys_seconds": s["yosys_seconds"]})
            print(f"{name:18s} synth top LUT {s['top']['lut']} FF {s['top']['ff']} DSP {s['top']['dsp']} "
                  f"BRAM {s['top']['bram']} ({s['yosys_seconds']} s)", flush=True)
    res_summary = {}
    for r in ("lut", "ff", "dsp", "bram"):
        res_summary[r] = summary([st["error"][r] for d in designs for st in d["stages"]])
        res_summary[r]["abs_unit_error_worst"] = max(
            [abs(st["model"][r] - st[r]) for d in designs for st in d["stages"]], default=None)
    if len(designs) >= 2:  # the in-sample figures above use coefficients fitted to these designs
        from hw_models.refit import cross_validate, load_samples

        cv = cross_validate(load_samples([args.work / d["run"] for d in designs]))
        res_summary["leave_one_design_out"] = cv["summary"]
        print(f"leave one design out: {json.dumps(cv['summary'])}", flush=True)
    # imported here: tests load this file by path, without benchmarks/ on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from provenance import command_line

    result = {
        "command": command_line(argv, __file__),
        "throughput": {"configs": configs,
                       "summary": {"error_vs_steady": summary([c["error"] for c in configs]),
                                   "error_vs_run": summary([c["run_error"] for c in configs]),
                                   "replay_error": summary([c["replay_error"] for c in configs])}},
        "resources": {"designs": designs, "summary": res_summary},
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"throughput": result["throughput"]["summary"], "resources": res_summary}, indent=1))
    return result


if __name__ == "__main__":
    main()
