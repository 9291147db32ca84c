"""The one error hierarchy of shoal.

Every error a user can meet derives from :class:`ShoalError`, carries a readable message and the exit
code the command line returns for it. Expected per-file problems (a file that vanished, EACCES) are not
exceptions: they are results the scanner and the engine report.
"""

from __future__ import annotations


class ShoalError(Exception):
    """Base of all errors shown to a user; ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(ShoalError):
    """The configuration is malformed or inconsistent. The message names file:line:col where it can."""


class StateError(ShoalError):
    """The state directory or database cannot be used (newer schema, corrupt, unwritable)."""


class IdentityError(ShoalError):
    """This node's key or certificate is missing or unusable."""


class AuthError(ShoalError):
    """A peer failed authentication, or we failed it."""


class ProtocolError(ShoalError):
    """A protocol rule was broken; see proto/ for the local and remote variants."""


class TransferError(ShoalError):
    """Content could not be moved or applied."""


class UsageError(ShoalError):
    """The command line was wrong."""

    exit_code = 2
