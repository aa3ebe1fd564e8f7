"""Rollouts under load: every replica moves from v1 to v2 during a recorded run (issue 14, docs/rollouts.md).

- `strategies`: what each platform implements (read by the scenario model; no imports);
- `act`: one small hook per platform that performs the rollout, and the schedule the runner fires
  at ``rollout.at_s`` (in a background thread, so sampling never stalls);
- `measure`: pure functions over ``requests.csv`` and ``events.csv``: wall time, failed requests by
  class, the error window, which version answered when.
"""
