"""Accounts, API keys and credential checks."""

from __future__ import annotations

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


def rotate_token(session: Session, *, account_sid: str) -> str:
    """A new auth token for the account (returned once); the old one is revoked."""
    account = repository.get_account(session, account_sid)
    if account is None:
        raise NotFound(f"Account {account_sid[:40]} does not exist")
    token = new_secret()
    account.token_hash = hash_secret(token)
    session.flush()
    return token


def list_api_keys(session: Session, *, account_sid: str | None = None) -> list[ApiKey]:
    if account_sid is not None and repository.get_account(session, account_sid) is None:
        raise NotFound(f"Account {account_sid[:40]} does not exist")
    return repository.list_api_keys(session, account_sid=account_sid)


def revoke_api_key(session: Session, *, key_sid: str) -> None:
    key = repository.get_api_key(session, key_sid)
    if key is None:
        raise NotFound(f"API key {key_sid[:40]} does not exist")
    repository.delete(session, key)


def list_accounts(session: Session) -> list[Account]:
    return repository.list_accounts(session)


def has_accounts(session: Session) -> bool:
    return repository.any_account(session)


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
