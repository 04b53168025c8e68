"""The `swiglu-check` command line: a thin layer over `swiglu_check.api`.

Every run setting is resolved in one place (`resolve_options`): built-in defaults, then
the project's configuration file, then the command line.

Exit codes: 0 every case passed; 1 some case failed, errored or was inconclusive, a
baseline regressed, or no case ran; 2 usage or bad input (one line on stderr, never a
traceback).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import click
from rich.text import Text
from click.core import ParameterSource

from . import api
from ._version import __version__
from .backends import REGISTRY
from .config import Config, kind_dtype_limits, load_config
from .errors import EXIT_FAIL, EXIT_USAGE, BackendUnavailable, InputError
from .devices import parse_devices, run_on_devices
from .inputs import DEFAULT_CLAMP_FRACTION, DISTRIBUTIONS, VIEWS
from .journal import Journal, load_report, merge_reports
from .runner import describe, environment
from .shards import parse_shard
from .ops import ACTIVATIONS, CLAMP_MODES, LAYOUTS, PRESETS
from .quant import DEFAULT_GROUP_SIZE
from .reports import RENDERERS, render
from .reports.files import FILE_FORMATS, ReportFiles, option_name, report_file_options, write_text_file
from .reports.table import make_console, summary_line, write_table
from .results import SKIP, Report
from .settings import DEFAULT_MAX_FLOOR_RATIO, RunSettings, Thresholds, parse_size

EXIT_CODES_HELP = """\b
Exit codes:
  0  every case passed
  1  a case failed, errored or was inconclusive; a baseline regressed; or no case ran
  2  usage error or bad input (unknown name, malformed value, unavailable device)"""

# CLI parameter name -> configuration key, where they differ
PARAM_KEYS = {"clamp": "clamp_mode"}
GIVEN = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT, ParameterSource.PROMPT)


def _fail_usage(message: str, command: str = "swiglu-check") -> int:
    click.echo(f"{command}: error: {message}", err=True)
    return EXIT_USAGE


class ToolGroup(click.Group):
    """A click group whose errors are one line and whose exit codes follow the contract."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            code = 0
        except click.UsageError as exc:
            path = exc.ctx.command_path if exc.ctx else "swiglu-check"
            code = _fail_usage(f"{exc.format_message()} (see '{path} --help')", path)
        except click.ClickException as exc:
            code = _fail_usage(exc.format_message())
        except (InputError, BackendUnavailable) as exc:
            code = _fail_usage(str(exc))
        except OSError as exc:  # e.g. an --output path that cannot be written
            where = f" {exc.filename}" if exc.filename else ""
            code = _fail_usage(f"cannot write or read{where}: {exc.strerror or exc}")
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("swiglu-check: interrupted", err=True)
            code = 130
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=ToolGroup, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, "--version", prog_name="swiglu-check")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Configuration file (default: the nearest swiglu-check.toml, or pyproject.toml"
                   " with [tool.swiglu-check], from the current directory up).")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None) -> None:
    """Validate gated-activation kernels (clamped SwiGLU, GeGLU, ...) against exact references.

    Errors are measured in units of the dtype's own rounding floor, inputs are scaled
    so that the clamp is exercised, and every case gets a verdict a CI job can gate on.
    """
    ctx.obj = {"config_path": config_path}


