from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from convmem.accounts.models import Account, ApiKey


def get_account(session: Session, sid: str) -> Account | None:
    return session.get(Account, sid)


def get_api_key(session: Session, sid: str) -> ApiKey | None:
    return session.get(ApiKey, sid)


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.created_at)))


def any_account(session: Session) -> bool:
    return session.scalar(select(Account.sid).limit(1)) is not None


def list_api_keys(session: Session, *, account_sid: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at)
    if account_sid is not None:
        query = query.where(ApiKey.account_sid == account_sid)
    return list(session.scalars(query))


def delete(session: Session, row: Account | ApiKey) -> None:
    session.delete(row)
    session.flush()


def add(session: Session, row: Account | ApiKey) -> None:
    session.add(row)
    session.flush()
