"""Each request of a simulated run, through the platform's front door to one replica life.

Used when a scenario has faults or a rollout (`scalelab.sim.disruptions`): the outcome of a
request depends on which replica it meets and what that replica is doing at that moment, which
the per-second fluid model cannot say. Per request, in arrival order:

- **compose and Swarm (nginx)**: nginx resolves the service name (Docker's DNS: every running
  container on compose, healthy tasks on Swarm) when its cached answer is older than 1 s
  (``resolver ... valid=1s``), so it may still list a container that is gone, or not yet a new one,
  and tries the addresses in a random order; a refused connection goes to the next address at
  once, one whose container is gone after ``proxy_connect_timeout`` (2 s) (``proxy_next_upstream
  error timeout``; not with ``lb.retry: false``); none left (or no address at all) is a 502, a
  504 when the last one timed out. nginx opens a new upstream connection per request.
- **Kubernetes (kube-proxy)**: a new connection lands on a random endpoint and is not retried:
  a replica that does not accept is a refused connection for the client; a deleted pod's address
  (its sandbox gone, the endpoint not yet) answers nothing: a client timeout. With kept-alive client
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

from scalelab.sim.lifecycle import INF, Life, Platform

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
    the next address after a refused or timed-out connection (``lb.retry: false`` turns it off)."""
    rng = random.Random(seed * 104729 + 3 + 1_000_003 * draw)
    tm = platform.timings
    net = tm.net_s
    nginx = platform.name != "kubernetes"
    pinned = keep_alive and not nginx
    conns: list[_Conn] = []
    rows: list[dict[str, Any]] = []
    lives = platform.lives
    resolved: tuple[float, list[Life]] = (-INF, [])  # nginx's cached answer for the service name: when, what
    for t in arrivals:
        if t >= platform.front_door_down:  # the port on 127.0.0.1 is gone with its host
            rows.append(_row(t + net, net, False, 0, error=ERROR_TEXT["refused"]))
            continue
        if nginx:
            if t - resolved[0] >= tm.nginx_resolver_valid_s:  # nginx asks Docker's DNS again (resolver ... valid=1s)
                lag = tm.swarm_dns_lag_s if platform.name == "swarm" else 0.0
                resolved = (t, [x for x in lives if x.routed_from <= t < x.routed_until + lag])
            rows.append(_through_nginx(platform, t, list(resolved[1]), rng, timeout_s, retry))
            continue
        conn = _reuse(conns, t, keepalive_idle_s) if pinned else None
        if conn is not None:
            target = conn.life
        else:
            routed = [x for x in lives if x.routed(t)]
            if not routed:  # no endpoint: kube-proxy rejects the connection
                rows.append(_row(t + net, net, False, 0, error=ERROR_TEXT["refused"]))
                continue
            target = rng.choice(routed)
            if target.terminating <= t and t >= target.dead + tm.pod_sandbox_s:  # its address is gone: nothing answers the SYN
                rows.append(_row(t + timeout_s, timeout_s, False, 0, error=ERROR_TEXT["timeout"]))
                continue
            if not target.accepting(t):
                rows.append(_row(t + net, net, False, 0, error=ERROR_TEXT["refused"]))
                continue
            if pinned and (client_connections is None or len(conns) < client_connections):
                conn = _Conn(target, t)
                conns.append(conn)
        done = _serve_one(target, t, t + net, platform.service_s, timeout_s, net, nginx=False)
        rows.append(done)
        if conn is not None:
            if done["ok"]:
                conn.free_from = done["t_s"]
            else:
                conns.remove(conn)
    rows.sort(key=lambda r: r["t_s"])
    return rows


def _through_nginx(platform: Platform, t: float, listed: list[Life], rng: random.Random, timeout_s: float, retry: bool) -> dict[str, Any]:
    """nginx: the addresses of its cached answer (``listed``), in a random order; a refused
    connection goes to the next one at once, an address whose container is gone after
    ``proxy_connect_timeout``; each failure goes to the next address unless ``retry`` is off; none
    left: 502, or 504 when the last one timed out."""
    tm = platform.timings
    net = tm.net_s
    rng.shuffle(listed)
    at, last = t + net, ""
    for life in listed if retry else listed[:1]:
        if life.dead <= at:  # its address is gone: the connection times out
            at, last = at + tm.nginx_connect_timeout_s, "timeout"
            continue
        if not life.accepting(at):
            at, last = at + net, "refused"
            continue
        return _serve_one(life, t, at, platform.service_s, timeout_s, net, nginx=True)
    if at - t >= timeout_s:
        return _row(t + timeout_s, timeout_s, False, 0, error=ERROR_TEXT["timeout"])
    code = 504 if last == "timeout" else 502
    return _row(at + net, at + net - t, False, code, error=ERROR_TEXT["5xx"].format(code=code))


def _reuse(conns: list[_Conn], t: float, idle_s: float) -> _Conn | None:
    """The kept-alive connection freed last that the agent has not closed; drops closed ones."""
    conns[:] = [c for c in conns if not (c.free_from <= t and (t - c.free_from >= idle_s or c.life.closed <= t or c.life.dead <= t))]
    idle = [c for c in conns if c.free_from <= t]
    if not idle:
        return None
    conn = max(idle, key=lambda c: c.free_from)
    conn.free_from = float("inf")  # busy until the request ends
    return conn


def _serve_one(life: Life, t: float, at: float, service_s: float, timeout_s: float, net: float, *, nginx: bool) -> dict[str, Any]:
    """A request the client sent at ``t`` reaches ``life`` at ``at``: FIFO behind what it holds."""
    start = max(at, life.free_at)
    finish = start + service_s
    give_up = t + timeout_s
    if life.hung <= finish:  # stopped before it answered: the client waits out its timeout
        life.free_at = max(life.free_at, finish)
        return _row(give_up, timeout_s, False, 0, error=ERROR_TEXT["timeout"])
    life.free_at = finish
    if finish > life.dead and life.graceful and at < life.closed and finish <= life.grace_until:
        life.dead = finish  # SIGTERM: the agent finishes what it accepted before it exits
    if finish > life.dead:  # killed (or SIGKILLed after its grace period) while holding it
        cut = max(at, life.dead)
        if cut >= give_up:
            return _row(give_up, timeout_s, False, 0, error=ERROR_TEXT["timeout"])
        if nginx:
            return _row(cut + net, cut + net - t, False, 502, error=ERROR_TEXT["5xx"].format(code=502))
        return _row(cut, cut - t, False, 0, error=ERROR_TEXT["reset"])
    if finish + net - t > timeout_s:
        return _row(give_up, timeout_s, False, 0, error=ERROR_TEXT["timeout"])
    return _row(finish + net, finish + net - t, True, 200, life.name, life.version)
