"""Where the replicas run: docker compose on one host, or Kubernetes (kind or any kubeconfig)."""

from scalelab.platforms.base import Observation, Platform

__all__ = ["Observation", "Platform"]
