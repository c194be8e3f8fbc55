"""Errors of the storage layer; the server maps them to HTTP statuses (404, 409, 422, 413, 415)."""

from __future__ import annotations


class StorageError(Exception):
    """Base class; the message is one line meant for the user."""


class NotFound(StorageError, LookupError):
    """No row with that id (404)."""


class Conflict(StorageError):
    """The change contradicts the current state, e.g. a board moved under its own descendant (409)."""


class InvalidInput(StorageError, ValueError):
    """A malformed value: empty or too long name, unsafe file name, bad filter (422)."""


class UnsupportedMedia(StorageError, ValueError):
    """Not an image we accept, or a broken one (415)."""


class TooLarge(StorageError, ValueError):
    """Too many bytes or pixels (413)."""
