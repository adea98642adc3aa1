"""Where a dataset's rows come from: CSV and Parquet files (local or in S3) and
SQL tables or queries.

A source describes its own fields (read from the source, never typed in) and
reads rows in batches, in an order a run can resume from: files in file order
(resumed after a row count), SQL tables and queries by key, and incremental
reads in (cursor, key) order after a watermark. Every batch comes with the
token to resume after it; tokens are plain JSON.

What a source may read is the operator's decision (`allowed`): local paths
under the dataset directories, SQL hosts named in settings, and S3 objects
with the configured credentials."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlparse

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from convmem.kit import s3
from convmem.settings import Settings

# The types a field can have. Trait types each accept some of them (see
# convmem.mappings.rules); OTHER (binary, nested records) maps to no trait.
STRING, INTEGER, NUMBER, BOOLEAN = "STRING", "INTEGER", "NUMBER", "BOOLEAN"
TIMESTAMP, DATE, ARRAY, OTHER = "TIMESTAMP", "DATE", "ARRAY", "OTHER"
FIELD_TYPES = (STRING, INTEGER, NUMBER, BOOLEAN, TIMESTAMP, DATE, ARRAY, OTHER)

MAX_FIELDS = 1000
CSV_BLOCK = 1 << 20  # bytes per CSV block; the first one is the type-inference sample
SQL_CONNECT_SECONDS = 10
SQL_SAMPLE_ROWS = 100


class SourceError(Exception):
    """The source cannot be read; the message says why, for the user."""


class NotAllowed(SourceError):
    """The operator's settings do not let datasets read this."""


@dataclass(frozen=True)
class FieldInfo:
    name: str
    data_type: str
    native: str  # the source's own name for the type

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "dataType": self.data_type, "nativeType": self.native}


@dataclass(frozen=True)
class Description:
    fields: list[FieldInfo]
    key: str | None = None  # a SQL table's one-column primary key

    def __post_init__(self) -> None:
        if len(self.fields) > MAX_FIELDS:
            raise SourceError(f"the source has {len(self.fields)} fields; at most {MAX_FIELDS}")

    def field(self, name: str) -> FieldInfo | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Order:
    """Incremental reads: rows strictly after (cursor, key), in that order."""

    cursor: str
    key: str


# A batch of rows (tuples in the order of the columns asked for) and the token
# that resumes after its last row.
Batch = tuple[list[tuple[Any, ...]], Any]


class Source(Protocol):
    def describe(self) -> Description: ...

    def read(
        self, columns: Sequence[str], *, size: int, after: Any, order: Order | None, key: str | None
    ) -> Iterator[Batch]: ...


# -- resume tokens -------------------------------------------------------------


def encode_value(value: Any) -> Any:
    """A cursor or key value as JSON that `decode_value` turns back."""
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise SourceError(f"a {type(value).__name__} value cannot be a cursor or key")


def decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "datetime" in value:
            return dt.datetime.fromisoformat(value["datetime"])
        if "date" in value:
            return dt.date.fromisoformat(value["date"])
        if "decimal" in value:
            return decimal.Decimal(value["decimal"])
    return value


def _positions(names: Sequence[str], columns: Sequence[str], extra: Sequence[str]) -> list[str]:
    missing = [c for c in [*columns, *extra] if c not in names]
    if missing:
        raise SourceError(f"the source has no field {', '.join(repr(m) for m in missing)}")
    return list(dict.fromkeys([*columns, *extra]))


# -- files ---------------------------------------------------------------------


def _arrow_type(arrow_type: Any) -> str:
    import pyarrow as pa

    t = pa.types
    if t.is_boolean(arrow_type):
        return BOOLEAN
    if t.is_integer(arrow_type):
        return INTEGER
    if t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        return NUMBER
    if t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return STRING
    if t.is_timestamp(arrow_type):
        return TIMESTAMP
    if t.is_date(arrow_type):
        return DATE
    if t.is_list(arrow_type) or t.is_large_list(arrow_type):
        item = arrow_type.value_type
        scalar = (
            t.is_boolean(item)
            or t.is_integer(item)
            or t.is_floating(item)
            or t.is_string(item)
            or t.is_large_string(item)
        )
        return ARRAY if scalar else OTHER
    return OTHER