def _options(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def apply(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


OP_OPTIONS = _options([
    click.option("--op", "op", default="deepseek-v4", show_default=True, type=click.Choice(sorted(PRESETS)),
                 help="Op preset; the flags below override its fields."),
    click.option("--activation", type=click.Choice(ACTIVATIONS), help="Override the activation."),
    click.option("--layout", type=click.Choice(LAYOUTS), help="Override the gate/up layout."),
    click.option("--alpha", type=float, help="Override alpha in act(alpha*g) (gpt-oss: 1.702)."),
    click.option("--beta", type=float, help="Override beta in act(g)*(up+beta) (gpt-oss: 1)."),
    click.option("--clamp-mode", "clamp", type=click.Choice(CLAMP_MODES),
                 help="pre: clamp gate/up before the activation (standard); post: min(act(gate), L)."),
    click.option("--limit", "limits", multiple=True, metavar="L[,L...]",
                 help="Clamp limit(s): positive numbers or 'none'; repeatable or comma-separated."
                      " Default: the preset's."),
])

CASE_OPTIONS = _options([
    click.option("--dtype", "dtypes", multiple=True, metavar="D[,D...]",
                 help="fp32, fp16, bf16; repeatable or comma-separated. Default: all three."),
    click.option("--shape", "shapes", multiple=True, metavar="TxD",
                 help="T tokens x D output width (input T x 2D); repeatable."
                      " Default: small shapes on CPU, DeepSeek-V4-like widths on a GPU."),
    click.option("--backend", "backends", multiple=True, metavar="NAME[,NAME...]",
                 help="Backend(s) to check: registered names or pkg.module:callable;"
                      " default every available one (see 'swiglu-check list')."),
    click.option("--kind", "kinds", multiple=True, metavar="KIND[,KIND...]",
                 help="Only backends of these check kinds (gated, ...); see 'swiglu-check list'."),
    click.option("--device", default="auto", show_default=True, help="auto (cuda if present), cpu, cuda, cuda:N."),
    click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Input seed."),
    click.option("--clamp-fraction", default=DEFAULT_CLAMP_FRACTION, show_default=True, type=float,
                 help="Target share of gates above the limit; sets the Gaussian scale."),
    click.option("--scale", type=float, help="Force the input standard deviation instead."),
    click.option("--input-view", type=click.Choice(VIEWS), default="contiguous", show_default=True,
                 help="column-slice: pass x as a misaligned, row-strided slice of a NaN-padded tensor."),
    click.option("--max-floor-ratio", type=float,
                 help=f"PASS threshold on rel-L2 / rounding floor for every kind and dtype"
                      f" (default {DEFAULT_MAX_FLOOR_RATIO:g}, or the configuration file's)."),
    click.option("--sweep", metavar="NAME",
                 help="A named set of operating points (e.g. dsv4-flash, dsv4-flash-ci for moe-w4a16);"
                      " only the kinds that define it run."),
    click.option("--inputs", "input_sets", multiple=True, metavar="SET[,SET...]",
                 help=f"Input sets: {', '.join(DISTRIBUTIONS)}. Default: gaussian, plus gelu-tail for GELU ops."),
    click.option("--max-memory", metavar="SIZE",
                 help="Memory budget of one case (e.g. 8G): a case that needs more is an ERROR row, not run."),
])

FP8_OPTIONS = _options([
    click.option("--group-size", type=click.IntRange(min=1), default=DEFAULT_GROUP_SIZE, show_default=True,
                 help="gated-fp8: output elements per quantization group (one scale each)."),
    click.option("--ue8m0", is_flag=True, default=False,
                 help="gated-fp8: power-of-two scales (rounded up), as DeepGEMM's UE8M0."),
    click.option("--scale-layout", "scale_layouts", multiple=True, metavar="row|col|both",
                 help="gated-fp8: scales row-major [T, D/G] or column-major ([D/G, T] transposed); default both."),
])

RELIABILITY_OPTIONS = _options([
    click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path),
                 help="Append each finished case to this JSON-lines file (crash-safe); see --resume."),
    click.option("--resume", is_flag=True, help="Skip the cases already in the --results file."),
    click.option("--isolate", is_flag=True,
                 help="Run each backend in a child process: a crash costs only that backend's cases."),
    click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
                 help="Per-case time limit (implies --isolate); a case over it is killed, ERROR."),
    click.option("--shard", metavar="I/N", help="Run only shard I of N (deterministic by case id)."),
    click.option("--devices", metavar="LIST", help="Spread the cases over these GPUs (e.g. 0,1), one worker each."),
])


def resolve_options(ctx: click.Context) -> tuple[dict[str, tuple[Any, str]], Config]:
    """Each setting's effective value and where it came from: 'command line', the
    configuration file, or 'default'. Empty multiple options count as not given."""
    config = load_config((ctx.obj or {}).get("config_path"))
    resolved: dict[str, tuple[Any, str]] = {}
    for name, value in ctx.params.items():
        key = PARAM_KEYS.get(name, name)
        if ctx.get_parameter_source(name) in GIVEN and value not in ((), None):
            resolved[key] = (value, "command line")
        elif key in config.values:
            resolved[key] = (config.values[key], config.source)
        else:
            resolved[key] = (None if value == () else value, "default")
    for key, value in config.values.items():
        if key.startswith("thresholds.") and key not in resolved:
            resolved[key] = (value, config.source)
    return resolved, config


def _value(resolved: dict[str, tuple[Any, str]], key: str, default: Any = None) -> Any:
    value = resolved.get(key, (default, ""))[0]
    return default if value is None else value


