"""Console sign-in sessions: a cookie holding the signed (public key, expiry, session id), never
the private key, and the CSRF token every form of that session carries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

COOKIE_NAME = "dblogpack_console"
SESSION_SECONDS = 8 * 3600
_PURPOSE = b"dblogpack/console-session/v1"


@dataclass(frozen=True, slots=True)
class Session:
    """Who signed in, until when, and the random id the CSRF token is derived from."""

    public_key: str
    expires_at: int
    session_id: str


class SessionSealer:
    """Signs and verifies session cookies and CSRF tokens with a key derived from the server's."""

    def __init__(self, server_signing_key: bytes) -> None:
        # A key of its own, so a session token can never pass as a download link or vice versa.
        self._key = hmac.new(server_signing_key, _PURPOSE, hashlib.sha256).digest()

    def new_session(self, public_key: str, now: float) -> Session:
        return Session(public_key, int(now) + SESSION_SECONDS, secrets.token_urlsafe(16))

    def seal(self, session: Session) -> str:
        payload = json.dumps(
            {"pk": session.public_key, "exp": session.expires_at, "sid": session.session_id},
            separators=(",", ":"),
        ).encode()
        encoded = base64.urlsafe_b64encode(payload).decode("ascii").rstrip("=")
        return f"{encoded}.{self._mac(encoded)}"

    def open(self, token: str | None, now: float) -> Session | None:
        """The session a cookie holds; None when absent, tampered with or expired."""
        if not token or token.count(".") != 1:
            return None
        encoded, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(encoded)):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
            session = Session(str(fields["pk"]), int(fields["exp"]), str(fields["sid"]))
        except (ValueError, KeyError, TypeError):
            return None  # signed by us, so only a format change of ours could land here
        return session if session.expires_at > now else None

    def csrf_token(self, session: Session) -> str:
        return self._mac(f"csrf:{session.session_id}")

    def csrf_valid(self, session: Session, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session), token)

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
