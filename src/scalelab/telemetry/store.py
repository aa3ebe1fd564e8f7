"""Writing and reading run directories.

`RunWriter` appends and flushes each row as it comes, so a crashed or interrupted run stays
readable; `load_run` returns pandas frames. Used by every platform and by the simulator.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform as host_platform
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from scalelab.errors import RunFormatError
from scalelab.telemetry import schema

__all__ = ["RunWriter", "Run", "load_run", "list_runs", "new_run_id", "utc_now", "git_revision", "shared_provenance", "run_from_columns"]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(ts: dt.datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id(scenario: str, arm: str, *, when: dt.datetime | None = None) -> str:
    """``20261123-153000-classroom-spike-compose-manual-1a2b``: sortable, unique, a valid compose project name."""
    stamp = (when or utc_now()).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{scenario}-{arm}-{secrets.token_hex(2)}"


def git_revision(cwd: str | os.PathLike[str] | None = None) -> str:
    """``<short sha>[-dirty]`` of the checkout, or ``unknown`` outside one (or without git)."""
    from scalelab._run import run
    from scalelab.errors import CommandError

    try:
        rev = run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, timeout_s=5, check=False).stdout.strip()
        if not rev:
            return "unknown"
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, timeout_s=10, check=False).stdout.strip()
    except CommandError:
        return "unknown"
    return rev + ("-dirty" if dirty else "")


#: the provenance `shared_provenance` looked up once, while it is active
_provenance: dict[str, Any] | None = None


@contextmanager
def shared_provenance() -> Iterator[None]:
    """Runs created inside the block record the versions and git revision looked up once, on entry.

    The simulator writes several runs within a second (and in forked workers): one lookup, not two
    subprocesses per run. A real run creates one writer and looks them up itself.
    """
    global _provenance
    from scalelab.versions import component_versions

    outer = _provenance
    _provenance = outer or {"versions": component_versions(), "git_revision": git_revision()}
    try:
        yield
    finally:
        _provenance = outer


class _CsvAppender:
    """A CSV file written row by row with a fixed header; every row is flushed at once."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.columns = columns
        self.fh: IO[str] = path.open("a", newline="", encoding="utf-8")
        self._fh = self.fh
        self._writer = csv.DictWriter(self._fh, fieldnames=columns, extrasaction="raise", restval="")
        if path.stat().st_size == 0:
            self._writer.writeheader()
            self._fh.flush()

    def write(self, row: Mapping[str, Any]) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise RunFormatError(f"unknown column(s) {sorted(unknown)}; allowed: {', '.join(self.columns)}")
        self._writer.writerow({k: _cell(v) for k, v in row.items()})
        self._fh.flush()

    def write_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            unknown = set(row) - set(self.columns)
            if unknown:
                raise RunFormatError(f"unknown column(s) {sorted(unknown)}; allowed: {', '.join(self.columns)}")
            self._writer.writerow({k: _cell(v) for k, v in row.items()})
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return round(value, 4)
    if isinstance(value, bool):
        return int(value)
    return value


