"""One exception hierarchy for updates; the class says what to do next."""

from __future__ import annotations


class OtaError(Exception):
    """Base of every update error."""


class BundleRejected(OtaError):
    """This bundle must never be installed as it is: give up on it (and report why)."""


class SignatureError(BundleRejected):
    """The signature does not verify with the key the bundle names."""


class UnknownKeyError(BundleRejected):
    """The bundle is signed with a key this box does not trust (unknown or revoked)."""


class IntegrityError(BundleRejected):
    """A file is missing, extra, or its size or SHA-256 differs from the signed manifest."""


class VersionRefused(BundleRejected):
    """A downgrade or re-install without --force, or this box is older than the bundle's minimum."""


class ReleaseBroken(BundleRejected):
    """The installed release does not even start (`wattsmart-gateway --version` fails): never switch to it."""


class InstallFailed(OtaError):
    """Unpacking or installing the release failed; the running release is untouched: retry later."""


class UpdateBusy(OtaError):
    """Another update is running on this box; try again when it has finished."""


class DownloadError(OtaError):
    """The fleet host could not be reached or sent something unusable; retry at the next poll."""


class NothingToDo(OtaError):
    """No update is on trial, so there is nothing to commit or roll back."""