def thresholds_from(resolved: dict[str, tuple[Any, str]], config: Config) -> Thresholds:
    """CLI --max-floor-ratio overrides every per-kind/dtype limit of the file."""
    cli_ratio = resolved.get("max_floor_ratio", (None, ""))
    per_kind = () if cli_ratio[1] == "command line" else kind_dtype_limits(config.values)
    file_ratio = config.values.get("thresholds.max_floor_ratio")
    return Thresholds(
        max_floor_ratio=cli_ratio[0] if cli_ratio[1] == "command line" else (file_ratio or DEFAULT_MAX_FLOOR_RATIO),
        per_kind_dtype=per_kind,
        detect_margin=_value(resolved, "thresholds.detect_margin", Thresholds().detect_margin),
        weak_power=_value(resolved, "thresholds.weak_power", Thresholds().weak_power),
        regression_factor=_value(resolved, "regression_factor", None)
        or _value(resolved, "thresholds.regression_factor", Thresholds().regression_factor),
    )


def settings_from(resolved: dict[str, tuple[Any, str]], config: Config) -> RunSettings:
    v = lambda key, default=None: _value(resolved, key, default)  # noqa: E731
    sets = v("input_sets")
    max_memory = v("max_memory")
    settings = api.build_settings(
        op=v("op", "deepseek-v4"), activation=v("activation"), alpha=v("alpha"), beta=v("beta"),
        layout=v("layout"), clamp=v("clamp_mode"), limits=v("limits"), dtypes=v("dtypes"), shapes=v("shapes"),
        device=v("device", "auto"), seed=v("seed", 0), clamp_fraction=v("clamp_fraction", DEFAULT_CLAMP_FRACTION),
        scale=v("scale"), input_view=v("input_view", "contiguous"), thresholds=thresholds_from(resolved, config),
        input_sets=api.parse_input_sets(sets) if sets else None,
        group_size=v("group_size", DEFAULT_GROUP_SIZE), ue8m0=bool(v("ue8m0", False)),
        scale_layouts=v("scale_layouts"), sweep=v("sweep"),
    )
    return replace(settings, max_memory=parse_size(max_memory)) if max_memory else settings


def backends_from(resolved: dict[str, tuple[Any, str]]) -> list[Any]:
    names = _value(resolved, "backends")
    return api.resolve_backends(list(api.as_list(names)) or None, kinds=api.parse_kinds(_value(resolved, "kinds")))


@cli.command(epilog=EXIT_CODES_HELP)
@OP_OPTIONS
@CASE_OPTIONS
@FP8_OPTIONS
@RELIABILITY_OPTIONS
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(sorted(RENDERERS)),
              help="Report format.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file (stdout then shows only the summary).")
@click.option("--save-baseline", type=click.Path(dir_okay=False, path_type=Path),
              help="Save this run's numbers as a baseline file.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=Path),
              help="Compare with a baseline (or report) file; a regression exits 1.")
@click.option("--regression-factor", type=float,
              help="Baseline: allowed growth of floor ratio and rel-L2 (default 1.25).")
@report_file_options
@click.pass_context
def run(ctx: click.Context, fmt: str, output: Path | None, save_baseline: Path | None,
        baseline: Path | None, results_path: Path | None, resume: bool, isolate: bool, timeout: float | None,
        shard: str | None, devices: str | None, **options: Any) -> int:
    """Check backends against the exact reference and print the error tables.

    \b
    Columns:
      rel-L2       ||out - exact|| / ||exact||, exact = float64 formula
      max-abs      largest |out - exact|
      ULP max      largest distance, in the output dtype, from exact rounded once
      floor ratio  rel-L2 / rounding floor (the rel-L2 of exact rounded once);
                   ~1.0 fused kernel, ~1.3 an extra rounding, >10 wrong math
      clamp cov.   share of gates above L / of ups outside [-L, L]
    """
    from .baseline import compare, entries_of, load_entries, save_baseline as write_baseline

    resolved, config = resolve_options(ctx)
    settings = settings_from(resolved, config)
    old = load_entries(baseline) if baseline is not None else None  # a bad file fails before the run
    files = ReportFiles.from_options({option_name(f): options.get(option_name(f)) for f in FILE_FORMATS}, output)
    report = _execute(backends_from(resolved), settings, results_path=results_path, resume=resume,
                      isolate=bool(_value(resolved, "isolate", False)), timeout=_value(resolved, "timeout"), shard=parse_shard(shard) if shard else None,
                      devices=parse_devices(devices) if devices else None)
    code = max(_emit(report, fmt, output), files.write(report))
    if save_baseline is not None:
        write_baseline(report, save_baseline)
        click.echo(f"baseline written to {save_baseline}")
    if old is not None:
        from .reports.compare_table import write_comparison

        comparison = compare(old, entries_of(report), settings.thresholds.regression_factor)
        write_comparison(comparison, make_console(click.get_text_stream("stdout")))
        code = max(code, comparison.exit_code)
    return code


