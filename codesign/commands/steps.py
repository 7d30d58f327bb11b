"""Every step of a run, in flow order: what it reads, what it writes, and what it does.

This table is the one place the flow, the CLI commands and the sweep worker learn a step from;
codesign.store.runfolder executes a step (lock, overlay, content stamps, atomic commit). Actions import
their back end only when they run, so the first steps do not pay for hls4ml or Verilator.

Options enter a step's stamp as given (None values dropped), so a command run with its defaults and
the flow's step are the same step; keys starting with "_" are passed to the action but not recorded
(the config object the train step trains is recorded by its sections instead).
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable

from codesign.frontend.config import TRAINING_SECTIONS
from stage_ir.errors import UserError
from codesign.store.runfolder import Outcome, Step, execute

# config sections a step's result depends on; "data" also brings in the data set's files
DATA = ("seed", "data")


def config_values(*sections: str) -> Callable[[Path], dict[str, Any]]:
    """The step's config inputs: the named sections of RUN/config.yaml (and the data set's files)."""
    def values(run: Path) -> dict[str, Any]:
        from codesign.frontend.config import load_config
        from codesign.frontend.data import source_files
        from codesign.store.digests import file_digest

        if not (run / "config.yaml").is_file():
            raise UserError(f"{run / 'config.yaml'} not found; run `codesign train` (or `codesign flow`) first")
        cfg = load_config(run / "config.yaml")
        dump = cfg.model_dump(mode="json")
        out: dict[str, Any] = {f"config.{s}": dump[s] for s in sections}
        if "data" in sections:
            out["data files"] = {name: file_digest(p) for name, p in source_files(cfg.data).items()}
        return out
    return values


def files(*names: str) -> Callable[[Path], list[str]]:
    return lambda run: list(names)


def device_option(name: str) -> dict[str, Any]:
    """A part as a step option: its name and its totals (a --device-file that redefines it reruns the step)."""
    from hw_models import get_device

    if not str(name).strip():
        raise UserError("--device is empty; give a part name such as xc7z020 (see hw_models/devices.yaml)")
    dev = get_device(name)
    return {**dataclasses.asdict(dev), "name": dev.name}


# --------------------------------------------------------------------------- actions


def _config(run: Path, p: dict) -> str:
    (run / "config.yaml").write_text(p["_text"])
    return "config.yaml"


def _train(run: Path, p: dict) -> dict:
    from codesign.frontend.train import train

    return train(p["_config"], run, quiet=p.get("_quiet", True))


def _export(run: Path, p: dict) -> dict:
    from codesign.frontend.export import export

    return export(run)


def _calibrate(run: Path, p: dict) -> dict:
    from codesign.frontend.calibrate_run import calibrate_run
    from codesign.frontend.config import load_config

    kind = p.get("policy") or load_config(run / "config.yaml").policy.kind
    return calibrate_run(run, kind, p.get("accuracy_delta"), p.get("exit_rates"), p.get("budget"), p.get("thresholds"))


def _dse(run: Path, p: dict) -> dict:
    from codesign.commands.estimate_run import dse_run

    return dse_run(run, p["device"]["name"], p.get("budget", 0.7), p.get("objective", "throughput"),
                   p.get("min_accuracy"), p.get("throughput_target"), p.get("burst_length", 1.0))


def _evaluate(run: Path, p: dict) -> dict:
    from codesign.frontend.evaluate import evaluate_run

    return evaluate_run(run)


def _estimate(run: Path, p: dict) -> dict:
    from codesign.commands.estimate_run import estimate_run

    return estimate_run(run, [d["name"] for d in p["devices"]], p.get("backend", "rtl"), p.get("burst_length", 1.0))


def _hls(run: Path, p: dict) -> dict:
    from codesign.hls import hls_command

    return hls_command(run, p.get("csim", False), p.get("part"), p.get("clock_ns"), p.get("io", "io_parallel"))


def _rtl(run: Path, p: dict) -> dict:
    from codesign.rtl import rtl_command

    return rtl_command(run, p.get("verify", False), p.get("samples"))


def _sim(run: Path, p: dict) -> dict:
    from codesign.commands.sim_run import flow_measurement

    return flow_measurement(run)


def _synth(run: Path, p: dict) -> dict:
    from codesign.rtl.synth_run import synth_run

    return synth_run(run, p.get("family", "xc7"))


def _report(run: Path, p: dict) -> list[Path]:
    from codesign.commands.report import write_report

    return write_report(run)


def _no_yosys() -> str | None:
    return None if shutil.which("yosys") else "yosys not found; install it with `apt-get install yosys`"


def _calibrate_reads(run: Path) -> list[str]:
    # the exported IR when there is one, else the IR is built from the trained model
    return ["export"] if (run / "export").is_dir() else ["model.pt"]


REPORT_READS = ("train.json", "eval.json", "eval.png", "design.json", "export/verify.json", "dse.json", "dse.png",
                "estimate.json", "estimate.png", "hls/csim.json", "rtl/verify.json", "sim/data.json",
                "sim/sweep.json", "sim/sweep.png", "synth.json")


def _accs(r: dict) -> str:
    return "test accuracy " + ", ".join(f"{e['test_accuracy']:.4f}" for e in r["exits"])


CONFIG = Step("config", files(), lambda run: {}, ("config.yaml",), _config,
              describe=lambda r: "config.yaml written")

STEPS: list[Step] = [
    Step("train", files(), config_values(*TRAINING_SECTIONS), ("model.pt", "train.json", "config.yaml"), _train,
         shared=("config.yaml",), describe=_accs),
    Step("export", files("model.pt"), config_values(*DATA, "quant", "model", "hardware", "name"),
         ("export", "design.json"), _export, shared=("design.json",),
         describe=lambda r: f"{r['samples']} test samples, {r['mismatches']} mismatches"),
    Step("calibrate", _calibrate_reads, config_values(*DATA, "policy"), ("policy.json", "design.json"), _calibrate,
         shared=("design.json",), describe=lambda r: f"{r['kind']} thresholds {r['thresholds']}"),
    Step("dse", files("export", "policy.json"), config_values(*DATA), ("dse.json", "dse.png", "design.json"), _dse,
         describe=lambda r: f"predicted gain {r['predicted_gain']:.2f}x on {r['device']}"),
    Step("evaluate", files("design.json", "policy.json"), config_values(*DATA), ("eval.json", "eval.png"), _evaluate,
         describe=lambda r: f"accuracy {r['overall_accuracy']:.4f}, exit fractions "
                            f"{[round(e['exit_fraction'], 3) for e in r['exits']]}"),
    Step("estimate", files("design.json", "eval.json", "policy.json"), lambda run: {},
         ("estimate.json", "estimate.md", "estimate.png"), _estimate,
         describe=lambda r: f"{r['throughput_samples_per_cycle']:.4g} samples/cycle predicted"),
    Step("hls", files("design.json", "export"), config_values(*DATA), ("hls",), _hls,
         describe=lambda r: (f"C simulation {r['csim']['samples']} samples, {r['csim']['mismatches']} mismatches"
                             if "csim" in r else f"{len(r['stages'])} stage projects")),
    Step("rtl", files("design.json"), config_values(*DATA), ("rtl",), _rtl,
         describe=lambda r: (f"Verilator {r['verify']['samples']} samples, {r['verify']['mismatches']} mismatches"
                             if "verify" in r else f"{len(r['sources'])} sources")),
    Step("sim", files("rtl", "design.json", "dse.json"), config_values(*DATA),
         ("sim/data.json", "sim/sweep.json", "sim/sweep.png", "baseline"), _sim, describe=lambda r: r["summary"]),
    Step("synth", files("rtl", "design.json"), lambda run: {}, ("synth.json",), _synth, missing_tool=_no_yosys,
         describe=lambda r: f"{r['top']['lut']} LUT, {r['top']['ff']} FF, {r['top']['dsp']} DSP, "
                            f"{r['top']['bram']} BRAM36 (yosys)"),
    Step("report", files(*REPORT_READS), lambda run: {}, ("report.html", "report.md"), _report, stale_ok=True,
         describe=lambda r: f"-> {r[0].name}"),
]

BY_NAME = {s.name: s for s in STEPS}


def step(name: str) -> Step:
    return BY_NAME[name]


# --------------------------------------------------------------------------- the flow's options per step


def flow_params(name: str, run: Path, device: str | None) -> dict[str, Any]:
    """The options the flow runs a step with: each command's defaults, the flow's device."""
    def part() -> dict[str, Any]:
        from codesign.frontend.config import load_config

        return device_option(device or load_config(Path(run) / "config.yaml").hardware.device)

    return {
        "dse": lambda: dse_params(part()),
        "estimate": lambda: {"devices": [part()], "backend": "rtl", "burst_length": 1.0},
        "hls": lambda: {"csim": True, "io": "io_parallel"},
        "rtl": lambda: {"verify": True},
        "synth": lambda: {"family": "xc7"},
    }.get(name, dict)()


def dse_params(device: dict[str, Any], budget: float = 0.7, objective: str = "throughput",
               min_accuracy: float | None = None, throughput_target: float | None = None,
               burst_length: float = 1.0) -> dict[str, Any]:
    return {"device": device, "budget": budget, "objective": objective, "min_accuracy": min_accuracy,
            "throughput_target": throughput_target, "burst_length": burst_length}


def sim_step(run: Path, traffic: str, sweep: str | None, fst: bool) -> tuple[Step, dict[str, Any]]:
    """`codesign sim`'s one-off step: one traffic spec (sim/<name>.json, .fst) or a sweep (sim/sweep.*)."""
    from codesign.design.ir import load_design
    from sim.traffic import parse_traffic

    if sweep:
        def sweep_action(r: Path, p: dict) -> dict:
            from codesign.commands.sim_run import sweep as run_sweep

            return run_sweep(r, p["sweep"], p["samples"], p["seed"])

        return Step("sim-sweep", files("rtl", "design.json"), lambda r: {}, ("sim/sweep.json", "sim/sweep.png"),
                    sweep_action), {"sweep": sweep}
    name = parse_traffic(traffic, load_design(run).num_exits).name

    def action(r: Path, p: dict) -> dict:
        from codesign.commands.sim_run import run_traffic

        return run_traffic(r, p["traffic"], p["samples"], p["backpressure"], p["gaps"], p["seed"], fst=p["fst"])

    outs = (f"sim/{name}.json", *([f"sim/{name}.fst"] if fst else []))
    return Step(f"sim-{name}", files("rtl", "design.json"), lambda r: {}, outs, action), {"traffic": traffic, "fst": fst}


def run_step(name: str, run: Path, params: dict[str, Any] | None = None, **kw: Any) -> Outcome:
    """Execute one named step on a run (the CLI's commands: always run, `force`)."""
    return execute(Path(run), step(name), params, force=kw.pop("force", True), registry=BY_NAME, **kw)
