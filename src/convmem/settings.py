"""The one settings class. Every field is a `CONVMEM_*` environment variable.

Each field's description is the user-facing documentation; a test checks that
every setting is listed in the README.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONVMEM_", extra="ignore")

    data_dir: Path = Field(
        Path("./convmem-data"),
        description="Directory for the embedded SQLite database and uploaded files.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database. Default: SQLite file `convmem.db` in the "
        "data directory. `postgresql://user@host/db` selects PostgreSQL (psycopg 3).",
    )
    host: str = Field("127.0.0.1", description="Interface `convmem serve` listens on.")
    port: int = Field(8000, description="Port `convmem serve` listens on.")
    public_url: str | None = Field(
        None,
        description="Base URL clients reach the server at, used in `statusUrl`/`Location`. "
        "Default: taken from each request.",
    )
    account_sid: str | None = Field(
        None, description="With `CONVMEM_AUTH_TOKEN`: this account exists with this token."
    )
    auth_token: str | None = Field(
        None, description="Auth token for `CONVMEM_ACCOUNT_SID` (stored hashed)."
    )
    processes: int = Field(
        1,
        ge=1,
        description="Server processes `convmem serve` runs on its port. More than one suits "
        "PostgreSQL; SQLite allows one writer at a time, so extra processes mostly wait.",
    )
    db_pool_size: int | None = Field(
        None,
        ge=1,
        le=500,
        description="Database connections each server process keeps for requests "
        "(PostgreSQL). Default: four per CPU core, at least 8. Requests beyond it wait "
        "for a connection rather than open new ones.",
    )
    request_threads: int = Field(
        8,
        ge=1,
        description="Threads per server process for data-plane work off the event loop "
        "(bulk upserts, SQLite writes waiting for the lock, credential checks).",
    )
    run_workers: bool = Field(
        True, description="`convmem serve` also runs background workers in-process."
    )
    worker_threads: int = Field(1, ge=1, description="Worker threads per worker process.")
    job_lease_seconds: float = Field(
        30.0, gt=0, description="A claimed job not heartbeated for this long is taken over."
    )
    job_poll_seconds: float = Field(
        0.5, gt=0, description="How often an idle worker looks for new jobs."
    )
    job_max_attempts: int = Field(
        5, ge=1, description="Attempts before a failing job is marked FAILED."
    )
    job_backoff_seconds: float = Field(
        2.0, ge=0, description="First retry delay; doubles per attempt (capped at 5 minutes)."
    )
    job_batch_size: int = Field(
        500, ge=1, description="Rows per transaction in background jobs (deletes, imports)."
    )
    import_batch_size: int = Field(
        5000, ge=1, le=50_000, description="CSV rows an import writes per transaction."
    )
    import_prebuild_bytes: int = Field(
        8 * 1024 * 1024,
        ge=0,
        description="Files from this size on (SQLite, uploads kept in the data directory) are "
        "read and built into rows by a second process while the job writes (ingest.prebuild).",
    )
    import_storage: str | None = Field(
        None,
        description="Where import uploads go. Default: the data directory, behind upload URLs "
        "convmem signs and serves itself. `s3://bucket/prefix`: an S3-compatible bucket "
        "(boto3 pre-signed PUT URLs).",
    )
    upload_secret: str | None = Field(
        None,
        description="Key that signs upload URLs (HMAC-SHA256). Default: generated once into "
        "`upload-secret` in the data directory. Set it when several hosts serve one database.",
    )
    upload_url_seconds: int = Field(
        1800, ge=60, le=7 * 24 * 3600, description="How long an import's upload URL is valid."
    )
    s3_endpoint_url: str | None = Field(
        None, description="Endpoint of an S3-compatible service (MinIO, Ceph...). Default: AWS."
    )
    s3_region: str | None = Field(None, description="Region of the import bucket.")
    s3_access_key_id: str | None = Field(
        None, description="Access key for the import bucket. Default: boto3's credential chain."
    )
    s3_secret_access_key: str | None = Field(
        None, description="Secret key for `CONVMEM_S3_ACCESS_KEY_ID`."
    )
    upload_poll_seconds: float = Field(
        2.0, gt=0, description="How often a worker checks the bucket for an import's upload."
    )
    dataset_dirs: str | None = Field(
        None,
        description="Directories datasets may read CSV and Parquet files (and SQLite databases) "
        "from, separated by `:`. Paths outside them, through `..` or symlinks, are refused. "
        "Default: `datasets` in the data directory.",
    )
    dataset_sql_hosts: str = Field(
        "",
        description="Database hosts SQL datasets may connect to, comma-separated (`host` or "
        "`host:port`). Default: none, so SQL datasets other than SQLite files in "
        "`CONVMEM_DATASET_DIRS` are refused.",
    )
    sync_batch_size: int = Field(
        5000,
        ge=1,
        le=50_000,
        description="Dataset rows a data-mapping sync writes per transaction.",
    )
    embedder: str = Field(
        "minilm",
        pattern="^(minilm|none)$",
        description="`minilm`: Recall ranks memories by meaning too, with all-MiniLM-L6-v2 run "
        "locally (loaded on first use, ~190 MB). `none`: lexical ranking only.",
    )
    max_stores_per_account: int = Field(15, ge=1, description="Store limit per account.")
    max_body_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted, measured after gzip/deflate decompression.",
    )
    body_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Time a client has to send a whole request body (408 beyond).",
    )
    rate_limit_per_second: float = Field(
        0.0,
        ge=0,
        description="Requests per second allowed per credential (0 turns rate limiting off). "
        "Counted per server process.",
    )
    rate_limit_burst: int = Field(
        50, ge=1, description="Requests a credential may send at once before the rate applies."
    )
    credential_cache_seconds: float = Field(
        60.0,
        ge=0,
        description="How long a verified credential is trusted without a database look-up.",
    )
    log_level: str = Field("INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    log_format: str = Field("json", description="`json` (one object per line) or `console`.")
    access_log: bool = Field(True, description="Log one line per HTTP request.")
    bench_routes: bool = Field(
        False,
        description="Serve `POST /_bench/floor`, which authenticates and parses a profile "
        "body and does nothing else: the floor of the stack, for `bench/profiles.py`.",
    )

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Plain postgres URLs mean psycopg 3, the only PostgreSQL driver we ship.
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{(self.data_dir / 'convmem.db').resolve()}"

    @property
    def dataset_roots(self) -> list[Path]:
        if self.dataset_dirs:
            return [Path(p).resolve() for p in self.dataset_dirs.split(":") if p.strip()]
        return [(self.data_dir / "datasets").resolve()]

    @property
    def sql_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.dataset_sql_hosts.split(",") if h.strip())

    @property
    def pool_size(self) -> int:
        return self.db_pool_size or max(8, 4 * (os.cpu_count() or 2))

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
