"""Hosts with their own capacity (a scenario's ``hosts:``): Docker-in-Docker hosts (`dind`), what
the scenario says about them (`spec`) and their per-second figures for ``hosts.csv`` (`meter`).

docs/hosts.md explains them; lab 09 uses them.
"""

from scalelab.hosts.spec import HostSpec, host_specs, parse_memory

__all__ = ["HostSpec", "host_specs", "parse_memory"]