class RunWriter:
    """One run directory, written once, incrementally.

    Use as a context manager: leaving normally marks the run ``completed``, Ctrl-C marks it
    ``interrupted`` and any other exception ``failed``; what was recorded stays on disk.
    """

    def __init__(self, run_dir: Path, manifest: dict[str, Any]) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=False)
        self.manifest = dict(manifest)
        self.manifest.setdefault("status", "running")
        self._write_manifest()
        self._samples = _CsvAppender(self.dir / schema.SAMPLES, schema.SAMPLE_COLUMNS)
        self._events = _CsvAppender(self.dir / schema.EVENTS, schema.EVENT_COLUMNS)
        self._requests: _CsvAppender | None = None
        self._placement: _CsvAppender | None = None
        self._hosts: _CsvAppender | None = None
        self.arm = str(self.manifest.get("arm", ""))
        self._written_columns: dict[str, Any] | None | bool = None

    @classmethod
    def create(
        cls,
        runs_root: str | os.PathLike[str],
        *,
        scenario: Any,
        arm: str,
        platform: str,
        seed: int | None = None,
        extra: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> RunWriter:
        """Start a run of ``scenario`` (a sized `scalelab.scenario.Scenario`) on ``platform``."""
        from scalelab.lb.strategies import arm_front_door
        from scalelab.versions import component_versions

        if platform not in schema.platforms():
            raise RunFormatError(f"platform must be one of {', '.join(schema.platforms())}, got '{platform}'")
        arm_cfg = scenario.arms[arm]
        started = utc_now()
        rid = run_id or new_run_id(scenario.name, arm, when=started)
        manifest: dict[str, Any] = {
            "run_id": rid,
            "scenario": scenario.name,
            "scenario_source": scenario.source,
            "arm": arm,
            "platform": platform,
            "modeled_platform": arm_cfg.platform if platform == "sim" else None,
            "scaler": arm_cfg.scaler.type,
            "start_replicas": arm_cfg.replicas,
            "seed": scenario.seed if seed is None else seed,
            "cpu_budget": scenario.cpu_budget,
            "price_per_replica_hour": scenario.price_per_replica_hour,
            "latency_objective_ms": scenario.latency_objective_ms,
            "duration_s": scenario.duration_s,
            "front_door": arm_front_door(arm_cfg, platform),
            # how the arm rolls out (docs/rollouts.md): the rollout ladder reads its rungs from here
            "rollout": arm_cfg.rollout.model_dump(mode="json") if arm_cfg.rollout is not None and platform != "sim" else None,
            "load_connections": {
                "connections": scenario.load.connections,
                "client_connections": scenario.load.client_connections,
            },
            **(_provenance or {"versions": component_versions(), "git_revision": git_revision()}),
            "host": {"hostname": host_platform.node(), "cpus": os.cpu_count(), "system": host_platform.platform()},
            "utc_start": iso(started),
            "utc_end": None,
            "status": "running",
        }
        manifest.update(extra or {})
        writer = cls(Path(runs_root) / rid, manifest)
        import yaml

        (writer.dir / schema.SCENARIO).write_text(
            yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
        )
        return writer

    # -- rows ------------------------------------------------------------------------------
    def sample(self, **row: Any) -> None:
        self._written_columns = False
        row.setdefault("arm", self.arm)
        self._samples.write(row)

    def samples(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append many sample rows at once (one flush): the simulator writes a day in one go."""
        self._written_columns = False
        dicts = [dict(row) for row in rows]
        for row in dicts:
            row.setdefault("arm", self.arm)
        self._samples.write_many(dicts)

    def sample_columns(self, data: Mapping[str, Any], n: int, *, integers: Iterable[str] = ()) -> None:
        """Append ``n`` sample rows given as columns (arrays or scalars), formatted a column at a time.

        The simulator's fast path (`telemetry.columns`); real runs use `sample`, one flushed row each.
        """
        from scalelab.telemetry.columns import write_columns

        data = dict(data)
        data.setdefault("arm", self.arm)
        back = write_columns(self._samples.fh, self._samples.columns, data, n, integers=tuple(integers))
        # as_run can rebuild the frame only when these columns are all the file holds
        self._written_columns = back if self._written_columns is None and back is not None else False

    @property
    def written_columns(self) -> dict[str, Any] | None:
        """The samples as `sample_columns` wrote them, when that is all the file holds (for `run_from_columns`)."""
        return self._written_columns if isinstance(self._written_columns, dict) else None

    def as_run(self) -> Run:
        """The finished run as `load_run` would read it back; without re-reading samples written as columns."""
        return run_from_columns(self.dir, self.manifest, self._written_columns)

    def event(self, t_s: float, kind: str, *, replicas: int | None = None, source: str = "", detail: str = "", utc: str | None = None) -> None:
        self._events.write(
            {"t_s": t_s, "utc": utc or iso(utc_now()), "arm": self.arm, "kind": kind, "replicas": replicas, "source": source, "detail": detail}
        )

    def events(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append many events at once (one flush; ``arm`` filled in): the simulator's, written after the run."""
        self._events.write_many({"arm": self.arm, **row} for row in rows)

    def requests(self, rows: Iterable[Mapping[str, Any]]) -> None:
        if self._requests is None:
            self._requests = _CsvAppender(self.dir / schema.REQUESTS, schema.REQUEST_COLUMNS)
        self._requests.write_many(rows)

    def placement(self, rows: Iterable[Mapping[str, Any]]) -> None:
        if self._placement is None:
            self._placement = _CsvAppender(self.dir / schema.PLACEMENT, schema.PLACEMENT_COLUMNS)
        self._placement.write_many(rows)

    def hosts(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append rows of hosts.csv (`schema.HOST_COLUMNS`: per host and second)."""
        if self._hosts is None:
            self._hosts = _CsvAppender(self.dir / schema.HOSTS, schema.HOST_COLUMNS)
        self._hosts.write_many(rows)

    def read_hosts(self) -> Any:
        """What hosts.csv holds so far (pandas; empty frame without hosts)."""
        if self._hosts is not None:
            self._hosts.fh.flush()
        return _read_csv(self.dir / schema.HOSTS, schema.HOST_COLUMNS, required=False)

    def read_requests(self) -> Any:
        """What requests.csv holds so far (pandas)."""
        if self._requests is not None:
            self._requests.fh.flush()
        return _read_csv(self.dir / schema.REQUESTS, schema.REQUEST_COLUMNS, required=False, later=schema.LATER_REQUEST_COLUMNS)

    def read_placement(self) -> Any:
        """What placement.csv holds so far (pandas)."""
        if self._placement is not None:
            self._placement.fh.flush()
        return _read_csv(self.dir / schema.PLACEMENT, schema.PLACEMENT_COLUMNS, required=False)

    def replicas(self, frame: Any) -> None:
        """Write replicas.csv (per replica and second, `telemetry.spread.replica_seconds`) in one go."""
        frame[list(schema.REPLICA_COLUMNS)].to_csv(self.dir / schema.REPLICAS, index=False)

    def note(self, **fields: Any) -> None:
        """Add fields to the manifest (e.g. calibration, image digests) and rewrite it."""
        self.manifest.update(fields)
        self._write_manifest()

    # -- end -------------------------------------------------------------------------------
    def finish(self, status: str = "completed", *, error: str | None = None) -> None:
        if status not in schema.STATUSES:
            raise RunFormatError(f"status must be one of {', '.join(schema.STATUSES)}, got '{status}'")
        for appender in (self._samples, self._events, self._requests, self._placement, self._hosts):
            if appender is not None:
                appender.close()
        self.manifest["status"] = status
        self.manifest["utc_end"] = iso(utc_now())
        if error:
            self.manifest["error"] = error
        self._write_manifest()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.manifest.get("status") != "running":
            return
        if exc_type is None:
            self.finish("completed")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted")
        else:
            self.finish("failed", error=f"{exc_type.__name__}: {exc}")

    def _write_manifest(self) -> None:
        tmp = self.dir / (schema.MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.manifest, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.dir / schema.MANIFEST)


@dataclass
class Run:
    """A run directory read back: the manifest and pandas frames."""

    path: Path
    manifest: dict[str, Any]
    samples: Any  # pandas.DataFrame
    events: Any
    _requests: Any = field(default=None, repr=False)
    _placement: Any = field(default=None, repr=False)
    _replicas: Any = field(default=None, repr=False)
    _hosts: Any = field(default=None, repr=False)
    _scenario: Any = field(default=None, repr=False)

    @property
    def arm(self) -> str:
        return str(self.manifest.get("arm", ""))

    @property
    def label(self) -> str:
        platform = self.manifest.get("platform")
        if platform == "sim":
            return f"{self.arm} (sim)"
        return self.arm

    @property
    def requests(self) -> Any:
        if self._requests is None:
            self._requests = _read_csv(self.path / schema.REQUESTS, schema.REQUEST_COLUMNS, required=False, later=schema.LATER_REQUEST_COLUMNS)
        return self._requests

    @property
    def placement(self) -> Any:
        if self._placement is None:
            self._placement = _read_csv(self.path / schema.PLACEMENT, schema.PLACEMENT_COLUMNS, required=False)
        return self._placement

    @property
    def hosts(self) -> Any:
        """Per host and second (hosts.csv); an empty frame for a run without hosts."""
        if self._hosts is None:
            self._hosts = _read_csv(self.path / schema.HOSTS, schema.HOST_COLUMNS, required=False)
        return self._hosts

    @property
    def replicas(self) -> Any:
        """Per replica and second (`telemetry.spread`): replicas.csv, or derived from requests/placement for older runs."""
        if self._replicas is None:
            path = self.path / schema.REPLICAS
            if path.is_file():
                self._replicas = _read_csv(path, schema.REPLICA_COLUMNS, required=False)
            else:
                from scalelab.telemetry.spread import replica_seconds

                self._replicas = replica_seconds(self.requests, self.placement)
        return self._replicas

    @property
    def spread(self) -> Any:
        """Per second: spread_busiest and spread_jain (recorded in samples, or derived from replicas)."""
        s = self.samples
        if s[["spread_busiest", "spread_jain"]].notna().any().any():
            return s[["t_s", "spread_busiest", "spread_jain"]].set_index("t_s")
        from scalelab.telemetry.spread import spread_series

        ready = dict(zip(s["t_s"].astype(int).tolist(), s["replicas_ready"].fillna(0).astype(int).tolist()))
        return spread_series(self.replicas, ready)

    @property
    def scenario(self) -> Any:
        """The sized scenario this run used (a `scalelab.scenario.Scenario`; read once, it is frozen)."""
        if self._scenario is None:
            import yaml

            from scalelab.scenario import Scenario

            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: the same data, faster
            self._scenario = Scenario.model_validate(yaml.load((self.path / schema.SCENARIO).read_text(), Loader=loader))  # noqa: S506
        return self._scenario


#: columns that hold text; every other column of a run's CSV files is a number (or empty)
TEXT_COLUMNS = frozenset({"utc", "arm", "phase", "kind", "source", "detail", "replica", "version", "error", "pod", "node", "ok", "ready", "host"})


def _read_csv(path: Path, columns: tuple[str, ...], *, required: bool, ordered: bool = False, later: tuple[str, ...] = ()) -> Any:
    """Read one CSV of a run; text in a number column, NaN/inf, or (``ordered``) t_s out of order is a RunFormatError."""
    import numpy as np
    import pandas as pd

    if not path.is_file():
        if required:
            raise RunFormatError(f"{path} is missing", fix="point at a run directory written by `scalelab run` or `scalelab sim`")
        return pd.DataFrame(columns=list(columns))
    fix = f"the file was edited or damaged: restore {path.name}, or re-record the run"
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        return pd.DataFrame(columns=list(columns))
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise RunFormatError(f"{path}: not a readable CSV file: {str(exc).splitlines()[0][:200]}", fix=fix) from None
    for c in later:
        if c not in frame.columns:
            frame[c] = float("nan")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RunFormatError(f"{path}: missing column(s) {', '.join(missing)}", fix="the run was written by an incompatible version")
    for col in columns:
        if col in TEXT_COLUMNS:
            continue
        values = frame[col]
        if values.dtype == object:
            numbers = pd.to_numeric(values, errors="coerce")
            bad = values.notna() & numbers.isna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise RunFormatError(f"{path}: column '{col}', line {row + 2}: {values.iloc[row]!r} is not a number", fix=fix)
            frame[col] = values = numbers
        if values.dtype.kind == "f" and np.isinf(values.to_numpy()).any():
            row = int(np.flatnonzero(np.isinf(values.to_numpy()))[0])
            raise RunFormatError(f"{path}: column '{col}', line {row + 2}: not a finite number", fix=fix)
    if ordered and len(frame) > 1:
        t = frame["t_s"].to_numpy(dtype=float)
        steps = np.diff(t)
        if np.isnan(t).any() or (steps <= 0).any():
            row = int(np.flatnonzero(~(steps > 0))[0]) + 1 if not np.isnan(t).any() else int(np.flatnonzero(np.isnan(t))[0])
            raise RunFormatError(f"{path}: t_s out of order at line {row + 2} (each row must be a later second)", fix=fix)
    return frame


def run_from_columns(run_dir: Path, manifest: Mapping[str, Any], written: Any) -> Run:
    """A finished run whose samples were written in one go (`RunWriter.sample_columns`), from the
    columns as written (`telemetry.columns.write_columns`); anything else is read from its directory."""
    if not isinstance(written, dict) or manifest.get("status") == "running":
        return load_run(run_dir)
    from scalelab.telemetry.columns import frame

    events = _read_csv(run_dir / schema.EVENTS, schema.EVENT_COLUMNS, required=False)
    return Run(path=run_dir, manifest=dict(manifest), samples=frame(schema.SAMPLE_COLUMNS, written), events=events)


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read a run directory (also a crashed or interrupted one) into pandas frames.

    A directory that cannot be read is a RunFormatError naming it and the reason.
    """
    run_dir = Path(path)
    manifest_path = run_dir / schema.MANIFEST
    if not manifest_path.is_file():
        raise RunFormatError(
            f"{run_dir} is not a run directory (no {schema.MANIFEST})",
            fix="pass a folder under runs/ written by `scalelab run` or `scalelab sim` (see `ls runs/`)",
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise RunFormatError(f"{manifest_path}: not a readable JSON manifest ({str(exc)[:120]})", fix="restore it, or re-record the run") from None
    if not isinstance(manifest, dict) or not manifest:
        raise RunFormatError(f"{manifest_path}: a manifest must be a JSON object with run_id, arm, platform, status, ...", fix="restore it, or re-record the run")
    samples = _read_csv(run_dir / schema.SAMPLES, schema.SAMPLE_COLUMNS, required=True, ordered=True, later=schema.LATER_SAMPLE_COLUMNS)
    events = _read_csv(run_dir / schema.EVENTS, schema.EVENT_COLUMNS, required=False)
    return Run(path=run_dir, manifest=manifest, samples=samples, events=events)


def list_runs(root: str | os.PathLike[str] = "runs") -> list[Path]:
    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if (p / schema.MANIFEST).is_file())