def _execute(backends: list[Any], settings: RunSettings, *, results_path: Path | None, resume: bool,
             isolate: bool, timeout: float | None, shard: tuple[int, int] | None,
             devices: list[str] | None) -> Report:
    """Run in this process, in isolated children, or over several devices."""
    if resume and results_path is None:
        raise InputError("--resume needs --results PATH (the file to continue)")
    if devices is not None:
        if shard is not None or results_path is not None:
            raise InputError("--devices shards the run itself; it does not combine with --shard or --results")
        return run_on_devices(backends, settings, devices, isolate=isolate, timeout=timeout)
    journal = None
    if results_path is not None:
        described = describe(settings, backends)
        header = {"settings": described, "environment": environment(settings.device),
                  "fingerprint": json.dumps({**described, "shard": shard}, sort_keys=True, default=str)}
        journal = Journal(results_path, header, resume=resume)
    try:
        return api.run(backends, settings, progress=True, isolate=isolate, timeout=timeout, shard=shard,
                       journal=journal)
    finally:
        if journal is not None:
            journal.close()


def _emit(report: Report, fmt: str, output: Path | None) -> int:
    """Print or write the report; return the exit code."""
    console = make_console(click.get_text_stream("stdout"))
    if output is not None:
        write_text_file(output, render(report, fmt))
        console.print(summary_line(report))
        click.echo(f"report written to {output}")
    elif fmt == "table":
        write_table(report, console)
    else:
        click.echo(render(report, fmt), nl=False)
    if not report.results or all(r.verdict == SKIP for r in report.results):
        click.echo("swiglu-check: no case ran" + (": every case was skipped" if report.results else ""), err=True)
        return EXIT_FAIL
    return report.exit_code


@cli.command("report")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(sorted(RENDERERS)))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here.")
def report_command(path: Path, fmt: str, output: Path | None) -> int:
    """Rebuild a report from a --results file (or a report JSON), e.g. after a crash."""
    return _emit(load_report(path), fmt, output)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(sorted(RENDERERS)))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the merged report here.")
def merge(paths: tuple[Path, ...], fmt: str, output: Path | None) -> int:
    """Join the results of shards (--results files or report JSONs) into one report."""
    return _emit(merge_reports(load_report(path) for path in paths), fmt, output)


@cli.command()
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--regression-factor", type=float,
              help="Allowed growth of floor ratio and rel-L2 (default 1.25, or the configuration file's).")
@click.option("--all", "show_all", is_flag=True, help="Also list unchanged cases.")
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "json"]))
@click.pass_context
def compare(ctx: click.Context, old: Path, new: Path, regression_factor: float | None, show_all: bool,
            fmt: str) -> int:
    """Diff two runs (baseline or report JSON files) case by case; exit 1 on a regression.

    A case regresses when its floor ratio or rel-L2 grows by more than the factor, its
    verdict flips from PASS, or it disappears; new cases are listed, not failed.
    """
    from .baseline import compare as compare_entries
    from .baseline import load_entries
    from .reports.compare_table import comparison_json, write_comparison

    resolved, config = resolve_options(ctx)
    comparison = compare_entries(load_entries(old), load_entries(new), thresholds_from(resolved, config).regression_factor)
    if fmt == "json":
        click.echo(comparison_json(comparison), nl=False)
    else:
        write_comparison(comparison, make_console(click.get_text_stream("stdout")), show_unchanged=show_all)
    return comparison.exit_code


