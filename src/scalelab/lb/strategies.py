"""The front door's load-balancing strategies and the nginx configuration each one needs (pure).

``random`` (the default) is compose/nginx.conf as it is: the backend is the service name,
resolved through Docker's DNS at most a second old, and nginx takes one of its addresses per
request at random. Every other strategy needs an ``upstream`` block that lists the replicas,
and open-source nginx (1.22 in Debian 12) reads the servers of such a block only when it
starts or reloads. So for those the kit writes the block itself (`render_upstream`) from the
replicas it sees, and reloads nginx gracefully when the block changes
(`scalelab.lb.controller`). docs/load-balancing.md explains each strategy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Strategy",
    "STRATEGIES",
    "DEFAULT",
    "UPSTREAM",
    "Member",
    "strategy_names",
    "arm_front_door",
    "render_upstream",
    "initial_upstream",
    "front_door_conf",
    "without_retry",
    "limit_weights",
]

Weights = Literal["none", "limit", "measured"]


@dataclass(frozen=True)
class Strategy:
    name: str
    #: the balancing line inside the upstream block ('' = nginx's default, weighted round robin)
    directive: str
    #: where server weights come from: none (all equal), each replica's CPU limit, or measured CPU
    weights: Weights
    summary: str

    @property
    def upstream(self) -> bool:
        """Whether the strategy needs the kit-written upstream block (every strategy but random)."""
        return self.name != DEFAULT


DEFAULT = "random"
STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("random", "", "none", "per request, one of the addresses Docker's DNS gives for the service, at random"),
        Strategy("round-robin", "", "none", "each replica in turn"),
        Strategy("least-conn", "least_conn;", "none", "the replica with the fewest requests in progress"),
        Strategy("random-two", "random two least_conn;", "none", "two replicas at random, then the one with fewer requests in progress"),
        Strategy("weighted", "", "limit", "round robin, each replica's share proportional to its CPU limit"),
        Strategy("resource-aware", "", "measured", "round robin, weights moved each few seconds towards equal measured CPU (% of each limit)"),
    )
}
#: the upstream block's name
UPSTREAM = "agents"
#: passive health check: a replica that refuses a connection is skipped this long
FAIL_TIMEOUT_S = 2
#: where the lb container sees the folder the kit writes (compose/compose.yaml mounts it read-only)
LB_DIR_IN_CONTAINER = "/etc/nginx/lb.d"


def strategy_names() -> list[str]:
    return list(STRATEGIES)


def arm_front_door(arm: Any, platform: str) -> dict[str, Any] | None:
    """What a run on ``platform`` of a scenario ``arm`` records about its front door (None: not the kit's nginx)."""
    if platform != "compose":
        return None
    weak = arm.weak.model_dump(mode="json") if arm.weak is not None else None
    return {"strategy": arm.lb.strategy if arm.lb is not None else DEFAULT, "weak": weak, "retry": arm.lb.retry if arm.lb is not None else True}


@dataclass(frozen=True)
class Member:
    """One server line: ``addr`` is ip:port; ``note`` a comment (replica name, CPU limit)."""

    addr: str
    weight: int = 1
    note: str = ""


def _server(m: Member, weighted: bool) -> str:
    weight = f" weight={m.weight}" if weighted else ""
    note = f"  # {m.note}" if m.note else ""
    return f"    server {m.addr}{weight} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;{note}"


def render_upstream(strategy: str, members: Sequence[Member]) -> str:
    """The ``upstream`` block for ``members`` (sorted by address, so equal sets give equal text)."""
    s = STRATEGIES[strategy]
    if not members:
        raise ValueError("an upstream block needs at least one server")
    lines = [f"# Written by scalelab: strategy {s.name} ({s.summary}).", "# nginx reads it when it starts and on each graceful reload (SIGHUP).", f"upstream {UPSTREAM} {{"]
    if s.directive:
        lines.append(f"    {s.directive}")
    lines += [_server(m, s.weights != "none") for m in sorted(members, key=lambda m: m.addr)]
    lines.append("}")
    return "\n".join(lines) + "\n"


def initial_upstream(strategy: str, host: str, port: int) -> str:
    """The block nginx starts with: the service name, resolved once at start (the kit lists replicas from its first look on)."""
    return render_upstream(strategy, [Member(f"{host}:{port}", 1, "every replica the name resolves to at start")])


_BACKEND = re.compile(r"set\s+\$backend\s+[^;]+;\s*proxy_pass\s+\$backend;")
_HTTP = re.compile(r"^http\s*\{", re.MULTILINE)


def front_door_conf(base: str) -> str:
    """compose/nginx.conf turned into the upstream strategies' front door.

    The per-request DNS backend (``set $backend ...; proxy_pass $backend;``) becomes
    ``proxy_pass http://agents;`` and the upstream block is included from the kit's folder;
    everything else (ports, timeouts, temp paths, the ``X-Scalelab-Upstream`` header) stays.
    """
    if not _BACKEND.search(base) or not _HTTP.search(base):
        raise ValueError("nginx.conf has no `set $backend ...; proxy_pass $backend;` in an http block to replace")
    text = _BACKEND.sub(f"proxy_pass http://{UPSTREAM};", base, count=1)
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):  # the base file's header describes the DNS backend
        lines.pop(0)
    text = "".join(lines)
    header = (
        "# Derived by scalelab from compose/nginx.conf for an upstream strategy (docs/load-balancing.md):\n"
        "# the backend is the upstream block in upstream.conf, which the kit rewrites from the replicas it\n"
        "# sees and nginx re-reads on a graceful reload (SIGHUP). Everything else is compose/nginx.conf.\n"
    )
    text = _HTTP.sub(f"http {{\n    include {LB_DIR_IN_CONTAINER}/upstream.conf;", text, count=1)
    return header + text


_PROXY_PASS = re.compile(r"^([ \t]*)proxy_pass\s+[^;]+;[^\n]*$", re.MULTILINE)


def without_retry(conf: str) -> str:
    """``conf`` with the retry on the next replica turned off (an arm's ``lb: {retry: false}``).

    nginx's default (``proxy_next_upstream error timeout``) passes a request whose replica refused
    the connection or timed out to the next address; ``off`` hands the client the 502 instead, which
    shows what a rollout costs without a retrying front door (docs/rollouts.md, the fix ladder).
    """
    match = _PROXY_PASS.search(conf)
    if match is None:
        raise ValueError("nginx.conf has no proxy_pass line to add `proxy_next_upstream off;` after")
    line = f"\n{match.group(1)}proxy_next_upstream off;   # lb.retry false: the client gets the 502 of a refused replica"
    header = "# Written by scalelab with proxy_next_upstream off (the arm's lb.retry is false).\n"
    return header + conf[: match.end()] + line + conf[match.end():]


def limit_weights(limits: Sequence[float]) -> list[int]:
    """Weights proportional to CPU limits, the largest 100 (at least 1 each)."""
    top = max(limits, default=0.0)
    if top <= 0:
        return [1 for _ in limits]
    return [max(1, round(100 * limit / top)) for limit in limits]
