"""Reading scenarios: built-in names or YAML paths, every failure named with the file and the fix,
and "what if" ``key=value`` overrides. The models themselves are in `scalelab.scenario`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from scalelab.errors import ScenarioError
from scalelab.scenario import (
    SCALER_MODELS,
    Arm,
    Behavior,
    FrontDoor,
    Load,
    ManualAction,
    ScalingPolicy,
    ScalingRules,
    Scenario,
    WeakReplicas,
    Workload,
)

__all__ = ["builtin_scenarios", "load_scenario", "read_yaml", "describe_errors", "apply_overrides", "MAX_FILE_BYTES"]


# ---------------------------------------------------------------------------------------------
# Loading and error messages


def builtin_scenarios() -> dict[str, Path]:
    """Built-in scenarios by name (the YAML files shipped in the package)."""
    folder = resources.files("scalelab") / "scenarios"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".yaml")}


def load_scenario(name_or_path: str | os.PathLike[str], *, cpu_budget: float | None = None, sized: bool = True) -> Scenario:
    """Load a built-in scenario by name, or a YAML file by path; validate; size it to the host."""
    text_name = os.fspath(name_or_path)
    builtins = builtin_scenarios()
    path = builtins.get(text_name) or Path(text_name)
    if not path.is_file():
        raise ScenarioError(
            f"no scenario '{text_name}': not a built-in name and no such file",
            fix=f"use one of: {', '.join(sorted(builtins))}, or a path to a YAML file",
            lab="05-what-if-with-the-simulator",
        )
    data = read_yaml(path, what="scenario")
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario must be a mapping with keys name, duration_s, load, arms, ...")
    data.setdefault("source", str(path))
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(describe_errors(path, exc), fix="correct the fields listed above (see the built-in scenarios for examples)") from None
    return scenario.sized(cpu_budget) if sized else scenario


#: A scenario file is a page of YAML; anything larger is not one.
MAX_FILE_BYTES = 1_000_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error (not a silent replacement)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, f"unhashable key {key!r}", key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, *, what: str) -> object:
    """Read one YAML document; every failure (unreadable, not UTF-8, binary, bad YAML, duplicate keys,
    nested too deep, too large) is a ScenarioError naming the file and the fix."""
    fix = f"check that {path} is the {what} YAML file you meant"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the {what} file: {exc.strerror or exc}", fix=fix + " and that you may read it") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(f"{path}: {len(raw):,} bytes is too large for a {what} file (at most {MAX_FILE_BYTES:,})", fix=fix)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})", fix="save it as UTF-8 YAML") from None
    if "\x00" in text:
        raise ScenarioError(f"{path}: a binary file, not YAML", fix=fix)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise ScenarioError(f"{path}: nested too deeply to be a {what}", fix=fix) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}", fix="check the indentation, quoting and repeated keys near the line shown") from None


def describe_errors(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid scenario ({exc.error_count()} problem{'s' if exc.error_count() != 1 else ''})"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        # Drop pydantic's union tags ("manual", "hpa", ...) from the field path.
        field = ".".join(p for i, p in enumerate(loc) if not (i > 0 and loc[i - 1] == "scaler" and p in SCALER_MODELS))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _allowed_fields(loc[:-1])
            msg = f"unknown field; allowed: {', '.join(allowed)}" if allowed else "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "union_tag_invalid":
            msg = f"{msg} (got {err['input']!r})"
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  field '{field or '<top>'}': {msg}")
    return "\n".join(lines)


def _allowed_fields(loc: list[str]) -> list[str]:
    model: type[BaseModel] | None = Scenario
    for part in loc:
        if model is None:
            return []
        if part in SCALER_MODELS:
            model = SCALER_MODELS[part]
            continue
        field = model.model_fields.get(part)
        if field is None:
            # dict key (an arm name): the value model
            if model is Scenario or model is Arm:
                continue
            if part.isdigit():
                continue
            return []
        model = _model_of(field.annotation, part)
    return sorted(f for f in (model.model_fields if model else {}) if f not in ("source", "cpu_budget"))


def _model_of(annotation: object, name: str) -> type[BaseModel] | None:
    mapping = {
        "workload": Workload,
        "load": Load,
        "arms": Arm,
        "scaler": None,
        "behavior": Behavior,
        "scale_up": ScalingRules,
        "scale_down": ScalingRules,
        "actions": ManualAction,
        "policies": ScalingPolicy,
        "lb": FrontDoor,
        "weak": WeakReplicas,
    }
    return mapping.get(name)


# ---------------------------------------------------------------------------------------------
# "What if": key=value overrides (``scalelab sim --set arms.kubernetes-hpa.scaler.target_cpu_pct=70``)


def apply_overrides(scenario: Scenario, settings: list[str] | tuple[str, ...]) -> Scenario:
    """A copy of an unsized ``scenario`` with dotted ``key=value`` settings applied and re-validated.

    Values are YAML scalars (``70``, ``0.5``, ``90s``, ``true``); list items are addressed by
    index (``arms.compose-manual.scaler.actions.0.at_s=45s``). Apply before sizing: the figures
    are at the reference CPU budget.
    """
    if not settings:
        return scenario
    if scenario.cpu_budget is not None:
        raise ScenarioError("overrides apply to the scenario as written, before sizing", fix="load it with sized=False")
    data = scenario.model_dump(mode="json", exclude={"cpu_budget"})
    for item in settings:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ScenarioError(f"--set '{item}': expected key=value", fix="for example --set load.factor=20")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_path(data, key.split("."), value, item)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            describe_errors(Path(f"{scenario.source or scenario.name} with --set {' '.join(settings)}"), exc),
            fix="correct the --set keys or values listed above",
        ) from None


def _set_path(node: object, parts: list[str], value: object, item: str) -> None:
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(f"--set '{item}': '{part}' is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if node.get(part) is None:
                if i > 0 and parts[i - 1] == "arms":
                    raise ScenarioError(f"--set '{item}': no arm '{part}'; allowed: {', '.join(node)}")
                node[part] = {}
            node = node[part]
        else:
            raise ScenarioError(f"--set '{item}': '{'.'.join(parts[:i])}' is a value, not a mapping")
