"""All SQL of trait groups and trait definitions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from convmem.kit import db
from convmem.traits.models import TraitDefinition, TraitGroup
from convmem.traits.rules import TraitSpec


def spec_of(row: TraitDefinition) -> TraitSpec:
    return TraitSpec(row.data_type, row.description, row.validation_rule, row.id_type_promotion)


def get_group(session: Session, *, store_id: str, name: str) -> TraitGroup | None:
    return session.get(TraitGroup, (store_id, name))


def count_groups(session: Session, *, store_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(TraitGroup).where(TraitGroup.store_id == store_id)
        )
        or 0
    )


def groups_query(*, store_id: str) -> Select[Any]:
    return select(TraitGroup).where(TraitGroup.store_id == store_id)


def traits_query(*, store_id: str, group: str) -> Select[Any]:
    return select(TraitDefinition).where(
        TraitDefinition.store_id == store_id, TraitDefinition.group_name == group
    )


def traits_of(
    session: Session, *, store_id: str, groups: Iterable[str]
) -> dict[str, list[TraitDefinition]]:
    """Trait rows of several groups, each list in creation order."""
    names = list(groups)
    result: dict[str, list[TraitDefinition]] = {name: [] for name in names}
    if not names:
        return result
    rows = session.scalars(
        select(TraitDefinition)
        .where(TraitDefinition.store_id == store_id, TraitDefinition.group_name.in_(names))
        .order_by(TraitDefinition.sort_key)
    )
    for row in rows:
        result[row.group_name].append(row)
    return result


def promotions(session: Session, *, store_id: str) -> dict[str, str]:
    rows = session.execute(
        select(
            TraitDefinition.group_name, TraitDefinition.name, TraitDefinition.id_type_promotion
        ).where(
            TraitDefinition.store_id == store_id,
            TraitDefinition.id_type_promotion.is_not(None),
        )
    )
    return {f"{group}.{name}": id_type for group, name, id_type in rows if id_type}


def add(session: Session, *rows: TraitGroup | TraitDefinition) -> None:
    session.add_all(rows)
    session.flush()


def bump_version(
    session: Session, *, store_id: str, name: str, expected_version: int | None, **values: Any
) -> bool:
    return db.bump_version(
        session,
        TraitGroup,
        TraitGroup.store_id == store_id,
        TraitGroup.name == name,
        expected_version=expected_version,
        **values,
    )


def delete_traits(
    session: Session, *, store_id: str, group: str, names: Iterable[str] | None = None
) -> None:
    query = delete(TraitDefinition).where(
        TraitDefinition.store_id == store_id, TraitDefinition.group_name == group
    )
    if names is not None:
        query = query.where(TraitDefinition.name.in_(list(names)))
    session.execute(query)


def delete_group(session: Session, *, store_id: str, name: str) -> None:
    delete_traits(session, store_id=store_id, group=name)
    session.execute(
        delete(TraitGroup).where(TraitGroup.store_id == store_id, TraitGroup.name == name)
    )


def all_traits(session: Session, *, store_id: str) -> list[TraitDefinition]:
    return list(
        session.scalars(select(TraitDefinition).where(TraitDefinition.store_id == store_id))
    )


def group_names(session: Session, *, store_id: str) -> list[str]:
    return list(session.scalars(select(TraitGroup.name).where(TraitGroup.store_id == store_id)))
