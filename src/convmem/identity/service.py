from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from convmem.identity import repository, rules
from convmem.identity.models import IdentityResolutionSettings
from convmem.identity.schemas import IdentityResolutionSettingsIn
from convmem.kit.db import utcnow
from convmem.kit.errors import Conflict, NotFound, PreconditionFailed
from convmem.operations import service as operations
from convmem.operations.models import Operation
from convmem.stores import repository as stores
from convmem.stores.models import Store


def settings_path(store_id: str) -> str:
    return f"/v1/ControlPlane/Stores/{store_id}/IdentityResolutionSettings"


def create_defaults(session: Session, *, store_id: str) -> None:
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
) -> Operation:
    from convmem.traits import service as traits  # traits depend on identity, not back

    configs = [rules.complete_config(c.model_dump()) for c in data.identifierConfigs]
    rules.check_settings(configs, data.matchingRules)
    before = {c["idType"]: c for c in get(session, store_id=store.id).identifier_configs}
    rules.check_promotions_kept(
        traits.promotions(session, store_id=store.id), {c["idType"] for c in configs}
    )
    if not repository.update_versioned(
        session,
        store_id=store.id,
        expected_version=expected_version,
        identifier_configs=configs,
        matching_rules=list(data.matchingRules),
        updated_at=utcnow(),
    ):
        raise PreconditionFailed()
    _reindex_identifiers(session, store.id, before, configs)
    stores.bump_schema(session, store.id)
    return operations.record_completed(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind="identityResolutionSettings.update",
        resource_id=store.id,
        result_path=settings_path(store.id),
    )


def _reindex_identifiers(
    session: Session, store_id: str, before: dict[str, dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    """Stored identifiers follow their idType's enforceUnique and matchingAlgo."""
    from convmem.profiles import repository as profiles  # profiles depend on identity

    for config in after:
        old = before.get(config["idType"])
        if old is None:
            continue
        if old["matchingAlgo"] != config["matchingAlgo"]:
            profiles.set_identifier_flags(
                session, store_id, config["idType"], fuzzy=config["matchingAlgo"] == "fuzzy"
            )
        if old["enforceUnique"] != config["enforceUnique"]:
            try:
                with session.begin_nested():
                    profiles.set_unique(
                        session, store_id, config["idType"], config["enforceUnique"]
                    )
            except IntegrityError:
                raise Conflict(
                    f"identifierConfigs: profiles already share values of '{config['idType']}', "
                    "so it cannot become unique; merge or fix those profiles first"
                ) from None
