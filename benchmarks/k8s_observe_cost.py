"""What one Kubernetes sample costs: API calls and wall time of `KubernetesPlatform.observe()`.

Brings up the ci-spike HPA arm (2 replicas) in a fresh namespace of the cluster given by
--kubeconfig/--context (default: kind-scalelab), samples N times once a second, prints the
figures and removes the namespace.

    .venv/bin/python benchmarks/k8s_observe_cost.py --kubeconfig ~/.cache/scalelab/test-cluster/kubeconfig --context scalelab-test
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from scalelab.platforms.kubernetes import KubernetesPlatform
from scalelab.scenario import load_scenario
from scalelab.telemetry.store import new_run_id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubeconfig")
    ap.add_argument("--context")
    ap.add_argument("--samples", type=int, default=30)
    args = ap.parse_args()
    if args.kubeconfig is None and args.context is None:
        # CI (.ci/run) runs benchmarks without arguments: use the test cluster when there is one
        from pathlib import Path

        test_kc = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scalelab" / "test-cluster" / "kubeconfig"
        if test_kc.is_file():
            args.kubeconfig, args.context = str(test_kc), "scalelab-test"
    print(f"cluster: {args.kubeconfig or '~/.kube/config'} context {args.context or 'kind-scalelab'}")

    scenario = load_scenario("ci-spike")
    p = KubernetesPlatform(scenario, "kubernetes-hpa", run_id=new_run_id(scenario.name, "bench"), kubeconfig=args.kubeconfig, context=args.context)
    p.preflight()
    p.up(2)
    try:
        p.wait_ready(2, timeout_s=180)
        rest = p.api.rest_client
        calls = 0
        original = rest.request

        def counting(*a, **kw):  # count every HTTP request the client sends
            nonlocal calls
            calls += 1
            return original(*a, **kw)

        rest.request = counting
        times = []
        for _ in range(args.samples):
            t0 = time.perf_counter()
            obs = p.observe()
            times.append(time.perf_counter() - t0)
            time.sleep(max(0.0, 1.0 - times[-1]))
        rest.request = original
        print(f"samples: {args.samples}, nodes with pods: {len({r['node'] for r in obs.placement})}")
        print(f"API calls per sample: {calls / args.samples:.2f}")
        print(f"observe() wall time: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
        print(f"kubelet CPU counter refresh (median): {p.cpu_resolution_s():.2f} s; held samples: {p._rates.held}")
    finally:
        p.down()


if __name__ == "__main__":
    main()