def _rows(batch: Any, count: int) -> list[tuple[Any, ...]]:
    columns = [batch.column(i).to_pylist() for i in range(count)]
    return list(zip(*columns, strict=True)) if columns else []


class FileSource:
    """A CSV or Parquet file. CSV values are read as text (so `007` stays
    `007`), and the pipeline coerces them as an import does; the field types
    CSV declares are inferred from the file's first megabyte."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt

    def _csv(self, types: dict[str, Any] | None, include: Sequence[str] | None = None) -> Any:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(
            column_types=types or {},
            include_columns=list(include) if include else None,
            strings_can_be_null=False,
        )
        try:
            return pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=convert,
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"the CSV file cannot be read: {_short(exc)}") from None

    def _parquet(self) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"the Parquet file cannot be read: {_short(exc)}") from None

    def _schema(self) -> Any:
        if self.fmt == "PARQUET":
            return self._parquet().schema_arrow
        reader = self._csv(None)
        try:
            return reader.schema
        finally:
            reader.close()

    def describe(self) -> Description:
        schema = self._schema()
        names = list(schema.names)
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise SourceError(f"the file names a field twice: {', '.join(twice)}")
        return Description(
            [FieldInfo(f.name, _arrow_type(f.type), str(f.type)) for f in schema],
        )

    def read(
        self, columns: Sequence[str], *, size: int, after: Any, order: Order | None, key: str | None
    ) -> Iterator[Batch]:
        schema = self._schema()
        if order is not None:
            yield from self._read_after(schema, columns, size=size, after=after, order=order)
            return
        names = _positions(schema.names, columns, ())
        done = int(after or 0)
        for rows in self._batches(schema, names, size=size, skip=done):
            done += len(rows)
            yield rows, done

    def _batches(
        self, schema: Any, names: Sequence[str], *, size: int, skip: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        import pyarrow as pa

        if self.fmt == "PARQUET":
            parquet = self._parquet()
            groups, start = [], 0
            for n in range(parquet.metadata.num_row_groups):
                rows = parquet.metadata.row_group(n).num_rows
                if start + rows > skip:
                    groups.append(n)
                else:
                    skip -= rows
                start += rows
            batches: Any = parquet.iter_batches(
                batch_size=size, columns=list(names), row_groups=groups
            )
        else:
            reader = self._csv({n: pa.string() for n in schema.names}, names)
            batches = _csv_batches(reader)
        pending: list[tuple[Any, ...]] = []
        for batch in batches:
            rows = _rows(batch.select(list(names)), len(names))
            if skip:
                dropped = min(skip, len(rows))
                rows, skip = rows[dropped:], skip - dropped
            pending.extend(rows)
            while len(pending) >= size:
                yield pending[:size]
                pending = pending[size:]
        if pending:
            yield pending

    def _read_after(
        self, schema: Any, columns: Sequence[str], *, size: int, after: Any, order: Order
    ) -> Iterator[Batch]:
        """The rows after the watermark, sorted by (cursor, key): the file is
        read whole (only the columns needed)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        names = _positions(schema.names, columns, (order.cursor, order.key))
        if self.fmt == "PARQUET":
            table = self._parquet().read(columns=names)
        else:
            # Mapped columns as text (as a full read has them); cursor and key
            # typed, so they compare as numbers or times, not as text.
            typed = {order.cursor, order.key}
            types = {n: pa.string() for n in schema.names if n not in typed}
            reader = self._csv(types, names)
            try:
                table = reader.read_all()
            except pa.ArrowInvalid as exc:
                raise SourceError(f"the CSV file cannot be read: {_short(exc)}") from None
        cursor, key = table[order.cursor], table[order.key]
        keep = pc.and_(pc.is_valid(cursor), pc.is_valid(key))
        if after is not None:
            last_cursor, last_key = (decode_value(v) for v in after)
            try:
                wc = pa.scalar(last_cursor, type=cursor.type)
                wk = pa.scalar(last_key, type=key.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
                raise SourceError(
                    f"the watermark no longer fits the cursor or key type: {_short(exc)}"
                ) from None
            later = pc.or_(
                pc.greater(cursor, wc), pc.and_(pc.equal(cursor, wc), pc.greater(key, wk))
            )
            keep = pc.and_(keep, later)
        table = table.filter(keep).sort_by([(order.cursor, "ascending"), (order.key, "ascending")])
        at_cursor, at_key = names.index(order.cursor), names.index(order.key)
        for batch in table.to_batches(max_chunksize=size):
            rows = _rows(batch, len(names))
            if not rows:
                continue
            last = rows[-1]
            token = [encode_value(last[at_cursor]), encode_value(last[at_key])]
            yield [row[: len(columns)] for row in rows], token


def _csv_batches(reader: Any) -> Iterator[Any]:
    import pyarrow as pa

    try:
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as exc:
                raise SourceError(f"the CSV file cannot be read: {_short(exc)}") from None
    finally:
        reader.close()


class S3FileSource:
    """A CSV or Parquet object, copied to a temporary file for each read
    (Parquet needs to seek; the copy is removed afterwards)."""

    def __init__(self, settings: Settings, location: str, fmt: str) -> None:
        parsed = urlparse(location)
        if not parsed.netloc or not parsed.path.strip("/"):
            raise SourceError(f"'{location}' is not an s3://bucket/key location")
        self.settings = settings
        self.bucket, self.key = parsed.netloc, parsed.path.lstrip("/")
        self.fmt = fmt

    @contextlib.contextmanager
    def _local(self) -> Iterator[FileSource]:
        from botocore.exceptions import BotoCoreError, ClientError

        self.settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=self.settings.data_dir, suffix=".dataset") as tmp:
            try:
                s3.client(self.settings).download_fileobj(self.bucket, self.key, tmp)
            except (BotoCoreError, ClientError) as exc:
                raise SourceError(
                    f"s3://{self.bucket}/{self.key} cannot be read: {_short(exc)}"
                ) from None
            tmp.flush()
            yield FileSource(Path(tmp.name), self.fmt)

    def describe(self) -> Description:
        with self._local() as source:
            return source.describe()

    def read(
        self, columns: Sequence[str], *, size: int, after: Any, order: Order | None, key: str | None
    ) -> Iterator[Batch]:
        with self._local() as source:
            yield from source.read(columns, size=size, after=after, order=order, key=key)


