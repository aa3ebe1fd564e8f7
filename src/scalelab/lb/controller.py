"""Keeps the front door's upstream block in step with the replicas, and reloads nginx gracefully.

The kit writes two files into the project's own folder, which the lb container mounts read-only
at ``/etc/nginx/lb.d``: ``nginx.conf`` (compose/nginx.conf with the backend turned into the
upstream block, `scalelab.lb.strategies.front_door_conf`) and ``upstream.conf`` (the replicas).
nginx starts on the service name (resolved once); from the kit's first look on, `FrontDoor.sync`
lists every running replica by address with its weight, compares the text with the file on disk
and, when it differs, replaces the file (write and rename) and asks for a graceful reload
(SIGHUP to the nginx master): new worker processes take new requests with the new block, the
old ones finish the requests they hold and exit, so no accepted request is dropped.

Membership follows the running containers, like Docker's DNS does for the random strategy, so a
replica gets traffic from the second the kit sees it; a replica that stops answering is skipped
for a few seconds by nginx's passive check (``max_fails``) until the kit removes it.

Who syncs: the process that runs the experiment (`scalelab run`, `scalelab load`) once a second,
and `scalelab up` / `scalelab scale` once after they act. Replicas changed by hand outside the
kit show up at the next of those.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalelab.lb.strategies import STRATEGIES, Member, front_door_conf, initial_upstream, limit_weights, render_upstream, without_retry
from scalelab.lb.weights import MeasuredWeights

__all__ = ["Replica", "FrontDoor", "UPSTREAM_FILE", "CONF_FILE"]

UPSTREAM_FILE = "upstream.conf"
CONF_FILE = "nginx.conf"
#: an update is due this much before update_s has fully passed
SLACK_S = 0.2


@dataclass(frozen=True)
class Replica:
    """One running replica as the front door sees it."""

    key: str  # container id
    name: str  # the name it answers requests with (short id)
    addr: str  # ip:port on the project's network
    cpu_limit: float  # cores
    cpu_cores: float | None = None  # measured this second (None: not yet)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` in one step (the container sees the old or the new file, never half of one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)  # the lb runs as a non-root user
    os.replace(tmp, path)


class FrontDoor:
    """The kit's side of the nginx front door for one project (no Docker here: ``reload`` is given)."""

    def __init__(self, strategy: str, folder: Path, reload: Callable[[], bool], *, update_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, retry: bool = True) -> None:
        self.strategy = STRATEGIES[strategy]
        #: False: nginx does not pass a refused request to the next replica (`without_retry`)
        self.retry = retry
        self.folder = folder
        self.reload = reload
        self.update_s = update_s
        self.clock = clock
        self.reloads = 0
        self._measured = MeasuredWeights()
        self._util_sums: dict[str, tuple[float, int]] = {}
        self._next_update: float | None = None

    @property
    def upstream_file(self) -> Path:
        return self.folder / UPSTREAM_FILE

    def prepare(self, base_conf: str, host: str, port: int) -> None:
        """Before nginx starts: the folder, for upstream strategies the derived nginx.conf and the first block,
        and without retry the nginx.conf that turns it off."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        conf = front_door_conf(base_conf) if self.strategy.upstream else base_conf
        if self.strategy.upstream or not self.retry:
            _write(self.folder / CONF_FILE, conf if self.retry else without_retry(conf))
        if self.strategy.upstream:
            _write(self.upstream_file, initial_upstream(self.strategy.name, host, port))

    def sync(self, replicas: Sequence[Replica]) -> list[dict[str, Any]]:
        """List ``replicas`` in the upstream block; reload nginx if the block changed. Returns ``lb`` events."""
        if not self.strategy.upstream or not replicas:
            return []
        ordered = sorted(replicas, key=lambda r: r.addr)
        members = self._members(ordered)
        text = render_upstream(self.strategy.name, members)
        try:
            if self.upstream_file.read_text(encoding="utf-8") == text:
                return []
        except FileNotFoundError:
            pass
        self.folder.mkdir(parents=True, exist_ok=True)
        _write(self.upstream_file, text)
        done = self.reload()
        self.reloads += int(done)
        weighted = self.strategy.weights != "none"
        listed = " ".join(f"{r.name}={m.weight}" if weighted else r.name for r, m in zip(ordered, members, strict=True))
        what = "nginx reloaded" if done else "upstream.conf written (nginx not reloaded: no lb container yet)"
        return [{"kind": "lb", "replicas": len(members), "source": "kit", "detail": f"{self.strategy.name}: {what}: {listed}"}]

    def _members(self, replicas: Sequence[Replica]) -> list[Member]:
        if self.strategy.weights == "limit":
            weights = limit_weights([r.cpu_limit for r in replicas])
        elif self.strategy.weights == "measured":
            weights = self._measured_weights(replicas)
        else:
            weights = [1] * len(replicas)
        return [Member(r.addr, w, f"{r.name} ({r.cpu_limit:g} CPU)") for r, w in zip(replicas, weights, strict=True)]

    def _measured_weights(self, replicas: Sequence[Replica]) -> list[int]:
        for r in replicas:
            if r.cpu_cores is not None and r.cpu_limit > 0:
                total, n = self._util_sums.get(r.key, (0.0, 0))
                self._util_sums[r.key] = (total + 100.0 * r.cpu_cores / r.cpu_limit, n + 1)
        now = self.clock()
        limits = {r.key: r.cpu_limit for r in replicas}
        new_members = set(limits) != set(self._measured.published)
        if self._next_update is None or now >= self._next_update or new_members:
            due = self._next_update is None or now >= self._next_update
            utils = {k: (s / n if n else None) for k, (s, n) in self._util_sums.items()} if due else {}
            self._measured.update(utils, limits)
            if due:
                self._util_sums = {}
                # a little early: a caller that syncs once a second must not skip every other update
                self._next_update = now + max(0.0, self.update_s - SLACK_S)
        published = self._measured.published
        return [published.get(r.key, 1) for r in replicas]
