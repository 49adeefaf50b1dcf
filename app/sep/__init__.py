"""IEEE 2030.5-2018 resources: typed frozen models and the XML codec. Imports nothing of ours.

Modules, one per function set: `types` (primitives, base resources, links, units), `event`,
`dcap`, `tm` (Time), `edev`, `fsa`, `der`, `metering_mirror`, `response`, `error` (the 2030.5
Error resource), `identity` (LFDI/SFDI), `codec`.

Codec entry points (re-exported here):
- `parse(cls, body, *, max_bytes=1_000_000, max_depth=32) -> cls`: untrusted bytes/str → model.
  Refuses DTDs, entities, external references, oversized and over-deep bodies; ignores unknown
  elements; anything else wrong raises `SepParseError(resource, field, detail)`, except in an item
  of a list field marked `Salvage` (DERControlList.DERControl): that item alone is replaced by a
  stand-in (`der.InvalidDERControl`, which a device answers 253) or, without an mRID, dropped.
- `parse_one_of(body, *classes) -> one of classes`: the same, dispatching on the root element
  (e.g. a POST to /mup/{id} carrying a MirrorMeterReading or a MirrorMeterReadingList).
- `to_xml(obj) -> bytes`: model → UTF-8 XML, schema element order, default namespace
  `urn:ieee:std:2030.5:ns`, root element named after the model class.

Field names are the schema's names (`opModFixedW`, `DERControlBase`, `mRID`); TimeType fields are
aware UTC datetimes; hex bitmaps are ints; mRIDs and LFDIs are hex strings; PerCent and
SignedPerCent are ints in hundredths; `ActivePower.watts` gives plain watts.
"""

from app.sep.codec import MAX_BODY_BYTES, MAX_DEPTH, parse, parse_one_of, to_xml
from app.sep.exceptions import ResourceError, SepParseError
from app.sep.types import NS

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "NS",
    "ResourceError",
    "SepParseError",
    "parse",
    "parse_one_of",
    "to_xml",
]
