"""`codesign sweep`: many design points, each one flow run, as Ray tasks.

Ray core tasks do the scheduling (resources per task, retry of a task whose
worker died, the same code on one machine or a cluster), so this module only
expands the sweep file into points, skips the points already complete,
submits the rest and gathers one row per point. A point is keyed by the hash
of its resolved config and steps, so a rerun (or a sweep that overlaps an
earlier one in the same artifact folder) does no work twice.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codesign.frontend.config import Config, _one_line, load_config
from stage_ir.errors import UserError
from codesign.sweeps.ray_cluster import connect, import_ray
from codesign.sweeps.sweep_worker import done_row, read_json, write_atomic
from codesign.frontend.yamlio import read_yaml

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RangeSpec(_Strict):
    """start, start+step, ... up to and including stop."""

    start: float
    stop: float
    step: float = Field(1, gt=0)

    def values(self) -> list[int | float]:
        n = int((self.stop - self.start) / self.step + 1e-9) + 1 if self.stop >= self.start else 0
        vals = [self.start + i * self.step for i in range(n)]
        if all(float(v).is_integer() for v in (self.start, self.step)):
            return [int(v) for v in vals]
        return [round(v, 12) for v in vals]  # 0.1 + 0.2 should read 0.3 in the results


class Resources(_Strict):
    num_cpus: float = Field(1, gt=0, description="cores one point occupies (also its torch threads)")
    memory_mb: int | None = Field(None, ge=1, description="memory one point reserves (Ray's `memory` resource)")


class SweepFile(_Strict):
    base: str = Field(description="base config (path, relative to the sweep file)")
    axes: dict[str, list[Any] | RangeSpec] = Field(min_length=1, description="dotted config key -> values")
    sample: Literal["grid", "random"] = "grid"
    samples: int | None = Field(None, ge=1, description="random: number of points drawn from the grid")
    seed: int = 0
    steps: str = "train..estimate"
    retries: int = Field(1, ge=0, le=10, description="retries of a point whose step fails or whose worker dies")
    resources: Resources = Field(default_factory=Resources)
    shared_dir: str | None = Field(None, description="artifact folder every node can read (cluster runs)")


@dataclass(frozen=True)
class Point:
    index: int
    key: str
    axes: dict[str, Any]
    config: dict
    steps: tuple[str, ...]

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.axes.items())

    def payload(self) -> dict:
        return {"index": self.index, "key": self.key, "axes": self.axes, "config": self.config,
                "steps": list(self.steps)}


@dataclass
class Sweep:
    spec: SweepFile
    source: Path
    points: list[Point]
    artifacts: Path


# --- expanding the sweep file into points -----------------------------------------------------

_PART = re.compile(r"([A-Za-z_]\w*)((?:\[\d+\])*)$")


def _key_path(key: str) -> list[str | int]:
    """'model.exits[0].after' -> ['model', 'exits', 0, 'after']."""
    path: list[str | int] = []
    for part in key.split("."):
        m = _PART.match(part)
        if not m:
            raise UserError(f"axis {key!r}: not a dotted config key (e.g. quant.weight_bits, model.exits[0].after)")
        path.append(m.group(1))
        path += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return path


def _dotted(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _set(tree: Any, path: list[str | int], value: Any, key: str) -> None:
    node = tree
    for i, part in enumerate(path):
        ok = (isinstance(node, dict) and isinstance(part, str) and part in node) or \
             (isinstance(node, list) and isinstance(part, int) and part < len(node))
        if not ok:
            raise UserError(f"axis {key!r} is not a key of the base config (no {_dotted(path[:i + 1])}); "
                            "axes are dotted config keys such as train.epochs, quant.weight_bits, model.exits[0].after")
        if i == len(path) - 1:
            node[part] = value
        else:
            node = node[part]


def _axis_values(key: str, axis: list[Any] | RangeSpec) -> list[Any]:
    values = axis.values() if isinstance(axis, RangeSpec) else list(axis)
    if not values:
        raise UserError(f"axis {key!r} is empty; give at least one value (a list, or a range with start <= stop)")
    return values


def _combos(values: list[list[Any]], spec: SweepFile) -> list[tuple[int, ...]]:
    """Index tuples of the grid, or `samples` of them drawn with `seed` (decoded, never the whole grid)."""
    sizes = [len(v) for v in values]
    total = 1
    for s in sizes:
        total *= s
    if spec.sample == "random":
        chosen = random.Random(spec.seed).sample(range(total), min(spec.samples or total, total))
    else:
        chosen = range(total)

    def decode(flat: int) -> tuple[int, ...]:
        idx = []
        for s in reversed(sizes):
            flat, r = divmod(flat, s)
            idx.append(r)
        return tuple(reversed(idx))

    return [decode(c) for c in chosen]


def _point_key(config: dict, steps: tuple[str, ...]) -> str:
    blob = json.dumps({"config": config, "steps": list(steps)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _loc_of(err: ValidationError) -> str:
    return ".".join(str(p) for p in err.errors()[0]["loc"] if not str(p).startswith("function-after"))


def _validated(data: dict, index: int, axes: dict[str, Any]) -> dict:
    try:
        return Config.model_validate(data).model_dump(mode="json")
    except ValidationError as err:
        loc = _loc_of(err)
        named = [k for k in axes if ".".join(map(str, _key_path(k))) == loc]
        which = f"{named[0]}={axes[named[0]]!r}" if named else ", ".join(f"{k}={v!r}" for k, v in axes.items())
        raise UserError(f"sweep point {index} ({which}) fails config validation: {_one_line(err)}") from None


def expand(spec: SweepFile, base: Config, steps: tuple[str, ...]) -> list[Point]:
    """Every point of the sweep, validated; duplicates (same resolved config) are kept once."""
    base_tree = base.model_dump(mode="json")  # with defaults filled, so train.epochs exists even if unset
    keys = list(spec.axes)
    values = [_axis_values(k, spec.axes[k]) for k in keys]
    paths = [_key_path(k) for k in keys]
    for key, path in zip(keys, paths):
        _set(json.loads(json.dumps(base_tree)), path, None, key)  # unknown keys fail before any point
    points, seen = [], set()
    for combo in _combos(values, spec):
        axes = {k: values[i][j] for i, (k, j) in enumerate(zip(keys, combo))}
        tree = json.loads(json.dumps(base_tree))
        for key, path in zip(keys, paths):
            _set(tree, path, axes[key], key)
        config = _validated(tree, len(points), axes)
        key = _point_key(config, steps)
        if key not in seen:
            seen.add(key)
            points.append(Point(len(points), key, axes, config, steps))
    return points


def _resolve_steps(spec: str) -> tuple[str, ...]:
    from codesign.commands.flow import select_steps

    return tuple(s.name for s in select_steps(spec))


def load_sweep(path: Path, out: Path) -> Sweep:
    """Read, validate and expand a sweep file; every problem is one UserError line, nothing is written."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file {path} not found; see examples/sweep_digits.yaml")
    data = read_yaml(path, "sweep file", "see examples/sweep_digits.yaml")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping (base, axes, steps, ...); see examples/sweep_digits.yaml")
    try:
        spec = SweepFile.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{path}: {_one_line(err)}") from None
    if spec.sample == "random" and not spec.samples:
        raise UserError(f"{path}: sample: random needs samples: N (how many points to draw)")
    base = load_config(path.parent / spec.base)
    steps = _resolve_steps(spec.steps)
    artifacts = (path.parent / spec.shared_dir) if spec.shared_dir else Path(out) / "points"
    return Sweep(spec, path, expand(spec, base, steps), artifacts.absolute())


