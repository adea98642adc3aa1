"""Import use cases: create (with its upload URL), read, list, receive an upload."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from convmem.imports import repository as repo
from convmem.imports.models import ProfileImport
from convmem.imports.schemas import ImportCreate
from convmem.imports.storage import Upload
from convmem.kit import ids
from convmem.kit.db import utcnow
from convmem.kit.errors import Conflict, ImportNotFound, ValidationFailed
from convmem.kit.pagination import Page, PageRequest, paginate
from convmem.operations import service as operations
from convmem.operations import status as op_status
from convmem.profiles import store_schema
from convmem.stores.models import StoreRef

IMPORT_KIND = "profiles.import"
IMPORT_ID = ids.matcher(ids.IMPORT)
# A worker gives an upload this long past its URL's expiry to appear (clocks,
# a PUT that started just in time).
UPLOAD_GRACE = dt.timedelta(seconds=60)
PENDING, PROCESSING, COMPLETED, FAILED = "PENDING", "PROCESSING", "COMPLETED", "FAILED"


def upload_of(row: ProfileImport) -> Upload:
    return Upload(row.store_id, row.id, row.file_size, row.upload_expires_at)


def check_mappings(session: Session, store: StoreRef, data: ImportCreate) -> None:
    """Each column once, each trait once and existing, one of them an identifier."""
    schema = store_schema.load(session, store)
    columns: set[str] = set()
    traits: set[tuple[str, str]] = set()
    promoted = False
    for n, m in enumerate(data.columnMappings):
        field = f"columnMappings[{n}]"
        if m.columnName in columns:
            raise ValidationFailed(f"{field}.columnName: column '{m.columnName}' is mapped twice")
        columns.add(m.columnName)
        if (m.traitGroup, m.traitName) in traits:
            raise ValidationFailed(
                f"{field}: trait {m.traitGroup}.{m.traitName} is mapped from two columns"
            )
        traits.add((m.traitGroup, m.traitName))
        group = schema.groups.get(m.traitGroup)
        if group is None:
            raise ValidationFailed(
                f"{field}.traitGroup: the store has no trait group '{m.traitGroup}'"
            )
        spec = group.get(m.traitName)
        if spec is None:
            raise ValidationFailed(
                f"{field}.traitName: trait group '{m.traitGroup}' has no trait '{m.traitName}'"
            )
        promoted = promoted or spec.id_type_promotion in schema.configs
    if not promoted:
        raise ValidationFailed(
            "columnMappings: at least one column must map to a trait promoted to an identifier "
            f"({', '.join(schema.promoted_traits()) or 'the store has none'})"
        )


def create(
    session: Session,
    *,
    store: StoreRef,
    data: ImportCreate,
    dry_run: bool,
    url_seconds: int,
    server_receives: bool,
) -> ProfileImport:
    check_mappings(session, store, data)
    now = utcnow()
    import_id = ids.new_id(ids.IMPORT)
    expires = (now + dt.timedelta(seconds=url_seconds)).replace(microsecond=0)
    op = operations.enqueue(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind=IMPORT_KIND,
        payload={"importId": import_id},
    )
    if server_receives:
        # Nothing to do before the file arrives: the upload wakes the job, and
        # if none comes, the job wakes at expiry to fail the import.
        op.run_after = expires + UPLOAD_GRACE
    row = ProfileImport(
        store_id=store.id,
        id=import_id,
        account_sid=store.account_sid,
        filename=data.filename,
        file_size=data.fileSize,
        column_mappings=[m.model_dump() for m in data.columnMappings],
        dry_run=dry_run,
        status=PENDING,
        operation_id=op.id,
        upload_expires_at=expires,
        progress=0.0,
        created_at=now,
        updated_at=now,
    )
    repo.add(session, row)
    return row


def get(session: Session, *, store: StoreRef, import_id: str) -> tuple[ProfileImport, str, str]:
    """The import with its status and, when it failed, why."""
    ids.require(IMPORT_ID, import_id, field="importId", prefix=ids.IMPORT, error=ValidationFailed)
    row = repo.get(session, store.id, import_id)
    if row is None:
        raise ImportNotFound(f"Import {import_id} not found")
    status, message = row.status, row.detail or ""
    if status not in (COMPLETED, FAILED):
        # The job gave up (a crash it could not get past): so does the import.
        state = repo.operation_state(session, row.operation_id)
        if state is not None and state[0] == op_status.FAILED:
            status = FAILED
            message = str((state[1] or {}).get("detail") or "internal error")
    return row, status, message


def list_ids(session: Session, *, store: StoreRef, page: PageRequest) -> Page[str]:
    return paginate(
        session,
        repo.list_query(store.id),
        ProfileImport.id,
        page,
        key_of=lambda iid: iid,
        scope="imports",
    )


@dataclass(frozen=True)
class UploadTarget:
    row: ProfileImport
    upload: Upload


def upload_target(session: Session, store_id: str, import_id: str) -> UploadTarget:
    """The import an upload URL names, while it still waits for its file."""
    if not IMPORT_ID.match(import_id) or not ids.STORE_ID.match(store_id):
        raise ImportNotFound("Import not found")
    row = repo.get(session, store_id, import_id)
    if row is None:
        raise ImportNotFound(f"Import {import_id} not found")
    if row.status != PENDING:
        raise Conflict(f"Import {import_id} already has its file; create a new import")
    return UploadTarget(row, upload_of(row))


def uploaded(session: Session, row: ProfileImport) -> None:
    """The file is complete: the import is PROCESSING and its job due now."""
    now = utcnow()
    if not repo.mark_uploaded(session, row.store_id, row.id, uploaded_at=now, updated_at=now):
        raise Conflict(f"Import {row.id} already has its file; create a new import")
    repo.wake(session, row.operation_id, now)
