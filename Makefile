# scalelab — one target per lab step. `make` alone prints this help.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON   ?= python3
VENV     ?= .venv
SCALELAB ?= $(VENV)/bin/scalelab
PYTEST   ?= $(VENV)/bin/python -m pytest
SCENARIO ?= classroom-spike
N        ?= 8
RUNS     ?= runs
PLATFORM ?= compose
SEED     ?= 7
# lab 07: one front-door strategy (random|round-robin|least-conn|random-two|weighted|resource-aware)
STRATEGY ?= least-conn
# make setup WHEELHOUSE=wheelhouse installs with no network from a folder `make wheelhouse` filled
WHEELHOUSE ?=
# lab 12 (density): MODE=runtime|network|workload, PROFILE=host|laptop|ci
MODE     ?= runtime
PROFILE  ?= host
# Another cluster than kind's: KUBECONFIG=... (read by scalelab) and KUBE_CONTEXT=...
KUBE_CONTEXT ?=
KUBEFLAGS := $(if $(KUBE_CONTEXT),--context $(KUBE_CONTEXT))

STAMP := $(VENV)/.installed

.PHONY: help setup wheelhouse jupyter demo sim bench test test-unit lint format doctor image clean \
        lab00-doctor slides watch lab01-up lab01-load lab02-spike scale lab-down lab03-cluster lab03-deploy lab03-spike kind-node-image \
        report lab05-whatif lab05-faults lab06-sim lab06-run lab06-cooldowns lab07-run lab07-runs lab07-table lab99-cleanup test-cluster-up test-cluster-down \
        lab08-up lab08-spike lab08-sim lab09-compose lab09-swarm lab09-kubernetes lab09-table lab09-report \
        lab12-plan lab12-run lab12-pods lab12-show \
        lab10-compose lab10-swarm lab10-kubernetes lab10-crashloop lab10-table faults-table lab11-compose-recreate lab11-compose-double lab11-kubernetes lab11-kubernetes-naive lab11-swarm lab11-table lab11-report lab11-ladder

help: ## Show this help (colours only on a terminal)
	@if [ -t 1 ]; then on='\033[36m'; off='\033[0m'; fi; awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "; printf "scalelab — make targets (one per lab step)\n\n"} /^[a-zA-Z0-9_-]+:.*## / {printf "  %s%-18s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) scripts/setup_venv.py $(VENV) $(if $(WHEELHOUSE),--wheelhouse $(WHEELHOUSE))

## ---------------------------------------------------------------- basics
setup: $(STAMP) ## Create .venv and install the kit with its extras (~130 MB download, 700 MB installed; WHEELHOUSE=DIR: no network)

wheelhouse: ## Download every Python package setup needs into wheelhouse/ (copy it; then make setup WHEELHOUSE=wheelhouse)
	$(PYTHON) scripts/setup_venv.py --build-wheelhouse $(or $(WHEELHOUSE),wheelhouse)

jupyter: $(STAMP) ## Open the notebooks in Jupyter Lab on 127.0.0.1 (they read the committed recorded runs)
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 --notebook-dir=notebooks

demo: $(STAMP) ## Simulate the classroom spike on compose and on Kubernetes (no Docker needed) and compare
	$(SCALELAB) demo --runs-dir $(RUNS)

test: $(STAMP) ## Run unit and integration tests (integration tests skip without Docker/cluster, fail in CI)
	$(PYTEST) tests -q

lint: $(STAMP) ## Lint (ruff) and type-check (mypy, 0 errors on src/)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

format: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff format src tests benchmarks

test-unit: $(STAMP) ## Run the fast, hermetic unit tests only
	$(PYTEST) tests/unit -q

doctor: $(STAMP) ## Check this machine for a lab path: PLATFORM=sim|compose|swarm|kubernetes (default compose)
	$(SCALELAB) doctor --platform $(PLATFORM)

lab00-doctor: $(STAMP) ## Lab 00: the same check as `make doctor` (PLATFORM=sim|compose|swarm|kubernetes)
	$(SCALELAB) doctor --platform $(PLATFORM)

image: $(STAMP) ## Build the ai-agent and load-balancer images (offline path when no registry is reachable)
	$(SCALELAB) image

clean: $(STAMP) ## Remove what the kit started (compose projects, run namespaces); keeps runs/ and the kind cluster
	$(SCALELAB) clean $(KUBEFLAGS)

sim: $(STAMP) ## Simulate a scenario without Docker: SCENARIO=classroom-spike|day|FILE.yaml, SEED=7
	$(SCALELAB) sim $(SCENARIO) --seed $(SEED) --runs-dir $(RUNS) --figure

