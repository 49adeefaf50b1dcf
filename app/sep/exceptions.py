"""The errors of the 2030.5 resource layer (not the 2030.5 `Error` resource: see app.sep.error)."""

from __future__ import annotations


class ResourceError(Exception):
    """Base of every error raised by app.sep (app.client.errors.SepError is a failed request)."""


class SepParseError(ResourceError):
    """A body that is not a valid document of the expected resource: do not retry the same body.

    `resource` is the path to the offending element (e.g. "DERControlList/DERControl[3]/
    DERControlBase"), `field` the element or attribute ("" for whole-document problems).
    """

    def __init__(self, resource: str, field: str, detail: str) -> None:
        self.resource = resource
        self.field = field
        self.detail = detail
        where = f"{resource}.{field}" if field else resource
        super().__init__(f"cannot parse {where}: {detail}")