# -- SQL -------------------------------------------------------------------------

_PY_TYPES: list[tuple[type, str]] = [
    (bool, BOOLEAN),
    (int, INTEGER),
    (float, NUMBER),
    (decimal.Decimal, NUMBER),
    (str, STRING),
    (dt.datetime, TIMESTAMP),
    (dt.date, DATE),
    (list, ARRAY),
]
# PostgreSQL type OIDs a query's result description carries.
_PG_OIDS = {
    16: BOOLEAN,
    20: INTEGER,
    21: INTEGER,
    23: INTEGER,
    700: NUMBER,
    701: NUMBER,
    1700: NUMBER,
    25: STRING,
    1042: STRING,
    1043: STRING,
    19: STRING,
    1114: TIMESTAMP,
    1184: TIMESTAMP,
    1082: DATE,
    1000: ARRAY,
    1005: ARRAY,
    1007: ARRAY,
    1016: ARRAY,
    1009: ARRAY,
    1015: ARRAY,
    1021: ARRAY,
    1022: ARRAY,
}


def _python_type(value: Any) -> str:
    for py, name in _PY_TYPES:
        if isinstance(value, py):
            return name
    return OTHER


def _sql_type(sql_type: Any) -> str:
    try:
        py = sql_type.python_type
    except NotImplementedError:
        return OTHER
    for candidate, name in _PY_TYPES:
        if issubclass(py, candidate):
            return name
    return OTHER


