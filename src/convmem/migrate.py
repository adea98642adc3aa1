"""Applying Alembic migrations, safely from several processes at once."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from convmem.kit.db import IMMEDIATE, Database

# Any constant works; it only has to be the same in every convmem process.
_PG_LOCK_KEY = 7_262_100_117


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "convmem:migrations")
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    config = alembic_config()
    with db.engine.connect() as connection:
        if db.is_sqlite:
            # Take the write lock before Alembic reads the current revision.
            connection = connection.execution_options(**{IMMEDIATE: True})
        else:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
        finally:
            if not db.is_sqlite:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                connection.commit()
