"""``python -m scalelab.hosts RUN_DIR...``: per run, what each host did (from its hosts.csv), as plain text.

Columns: the host's CPU cap, seconds it was up, the CPU it used in % of its cap (mean and peak, while up),
the most replicas it ran, and when the kit stopped it (fault node-loss). Lab 09 reads it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scalelab.errors import ScalelabError

__all__ = ["main", "render"]


def render(run_dirs: Sequence[str]) -> str:
    from scalelab.hosts.figure import host_stops, host_table
    from scalelab.telemetry import load_run

    lines = []
    for path in run_dirs:
        run = load_run(path)
        table = host_table(run)
        lines.append(f"{run.manifest.get('run_id', path)} ({run.label} on {run.manifest.get('platform')})")
        if table.empty:
            lines.append("  no hosts.csv: this run had no hosts:")
            continue
        stops = dict((host, t) for t, host in host_stops(run))
        lines.append(f"  {'host':<6} {'cap':>5} {'up s':>5} {'CPU % of cap':>13} {'peak %':>7} {'replicas':>9}  stopped at")
        for row in table.itertuples():
            mean = "-" if row.cpu_pct_mean is None else f"{row.cpu_pct_mean:.0f}"
            peak = "-" if row.cpu_pct_max is None else f"{row.cpu_pct_max:.0f}"
            stop = f"{stops[row.host]:.0f} s" if row.host in stops else ""
            lines.append(f"  {row.host!s:<6} {row.cap_cores:>5g} {row.seconds_up:>5} {mean:>13} {peak:>7} {row.replicas_max:>9}  {stop}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    try:
        sys.stdout.write(render(args))
    except ScalelabError as exc:
        print(f"ERROR: {exc.render()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
