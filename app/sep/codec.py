"""The XML edge: parse untrusted 2030.5 XML into models, write models as 2030.5 XML.

A model class is a frozen dataclass whose field names are the schema's element/attribute names,
in schema order; `typing.Annotated` markers from app.sep.types say which fields are attributes,
integer ranges and hex encodings, and which list items are salvaged rather than fatal. Each class
is compiled once into a small table on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import DefusedXMLParser  # type: ignore[import-untyped]

from app.sep.exceptions import SepParseError
from app.sep.types import LOCAL, NS, Attr, Ext, Hex, HexStr, Range, Salvage, time_to_int

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BODY_BYTES: Final = 1_000_000
# Our deepest document (MirrorUsagePoint/…/Reading/timePeriod/start) nests 6 levels; 32 leaves room
# for unknown extensions while refusing "deep nesting" attacks long before they cost anything.
MAX_DEPTH: Final = 32
_NS_PREFIX: Final = "{" + NS + "}"
_XMLNS: Final = f' xmlns="{NS}"'
_HEX = re.compile(r"[0-9A-Fa-f]*")
_BOOL: Final = {"true": True, "1": True, "false": False, "0": False}
_LOCAL_KEY: Final = next(iter(LOCAL))
# Dropped list items have no identity to log once by, so each distinct problem is logged once;
# the memory of what was said is bounded (hostile lists may invent endless problems).
_DROPS_REMEMBERED: Final = 64
_dropped: dict[str, None] = {}


class _Invalid(Exception):
    """Internal: a bad field; `path` collects the element names on the way back up."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail
        self.path: list[str] = []


class _TooDeep(Exception):
    pass


