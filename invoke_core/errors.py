"""Errors raised by invoke_core. Each carries a message meant for the user, on one line."""

from __future__ import annotations


class InvokeCoreError(Exception):
    """Base class: something the caller (user, server, CLI) can act on."""


class InvalidCanvasError(InvokeCoreError, ValueError):
    """The canvas document or generation parameters are malformed."""


class InvalidImageError(InvokeCoreError, ValueError):
    """An image or mask could not be read, or has the wrong size or format."""


class ModelNotFoundError(InvokeCoreError, LookupError):
    """No installed model has the given id."""


class ModelInstallError(InvokeCoreError, ValueError):
    """A model could not be installed: unreadable, unknown family, unsafe format."""


class UnsupportedError(InvokeCoreError, ValueError):
    """A well-formed request asks for something this version cannot do."""


class GenerationCancelled(InvokeCoreError):
    """The job was cancelled; it produced no result."""


class OutOfMemoryError(InvokeCoreError, MemoryError):
    """The device ran out of memory during a job; the message names the settings that make it fit."""
