"""The `codesign` command line (click).

click gives subcommands, --help on each and exit status 2 for usage errors;
`main` turns every UserError into one line on stderr and exit status 2.
Heavy imports (torch, brevitas, hls4ml) happen inside the commands so that
`codesign --help` and the torch-free steps start fast.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from codesign.errors import UserError

RUN = click.argument("run", type=click.Path(path_type=Path))


def _fresh_out(out: Path, force: bool) -> None:
    if not out.exists():
        return
    if not force:
        raise UserError(f"output folder {out} exists; pass --force to replace it or choose another --out")
    if out.is_dir() and (not any(out.iterdir()) or (out / "config.yaml").is_file()):
        shutil.rmtree(out)
    else:
        raise UserError(f"{out} is not a codesign run folder; refusing to replace it even with --force")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="codesign")
def cli() -> None:
    """Quantised early-exit networks on FPGAs: train, calibrate, export, HLS, RTL, simulate, estimate."""


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="run folder to create")
@click.option("--force", is_flag=True, help="replace an existing run folder")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train(config: Path, out: Path, force: bool, quiet: bool) -> None:
    """Train the early-exit network of CONFIG into a new run folder."""
    from codesign.config import load_config

    cfg = load_config(config)
    _fresh_out(out, force)
    from codesign.train import train as run_training

    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        result = run_training(cfg, scratch, quiet=quiet)
        scratch.rename(out)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    accs = ", ".join(f"exit {e['index']}: {e['test_accuracy']:.4f}" for e in result["exits"])
    click.echo(f"trained {cfg.name} ({result['mode']}, {result['seconds']} s); test accuracy {accs}; -> {out}")


@cli.command()
@RUN
def export(run: Path) -> None:
    """Export each stage to QONNX, write design.json, prove torch == QONNX == integer reference."""
    from codesign.export import export as run_export

    report = run_export(run)
    click.echo(f"exported {len(report['stages'])} stages to {run / 'export'}; {report['samples']} test samples: "
               f"{report['mismatches']} mismatches, QONNX max abs diff {report['qonnx_max_abs_diff']}; "
               f"-> {run / 'design.json'}")


def main() -> None:
    try:
        cli(standalone_mode=False)
    except UserError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(2 if isinstance(err, click.UsageError) else err.exit_code)
    except SystemExit:
        raise

if __name__ == "__main__":
    main()