# --- converters --------------------------------------------------------------------------------


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _int_reader(lo: int, hi: int) -> Callable[[str], int]:
    def read(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or "_" in text or not lo <= value <= hi:
            raise ValueError(f"expected an integer in {lo}..{hi}, got {_shown(text)}")
        return value

    return read


def _read_bool(text: str) -> bool:
    value = _BOOL.get(text.strip())
    if value is None:
        raise ValueError(f"expected a boolean (true/false/1/0), got {_shown(text)}")
    return value


def _read_str(text: str) -> str:
    return text


_INT64 = _int_reader(-(2**63), 2**63 - 1)


def _read_time(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(_INT64(text), UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"expected TimeType (integer seconds since 1970 UTC), got {_shown(text)}") from None


def _hex_int_reader(size: int) -> Callable[[str], int]:
    def read(text: str) -> int:
        text = text.strip()
        if len(text) > 2 * size or not _HEX.fullmatch(text):
            raise ValueError(f"expected hexBinary of at most {size} bytes, got {_shown(text)}")
        return int(text, 16) if text else 0

    return read


def _hex_str_reader(size: int) -> Callable[[str], str]:
    def read(text: str) -> str:
        text = text.strip()
        if not text or len(text) > 2 * size or not _HEX.fullmatch(text):
            raise ValueError(f"expected hexBinary of 1..{size} bytes, got {_shown(text)}")
        return text

    return read


def _write_int(value: int) -> str:
    return str(int(value))  # int(): an IntEnum/IntFlag member must print as its number


def _write_bool(value: bool) -> str:
    return "true" if value else "false"


def _escape_text(value: str) -> str:
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return value


def _escape_attr(value: str) -> str:
    return _escape_text(value).replace('"', "&quot;")


def _write_time(value: datetime) -> str:
    return str(time_to_int(value))


def _hex_writer(size: int) -> Callable[[int], str]:
    fmt = f"0{2 * size}X"

    def write(value: int) -> str:
        return format(int(value), fmt)

    return write


# --- compiled class tables ---------------------------------------------------------------------


@dataclass(slots=True)
class _Field:
    name: str
    tag: str
    repeated: bool
    sub: type | None
    read: Callable[[str], Any]
    write: Callable[[Any], str]
    default: Any
    open: str
    close: str
    #: the tag and namespace declaration a sub-model element is written with
    out_tag: str = ""
    out_head: str = ""
    #: further tags it is read from (an extension's older namespaces)
    aliases: tuple[str, ...] = ()


@dataclass(slots=True)
class _Spec:
    cls: type
    attrs: list[_Field]
    elements: list[_Field]
    required: frozenset[str]
    repeated: tuple[str, ...]
    # Parse hot path: plain tuples unpack faster than _Field attribute lookups.
    attr_readers: tuple[tuple[str, Callable[[str], Any]], ...]
    dispatch: dict[str, tuple[str, type | None, Callable[[str], Any], bool]]
    # repeated element name -> the builder of a stand-in for an item that fails to parse
    salvage: dict[str, Callable[[Mapping[str, Any], str], object | None]]


_SPECS: dict[type, _Spec] = {}


def _unwrap(hint: Any) -> tuple[Any, list[object], bool]:
    """Strip Optional, tuple[...] and Annotated; return (base type, markers, repeated)."""
    markers: list[object] = []
    repeated = False
    while True:
        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            args = typing.get_args(hint)
            hint = args[0]
            markers.extend(args[1:])
        elif origin is typing.Union or origin is types.UnionType:
            members = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(members) != 1:
                raise TypeError(f"unsupported union {hint!r}")
            hint = members[0]
        elif origin is tuple:
            repeated = True
            hint = typing.get_args(hint)[0]
        else:
            return hint, markers, repeated


def _converters(base: Any, markers: list[object]) -> tuple[Callable[[str], Any], Callable[[Any], str]]:
    for marker in markers:
        if isinstance(marker, Hex):
            return _hex_int_reader(marker.size), _hex_writer(marker.size)
        if isinstance(marker, HexStr):
            return _hex_str_reader(marker.size), str
        if isinstance(marker, Range):
            return _int_reader(marker.lo, marker.hi), _write_int
    if base is bool:
        return _read_bool, _write_bool
    if base is int:
        return _INT64, _write_int
    if base is str:
        return _read_str, _escape_text
    if base is datetime:
        return _read_time, _write_time
    raise TypeError(f"no XML converter for {base!r}")


def _compile(cls: type) -> _Spec:
    hints = typing.get_type_hints(cls, include_extras=True)
    attrs: list[_Field] = []
    elements: list[_Field] = []
    required: set[str] = set()
    repeated: list[str] = []
    salvage: dict[str, Callable[[Mapping[str, Any], str], object | None]] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get(_LOCAL_KEY):
            continue
        base, markers, is_repeated = _unwrap(hints[f.name])
        is_attr = any(isinstance(m, Attr) for m in markers)
        sub: type | None = base if isinstance(base, type) and dataclasses.is_dataclass(base) else None
        for marker in markers:
            if isinstance(marker, Salvage):
                if not is_repeated or sub is None:
                    raise TypeError(f"{cls.__name__}.{f.name}: only repeated elements can be salvaged")
                salvage[f.name] = marker.build
        if sub is not None:
            read: Callable[[str], Any] = _read_str
            write: Callable[[Any], str] = str
        else:
            read, write = _converters(base, markers)
            if is_attr and base is str:
                write = _escape_attr
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.add(f.name)
        if is_repeated:
            repeated.append(f.name)
        default = None if f.default is dataclasses.MISSING else f.default
        ext = next((m for m in markers if isinstance(m, Ext)), None)
        if ext is None:
            field = _Field(
                f.name,
                _NS_PREFIX + f.name,
                is_repeated,
                sub,
                read,
                write,
                default,
                f"<{f.name}>",
                f"</{f.name}>",
                f.name,
                "",
            )
        else:
            qname = f"{ext.prefix}:{f.name}"
            head = f' xmlns:{ext.prefix}="{ext.namespaces[0]}"'
            field = _Field(
                f.name,
                "{" + ext.namespaces[0] + "}" + f.name,
                is_repeated,
                sub,
                read,
                write,
                default,
                f"<{qname}{head}>",
                f"</{qname}>",
                qname,
                head,
                tuple("{" + ns + "}" + f.name for ns in ext.namespaces[1:]),
            )
        (attrs if is_attr else elements).append(field)
    spec = _Spec(
        cls,
        attrs,
        elements,
        frozenset(required),
        tuple(repeated),
        tuple((a.name, a.read) for a in attrs),
        {tag: (e.name, e.sub, e.read, e.repeated) for e in elements for tag in (e.tag, *e.aliases)},
        salvage,
    )
    _SPECS[cls] = spec
    return spec


def _spec(cls: type) -> _Spec:
    spec = _SPECS.get(cls)
    return spec if spec is not None else _compile(cls)


# --- parsing ------------------------------------------------------------------------------------


_NAMES: dict[str, str] = {}  # expat "ns}name" -> ElementTree "{ns}name"; bounded, see _fixname


def _fixname(raw: str) -> str:
    name = _NAMES.get(raw)
    if name is None:
        name = "{" + raw if "}" in raw else raw
        if len(_NAMES) < 4096:  # hostile bodies may invent names; never let them grow the cache
            _NAMES[raw] = name
    return name


class _BoundedParser(DefusedXMLParser):  # type: ignore[misc]
    """defusedxml's parser (no DTD, no entities, no external references) with a depth limit.

    defusedxml keeps its DTD/entity/external-reference handlers; only the element start/end
    handlers are replaced by closures that count depth and feed the C TreeBuilder directly,
    which halves the per-element cost of the pure-Python handlers defusedxml inherits.
    """

    def __init__(self, max_depth: int) -> None:
        target = TreeBuilder()
        super().__init__(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        start = target.start
        end = target.end
        depth = 0

        def on_start(tag: str, attr_list: list[str]) -> Element:
            nonlocal depth
            depth += 1
            if depth > max_depth:
                raise _TooDeep
            attrib = {}
            if attr_list:  # expat gives [name, value, name, value, ...] (ordered_attributes)
                for i in range(0, len(attr_list), 2):
                    attrib[_fixname(attr_list[i])] = attr_list[i + 1]
            return start(_NAMES.get(tag) or _fixname(tag), attrib)

        def on_end(tag: str) -> Element:
            nonlocal depth
            depth -= 1
            return end(tag)

        self.parser.StartElementHandler = on_start
        self.parser.EndElementHandler = on_end


def _read(cls: type[T], elem: Element) -> T:
    spec = _SPECS.get(cls) or _compile(cls)
    values: dict[str, Any] = {}
    attrib = elem.attrib
    if attrib:
        for name, read in spec.attr_readers:
            raw = attrib.get(name)
            if raw is not None:
                try:
                    values[name] = read(raw)
                except ValueError as exc:
                    raise _Invalid(name, str(exc)) from None
    dispatch = spec.dispatch
    value: Any
    for child in elem:
        entry = dispatch.get(child.tag)
        if entry is None:
            continue  # unknown or foreign-namespace element: ignored for forward compatibility
        name, sub, read, repeated = entry
        if sub is not None:
            try:
                value = _read(sub, child)
            except _Invalid as exc:
                where = f"{name}[{len(values.get(name, ()))}]" if repeated else name
                build = spec.salvage.get(name) if spec.salvage else None
                if build is None:
                    exc.path.append(where)
                    raise
                value = _salvage(build, sub, child, exc, f"{cls.__name__}/{where}")
                if value is None:
                    continue
        else:
            try:
                value = read(child.text or "")
            except ValueError as exc:
                raise _Invalid(name, str(exc)) from None
        if repeated:
            items = values.get(name)
            if items is None:
                values[name] = [value]
            else:
                items.append(value)
        elif name in values:
            raise _Invalid(name, "appears more than once")
        else:
            values[name] = value
    if not spec.required <= values.keys():
        missing = sorted(
            spec.required - values.keys(), key=[f.name for f in spec.elements + spec.attrs].index
        )
        raise _Invalid(missing[0], "required but missing")
    for name in spec.repeated:
        if name in values:
            values[name] = tuple(values[name])
    return cls(**values)


def _salvage(
    build: Callable[[Mapping[str, Any], str], object | None],
    cls: type,
    elem: Element,
    exc: _Invalid,
    where: str,
) -> object | None:
    """A stand-in for the list item `elem` that failed with `exc`, or None (dropped, logged)."""
    inside = "/".join(reversed(exc.path))
    problem = f"{inside}.{exc.field}: {exc.detail}" if inside else f"{exc.field}: {exc.detail}"
    item = build(_readable(cls, elem), problem)
    if item is None and problem not in _dropped:
        if len(_dropped) >= _DROPS_REMEMBERED:
            del _dropped[next(iter(_dropped))]
        _dropped[problem] = None
        _LOGGER.warning("dropped %s: %s (too broken to stand in for)", where, problem)
    return item


def _readable(cls: type, elem: Element) -> dict[str, Any]:
    """The attributes and single child elements of `elem` that parse on their own."""
    spec = _spec(cls)
    values: dict[str, Any] = {}
    for name, read in spec.attr_readers:
        raw = elem.attrib.get(name)
        if raw is not None:
            with contextlib.suppress(ValueError):
                values[name] = read(raw)
    seen: set[str] = set()
    for child in elem:
        entry = spec.dispatch.get(child.tag)
        if entry is None or entry[3]:
            continue  # unknown, or a repeated element: a stand-in needs neither
        name, sub, read, _ = entry
        if name in seen:
            values.pop(name, None)  # given twice: neither copy can be trusted
            continue
        seen.add(name)
        with contextlib.suppress(_Invalid, ValueError):
            values[name] = _read(sub, child) if sub is not None else read(child.text or "")
    return values


def _tree(name: str, body: bytes | str, max_bytes: int, max_depth: int) -> Element:
    if len(body) > max_bytes:
        raise SepParseError(name, "", f"body of {len(body)} bytes is over the {max_bytes}-byte limit")
    parser = _BoundedParser(max_depth)
    try:
        parser.feed(body)
        root: Element = parser.close()
    except _TooDeep:
        raise SepParseError(name, "", f"elements nested deeper than {max_depth} levels") from None
    except DefusedXmlException as exc:
        detail = f"{type(exc).__name__}: DTDs, entity declarations and external references are refused"
        raise SepParseError(name, "", detail) from None
    except ParseError as exc:
        raise SepParseError(name, "", f"not well-formed XML ({exc})") from None
    return root


def _model(cls: type[T], root: Element) -> T:
    try:
        return _read(cls, root)
    except _Invalid as exc:
        path = "/".join([cls.__name__, *reversed(exc.path)])
        raise SepParseError(path, exc.field, exc.detail) from None


def parse(
    cls: type[T], body: bytes | str, *, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH
) -> T:
    """Parse a 2030.5 XML document whose root element is `cls`; raise SepParseError on anything wrong."""
    name = cls.__name__
    root = _tree(name, body, max_bytes, max_depth)
    expected = _NS_PREFIX + name
    if root.tag != expected:
        local = root.tag.rpartition("}")[2]
        if local == name:
            detail = f"root element {root.tag!r} is not in the 2030.5 namespace {NS!r}"
        else:
            detail = f"expected root element {expected!r}, got {root.tag!r}"
        raise SepParseError(name, "", detail)
    return _model(cls, root)


def parse_one_of(
    body: bytes | str, *classes: type[T], max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_DEPTH
) -> T:
    """Parse a document whose root may be any of `classes` (e.g. a Reading or a ReadingSet POST)."""
    names = " | ".join(c.__name__ for c in classes)
    root = _tree(names, body, max_bytes, max_depth)
    for cls in classes:
        if root.tag == _NS_PREFIX + cls.__name__:
            return _model(cls, root)
    expected = ", ".join(repr(_NS_PREFIX + c.__name__) for c in classes)
    raise SepParseError(names, "", f"expected root element {expected}, got {root.tag!r}")


# --- writing ------------------------------------------------------------------------------------


def _write(obj: object, tag: str, out: list[str], head: str) -> None:
    spec = _SPECS.get(type(obj)) or _compile(type(obj))
    for a in spec.attrs:
        value = getattr(obj, a.name)
        if value is not None and value != a.default:
            head += f' {a.name}="{a.write(value)}"'
    elements = spec.elements
    out.append(f"<{tag}{head}>")
    for f in elements:
        value = getattr(obj, f.name)
        if value is None:
            continue
        if f.sub is not None:
            if f.repeated:
                for item in value:
                    _write(item, f.out_tag, out, f.out_head)
            else:
                _write(value, f.out_tag, out, f.out_head)
        elif f.repeated:
            for item in value:
                out.append(f.open)
                out.append(f.write(item))
                out.append(f.close)
        else:
            out.append(f.open)
            out.append(f.write(value))
            out.append(f.close)
    out.append(f"</{tag}>")


def to_xml(obj: object) -> bytes:
    """Serialize a model as a UTF-8 2030.5 document (root element named after its class)."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"not a 2030.5 model: {obj!r}")
    out: list[str] = []
    _write(obj, type(obj).__name__, out, _XMLNS)
    return "".join(out).encode()
