"""Protocol violations: ``RemoteProtocolError`` when the peer broke a rule, ``LocalProtocolError`` when we
tried to. Both are ``ProtocolError`` (errors.py), and nothing else is raised by the decoder."""

from __future__ import annotations

from shoal.errors import ProtocolError


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; the connection must be dropped."""


class LocalProtocolError(ProtocolError):
    """We tried to send something the protocol does not allow in this state (a bug on our side)."""