@cli.command("config")
@OP_OPTIONS
@CASE_OPTIONS
@FP8_OPTIONS
@RELIABILITY_OPTIONS
@click.option("--regression-factor", type=float, help="Baseline: allowed growth factor.")
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "json"]))
@click.pass_context
def show_config(ctx: click.Context, fmt: str, **_: Any) -> int:
    """Print the effective settings of a run and where each comes from.

    Takes the same options as 'run', so 'swiglu-check config --limit 5' shows what
    'swiglu-check run --limit 5' would use.
    """
    resolved, config = resolve_options(ctx)
    settings = settings_from(resolved, config)  # validates, exactly as run would
    resolved.pop("fmt", None)
    rows = [(key, value, source) for key, (value, source) in resolved.items()]
    thresholds = settings.thresholds
    rows.append(("(effective) thresholds", f"max floor ratio {thresholds.max_floor_ratio:g}"
                 + "".join(f"; {k}/{d} {v:g}" for k, d, v in thresholds.per_kind_dtype)
                 + f"; regression factor {thresholds.regression_factor:g}", ""))
    rows.append(("(effective) limits", [op.limit for op in settings.ops()], ""))
    rows.append(("(effective) device", settings.device, ""))
    if fmt == "json":
        click.echo(json.dumps({"config_file": str(config.path) if config.path else None,
                               "settings": {k: {"value": v, "source": s} for k, v, s in rows}}, indent=2, default=str))
        return 0
    from rich.table import Table

    table = Table(title=f"effective settings (configuration file: {config.path or 'none found'})",
                  title_justify="left", header_style="bold")
    for header in ("setting", "value", "source"):
        table.add_column(header, overflow="fold")
    for key, value, source in rows:
        shown = "-" if value is None else ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        table.add_row(key, shown, source)
    make_console(click.get_text_stream("stdout")).print(table)
    return 0


DIAGNOSE_EXIT_HELP = """\b
Exit codes:
  0  the best match is the asked op, within rounding
  1  the best match is another variant, nothing matches within rounding, or the
     backend raised or returned an unusable output
  2  usage error or bad input"""


@cli.command(epilog=DIAGNOSE_EXIT_HELP)
@OP_OPTIONS
@click.option("--backend", required=True, metavar="NAME", help="The backend (kind gated) to diagnose.")
@click.option("--dtype", default="bf16", show_default=True, help="fp32, fp16 or bf16.")
@click.option("--shape", default="64x1024", show_default=True, metavar="TxD",
              help="Size of each probe: T tokens x D output width.")
@click.option("--device", default="auto", show_default=True, help="auto (cuda if present), cpu, cuda, cuda:N.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Input seed.")
@click.option("--max-floor-ratio", type=float, default=2.0, show_default=True,
              help="A candidate within this many rounding floors matches 'within rounding'.")
@click.option("--top", default=12, show_default=True, type=click.IntRange(min=0),
              help="Candidates to show in the table (0: all).")
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "json"]))
def diagnose(op: str, activation: str | None, layout: str | None, alpha: float | None, beta: float | None,
             clamp: str | None, limits: tuple[str, ...], backend: str, dtype: str, shape: str, device: str,
             seed: int, max_floor_ratio: float, top: int, fmt: str) -> int:
    """Name the variant of the math a backend computes.

    Runs the backend on probe inputs chosen to separate the variants (clamp none / pre /
    post; SiLU / erf GELU / tanh GELU; halves / interleaved; alpha and beta; the rounding
    recipes) and ranks candidates by their distance to its output in rounding floors.
    """
    from . import diagnose as diagnosis
    from .ops import build_op, parse_limits
    from .reports.diagnose_table import diagnosis_json, print_diagnosis

    spec = build_op(op, activation=activation, alpha=alpha, beta=beta, layout=layout, clamp=clamp)
    if limits:
        parsed = parse_limits(limits)
        if len(parsed) != 1:
            raise InputError(f"diagnose takes one limit, got {len(parsed)}")
        spec = spec.with_limit(parsed[0])
    result = diagnosis.diagnose(backend, spec, dtype=dtype, shape=shape, seed=seed, device=device,
                                max_floor_ratio=max_floor_ratio, preset_name=op)
    if fmt == "json":
        click.echo(diagnosis_json(result), nl=False)
    else:
        print_diagnosis(make_console(click.get_text_stream("stdout")), result, top)
    return result.exit_code


