"""Register-table profiles: a YAML file maps logical points to registers, plus write sequences.

The file format is documented in `hal/inverter/profiles/example-hybrid.yaml`. Loading validates the
whole file once, at start-up; every error names the file, the line and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from hal.errors import ProfileError
from hal.inverter import codec
from hal.inverter.base import ConnectionStatus, OperatingStatus

READ_POINTS = ("w", "hz", "soc_pct", "operating", "connection")
RATING_POINTS = (
    "max_w",
    "max_charge_w",
    "max_discharge_w",
    "capacity_wh",
    "set_max_w",
    "set_max_charge_w",
    "set_max_discharge_w",
)
ALL_POINTS = READ_POINTS + RATING_POINTS
SEQUENCES = ("set_active_power", "release", "keepalive")
SYMBOLIC_VALUES = ("watts", "abs_watts", "revert_s")
_TOP_KEYS = {"profile", "description", "word_order", "registers", "points", "writes"}
_POINT_KEYS = {
    "address",
    "type",
    "word_order",
    "scale",
    "scale_register",
    "registers",
    "sign",
    "map",
    "value",
    "invalid",
}
_STEP_KEYS = {"address", "type", "word_order", "scale", "value", "verify", "function"}
_DIRECTIONS = ("charge", "discharge", "idle")

Function = Literal["holding", "input"]
Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class TablePoint:
    """One logical point: a constant, or a register with type, word order and scale."""

    name: str
    constant: float | None = None
    address: int = 0
    kind: str = "uint16"
    word_order: codec.WordOrder = "big"
    function: Function = "holding"
    scale: float = 1.0
    scale_register: int | None = None
    sign: int = 1
    states: dict[int, str] | None = None
    invalid: frozenset[int] = frozenset()


@dataclass(frozen=True)
class WriteStep:
    """One register write of a sequence; `value` is a number, a symbol or a direction map."""

    address: int
    kind: str
    value: float | str | dict[str, int]
    word_order: codec.WordOrder = "big"
    scale: float = 1.0
    verify: bool = True
    single: bool = False


@dataclass(frozen=True)
class TableProfile:
    """A validated register-table profile."""

    name: str
    source: str
    points: dict[str, TablePoint]
    writes: dict[str, tuple[WriteStep, ...]]


class _Located:
    """Finds the line of a value in the YAML file from its path of keys."""

    def __init__(self, source: str, root: yaml.Node | None) -> None:
        self.source = source
        self._lines: dict[Path_, int] = {}
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Path_) -> None:
        self._lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                self._lines.setdefault((*path, name), key.start_mark.line + 1)
                self._walk(value, (*path, name))
                self._lines[(*path, name)] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, (*path, index))

    def error(self, path: Path_, message: str) -> ProfileError:
        """A ProfileError naming the file, the line and the dotted key."""
        probe = path
        while probe and probe not in self._lines:
            probe = probe[:-1]
        line = self._lines.get(probe, 1)
        where = ".".join(str(p) for p in path) or "(top level)"
        return ProfileError(f"{self.source}:{line}: {where}: {message}")


PROFILES_DIR = Path(__file__).parent / "profiles"


def resolve_profile(name: str | Path) -> Path:
    """A bare name ("example-hybrid") means a profile shipped in `hal/inverter/profiles/`; else a path."""
    text = str(name)
    if "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    return PROFILES_DIR / f"{text}.yaml"


def load_profile(path: str | Path) -> TableProfile:
    """Load and validate a register-table profile file; raises `ProfileError` naming the line."""
    path = resolve_profile(path)
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{source}: cannot read profile: {exc.strerror or exc}") from exc
    return parse_profile(text, source)


def parse_profile(text: str, source: str = "<profile>") -> TableProfile:
    """Validate profile text (see `load_profile`)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(f"{source}:{line}: not valid YAML: {problem}") from exc
    loc = _Located(source, root)
    top = _mapping(data, (), loc, "a mapping with 'points' and 'writes'")
    _no_unknown(top, (), _TOP_KEYS, loc)
    word_order = _choice(top.get("word_order", "big"), ("word_order",), ("big", "little"), loc)
    function = _choice(top.get("registers", "holding"), ("registers",), ("holding", "input"), loc)
    points_raw = _mapping(top.get("points"), ("points",), loc, "a mapping of logical points")
    points: dict[str, TablePoint] = {}
    for name, spec in points_raw.items():
        if name not in ALL_POINTS:
            raise loc.error(("points", name), f"unknown point; expected one of {', '.join(ALL_POINTS)}")
        points[name] = _point(name, spec, ("points", name), word_order, function, loc)
    if "w" not in points:
        raise loc.error(("points",), "the point 'w' (active power) is required")
    writes_raw = _mapping(top.get("writes"), ("writes",), loc, "a mapping of write sequences")
    writes: dict[str, tuple[WriteStep, ...]] = {}
    for name, steps in writes_raw.items():
        if name not in SEQUENCES:
            raise loc.error(("writes", name), f"unknown sequence; expected one of {', '.join(SEQUENCES)}")
        writes[name] = _steps(steps, ("writes", name), word_order, loc)
    for required in ("set_active_power", "release"):
        if required not in writes:
            raise loc.error(("writes",), f"the write sequence '{required}' is required")
    name = top.get("profile", Path(source).stem)
    if not isinstance(name, str):
        raise loc.error(("profile",), "expected a name (text)")
    return TableProfile(name=name, source=source, points=points, writes=writes)


