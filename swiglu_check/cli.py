"""The `swiglu-check` command line: a thin layer over `swiglu_check.api`.

Exit codes: 0 every case passed; 1 some case failed, errored or was inconclusive (or no
case ran); 2 usage or bad input (one line on stderr, never a traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from . import api
from ._version import __version__
from .backends import REGISTRY
from .errors import EXIT_FAIL, EXIT_USAGE, BackendUnavailable, InputError
from .inputs import DEFAULT_CLAMP_FRACTION
from .ops import ACTIVATIONS, CLAMP_MODES, LAYOUTS, PRESETS
from .reports import RENDERERS, render
from .reports.table import make_console, write_table
from .results import SKIP, Report

EXIT_CODES_HELP = """\b
Exit codes:
  0  every case passed
  1  a case failed, errored or was inconclusive (or no case ran)
  2  usage error or bad input (unknown name, malformed value, unavailable device)"""


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
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("swiglu-check: interrupted", err=True)
            code = 130
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=ToolGroup, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, "--version", prog_name="swiglu-check")
def cli() -> None:
    """Validate gated-activation kernels (clamped SwiGLU, GeGLU, ...) against exact references.

    Errors are measured in units of the dtype's own rounding floor, inputs are scaled
    so that the clamp is exercised, and every case gets a verdict a CI job can gate on.
    """


def _op_options(func: Any) -> Any:
    options = [
        click.option("--op", "op", default="deepseek-v4", show_default=True,
                     type=click.Choice(sorted(PRESETS)), help="Op preset; the flags below override its fields."),
        click.option("--activation", type=click.Choice(ACTIVATIONS), help="Override the activation."),
        click.option("--layout", type=click.Choice(LAYOUTS), help="Override the gate/up layout."),
        click.option("--alpha", type=float, help="Override alpha in act(alpha*g) (gpt-oss: 1.702)."),
        click.option("--beta", type=float, help="Override beta in act(g)*(up+beta) (gpt-oss: 1)."),
        click.option("--clamp-mode", "clamp", type=click.Choice(CLAMP_MODES),
                     help="pre: clamp gate/up before the activation (standard); post: min(act(gate), L)."),
        click.option("--limit", "limits", multiple=True, metavar="L[,L...]",
                     help="Clamp limit(s): positive numbers or 'none'; repeatable or comma-separated."
                          " Default: the preset's."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _case_options(func: Any) -> Any:
    options = [
        click.option("--dtype", "dtypes", multiple=True, metavar="D[,D...]",
                     help="fp32, fp16, bf16; repeatable or comma-separated. Default: all three."),
        click.option("--shape", "shapes", multiple=True, metavar="TxD",
                     help="T tokens x D output width (input T x 2D); repeatable."
                          " Default: small shapes on CPU, DeepSeek-V4-like widths on a GPU."),
        click.option("--backend", "backends", multiple=True, metavar="NAME[,NAME...]",
                     help="Backend(s) to check; default every available one (see 'swiglu-check list')."),
        click.option("--device", default="auto", show_default=True, help="auto (cuda if present), cpu, cuda, cuda:N."),
        click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Input seed."),
        click.option("--clamp-fraction", default=DEFAULT_CLAMP_FRACTION, show_default=True, type=float,
                     help="Target share of gates above the limit; sets the Gaussian scale."),
        click.option("--scale", type=float, help="Force the input standard deviation instead."),
        click.option("--max-floor-ratio", type=float,
                     help="PASS threshold on rel-L2 / rounding floor (default 2.0 for every dtype)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command(epilog=EXIT_CODES_HELP)
@_op_options
@_case_options
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(sorted(RENDERERS)),
              help="Report format.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file (stdout then shows only the summary).")
@click.option("--sweep", metavar="NAME",
              help="A named set of operating points (e.g. dsv4-flash, dsv4-flash-ci for moe-w4a16);"
                   " only the kinds that define it run.")
def run(op: str, activation: str | None, layout: str | None, alpha: float | None, beta: float | None,
        clamp: str | None, limits: tuple[str, ...], dtypes: tuple[str, ...], shapes: tuple[str, ...],
        backends: tuple[str, ...], device: str, seed: int, clamp_fraction: float, scale: float | None,
        max_floor_ratio: float | None, fmt: str, output: Path | None, sweep: str | None) -> int:
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
    settings = api.build_settings(
        op=op, activation=activation, alpha=alpha, beta=beta, layout=layout, clamp=clamp,
        limits=limits or None, dtypes=dtypes or None, shapes=shapes or None, device=device, seed=seed,
        clamp_fraction=clamp_fraction, scale=scale, max_floor_ratio=max_floor_ratio, sweep=sweep,
    )
    chosen = api.resolve_backends(list(backends) or None)
    report = api.run(chosen, settings, progress=True)
    return _emit(report, fmt, output)


def _emit(report: Report, fmt: str, output: Path | None) -> int:
    """Print or write the report; return the exit code."""
    if output is not None:
        output.write_text(render(report, fmt))
        from .reports.table import summary_line

        make_console(click.get_text_stream("stdout")).print(summary_line(report))
        click.echo(f"report written to {output}")
    elif fmt == "table":
        write_table(report, make_console(click.get_text_stream("stdout")))
    else:
        click.echo(render(report, fmt), nl=False)
    if report.results and all(r.verdict == SKIP for r in report.results):
        click.echo("swiglu-check: no case ran: every case was skipped", err=True)
        return EXIT_FAIL
    return report.exit_code


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
        console.print(f"[red]could not load {module}: {error}[/red]")
    return 0


@cli.command(epilog=EXIT_CODES_HELP)
@_op_options
@click.option("--dtype", "dtypes", multiple=True, metavar="D[,D...]", help="Default: bf16.")
@click.option("--shape", "shapes", multiple=True, metavar="SHAPE",
              help="Shapes to time (kind-specific syntax, e.g. TxD); default: the kind's bench shapes.")
@click.option("--backend", "backends", multiple=True, metavar="NAME[,NAME...]",
              help="Backend(s) to time; default every available one.")
@click.option("--device", default="auto", show_default=True, help="A CUDA device (auto, cuda, cuda:N).")
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "json"]))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Also write JSON here.")
def bench(op: str, activation: str | None, layout: str | None, alpha: float | None, beta: float | None,
          clamp: str | None, limits: tuple[str, ...], dtypes: tuple[str, ...], shapes: tuple[str, ...],
          backends: tuple[str, ...], device: str, fmt: str, output: Path | None) -> int:
    """Time every backend on the GPU against the device copy bandwidth (needs CUDA).

    Median of CUDA-event timings after warm-up, inputs rotated past the L2 cache;
    GB/s counts bytes read plus written, as the copy bandwidth does.
    """
    from . import bench as bench_mod
    from .reports.bench_table import bench_json, print_bench
    from .runner import environment

    settings = api.build_settings(
        op=op, activation=activation, alpha=alpha, beta=beta, layout=layout, clamp=clamp,
        limits=limits or None, dtypes=dtypes or ["bf16"], device=device,
    )
    if settings.device_type != "cuda":
        raise InputError("bench needs a CUDA GPU and none is available (torch.cuda.is_available() is False)")
    chosen = [b for b in api.resolve_backends(list(backends) or None) if "cuda" in b.devices]
    parsed_shapes = _bench_shapes(shapes)
    torch_device = settings.device
    copy = bench_mod.copy_bandwidth(torch_device)
    timings = bench_mod.measure(bench_mod.workloads_for(chosen, settings, parsed_shapes), copy)
    env = environment(torch_device)
    if fmt == "json":
        click.echo(bench_json(timings, copy / 1e9, env), nl=False)
    else:
        print_bench(make_console(click.get_text_stream("stdout")), timings, copy / 1e9, env["device_name"])
    if output is not None:
        output.write_text(bench_json(timings, copy / 1e9, env))
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
