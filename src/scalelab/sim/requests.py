"""Each request of a simulated run, through the platform's front door to one replica life.

Used when a scenario has faults or a rollout (`scalelab.sim.disruptions`): the outcome of a
request depends on which replica it meets and what that replica is doing at that moment, which
the per-second fluid model cannot say. Per request, in arrival order:

- **compose and Swarm (nginx)**: nginx resolves the service name (Docker's DNS: every running
  container on compose, healthy tasks on Swarm) and tries the addresses in a random order; a
  refused connection goes to the next address (``proxy_next_upstream error``; not with
  ``lb.retry: false``), none left (or no address at all) is a 502. nginx opens a new upstream connection per request.
- **Kubernetes (kube-proxy)**: a new connection lands on a random endpoint and is not retried:
  a replica that does not accept is a refused connection for the client. With kept-alive client
  connections (``load.connections: keep-alive``) a request reuses the connection freed last
  (the pool is LIFO) unless the agent closed it (idle ``keepalive_idle_s``, or stopping); only a
  new connection is balanced.
- The replica serves FIFO with one worker, ``S = work_ms / min(cpu_limit, 1)`` a request. A
  request it holds when it is killed fails then (nginx: 502; Kubernetes: reset); a hung replica
  answers nothing (the client gives up at ``timeout_s``: timeout); a request that would finish
  after the client's timeout is a timeout.

The rows are `requests.csv` rows (``t_s`` = completion), with the error texts the load generator
writes, so `scalelab.faults.measure.classify` sorts them the same way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scalelab.sim.lifecycle import Life, Platform

__all__ = ["serve", "ERROR_TEXT"]

#: what the load generator writes for each failure class
ERROR_TEXT = {
    "5xx": "LocustBadStatusCode: URL http://127.0.0.1/chat: code={code} (simulated)",
    "refused": "ConnectionRefusedError: [Errno 111] Connection refused (simulated)",
    "reset": "ConnectionResetError: [Errno 104] Connection reset by peer (simulated)",
    "timeout": "TimeoutError: timed out (simulated)",
}


@dataclass
class _Conn:
    life: Life
    free_from: float


def _row(t: float, latency_s: float, ok: bool, code: int, replica: str = "", version: str = "", error: str = "") -> dict[str, Any]:
    return {"t_s": round(t, 4), "response_ms": round(1000.0 * latency_s, 2), "ok": int(ok), "status_code": code, "replica": replica,
            "version": version, "error": error}


def serve(platform: Platform, arrivals: Sequence[float], *, timeout_s: float, keep_alive: bool, keepalive_idle_s: float = 5.0,
          client_connections: int | None = None, seed: int = 0, draw: int = 0, retry: bool = True) -> list[dict[str, Any]]:
    """The outcome of every arrival (requests.csv rows in completion order). ``retry``: nginx tries
    the next address after a refused connection (``lb.retry: false`` turns it off: a 502)."""
    rng = random.Random(seed * 104729 + 3 + 1_000_003 * draw)
    net = platform.timings.net_s
    service_s = platform.service_s
    nginx = platform.name != "kubernetes"
    pinned = keep_alive and not nginx
    conns: list[_Conn] = []
    rows: list[dict[str, Any]] = []
    lives = platform.lives
    for t in arrivals:
        if t >= platform.front_door_down:  # the port on 127.0.0.1 is gone with its host
            rows.append(_row(t + net, net, False, 0, error=ERROR_TEXT["refused"]))
            continue
        routed = [x for x in lives if x.routed(t)]
        target: Life | None = None
        conn: _Conn | None = None
        if nginx:
            rng.shuffle(routed)
            target = next((x for x in (routed if retry else routed[:1]) if x.accepting(t)), None)
            if target is None:  # nothing accepts (or no address): nginx answers 502 at once
                rows.append(_row(t + net, net, False, 502, error=ERROR_TEXT["5xx"].format(code=502)))
                continue
        else:
            conn = _reuse(conns, t, keepalive_idle_s) if pinned else None
            if conn is not None:
                target = conn.life
            else:
                if not routed:  # no endpoint: kube-proxy rejects the connection
                    rows.append(_row(t + net, net, False, 0, error=ERROR_TEXT["refused"]))
                    continue
                target = rng.choice(routed)
                if not target.accepting(t):
                    rows.append(_row(t + net, net, False, 0, error=ERROR_TEXT["refused"]))
                    continue
                if pinned and (client_connections is None or len(conns) < client_connections):
                    conn = _Conn(target, t)
                    conns.append(conn)
        done = _serve_one(target, t, service_s, timeout_s, net, nginx)
        rows.append(done)
        if conn is not None:
            if done["ok"]:
                conn.free_from = done["t_s"]
            else:
                conns.remove(conn)
    rows.sort(key=lambda r: r["t_s"])
    return rows


def _reuse(conns: list[_Conn], t: float, idle_s: float) -> _Conn | None:
    """The kept-alive connection freed last that the agent has not closed; drops closed ones."""
    conns[:] = [c for c in conns if not (c.free_from <= t and (t - c.free_from >= idle_s or c.life.closed <= t or c.life.dead <= t))]
    idle = [c for c in conns if c.free_from <= t]
    if not idle:
        return None
    conn = max(idle, key=lambda c: c.free_from)
    conn.free_from = float("inf")  # busy until the request ends
    return conn


def _serve_one(life: Life, t: float, service_s: float, timeout_s: float, net: float, nginx: bool) -> dict[str, Any]:
    start = max(t + net, life.free_at)
    finish = start + service_s
    give_up = t + timeout_s
    if life.hung <= finish:  # frozen before it answered: the client waits out its timeout
        life.free_at = max(life.free_at, finish)
        return _row(give_up, timeout_s, False, 0, error=ERROR_TEXT["timeout"])
    life.free_at = finish
    if finish > life.dead and life.graceful and t < life.closed and finish <= life.grace_until:
        life.dead = finish  # SIGTERM: the agent finishes what it accepted before it exits
    if finish > life.dead:  # killed (or SIGKILLed after its grace period) while holding it
        at = max(t + net, life.dead)
        if at >= give_up:
            return _row(give_up, timeout_s, False, 0, error=ERROR_TEXT["timeout"])
        if nginx:
            return _row(at + net, at + net - t, False, 502, error=ERROR_TEXT["5xx"].format(code=502))
        return _row(at, at - t, False, 0, error=ERROR_TEXT["reset"])
    if finish + net - t > timeout_s:
        return _row(give_up, timeout_s, False, 0, error=ERROR_TEXT["timeout"])
    return _row(finish + net, finish + net - t, True, 200, life.name, life.version)