def _point(name: str, raw: object, path: Path_, word_order: str, function: str, loc: _Located) -> TablePoint:
    spec = _mapping(raw, path, loc, "a mapping with 'address' and 'type', or 'value'")
    _no_unknown(spec, path, _POINT_KEYS, loc)
    if "value" in spec:
        if set(spec) != {"value"}:
            raise loc.error(path, "a constant point has only 'value'")
        return TablePoint(name=name, constant=_number(spec["value"], (*path, "value"), loc))
    address = _address(spec.get("address"), (*path, "address"), loc)
    kind = _choice(spec.get("type"), (*path, "type"), tuple(codec.SIZES), loc)
    scale = _number(spec.get("scale", 1.0), (*path, "scale"), loc)
    sf_register = spec.get("scale_register")
    if sf_register is not None:
        if "scale" in spec:
            raise loc.error(path, "give either 'scale' or 'scale_register', not both")
        sf_register = _address(sf_register, (*path, "scale_register"), loc)
    sign = spec.get("sign", 1)
    if sign not in (1, -1):
        raise loc.error((*path, "sign"), f"expected 1 or -1, got {sign!r}")
    invalid = spec.get("invalid", [])
    if not isinstance(invalid, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in invalid
    ):
        raise loc.error((*path, "invalid"), "expected a list of raw register values (integers)")
    states = None
    if "map" in spec:
        states = _states(name, spec["map"], (*path, "map"), loc)
    return TablePoint(
        name=name,
        address=address,
        kind=kind,
        word_order=_choice(spec.get("word_order", word_order), (*path, "word_order"), ("big", "little"), loc),
        function=_choice(spec.get("registers", function), (*path, "registers"), ("holding", "input"), loc),
        scale=scale,
        scale_register=sf_register,
        sign=sign,
        states=states,
        invalid=frozenset(invalid),
    )


def _states(name: str, raw: object, path: Path_, loc: _Located) -> dict[int, str]:
    if name not in ("operating", "connection"):
        raise loc.error(path, "'map' is only for the points 'operating' and 'connection'")
    allowed = [s.name.lower() for s in (OperatingStatus if name == "operating" else ConnectionStatus)]
    table = _mapping(raw, path, loc, "a mapping from raw codes to states")
    result: dict[int, str] = {}
    for code, state in table.items():
        if not isinstance(code, int) or isinstance(code, bool):
            raise loc.error((*path, str(code)), "codes must be integers")
        if state not in allowed:
            raise loc.error(
                (*path, str(code)), f"unknown state {state!r}; expected one of {', '.join(allowed)}"
            )
        result[code] = state
    return result


def _steps(raw: object, path: Path_, word_order: str, loc: _Located) -> tuple[WriteStep, ...]:
    if not isinstance(raw, list) or not raw:
        raise loc.error(path, "expected a non-empty list of register writes")
    steps = []
    for index, item in enumerate(raw):
        step_path = (*path, index)
        spec = _mapping(item, step_path, loc, "a mapping with 'address', 'type' and 'value'")
        _no_unknown(spec, step_path, _STEP_KEYS, loc)
        kind = _choice(spec.get("type"), (*step_path, "type"), tuple(codec.SIZES), loc)
        value = _step_value(spec.get("value"), (*step_path, "value"), loc)
        verify = spec.get("verify", True)
        if not isinstance(verify, bool):
            raise loc.error((*step_path, "verify"), "expected true or false")
        function = _choice(
            spec.get("function", "multiple"), (*step_path, "function"), ("multiple", "single"), loc
        )
        if function == "single" and codec.size_of(kind) != 1:
            raise loc.error((*step_path, "function"), "'single' (FC6) writes one register; use a 16-bit type")
        steps.append(
            WriteStep(
                address=_address(spec.get("address"), (*step_path, "address"), loc),
                kind=kind,
                value=value,
                word_order=_choice(
                    spec.get("word_order", word_order), (*step_path, "word_order"), ("big", "little"), loc
                ),
                scale=_number(spec.get("scale", 1.0), (*step_path, "scale"), loc),
                verify=verify,
                single=function == "single",
            )
        )
    return tuple(steps)


def _step_value(raw: object, path: Path_, loc: _Located) -> float | str | dict[str, int]:
    if isinstance(raw, str):
        if raw not in SYMBOLIC_VALUES:
            raise loc.error(
                path, f"unknown value {raw!r}; expected a number, {', '.join(SYMBOLIC_VALUES)} or a map"
            )
        return raw
    if isinstance(raw, dict):
        if set(raw) != set(_DIRECTIONS) or not all(isinstance(v, int) for v in raw.values()):
            raise loc.error(
                path, "a direction map needs integer codes for exactly charge, discharge and idle"
            )
        return {str(k): int(v) for k, v in raw.items()}
    return _number(raw, path, loc)


def _mapping(raw: object, path: Path_, loc: _Located, expected: str) -> dict[Any, Any]:
    if not isinstance(raw, dict):
        raise loc.error(path, f"expected {expected}, got {type(raw).__name__}")
    return raw


def _no_unknown(spec: dict[Any, Any], path: Path_, allowed: set[str], loc: _Located) -> None:
    for key in spec:
        if key not in allowed:
            raise loc.error((*path, str(key)), f"unknown key; expected one of {', '.join(sorted(allowed))}")


def _choice(raw: object, path: Path_, allowed: tuple[str, ...], loc: _Located) -> Any:
    if raw not in allowed:
        raise loc.error(path, f"expected one of {', '.join(allowed)}, got {raw!r}")
    return raw


def _address(raw: object, path: Path_, loc: _Located) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 0xFFFF:
        raise loc.error(path, f"expected a register address 0..65535, got {raw!r}")
    return raw


def _number(raw: object, path: Path_, loc: _Located) -> float:
    if not isinstance(raw, int | float) or isinstance(raw, bool):
        raise loc.error(path, f"expected a number, got {raw!r}")
    return float(raw)
