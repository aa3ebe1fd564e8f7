from scalelab.platforms.base import lifecycle_events


def test_start_ready_stop_once_each() -> None:
    ev = lifecycle_events({}, set(), {"a": "n-a"}, set(), "docker")
    assert [(e["kind"], e["detail"]) for e in ev] == [("replica_start", "n-a")]
    ev = lifecycle_events({"a": "n-a"}, set(), {"a": "n-a", "b": "n-b"}, {"a"}, "docker")
    assert [(e["kind"], e["detail"], e["replicas"]) for e in ev] == [("replica_start", "n-b", 2), ("replica_ready", "n-a", 1)]
    ev = lifecycle_events({"a": "n-a", "b": "n-b"}, {"a"}, {"b": "n-b"}, set(), "swarm")
    assert [(e["kind"], e["detail"], e["source"]) for e in ev] == [("replica_stop", "n-a", "swarm")]