bench: $(STAMP) ## Print the benchmark figures (agent overhead, simulator speed, sampler cost)
	@for b in benchmarks/*.py; do echo "--- $$b"; $(VENV)/bin/python $$b || exit 1; done

## ---------------------------------------------------------------- labs 01-02: docker compose, scaled by hand
lab01-up: $(STAMP) ## Lab 01: start 3 ai-agent replicas behind nginx on 127.0.0.1:8080 (compose)
	$(SCALELAB) up compose --scenario $(SCENARIO)

lab01-load: $(STAMP) ## Lab 01: one minute of steady load on the running service, recorded under runs/
	$(SCALELAB) load compose --seconds 60 --scenario $(SCENARIO) --runs-dir $(RUNS)

lab02-spike: $(STAMP) ## Lab 02: the classroom spike on compose, scaled by hand (about 4.5 minutes)
	$(SCALELAB) run $(SCENARIO) --arm compose-manual --runs-dir $(RUNS)

scale: $(STAMP) ## Scale the running service by hand: make scale N=8 [PLATFORM=swarm|kubernetes] (a live event during a run)
	$(SCALELAB) scale $(PLATFORM) $(N)

lab-down: $(STAMP) ## Remove the lab services on compose, Swarm and Kubernetes (a no-op when nothing runs)
	$(SCALELAB) clean $(KUBEFLAGS)

## ---------------------------------------------------------------- lab 03: Kubernetes + HPA
lab03-cluster: $(STAMP) ## Lab 03: create the kind cluster (1 control plane + 2 workers), load the image, install metrics-server
	$(SCALELAB) cluster up

kind-node-image: $(STAMP) ## Lab 03 without a registry: build the kind node image here (root; Go, Debian archive; cached)
	PYTHON=$(VENV)/bin/python bash k8s/node-image/build.sh

lab03-deploy: $(STAMP) ## Lab 03: deploy the ai-agent with its HPA into a fresh namespace
	$(SCALELAB) up kubernetes --scenario $(SCENARIO) $(KUBEFLAGS)

lab03-spike: $(STAMP) ## Lab 03: the classroom spike on Kubernetes + HPA, recorded under runs/ (replaces the lab03-deploy namespace)
	$(SCALELAB) down kubernetes $(KUBEFLAGS) && $(SCALELAB) run $(SCENARIO) --arm kubernetes-hpa --runs-dir $(RUNS) $(KUBEFLAGS)

## ---------------------------------------------------------------- labs 04-05 and 99
report: $(STAMP) ## Lab 04: compare the latest run of each arm (RUNS=tests/fixtures/runs: the committed ones): charts, report.html, table
	$(SCALELAB) report --runs-dir $(RUNS) --out reports/latest

watch: $(STAMP) ## Live charts of the newest run under runs/ on http://127.0.0.1:8765/ (start it while a run records)
	$(SCALELAB) watch --runs-dir $(RUNS)

slides: $(STAMP) ## Lab 04: the report plus one 1920x1080 projector slide per story in reports/latest/slides/
	$(SCALELAB) report --runs-dir $(RUNS) --out reports/latest --slides

lab05-whatif: $(STAMP) ## Lab 05: what if the HPA target were 30/50/70/90%? (simulated, seconds)
	$(SCALELAB) whatif $(SCENARIO) --arm kubernetes-hpa --vary target_cpu_pct=30,50,70,90 --compare-with compose-manual

lab05-faults: $(STAMP) ## Lab 05: what if a replica hangs (FAULT=kill|crash|hang)? compose vs Kubernetes in the simulator (seconds)
	$(SCALELAB) sim ci-faults --runs-dir $(RUNS) --set faults.0.kind=$(or $(FAULT),hang) --no-figure

lab06-sim: $(STAMP) ## Lab 06: the home-made threshold autoscaler with cooldowns 0, 30 and 120 s beside the operator and the HPA (simulated, seconds)
	$(SCALELAB) sim classroom-spike --runs-dir $(RUNS) --no-figure

lab06-run: $(STAMP) ## Lab 06: the threshold autoscaler on real compose (ci-spike, 2.5 minutes), recorded under runs/
	$(SCALELAB) run ci-spike --arm compose-threshold --runs-dir $(RUNS)

lab06-cooldowns: $(STAMP) ## Lab 06: the classroom spike on real compose with cooldowns 0, 30 and 120 s, recorded under runs/ (3 x 4.5 minutes)
	for arm in compose-threshold-0s compose-threshold compose-threshold-120s; do $(SCALELAB) run classroom-spike --arm $$arm --runs-dir $(RUNS) || exit 1; done

## ---------------------------------------------------------------- lab 07: load-balancing strategies (compose front door)
lab07-run: $(STAMP) ## Lab 07: one front-door strategy on unequal replicas, real compose (1.5 minutes): STRATEGY=least-conn|round-robin|...
	$(SCALELAB) run unequal-replicas --arm compose-$(STRATEGY) --runs-dir $(RUNS)

lab07-runs: $(STAMP) ## Lab 07: every strategy in turn on the same unequal replicas (about 9 minutes), recorded under runs/
	for s in random round-robin least-conn random-two weighted resource-aware; do $(SCALELAB) run unequal-replicas --arm compose-$$s --runs-dir $(RUNS) || exit 1; done

lab07-table: $(STAMP) ## Lab 07: p95, errors and per-replica spread per strategy (RUNS=tests/fixtures/runs/lb: the committed runs)
	$(SCALELAB) strategies --runs-dir $(RUNS)

lab99-cleanup: $(STAMP) ## Lab 99: remove everything the kit started, the kind cluster included (keeps runs/)
	$(SCALELAB) clean --cluster $(KUBEFLAGS)

## ---------------------------------------------------------------- lab 08: Docker Swarm, scaled by hand
lab08-up: $(STAMP) ## Lab 08: a single-node swarm, 3 ai-agent tasks (a stack) behind nginx on 127.0.0.1:8090
	$(SCALELAB) up swarm --scenario $(SCENARIO)

lab08-spike: $(STAMP) ## Lab 08: the classroom spike on Swarm, scaled by hand, recorded under runs/ (replaces the lab08-up stack; about 4.5 minutes)
	$(SCALELAB) down swarm && $(SCALELAB) run $(SCENARIO) --arm swarm-manual --runs-dir $(RUNS)

lab08-sim: $(STAMP) ## Lab 08: the Swarm arm in the simulator at the recorded run's 1-core budget (seconds, no Docker)
	$(SCALELAB) sim $(SCENARIO) --arm swarm-manual --cpu-budget 1 --seed $(SEED) --runs-dir $(RUNS) --no-figure

## ---------------------------------------------------------------- lab 09: one host is not enough
lab09-compose: $(STAMP) ## Lab 09: compose on Host A of two 0.8-CPU hosts, 10 replicas, Host B lost at 30 s (LOSE=A loses Host A; about 1.5 minutes)
	$(SCALELAB) run ci-hosts --arm compose-fixed --runs-dir $(RUNS)$(if $(LOSE), --set faults.0.host=$(LOSE))

lab09-swarm: $(STAMP) ## Lab 09: a swarm over two 0.8-CPU hosts (the engine manages), 6 tasks, Host B lost at 15 s (about 1.5 minutes)
	$(SCALELAB) run ci-swarm-hosts --arm swarm-hosts --runs-dir $(RUNS)

lab09-kubernetes: $(STAMP) ## Lab 09: the kind cluster's two workers as 0.5-CPU hosts A and B, 4 pods, B's node container killed at 8 s (after make lab03-cluster; about 2 minutes)
	$(SCALELAB) run ci-node-loss --arm kubernetes-fixed --runs-dir $(RUNS)

lab09-table: $(STAMP) ## Lab 09: what each host did in every ci-hosts, ci-swarm-hosts and ci-node-loss run under runs/: CPU in % of its cap, replicas, when it was lost
	$(VENV)/bin/python -m scalelab.hosts $(sort $(wildcard $(RUNS)/*-ci-hosts-* $(RUNS)/*-ci-swarm-hosts-* $(RUNS)/*-ci-node-loss-*))

lab09-report: $(STAMP) ## Lab 09: the Host A / Host B chart (and the others) of every ci-hosts, ci-swarm-hosts and ci-node-loss run under runs/, in reports/lab09
	$(SCALELAB) report $(sort $(wildcard $(RUNS)/*-ci-hosts-* $(RUNS)/*-ci-swarm-hosts-* $(RUNS)/*-ci-node-loss-*)) --out reports/lab09

## ---------------------------------------------------------------- lab 10: self-healing under load
lab10-compose: $(STAMP) ## Lab 10: one replica of two gets FAULT=kill|crash|hang (default kill) at 15 s under load, on compose (ci-faults, 1 minute)
	$(SCALELAB) run ci-faults --arm compose-fixed --runs-dir $(RUNS) --set faults.0.kind=$(or $(FAULT),kill)

lab10-swarm: $(STAMP) ## Lab 10: the same FAULT on a single-node Swarm (restart_policy any, healthcheck): Swarm replaces the task
	$(SCALELAB) run ci-faults --arm swarm-fixed --runs-dir $(RUNS) --set faults.0.kind=$(or $(FAULT),kill)

lab10-kubernetes: $(STAMP) ## Lab 10: the same FAULT on Kubernetes (kill: the pod deleted with grace period 0; crash, hang: restarted in place)
	$(SCALELAB) run ci-faults --arm kubernetes-fixed --runs-dir $(RUNS) --set faults.0.kind=$(or $(FAULT),kill) $(KUBEFLAGS)

lab10-crashloop: $(STAMP) ## Lab 10: one replica crashed at 10, 16 and 30 s on PLATFORM=compose|swarm|kubernetes (default kubernetes): restarts and back-off
	$(SCALELAB) run ci-crashloop --arm $(or $(PLATFORM),kubernetes)-fixed --runs-dir $(RUNS) $(if $(filter kubernetes,$(or $(PLATFORM),kubernetes)),$(KUBEFLAGS))

lab10-table: $(STAMP) ## Lab 10: failed requests, error window and time to recovery of every ci-faults and ci-crashloop run under runs/
	$(VENV)/bin/python -m scalelab.faults $(wildcard $(RUNS)/*-ci-faults-* $(RUNS)/*-ci-crashloop-*)

faults-table: $(STAMP) ## Issue 14's platform x (kill, crash, hang, node loss, rollout) table from the committed runs (faults, rollouts, the multi-host node losses)
	$(VENV)/bin/python -m scalelab.faults.matrix

## ---------------------------------------------------------------- lab 11: rolling updates under load
lab11-compose-recreate: $(STAMP) ## Lab 11: v1 -> v2 with `docker compose up -d` under load (ci-rollout, 1 minute), recorded under runs/
	$(SCALELAB) run ci-rollout --arm compose-recreate --runs-dir $(RUNS)

lab11-compose-double: $(STAMP) ## Lab 11: v1 -> v2 by scaling to 2x, then retiring the old replicas (ci-rollout, 1 minute)
	$(SCALELAB) run ci-rollout --arm compose-double --runs-dir $(RUNS)

lab11-kubernetes: $(STAMP) ## Lab 11: the Deployment's rolling update with readiness, preStop and drain (ci-rollout, 1 minute)
	$(SCALELAB) run ci-rollout --arm kubernetes-rolling --runs-dir $(RUNS) $(KUBEFLAGS)

lab11-kubernetes-naive: $(STAMP) ## Lab 11: the same rollout without readiness or preStop, one pod allowed missing
	$(SCALELAB) run ci-rollout --arm kubernetes-naive --runs-dir $(RUNS) $(KUBEFLAGS)

lab11-swarm: $(STAMP) ## Lab 11: docker service update --image, ORDER=stop-first|start-first (default stop-first)
	$(SCALELAB) run ci-rollout --arm swarm-$(or $(ORDER),stop-first) --runs-dir $(RUNS)

lab11-table: $(STAMP) ## Lab 11: what each recorded rollout lost (every ci-rollout run under runs/)
	$(VENV)/bin/python -m scalelab.rollout $(wildcard $(RUNS)/*-ci-rollout-*)

lab11-ladder: $(STAMP) ## Lab 11: the fix ladder: one ci-rollout per rung, then its table (LADDER=kubernetes|compose: one platform; about 12 minutes)
	$(VENV)/bin/python -m scalelab.rollout.ladder record --runs-dir $(RUNS) $(if $(LADDER),--platform $(LADDER)) -- $(KUBEFLAGS)

lab11-report: $(STAMP) ## Lab 11: the report of the rollout runs (rollout windows shaded) in reports/lab11/
	$(SCALELAB) report --runs-dir $(RUNS) --out reports/lab11

## ---------------------------------------------------------------- lab 12: container density on one host
lab12-plan: $(STAMP) ## Lab 12: read this host's limits, predict the first wall per mode (changes nothing)
	$(SCALELAB) density plan

lab12-run: $(STAMP) ## Lab 12: ramp containers in batches until a stop rule, then remove them: MODE=runtime|network|workload PROFILE=host|laptop|ci
	$(SCALELAB) density run --mode $(MODE) --profile $(PROFILE)

lab12-pods: $(STAMP) ## Lab 12: fill one Kubernetes node past maxPods ("Too many pods"); pod start latency vs the 5 s objective
	$(SCALELAB) density pods $(KUBEFLAGS)

lab12-show: $(STAMP) ## Lab 12: the figures and the latency-against-N chart of the latest density runs
	$(SCALELAB) density show --out reports/density.png

## ---------------------------------------------------------------- test infrastructure (developers, CI)
test-cluster-up: ## Build (cached) and start the single-node Kubernetes used by integration tests
	bash tests/cluster/cluster.sh up

test-cluster-down: ## Stop the test cluster and remove its state
	bash tests/cluster/cluster.sh down