# --- results ----------------------------------------------------------------------------------

FIXED_COLUMNS = ["point", "key", "status", "attempts", "accuracy", "final_accuracy", "exit_fractions",
                 "mac_fraction", "predicted_throughput", "measured_throughput", "lut", "ff", "dsp", "bram",
                 "predicted_gain", "measured_gain", "pareto", "seconds", "error_step", "error", "run"]


def _pending_row(point: Point, status: str, run: Path, error: str = "") -> dict:
    return {"point": point.index, "key": point.key, **point.axes, "status": status,
            "attempts": (read_json(run / "attempts.json") or {}).get("attempts", 0), "error": error,
            "run": str(run)}


def _mark_pareto(rows: list[dict]) -> None:
    """A done point is Pareto-optimal if no other has >= throughput with <= LUT and > accuracy or better."""
    def fig(r: dict) -> tuple[float, float, float] | None:
        thr = r.get("measured_throughput") or r.get("predicted_throughput")
        if r.get("status") != "done" or thr is None or r.get("lut") is None:
            return None
        return thr, -r["lut"], r.get("accuracy") or 0.0

    figs = [fig(r) for r in rows]
    for r, f in zip(rows, figs):
        r["pareto"] = f is not None and not any(
            g is not None and g != f and all(a >= b for a, b in zip(g, f)) for g in figs)


