"""Trait group rules applied to the store's data."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from convmem.identity import rules as id_rules
from convmem.identity import service as identity
from convmem.kit import ids
from convmem.kit.db import utcnow
from convmem.kit.errors import (
    PreconditionFailed,
    ProtectedResource,
    TraitGroupExists,
    TraitGroupLimitExceeded,
    TraitGroupNotFound,
    TraitLimitExceeded,
    ValidationFailed,
)
from convmem.kit.hooks import Hooks
from convmem.kit.pagination import Page, PageRequest, paginate
from convmem.operations import service as operations
from convmem.operations.models import Operation
from convmem.stores import repository as stores
from convmem.stores.models import Store
from convmem.traits import defaults, repository, rules
from convmem.traits.models import TraitDefinition, TraitGroup
from convmem.traits.rules import TraitSpec
from convmem.traits.schemas import TraitGroupCreate, TraitGroupPatch

# Background job (registered by profiles, which owns the values): removes the
# values of deleted trait definitions. Reads hide them from the moment the
# definitions are gone, so the job only reclaims space.
PURGE_VALUES_KIND = "traitGroup.purgeValues"


def group_path(store_id: str, name: str) -> str:
    return f"/v1/ControlPlane/Stores/{store_id}/TraitGroups/{name}"


def _definition(
    store_id: str, group: str, name: str, spec: TraitSpec, *, protected: bool = False
) -> TraitDefinition:
    now = utcnow()
    return TraitDefinition(
        store_id=store_id,
        group_name=group,
        name=name,
        sort_key=ids.new_id(ids.ROW),
        data_type=spec.data_type,
        description=spec.description,
        validation_rule=spec.validation_rule,
        id_type_promotion=spec.id_type_promotion,
        is_protected=protected,
        created_at=now,
        updated_at=now,
    )


def _group(
    store_id: str, name: str, description: str | None, *, system: bool = False
) -> TraitGroup:
    now = utcnow()
    return TraitGroup(
        store_id=store_id,
        name=name,
        sort_key=ids.new_id(ids.ROW),
        description=description,
        version=1,
        is_system=system,
        created_at=now,
        updated_at=now,
    )


def keep_promotions(
    session: Session, store_id: str, before: list[dict[str, Any]], after: list[dict[str, Any]]
) -> None:
    """Identity settings may not drop an idType a trait still promotes to
    (connected to the id_configs_changing hook)."""
    id_rules.check_promotions_kept(
        repository.promotions(session, store_id=store_id), {c["idType"] for c in after}
    )


def create_defaults(session: Session, store_id: str) -> None:
    """A new store's Contact trait group (connected to the store_created hook)."""
    group = defaults.CONTACT_GROUP
    repository.add(session, _group(store_id, group, defaults.CONTACT_DESCRIPTION, system=True))
    repository.add(
        session,
        *(
            _definition(store_id, group, name, spec, protected=name in defaults.PROTECTED_TRAITS)
            for name, spec in defaults.CONTACT_TRAITS.items()
        ),
    )


def get(session: Session, *, store_id: str, name: str) -> TraitGroup:
    group = repository.get_group(session, store_id=store_id, name=name)
    if group is None:
        raise TraitGroupNotFound(f"Trait group '{name}' not found in store {store_id}")
    return group


def list_groups(session: Session, *, store_id: str, page: PageRequest) -> Page[TraitGroup]:
    return paginate(
        session,
        repository.groups_query(store_id=store_id),
        TraitGroup.sort_key,
        page,
        key_of=lambda g: g.sort_key,
        scope="traitGroups",
    )


def traits_by_group(
    session: Session, *, store_id: str, groups: list[str]
) -> dict[str, dict[str, TraitSpec]]:
    rows = repository.traits_of(session, store_id=store_id, groups=groups)
    return {
        group: {row.name: repository.spec_of(row) for row in defs} for group, defs in rows.items()
    }


def list_traits(
    session: Session, *, store_id: str, group: str, page: PageRequest
) -> Page[TraitDefinition]:
    return paginate(
        session,
        repository.traits_query(store_id=store_id, group=group),
        TraitDefinition.sort_key,
        page,
        key_of=lambda t: t.sort_key,
        scope="groupTraits",
    )