class SqlSource:
    """A table (`schema.table` allowed) or a query, through a SQLAlchemy URL.

    Reads run in read-only transactions (PostgreSQL) and page by key, each
    batch its own short query, so nothing is held open between batches."""

    def __init__(self, url: str, *, table: str | None, query: str | None) -> None:
        self.url = url
        self.table = table
        self.query = query

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sa.Connection]:
        url = make_url(self.url)
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() == "postgresql":
            connect_args["connect_timeout"] = SQL_CONNECT_SECONDS
            if url.drivername in ("postgresql", "postgres"):
                url = url.set(drivername="postgresql+psycopg")
        elif url.get_backend_name() == "sqlite":
            connect_args["timeout"] = SQL_CONNECT_SECONDS
        try:
            engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise SourceError(f"the SQL URL cannot be used: {_short(exc)}") from None
        try:
            with engine.connect() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SET TRANSACTION READ ONLY"))
                try:
                    yield conn
                finally:
                    conn.rollback()
        except SQLAlchemyError as exc:
            raise SourceError(f"the SQL source cannot be read: {_short(exc)}") from None
        finally:
            engine.dispose()

    def _table_parts(self) -> tuple[str | None, str]:
        assert self.table is not None
        schema, _, name = self.table.rpartition(".")
        return (schema or None), name

    def describe(self) -> Description:
        with self._connection() as conn:
            if self.table is not None:
                schema, name = self._table_parts()
                inspector = sa.inspect(conn)
                if not inspector.has_table(name, schema=schema):
                    raise SourceError(f"the database has no table '{self.table}'")
                columns = inspector.get_columns(name, schema=schema)
                pk = inspector.get_pk_constraint(name, schema=schema).get("constrained_columns")
                return Description(
                    [FieldInfo(c["name"], _sql_type(c["type"]), str(c["type"])) for c in columns],
                    key=pk[0] if pk and len(pk) == 1 else None,
                )
            result = conn.execute(
                sa.select(sa.text("*")).select_from(self._query_sub([])).limit(SQL_SAMPLE_ROWS)
            )
            names = list(result.keys())
            # Read before the rows: an exhausted result has closed its cursor.
            description = result.cursor.description if result.cursor else None
            rows = result.all()
            fields = []
            for n, name in enumerate(names):
                data_type, native = OTHER, "unknown"
                oid = description[n][1] if description else None
                if conn.dialect.name == "postgresql" and isinstance(oid, int):
                    data_type, native = _PG_OIDS.get(oid, OTHER), f"oid {oid}"
                else:  # no types in the description (SQLite): the values say
                    sample = next((row[n] for row in rows if row[n] is not None), None)
                    data_type = STRING if sample is None else _python_type(sample)
                    native = "inferred"
                fields.append(FieldInfo(str(name), data_type, native))
            return Description(fields)

    def _query_sub(self, names: Sequence[str]) -> Any:
        assert self.query is not None
        # Colons are the query's own (`'12:30'`, `::int`), never bind parameters.
        query = self.query.replace(":", "\\:")
        if not names:
            return sa.text(f"({query}) AS convmem_source")
        return sa.text(query).columns(*(sa.column(n) for n in names)).subquery("convmem_source")

    def _from(self, names: Sequence[str]) -> Any:
        if self.table is not None:
            # Reflected, so values come back as their declared types (a
            # SQLite BOOLEAN column stores 0/1 but reads as a bool).
            schema, name = self._table_parts()
            with self._connection() as conn:
                return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
        return self._query_sub(names)

    def read(
        self, columns: Sequence[str], *, size: int, after: Any, order: Order | None, key: str | None
    ) -> Iterator[Batch]:
        by = [order.cursor, order.key] if order else [key] if key else []
        if not by:
            raise SourceError("reading a SQL source needs a key field (sync.keyField)")
        names = list(dict.fromkeys([*columns, *by]))
        source = self._from(names)
        missing = [n for n in names if n not in source.c]
        if missing:
            raise SourceError(f"the source has no field {', '.join(repr(m) for m in missing)}")
        cols = [source.c[n] for n in names]
        order_cols = [source.c[n] for n in by]
        last = [decode_value(v) for v in after] if after is not None else None
        while True:
            stmt = sa.select(*cols).where(*(c.is_not(None) for c in order_cols))
            if last is not None:
                stmt = stmt.where(sa.tuple_(*order_cols) > sa.tuple_(*last))
            stmt = stmt.order_by(*order_cols).limit(size)
            with self._connection() as conn:
                rows = [tuple(r) for r in conn.execute(stmt).all()]
            if not rows:
                return
            positions = [names.index(n) for n in by]
            last = [rows[-1][p] for p in positions]
            yield [row[: len(columns)] for row in rows], [encode_value(v) for v in last]
            if len(rows) < size:
                return