@cli.command("list")
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "json"]))
def list_backends(fmt: str) -> int:
    """List every backend, available or not, with the reason."""
    rows = []
    for backend in REGISTRY.all():
        ok, why = backend.available()
        rows.append({
            "name": backend.name, "kind": backend.kind, "available": ok,
            "reason": why, "description": backend.description,
            "dtypes": list(backend.dtypes), "devices": list(backend.devices), "source": backend.source,
        })
    errors = REGISTRY.load_errors
    if fmt == "json":
        click.echo(json.dumps({"backends": rows, "load_errors": errors}, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="Backends", title_justify="left", header_style="bold")
    for header in ("name", "kind", "available", "devices", "dtypes", "description / why unavailable"):
        table.add_column(header, overflow="fold")
    for row in rows:
        status = "[green]yes[/green]" if row["available"] else "[red]no[/red]"
        text = row["description"] if row["available"] else f"[red]{row['reason']}[/red]"
        table.add_row(row["name"], row["kind"], status, ",".join(row["devices"]), ",".join(row["dtypes"]), text)
    console = make_console(click.get_text_stream("stdout"))
    console.print(table)
    for module, error in errors.items():
        console.print(Text(f"could not load {module}: {error}", style="red"))
    return 0


@cli.command(epilog=EXIT_CODES_HELP)
@OP_OPTIONS
@FP8_OPTIONS
@click.option("--dtype", "dtypes", multiple=True, metavar="D[,D...]", help="Default: bf16.")
@click.option("--shape", "shapes", multiple=True, metavar="SHAPE",
              help="Shapes to time (kind-specific syntax, e.g. TxD); default: the kind's bench shapes.")
@click.option("--backend", "backends", multiple=True, metavar="NAME[,NAME...]",
              help="Backend(s) to time; default every available one.")
@click.option("--kind", "kinds", multiple=True, metavar="KIND[,KIND...]", help="Only backends of these kinds.")
@click.option("--device", default="auto", show_default=True, help="A CUDA device (auto, cuda, cuda:N).")
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "json"]))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Also write JSON here.")
@click.option("--timing", default="events", show_default=True, type=click.Choice(["events", "graph"]),
              help="events: CUDA events around each call (the issues' method); graph: CUDA-graph replays"
                   " (device time without per-launch gaps). The copies are timed the same way.")
@click.pass_context
def bench(ctx: click.Context, shapes: tuple[str, ...], fmt: str, output: Path | None, timing: str,
          **_: Any) -> int:
    """Time every backend on the GPU against the device copy bandwidth (needs CUDA).

    Median of CUDA-event timings (or CUDA-graph replays, --timing graph) after warm-up,
    inputs rotated past the L2 cache; GB/s counts bytes read plus written, as the copy
    bandwidth does. Each row is also compared with a copy of its own bytes (% same-size copy).
    """
    from . import bench as bench_mod
    from .reports.bench_table import bench_json, print_bench
    from .runner import environment

    resolved, config = resolve_options(ctx)
    resolved["shapes"] = (None, "default")  # bench shapes are parsed per kind below
    if resolved["dtypes"][0] is None:
        resolved["dtypes"] = (["bf16"], "default")
    settings = settings_from(resolved, config)
    bench_mod.require_cuda(settings)
    chosen = [b for b in backends_from(resolved) if "cuda" in b.devices]
    copy = bench_mod.copy_bandwidth(settings.device)
    timings = bench_mod.measure(bench_mod.workloads_for(chosen, settings, _bench_shapes(shapes)), copy, timing,
                                device=settings.device)
    env = environment(settings.device)
    if fmt == "json":
        click.echo(bench_json(timings, copy / 1e9, env, timing), nl=False)
    else:
        print_bench(make_console(click.get_text_stream("stdout")), timings, copy / 1e9, env["device_name"], timing)
    if output is not None:
        output.write_text(bench_json(timings, copy / 1e9, env, timing))
    return EXIT_FAIL if any(t.error for t in timings) else 0


def _bench_shapes(shapes: tuple[str, ...]) -> list[tuple[int, ...]] | None:
    """`TxD` or `MxKxN`-style shapes: integers joined by x."""
    if not shapes:
        return None
    parsed = []
    for text in shapes:
        try:
            dims = tuple(int(v) for v in text.lower().split("x"))
        except ValueError:
            raise InputError(f"malformed shape {text!r}; expected integers joined by x, e.g. 1024x2048") from None
        if len(dims) < 2 or any(d < 0 for d in dims) or dims[-1] == 0:
            raise InputError(f"malformed shape {text!r}")
        parsed.append(dims)
    return parsed


def main() -> None:
    cli.main(prog_name="swiglu-check")


if __name__ == "__main__":
    main()
