"""Every figure of the kit, read from the back row: one colour per arm role, text >= 18 pt at 1080p,
annotations off the data, "(sim)" said once. Runs on the committed recorded runs and on simulated ones.

Each figure function ends in `figstyle.save_figure`; the tests wrap it to inspect the figure
before it is written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scalelab import figstyle, plots, slides, whatif
from scalelab.sim import prepare_scenario, run_arm
from scalelab.telemetry import load_run

FIXTURE_RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
RECORDED = sorted(p for p in FIXTURE_RUNS.iterdir() if (p / "manifest.json").is_file())


@pytest.fixture(scope="module")
def sim_runs(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = tmp_path_factory.mktemp("runs")
    sc = prepare_scenario("ci-spike")
    return [load_run(run_arm(sc, "compose-manual", root)), load_run(run_arm(sc, "kubernetes-hpa", root))]


@pytest.fixture()
def captured(monkeypatch: pytest.MonkeyPatch) -> list:
    """Figures passed to save_figure, drawn (so text extents are known), with their path."""
    seen: list = []
    real = figstyle.save_figure

    def spy(fig, path):  # type: ignore[no-untyped-def]
        fig.canvas.draw()
        seen.append((_inspect(fig), Path(path).name))
        return real(fig, path)

    monkeypatch.setattr(figstyle, "save_figure", spy)
    return seen


def _inspect(fig) -> dict:  # type: ignore[no-untyped-def]
    """What the tests need from a drawn figure, before it is closed."""
    from matplotlib.collections import PathCollection
    from matplotlib.lines import Line2D

    renderer = fig.canvas.get_renderer()
    colours: dict[str, set[str]] = {}
    for artist in fig.findobj(lambda a: isinstance(a, (Line2D, PathCollection))):
        label = str(artist.get_label() or "")
        if label.startswith("_"):
            continue
        rgba = artist.get_color() if isinstance(artist, Line2D) else artist.get_facecolor()[0]
        from matplotlib.colors import to_hex

        colours.setdefault(label, set()).add(to_hex(rgba).upper())
    covered = []
    for ax in fig.axes:
        data = []
        for line in ax.lines:
            x, y = (np.asarray(v, dtype=float) for v in line.get_data())
            if len(x) < 2 or np.allclose(x, x[0]) or np.allclose(y, y[0]):
                continue  # vertical markers (spike, operator) and horizontal reference lines are not data
            pts = ax.transData.transform(np.column_stack([x, y])[np.isfinite(x) & np.isfinite(y)])
            data.append(pts)
        for text in ax.texts:
            if not text.get_text().strip():
                continue
            box = text.get_window_extent(renderer)
            for pts in data:
                inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
                if inside.any():
                    covered.append(text.get_text())
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_fontsize")) if t.get_visible()]
    return {"min_px": figstyle.text_px_at_1080p(fig), "colours": colours, "covered": covered, "texts": texts,
            "size_px": tuple(fig.get_size_inches() * figstyle.DPI)}


def _every_figure(runs: list, out: Path) -> None:
    for q in plots.QUANTITIES:
        plots.quantity_figure(runs, q, out / f"{q}.png")
    plots.comparison_figure(runs, out / "comparison.png")
    slides.story_slide(runs, out / "slide.png")


def _expected(run, runs) -> str:  # type: ignore[no-untyped-def]
    return plots.arm_colors(runs)[runs.index(run)]


@pytest.mark.parametrize("kind", ["recorded", "simulated"])
def test_every_figure_one_colour_per_arm_and_projector_sized(kind: str, sim_runs: list, captured: list, tmp_path: Path) -> None:
    runs = [load_run(d) for d in RECORDED] if kind == "recorded" else sim_runs
    _every_figure(runs, tmp_path)
    assert len(captured) == len(plots.QUANTITIES) + 2
    names = plots.arm_labels(runs)
    for info, fname in captured:
        for run, name in zip(runs, names):
            want = figstyle.arm_color(figstyle.role_of(run), simulated=run.manifest.get("platform") == "sim").upper()
            mine = {c for label, cs in info["colours"].items() if label == name or label.startswith(name + ":") for c in cs}
            if fname != "comparison.png" and fname != "slide.png":
                assert mine, f"{fname}: no line for {name}"
            assert mine <= {want}, f"{fname}: {name} drawn in {mine}, its role's colour is {want}"
        # read from the back row: text >= 18 pt at 1080p, 16:9, labels off the data, "(sim)" said once
        px, text = info["min_px"]
        assert px >= figstyle.MIN_TEXT_PX, f"{fname}: '{text}' is {px:.1f} px on a 1920x1080 screen (needs {figstyle.MIN_TEXT_PX})"
        assert info["size_px"] == pytest.approx((1920, 1080)), f"{fname} is {info['size_px']}, not 16:9 1920x1080"
        assert not info["covered"], f"{fname}: labels cover data: {info['covered']}"
        assert sum("(sim" in t for t in info["texts"]) <= 1, f"{fname}: '(sim)' repeated: {[t for t in info['texts'] if '(sim' in t]}"


def test_role_colours_are_fixed_and_sim_is_lighter(sim_runs: list) -> None:
    recorded = [load_run(d) for d in RECORDED]
    by_role = {figstyle.role_of(r): c for r, c in zip(recorded, plots.arm_colors(recorded))}
    assert by_role == {role: figstyle.ROLE_COLORS[role] for role in ("manual", "swarm-manual", "hpa")}
    # order does not matter: the HPA is blue whether it comes first or second
    assert plots.arm_colors(recorded[::-1]) == plots.arm_colors(recorded)[::-1]
    sim = dict(zip((figstyle.role_of(r) for r in sim_runs), plots.arm_colors(sim_runs)))
    assert sim["hpa"] == figstyle.shade(figstyle.ROLE_COLORS["hpa"], 0.45) != figstyle.ROLE_COLORS["hpa"]
    assert len(set(figstyle.ROLE_COLORS.values())) == len(figstyle.ROLE_COLORS)


def _rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


def test_swarm_manual_has_its_own_colour_real_and_simulated(tmp_path: Path) -> None:
    """The operator on Swarm is neither the compose operator nor its 'repeat' shade, recorded or simulated."""
    sc = prepare_scenario("classroom-spike", cpu_budget=1)
    sim = [load_run(run_arm(sc, arm, tmp_path)) for arm in ("compose-manual", "swarm-manual", "kubernetes-hpa")]
    assert [figstyle.role_of(r) for r in sim] == ["manual", "swarm-manual", "hpa"]
    assert plots.arm_colors(sim) == [figstyle.arm_color(role, simulated=True) for role in ("manual", "swarm-manual", "hpa")]
    assert figstyle.role_of_scaler("manual", "swarm") == "swarm-manual" and figstyle.role_of_scaler("threshold", "swarm") == "threshold"
    assert figstyle.role_of_scaler("manual", "compose") == "manual" and figstyle.role_of_scaler("manual") == "manual"
    # recorded, it stands apart from every other role's colour, recorded or simulated; simulated, from the other simulated ones
    others = [role for role in figstyle.ROLE_COLORS if role != "swarm-manual"]
    mine, mine_light = _rgb(figstyle.ROLE_COLORS["swarm-manual"]), _rgb(figstyle.arm_color("swarm-manual", simulated=True))
    for role in others:
        for simulated in (False, True):
            assert np.linalg.norm(mine - _rgb(figstyle.arm_color(role, simulated=simulated))) > 60, (role, simulated)
        assert np.linalg.norm(mine_light - _rgb(figstyle.arm_color(role, simulated=True))) > 30, role


def test_whatif_figure_colours_size_and_no_vertical_line(captured: list, tmp_path: Path) -> None:
    table = whatif.sweep("ci-spike", "kubernetes-hpa", {"target_cpu_pct": [30, 90]}, compare_with=["compose-manual"])
    whatif.sweep_figure(table, tmp_path / "target.png")
    flat = whatif.sweep("ci-spike", "compose-manual", {"load.factor": [5, 10]})
    assert flat["cost_usd"].nunique() == 1  # a fixed plan costs the same whatever the load
    whatif.sweep_figure(flat, tmp_path / "spike.png")
    (target, _), (spike, _) = captured
    hpa_light = figstyle.arm_color("hpa", simulated=True).upper()
    manual_light = figstyle.arm_color("manual", simulated=True).upper()
    assert {hpa_light} == {c for label, cs in target["colours"].items() if label.startswith("kubernetes-hpa") for c in cs}
    assert {manual_light} == {c for label, cs in target["colours"].items() if label.startswith("compose-manual") for c in cs}
    for info in (target, spike):
        assert info["min_px"][0] >= figstyle.MIN_TEXT_PX
        assert not info["covered"]
    # the flat-cost sweep puts the setting across instead of drawing one vertical line
    assert any("every setting costs" in t for t in spike["texts"])
