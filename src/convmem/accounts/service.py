"""Accounts, API keys and credential checks."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from convmem.accounts import repository
from convmem.accounts.models import Account, ApiKey
from convmem.accounts.secrets import (
    ACCOUNT_SID,
    API_KEY_SID,
    hash_secret,
    new_account_sid,
    new_api_key_sid,
    new_secret,
    verify_secret,
)
from convmem.kit.db import utcnow
from convmem.kit.errors import NotFound, ValidationFailed


@dataclass(frozen=True)
class Created:
    sid: str
    secret: str


def create_account(
    session: Session,
    *,
    sid: str | None = None,
    token: str | None = None,
    friendly_name: str | None = None,
) -> Created:
    sid = sid or new_account_sid()
    if not ACCOUNT_SID.match(sid):
        raise ValidationFailed("Account SID must be 'AC' followed by 32 lowercase hex digits")
    token = token or new_secret()
    repository.add(
        session,
        Account(
            sid=sid,
            token_hash=hash_secret(token),
            friendly_name=friendly_name,
            created_at=utcnow(),
        ),
    )
    return Created(sid, token)


def ensure_account(session: Session, *, sid: str, token: str) -> None:
    """Make `sid` exist with exactly this token (used for CONVMEM_ACCOUNT_SID)."""
    account = repository.get_account(session, sid)
    if account is None:
        create_account(session, sid=sid, token=token)
    elif not verify_secret(token, account.token_hash):
        account.token_hash = hash_secret(token)
        session.flush()


def create_api_key(
    session: Session, *, account_sid: str, friendly_name: str | None = None
) -> Created:
    if repository.get_account(session, account_sid) is None:
        raise NotFound(f"Account {account_sid} does not exist")
    sid, secret = new_api_key_sid(), new_secret()
    repository.add(
        session,
        ApiKey(
            sid=sid,
            account_sid=account_sid,
            secret_hash=hash_secret(secret),
            friendly_name=friendly_name,
            created_at=utcnow(),
        ),
    )
    return Created(sid, secret)


def list_accounts(session: Session) -> list[Account]:
    return repository.list_accounts(session)


def has_accounts(session: Session) -> bool:
    return repository.count_accounts(session) > 0


class CredentialCache:
    """Remembers verified credentials briefly so most requests skip the database.

    Keyed by the username and a SHA-256 of the password, never the password
    itself. A revoked credential stays valid at most `ttl` seconds per process.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple[str, bytes], tuple[str, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(username: str, password: str) -> tuple[str, bytes]:
        return username, hashlib.sha256(password.encode()).digest()

    def get(self, username: str, password: str) -> str | None:
        entry = self._entries.get(self._key(username, password))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, username: str, password: str, account_sid: str) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[self._key(username, password)] = (
                account_sid,
                time.monotonic() + self.ttl,
            )


def verify_credentials(session: Session, username: str, password: str) -> str | None:
    """The account SID these credentials act for, or None."""
    if ACCOUNT_SID.match(username):
        account = repository.get_account(session, username)
        if account is not None and verify_secret(password, account.token_hash):
            return account.sid
    elif API_KEY_SID.match(username):
        key = repository.get_api_key(session, username)
        if key is not None and verify_secret(password, key.secret_hash):
            return key.account_sid
    return None
