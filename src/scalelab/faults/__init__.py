"""Faults injected during a recorded run, and what they cost (issue 14, docs/faults.md).

- `inject`: one small hook per platform that kills, crashes or hangs one replica, chosen by the
  scenario's seed; the runner calls it at each fault's ``at_s`` and logs a ``fault`` event on the
  run's time axis.
- `measure`: pure functions over ``requests.csv``, ``events.csv`` and ``samples.csv``: failed
  requests by class, the error window, time to recovery, p99 and max latency in the window.
"""
