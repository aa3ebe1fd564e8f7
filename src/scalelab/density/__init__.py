"""Container density on one host (lab 12): predict the first wall, ramp in batches, record, clean up.

Modules: `host` (read-only /proc and /sys readings), `plan` (limits -> walls), `containers` (the
Docker side), `ramp` (batches and stop rules), `record` (the run directory), `k8s` (pods per
node), `figure` (latency against N with the walls marked).
"""

from scalelab.density.figure import density_figure, summary
from scalelab.density.record import DensityRun, load_density

__all__ = ["DensityRun", "load_density", "density_figure", "summary"]
