"""The compose arm's front door: load-balancing strategies for the kit's nginx (docs/load-balancing.md).

`strategies` names them and renders nginx's configuration (pure), `weights` computes the
resource-aware weights (pure), `controller` keeps the upstream block in step with the replicas
and reloads nginx gracefully.
"""

from scalelab.lb.strategies import DEFAULT, STRATEGIES, strategy_names

__all__ = ["DEFAULT", "STRATEGIES", "strategy_names"]
