"""How every figure of the kit looks: one colour per arm role, projector-sized text, one way to save.

**Colours.** An arm is coloured by its *role* — who decides the replica count — never by its
position in a list, so "the HPA" is the same blue in the report, the what-if chart, the slides
and the live view (Okabe-Ito, safe for every common colour-vision deficiency):

============ ====================================================== =========
role         arms                                                   colour
============ ====================================================== =========
manual       an operator scales by hand (``compose-manual``)        vermillion
swarm-manual an operator scales a Swarm service by hand             orange
threshold    the kit's home-made autoscaler                         green
hpa          the Kubernetes HorizontalPodAutoscaler (real or model) blue
fixed        a fixed count sized for the peak                       purple
============ ====================================================== =========

The operator on Swarm gets a role of its own: in the three-arm comparison (compose, Swarm,
Kubernetes) both manual arms are on screen at once and must not read as one arm and its repeat.
Orange sits next to vermillion on purpose (warm colours: a person decides; cool: a controller).

A simulated run (``platform: sim``) is a lighter shade of its role's colour; a second run of the
same role and kind in one figure gets a darker shade.

**Text.** Figures are drawn 16 x 9 inches at 120 dpi, i.e. exactly 1920 x 1080 pixels (or a
multiple of 1080 pixels high for stacked figures), and every text is at least `MIN_TEXT_PT`
points. `text_px_at_1080p` measures the smallest text of a figure as it appears when the image
is fitted to a 1920 x 1080 screen; the tests require at least `MIN_TEXT_PX` (18 pt at 96 dpi).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

__all__ = [
    "ROLE_COLORS",
    "ROLE_NAMES",
    "role_of",
    "role_of_scaler",
    "arm_color",
    "run_colors",
    "shade",
    "pyplot",
    "save_figure",
    "text_px_at_1080p",
    "DPI",
    "MIN_TEXT_PT",
    "MIN_TEXT_PX",
    "FONTS",
]

#: Okabe & Ito (2008) colours by arm role.
ROLE_COLORS: dict[str, str] = {
    "manual": "#D55E00",  # vermillion
    "swarm-manual": "#E69F00",  # orange
    "threshold": "#009E73",  # bluish green
    "hpa": "#0072B2",  # blue
    "fixed": "#CC79A7",  # reddish purple
    "other": "#555555",
}
#: How each role reads in a legend or caption.
ROLE_NAMES: dict[str, str] = {
    "manual": "operator, by hand",
    "swarm-manual": "operator, by hand, on Swarm",
    "threshold": "home-made autoscaler",
    "hpa": "Kubernetes HPA",
    "fixed": "fixed count",
    "other": "other",
}

DPI = 120
#: 16 x 9 in at 120 dpi = 1920 x 1080 px.
SLIDE_INCHES = (16.0, 9.0)
MIN_TEXT_PT = 15.0
#: 18 pt at 96 dpi: the smallest text a projected 1080p screen should show.
MIN_TEXT_PX = 24.0
FONTS: dict[str, float] = {
    "font.size": 18,
    "axes.titlesize": 22,
    "axes.labelsize": 19,
    "legend.fontsize": 16,
    "xtick.labelsize": 17,
    "ytick.labelsize": 17,
    "figure.titlesize": 24,
}


def role_of_scaler(scaler_type: str | None, platform: str | None = None) -> str:
    """``manual``/``hpa``/``fixed``/``threshold`` as written in a scenario (``swarm-manual``: a manual
    scaler on ``platform`` swarm); anything else is ``other``."""
    kind = str(scaler_type or "").lower()
    if kind == "manual" and str(platform or "").lower() == "swarm":
        return "swarm-manual"
    return kind if kind in ROLE_COLORS else "other"


def role_of(run: Any) -> str:
    """The role of a `scalelab.telemetry.Run` (its manifest's ``scaler`` and platform; a simulated
    run counts as the platform it models)."""
    from scalelab.telemetry.schema import platform_of

    return role_of_scaler(run.manifest.get("scaler"), platform_of(run.manifest))


def shade(color: str, amount: float) -> str:
    """``amount`` > 0 mixes toward white (lighter), < 0 toward black (darker)."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    target = 255 if amount > 0 else 0
    mix = abs(amount)
    out = (round(c + (target - c) * mix) for c in (r, g, b))
    return "#" + "".join(f"{c:02X}" for c in out)


def arm_color(role: str, *, simulated: bool = False, repeat: int = 0) -> str:
    """The colour of an arm: its role's, lighter when simulated, darker for a repeat of the same kind."""
    color = ROLE_COLORS.get(role, ROLE_COLORS["other"])
    if simulated:
        color = shade(color, 0.45)
    if repeat:
        color = shade(color, -min(0.6, 0.28 * repeat))
    return color


def run_colors(runs: Sequence[Any]) -> list[str]:
    """One colour per run of a figure, by role and kind (see the module doc)."""
    seen: dict[tuple[str, bool], int] = {}
    out = []
    for run in runs:
        key = (role_of(run), run.manifest.get("platform") == "sim")
        out.append(arm_color(key[0], simulated=key[1], repeat=seen.get(key, 0)))
        seen[key] = seen.get(key, 0) + 1
    return out


def pyplot(fonts: Mapping[str, float] | None = None) -> Any:
    """matplotlib.pyplot on the Agg backend with the kit's fonts and line widths."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    settings: dict[str, Any] = {**FONTS, **(fonts or {}), "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 3}
    plt.rcParams.update(cast(Any, settings))
    return plt


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` at `DPI` (PNG, or SVG/PDF by suffix) and close it; every figure function ends here."""
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def text_px_at_1080p(fig: Any) -> tuple[float, str]:
    """The smallest visible text of ``fig`` in screen pixels once the image is fitted to 1920 x 1080, and that text."""
    from matplotlib.text import Text

    width_in, height_in = fig.get_size_inches()
    fit = min(1920.0 / (width_in * DPI), 1080.0 / (height_in * DPI))
    smallest = (float("inf"), "")
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        px = text.get_fontsize() * DPI / 72.0 * fit
        if px < smallest[0]:
            smallest = (px, text.get_text())
    return smallest