def _csv_cell(v: Any) -> Any:
    if isinstance(v, list):
        return ";".join(f"{x:.4f}" if isinstance(x, float) else str(x) for x in v)
    return "" if v is None else v


def write_results(out: Path, sweep: Sweep, rows: list[dict], seconds: float) -> None:
    rows = sorted(rows, key=lambda r: r["point"])
    _mark_pareto(rows)
    axes = list(sweep.spec.axes)
    columns = ["point", "key", *axes, *[c for c in FIXED_COLUMNS if c not in ("point", "key")]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({c: _csv_cell(r.get(c)) for c in columns} for r in rows)
    write_atomic(out / "results.csv", buf.getvalue())
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "cancelled")}
    doc = {"sweep": str(sweep.source), "steps": list(sweep.points[0].steps) if sweep.points else [],
           "axes": axes, "points": len(rows), **counts, "seconds": round(seconds, 2),
           "artifacts": str(sweep.artifacts), "rows": rows}
    write_atomic(out / "results.json", json.dumps(doc, indent=1))
    plot_pareto(out / "pareto.png", rows)


def plot_pareto(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.get("status") == "done" and r.get("lut") is not None
           and (r.get("measured_throughput") or r.get("predicted_throughput")) is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if pts:
        thr = [r.get("measured_throughput") or r["predicted_throughput"] for r in pts]
        sc = ax.scatter([r["lut"] for r in pts], thr, c=[r.get("accuracy") or 0 for r in pts], cmap="viridis",
                        edgecolors=["red" if r.get("pareto") else "none" for r in pts], s=45)
        fig.colorbar(sc, ax=ax, label="accuracy")
        front = sorted((r["lut"], t) for r, t in zip(pts, thr) if r.get("pareto"))
        if front:
            ax.step(*zip(*front), where="post", color="red", lw=0.8, label="Pareto (throughput, LUT, accuracy)")
            ax.legend(loc="lower right", fontsize=8)
        measured = any(r.get("measured_throughput") for r in pts)
        ax.set_ylabel(f"throughput (samples/cycle, {'measured where simulated' if measured else 'predicted'})")
    else:
        ax.text(0.5, 0.5, "no point has resource figures yet\n(run the sweep up to the dse/estimate steps)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_ylabel("throughput (samples/cycle)")
    ax.set_xlabel("LUT")
    ax.set_title(f"sweep: {len(pts)} of {len(rows)} points")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


# --- running on Ray ---------------------------------------------------------------------------


Event = Callable[[str, dict], None]  # kind: planned | note | skipped | started | finished; then a row or payload


def run_sweep(sweep_path: Path, out: Path, address: str | None = None, max_parallel: int | None = None,
              on_event: Event | None = None) -> dict:
    """Run every point not yet complete; write DIR/results.{csv,json} and DIR/pareto.png; return a summary."""
    out = Path(out)
    sweep = load_sweep(sweep_path, out)  # every input error surfaces here, before DIR exists
    if max_parallel is not None and max_parallel < 1:
        raise UserError("--max-parallel must be at least 1")
    emit = on_event or (lambda kind, row: None)
    emit("planned", {"points": len(sweep.points)})
    started = time.perf_counter()
    rows: dict[int, dict] = {}
    todo: list[Point] = []
    for p in sweep.points:
        row = done_row(sweep.artifacts / p.key)
        if row is not None:
            rows[p.index] = {**row, "point": p.index, **p.axes}  # index/axes of this sweep, figures of that run
            emit("skipped", rows[p.index])
        else:
            todo.append(p)
    if todo:
        owns = connect(address)
        if address and not sweep.spec.shared_dir:
            emit("note", {"message": f"no shared_dir in the sweep file: point folders go to {sweep.artifacts}, "
                                     "which every node of the cluster must be able to write"})
    out.mkdir(parents=True, exist_ok=True)
    sweep.artifacts.mkdir(parents=True, exist_ok=True)
    if todo:
        try:
            _run_on_ray(sweep, todo, rows, max_parallel, emit)
        except KeyboardInterrupt:
            for p in todo:
                rows.setdefault(p.index, _pending_row(p, "cancelled", sweep.artifacts / p.key))
            write_results(out, sweep, list(rows.values()), time.perf_counter() - started)
            raise
        finally:
            if owns:
                import_ray().shutdown()
    write_results(out, sweep, list(rows.values()), time.perf_counter() - started)
    return {"points": len(sweep.points), "ran": len(todo), "skipped": len(sweep.points) - len(todo),
            "done": sum(r["status"] == "done" for r in rows.values()),
            "failed": sum(r["status"] == "failed" for r in rows.values()),
            "seconds": round(time.perf_counter() - started, 2), "out": str(out)}


def _run_on_ray(sweep: Sweep, todo: list[Point], rows: dict[int, dict], max_parallel: int | None,
                emit: Event) -> None:
    ray = import_ray()
    from codesign.sweeps.sweep_worker import run_point

    res = sweep.spec.resources
    options: dict[str, Any] = {"num_cpus": res.num_cpus, "max_retries": sweep.spec.retries, "retry_exceptions": False}
    if res.memory_mb:
        options["memory"] = res.memory_mb * 2**20
    task = ray.remote(run_point).options(**options)
    limit = max_parallel or len(todo)  # beyond the limit, Ray queues tasks by their declared resources
    queue, inflight = list(todo), {}
    try:
        while queue or inflight:
            while queue and len(inflight) < limit:
                p = queue.pop(0)
                run_dir = sweep.artifacts / p.key
                inflight[task.remote(p.payload(), str(run_dir), sweep.spec.retries, res.num_cpus)] = p
                emit("started", p.payload())
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                p = inflight.pop(ref)
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker died more often than retries allow
                    msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    row = _pending_row(p, "failed", sweep.artifacts / p.key, f"{type(err).__name__}: {msg}")
                rows[p.index] = row
                emit("finished", row)
    except KeyboardInterrupt:
        for ref in inflight:  # stop the running points now; their folders resume on the next run
            try:
                ray.cancel(ref, force=True)
            except Exception:  # a terminal's Ctrl-C may have hit the local cluster's processes too
                pass
        raise


# --- the CLI glue -----------------------------------------------------------------------------


def sweep_command(sweep_yaml: Path, out: Path, address: str | None, max_parallel: int | None) -> dict:
    """`codesign sweep`: run_sweep with a rich progress display and a closing line per outcome."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    # a bar only on a terminal: into a pipe or a log file rich would write an empty line at the end
    with Progress(TextColumn("[bold]sweep[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as progress:
        bar = progress.add_task("starting", total=None)
        state = {"running": 0, "failed": 0}

        def on_event(kind: str, row: dict) -> None:
            if kind == "note":
                progress.console.print(f"  note: {row['message']}")
            elif kind == "planned":
                progress.update(bar, total=row["points"])
            elif kind == "started":
                state["running"] += 1
            elif kind in ("finished", "skipped"):
                progress.advance(bar)
                if kind == "finished":
                    state["running"] -= 1
                    state["failed"] += row["status"] != "done"
                    progress.console.print(_row_line(row))
            progress.update(bar, description=f"{state['running']} running, {state['failed']} failed")

        try:
            summary = run_sweep(sweep_yaml, out, address, max_parallel, on_event)
        except KeyboardInterrupt:
            progress.stop()
            console.print(f"stopped: running points cancelled; partial results in {out}; "
                          "rerun the same command to resume")
            raise
    if summary["ran"] == 0:
        summary["message"] = f"nothing to do: all {summary['points']} points already done (results in {out})"
    else:
        summary["message"] = (f"{summary['done']} of {summary['points']} points done ({summary['skipped']} already "
                              f"done before), {summary['failed']} failed, {summary['seconds']:.1f} s; "
                              f"results: {out}/results.csv, {out}/pareto.png")
    return summary


def _row_line(row: dict) -> str:
    axes = ", ".join(f"{k}={v}" for k, v in row.items() if k not in FIXED_COLUMNS)
    if row["status"] != "done":
        return f"  point {row['point']} ({axes}) FAILED after {row['attempts']} attempts at " \
               f"{row.get('error_step') or '?'}: {row.get('error', '')[:200]}"
    acc = row.get("accuracy")
    thr = row.get("measured_throughput") or row.get("predicted_throughput")
    figs = [f"accuracy {acc:.4f}" if acc is not None else "", f"{thr:.4g} samples/cycle" if thr is not None else "",
            f"{row['lut']:.0f} LUT" if row.get("lut") is not None else ""]
    retried = f", {row['attempts']} attempts" if row.get("attempts", 1) > 1 else ""
    return f"  point {row['point']} ({axes}) done in {row.get('seconds', 0):.1f} s: {', '.join(f for f in figs if f)}{retried}"
