"""The `scalelab` command line: parse arguments, call the package, print errors. No logic here.

Errors from the package (`ScalelabError`) print as ``ERROR: ...`` with the fix on stderr and
exit 1; usage errors exit 2; tracebacks only with ``-v``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from scalelab.errors import ScalelabError
from scalelab.registry import platform_names

CPU_BUDGET = click.option(
    "--cpu-budget",
    type=float,
    default=None,
    help="Cores the workload may use (default: detected, CPUs minus one). Scales CPU and load.",
)
RUNS_DIR = click.option(
    "--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True, help="Where run directories go."
)
# kubernetes platform: which cluster (kind by default, or any kubeconfig); ignored by compose
KUBECONFIG_OPT = click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), default=None, help="Kubernetes: kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)."
)
CONTEXT_OPT = click.option(
    "--context", default=None, help="Kubernetes: kubeconfig context (default: kind-scalelab, or the file's current context with --kubeconfig/$KUBECONFIG)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and every external command.")
@click.version_option(package_name="scalelab")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """scalelab: the same service and load spike on docker compose and on Kubernetes, measured."""
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    if verbose:
        import os

        os.environ["SCALELAB_DEBUG"] = "1"


PLATFORM_ARG = click.argument("platform", type=click.Choice(platform_names()))


def _options(kubeconfig: str | None = None, context: str | None = None, project: str | None = None) -> Any:
    from scalelab.platforms import PlatformOptions

    return PlatformOptions(kubeconfig=kubeconfig, context=context, project=project)


def _fail(message: str, fix: str = "") -> None:
    if "-v" in sys.argv or "--verbose" in sys.argv:
        import traceback

        traceback.print_exc()
    click.secho(f"ERROR: {message}" + (f"\nfix: {fix}" if fix else ""), fg="red", err=True)
    sys.exit(1)


def _sigterm_as_interrupt() -> None:
    """SIGTERM ends any command like Ctrl-C: runs and simulations are marked ``interrupted``, not left ``running``."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    # Ctrl-C works even when started from a shell that ignores SIGINT (a background job, CI)
    signal.signal(signal.SIGINT, signal.default_int_handler)


# --- density (lab 12): commands live in scalelab.density.commands ------------------------------

from scalelab.density.commands import density_grp  # noqa: E402 - registration only

cli.add_command(density_grp)


#: Set by a command that has closed everything it opened and started no thread (`scalelab sim`):
#: the `scalelab` program may then end without the interpreter's teardown of every module it
#: imported, which takes about 0.1 s once pandas is loaded (`program`).
_done_and_closed = False


def done_and_closed() -> None:
    """Called by a command at its end when every file it wrote is closed (see `program`)."""
    global _done_and_closed
    _done_and_closed = True


def program() -> None:
    """The `scalelab` console script: `main`; after a command that said it left nothing open
    (`done_and_closed`) and with no other thread running, the exit handlers run, the output is
    flushed and the process ends at once. Anything else ends the usual way."""
    main()
    import threading

    if not _done_and_closed or threading.active_count() != 1:
        return
    import atexit
    import os

    atexit._run_exitfuncs()  # what a normal exit runs: logging's flush, multiprocessing's joins
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: let the interpreter report it the usual way
        return
    os._exit(0)


def main() -> None:
    """The error boundary: every failure ends as one ``ERROR:`` message with the fix, never a traceback (unless -v)."""
    _sigterm_as_interrupt()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ScalelabError as exc:
        _fail(exc.render())
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except UnicodeError as exc:
        _fail(f"a file is not UTF-8 text: {exc}", "save it as UTF-8")
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", "check the path, that its folder exists and that you may write there")
    except RecursionError:
        _fail("an input is nested too deeply", "check the file you passed")
    except (ValueError, TypeError, KeyError) as exc:
        _fail(f"unexpected input: {type(exc).__name__}: {exc}", "check the files and options you passed; rerun with -v for the details")
    except Exception as exc:  # noqa: BLE001 - the last line of the boundary: a message, not a traceback
        _fail(f"internal error: {type(exc).__name__}: {str(exc)[:500]}", "rerun with -v for the traceback and report it; `scalelab clean` removes what was started")


from scalelab import (  # noqa: E402, F401  (they register their commands on `cli`)
    cli_help,  # noqa: E402  (one line each in `scalelab --help`, set once every command exists)
    cli_lb,
    cli_ops,
    cli_sim,
)

cli_help.apply(cli)
