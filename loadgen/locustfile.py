"""Locust tasks for the ai-agent. Tasks only: the shape and the recorder come from the package.

Started by `scalelab run` (src/scalelab/load/locust.py) as
``python -m locust -f loadgen/locustfile.py --headless ... ChatUser|ArrivalUser`` with the
``SCALELAB_*`` variables of `scalelab.load.plan`; not meant to be run by hand.

- ``ChatUser`` (closed loop, ``load.mode: closed``): each user sends at most ``user_rps``
  requests/s and waits for each answer, so a saturated target slows the load down.
- ``ArrivalUser`` (open loop, ``load.mode: open``): one user fires requests in their own
  greenlets at the profile's arrival rate whatever the answers take (Locust has no arrival-rate
  mode), with at most ``SCALELAB_MAX_IN_FLIGHT`` unanswered; beyond that an arrival is dropped
  and recorded as an error.

Connections (``load.connections``, ``load.client_connections``; docs/connections.md): by default
each closed-loop user keeps its own connection alive and the open loop keeps a pool alive;
``per-request`` sends ``Connection: close`` so every request opens a new TCP connection (and a
Kubernetes Service balances every request); ``client_connections: N`` makes all users share N
connections (requests wait for a free one, and that wait counts in their latency).
"""

from __future__ import annotations

import gevent
from geventhttpclient.client import HTTPClientPool
from locust import FastHttpUser, constant, constant_throughput, events, task

from scalelab.load.plan import LoadPlan
from scalelab.load.shape import RequestRecorder, shape_class

PLAN = LoadPlan.from_env()
RECORDER = RequestRecorder(PLAN)
ScenarioShape = shape_class(PLAN)
MESSAGE = {"message": "How many replicas does this service need right now?"}
HEADERS = PLAN.connection_headers
SHARED_POOL = HTTPClientPool(concurrency=PLAN.client_connections) if PLAN.client_connections else None

events.request.add_listener(RECORDER.on_request)
events.init.add_listener(lambda environment, **_: RECORDER.start(environment))
events.quitting.add_listener(RECORDER.close)


class ChatUser(FastHttpUser):
    """Closed loop: one simulated user."""

    wait_time = constant_throughput(PLAN.user_rps)
    network_timeout = PLAN.timeout_s
    connection_timeout = PLAN.timeout_s
    max_retries = 0
    client_pool = SHARED_POOL

    @task
    def chat(self) -> None:
        self.client.post("/chat", json=MESSAGE, name="/chat", headers=HEADERS)


class ArrivalUser(FastHttpUser):
    """Open loop: the arrival process of the whole run."""

    wait_time = constant(1)
    network_timeout = PLAN.timeout_s
    connection_timeout = PLAN.timeout_s
    concurrency = PLAN.client_connections or PLAN.max_in_flight
    max_retries = 0

    @task
    def arrivals(self) -> None:
        for _ in PLAN.arrivals(sleep=gevent.sleep):
            if RECORDER.in_flight >= PLAN.max_in_flight:
                RECORDER.record_dropped()
                continue
            RECORDER.in_flight += 1
            gevent.spawn(self._one)
        gevent.sleep(PLAN.duration_s + PLAN.drain_s)  # load is over: idle until the shape ends the test

    def _one(self) -> None:
        try:
            self.client.post("/chat", json=MESSAGE, name="/chat", headers=HEADERS)
        finally:
            RECORDER.in_flight -= 1
