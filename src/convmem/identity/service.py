from __future__ import annotations

from sqlalchemy.orm import Session

from convmem.identity import repository, rules
from convmem.identity.models import IdentityResolutionSettings
from convmem.identity.schemas import IdentityResolutionSettingsIn
from convmem.kit.db import utcnow
from convmem.kit.errors import NotFound, PreconditionFailed
from convmem.kit.hooks import Hooks
from convmem.operations import service as operations
from convmem.operations.models import Operation
from convmem.stores import repository as stores
from convmem.stores.models import Store

# Background job (registered by profiles, which owns the identifiers): stored
# identifiers follow a new enforceUnique / matchingAlgo of their idType.
REINDEX_KIND = "identityResolutionSettings.reindex"


def settings_path(store_id: str) -> str:
    return f"/v1/ControlPlane/Stores/{store_id}/IdentityResolutionSettings"


def create_defaults(session: Session, store_id: str) -> None:
    """A new store's settings (connected to the store_created hook)."""
    configs, matching = rules.default_settings()
    repository.add(
        session,
        IdentityResolutionSettings(
            store_id=store_id,
            identifier_configs=configs,
            matching_rules=matching,
            version=1,
            updated_at=utcnow(),
        ),
    )


def get(session: Session, *, store_id: str) -> IdentityResolutionSettings:
    row = repository.get(session, store_id)
    if row is None:  # every store gets settings at creation
        raise NotFound(f"Identity resolution settings of {store_id} not found")
    return row


def configured_id_types(session: Session, *, store_id: str) -> set[str]:
    return {c["idType"] for c in get(session, store_id=store_id).identifier_configs}


def replace(
    session: Session,
    *,
    store: Store,
    data: IdentityResolutionSettingsIn,
    expected_version: int | None,
    hooks: Hooks,
) -> Operation:
    """Replace the settings. Domains above check the change through
    `hooks.id_configs_changing` (traits promoted to a removed idType, values
    shared by profiles of an idType turning unique)."""
    configs = [rules.complete_config(c.model_dump()) for c in data.identifierConfigs]
    rules.check_settings(configs, data.matchingRules)
    current = get(session, store_id=store.id).identifier_configs
    hooks.id_configs_changing(session, store.id, list(current), configs)
    before = {c["idType"]: c for c in current}
    if not repository.update_versioned(
        session,
        store_id=store.id,
        expected_version=expected_version,
        identifier_configs=configs,
        matching_rules=list(data.matchingRules),
        updated_at=utcnow(),
    ):
        raise PreconditionFailed()
    changed = rules.id_types_to_reindex(before, configs)
    stores.bump_schema(session, store.id)
    if changed:
        # Writes follow the new settings at once; stored identifiers are brought
        # in line in the background, in batches.
        return operations.enqueue(
            session,
            account_sid=store.account_sid,
            store_id=store.id,
            kind=REINDEX_KIND,
            payload={"idTypes": changed, "resultPath": settings_path(store.id)},
        )
    return operations.record_completed(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind="identityResolutionSettings.update",
        resource_id=store.id,
        result_path=settings_path(store.id),
    )