# -- what a dataset may read ------------------------------------------------------


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def local_path(location: str, settings: Settings) -> Path:
    """The file `location` names, if it lies under a dataset directory
    (relative paths are taken from the first one). `..` and symlinks are
    resolved first, so neither leads out."""
    roots = settings.dataset_roots
    if "\x00" in location:
        raise NotAllowed("the location contains a NUL character")
    candidate = Path(location)
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as exc:
        raise SourceError(f"'{location}' cannot be opened: {_short(exc)}") from None
    # Containment first, so nothing is told about files outside the directories.
    if not _inside(resolved, roots):
        raise NotAllowed(
            f"'{location}' is outside the dataset directories (CONVMEM_DATASET_DIRS: "
            f"{':'.join(str(r) for r in roots)})"
        )
    if not resolved.exists():
        raise SourceError(f"no file at '{location}'")
    if not resolved.is_file():
        raise SourceError(f"'{location}' is not a file")
    return resolved


# Connection options a SQL URL may carry. Others are refused: libpq reads
# `host`, `hostaddr` or `service` from the query string too, which would
# bypass CONVMEM_DATASET_SQL_HOSTS.
SAFE_URL_OPTIONS = frozenset(
    {"sslmode", "application_name", "connect_timeout", "target_session_attrs", "charset"}
)


def check_sql_url(url: str, settings: Settings) -> str:
    """The URL to connect with, once the operator's settings allow it: a
    SQLite database must be a file under the dataset directories (opened
    read-only), any other database a host in CONVMEM_DATASET_SQL_HOSTS."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SourceError("the SQL URL is not a SQLAlchemy URL (dialect://user@host/db)") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or database.startswith("file:"):
            raise NotAllowed("a SQLite dataset must name a database file")
        if parsed.query:
            raise NotAllowed("a SQLite dataset URL takes no options")
        path = local_path(database, settings)
        # The resolved file, read-only: never a path relative to the server's
        # working directory, never a new database.
        return f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true"
    unsafe = sorted(set(parsed.query) - SAFE_URL_OPTIONS)
    if unsafe:
        raise NotAllowed(
            f"the SQL URL's option {unsafe[0]!r} is not allowed (allowed: "
            f"{', '.join(sorted(SAFE_URL_OPTIONS))})"
        )
    host = (parsed.host or "").lower()
    allowed = settings.sql_hosts
    if not host or (host not in allowed and f"{host}:{parsed.port}" not in allowed):
        raise NotAllowed(
            f"SQL host '{host or '(none)'}' is not allowed; add it to CONVMEM_DATASET_SQL_HOSTS"
        )
    return url


def masked_url(url: str) -> str:
    """The URL as responses and logs show it: any password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "***"


def open_source(spec: dict[str, Any], settings: Settings) -> Source:
    """The source a dataset's stored `source` describes, checked against what
    the operator allows."""
    kind = spec["type"]
    if kind in ("CSV", "PARQUET"):
        location = spec["location"]
        if location.startswith("s3://"):
            return S3FileSource(settings, location, kind)
        return FileSource(local_path(location, settings), kind)
    url = check_sql_url(spec["url"], settings)
    return SqlSource(url, table=spec.get("table"), query=spec.get("query"))


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[:limit] + "…"