def create(session: Session, *, store: Store, data: TraitGroupCreate) -> Operation:
    stores.lock_store(session, store.id)
    if repository.get_group(session, store_id=store.id, name=data.displayName) is not None:
        raise TraitGroupExists(f"Trait group '{data.displayName}' already exists")
    if repository.count_groups(session, store_id=store.id) >= rules.MAX_GROUPS_PER_STORE:
        raise TraitGroupLimitExceeded(
            f"A store can have at most {rules.MAX_GROUPS_PER_STORE} trait groups"
        )
    if len(data.traits) > rules.MAX_TRAITS_PER_GROUP:
        raise TraitLimitExceeded(
            f"A trait group can have at most {rules.MAX_TRAITS_PER_GROUP} traits; "
            f"got {len(data.traits)}"
        )
    id_types = identity.configured_id_types(session, store_id=store.id)
    definitions = []
    for name, definition in data.traits.items():
        field = f"traits.{name}"
        rules.check_trait_name(field, name)
        spec = definition.spec()
        if spec is None:
            raise ValidationFailed(
                f'{field}.dataType: the deletion marker "" is only valid in PATCH'
            )
        rules.check_spec(field, spec, id_types=id_types)
        definitions.append(_definition(store.id, data.displayName, name, spec))
    repository.add(session, _group(store.id, data.displayName, data.description))
    repository.add(session, *definitions)
    stores.bump_schema(session, store.id)
    return operations.record_completed(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind="traitGroup.create",
        resource_id=data.displayName,
        result_path=group_path(store.id, data.displayName),
    )


def update(
    session: Session,
    *,
    store: Store,
    name: str,
    data: TraitGroupPatch,
    expected_version: int | None,
    hooks: Hooks,
) -> Operation:
    get(session, store_id=store.id, name=name)
    values: dict[str, object] = {"updated_at": utcnow()}
    if data.description is not None:
        values["description"] = data.description
    # Bump the version first: on PostgreSQL this row lock orders concurrent
    # PATCHes, and a stale If-Match fails before anything else is read.
    if not repository.bump_version(
        session, store_id=store.id, name=name, expected_version=expected_version, **values
    ):
        raise PreconditionFailed()
    if data.traits:
        rows = repository.traits_of(session, store_id=store.id, groups=[name])[name]
        existing = {row.name: row for row in rows}
        upserts, deletions = rules.plan_patch(
            {n: repository.spec_of(r) for n, r in existing.items()},
            {n for n, r in existing.items() if r.is_protected},
            {n: d.spec() for n, d in data.traits.items()},
            group=name,
            id_types=identity.configured_id_types(session, store_id=store.id),
        )
        if deletions:
            hooks.traits_removing(session, store.id, name, sorted(deletions))
        repository.delete_traits(session, store_id=store.id, group=name, names=deletions)
        removed = [existing[trait] for trait in deletions]
        now = utcnow()
        new_rows = []
        for trait, spec in upserts.items():
            row = existing.get(trait)
            if row is None:
                new_rows.append(_definition(store.id, name, trait, spec))
                continue
            row.data_type = spec.data_type
            row.description = spec.description
            row.validation_rule = spec.validation_rule
            row.id_type_promotion = spec.id_type_promotion
            row.updated_at = now
        repository.add(session, *new_rows)
    else:
        removed = []
    stores.bump_schema(session, store.id)
    if removed:
        return _purge_values(session, store, name, removed, path=group_path(store.id, name))
    return operations.record_completed(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind="traitGroup.update",
        resource_id=name,
        result_path=group_path(store.id, name),
    )


def _purge_values(
    session: Session,
    store: Store,
    group: str,
    removed: list[TraitDefinition],
    *,
    path: str | None = None,
) -> Operation:
    """The operation that finishes a change once the removed traits' values are gone."""
    return operations.enqueue(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind=PURGE_VALUES_KIND,
        payload={
            "group": group,
            "defKeys": sorted(row.sort_key for row in removed),
            "resultPath": path,
        },
    )


def delete(session: Session, *, store: Store, name: str, hooks: Hooks) -> Operation:
    group = get(session, store_id=store.id, name=name)
    if group.is_system:
        raise ProtectedResource(f"Trait group '{name}' is a system group and cannot be deleted")
    hooks.traits_removing(session, store.id, name, None)
    removed = repository.traits_of(session, store_id=store.id, groups=[name])[name]
    repository.delete_group(session, store_id=store.id, name=name)
    stores.bump_schema(session, store.id)
    if removed:
        return _purge_values(session, store, name, removed)
    return operations.record_completed(
        session,
        account_sid=store.account_sid,
        store_id=store.id,
        kind="traitGroup.delete",
        resource_id=name,
    )
