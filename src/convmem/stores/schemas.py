from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from convmem.kit.schemas import Meta, RequestModel
from convmem.stores.models import Store

DisplayName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9-]+$")]
Description = Annotated[str, Field(min_length=1, max_length=128)]


class StoreCreate(RequestModel):
    # The spec leaves additional properties open here; ignore them.
    model_config = ConfigDict(extra="ignore")

    displayName: DisplayName
    description: Description | None = None


class StorePatch(RequestModel):
    model_config = ConfigDict(extra="ignore")

    displayName: DisplayName | None = None
    description: Description | None = None


class StoreOut(BaseModel):
    id: str
    displayName: str
    description: str | None = None
    status: str
    intelligenceServiceId: str | None
    version: int


class StoreIds(BaseModel):
    stores: list[str]
    meta: Meta


def store_json(store: Store) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": store.id,
        "displayName": store.display_name,
        "status": store.status,
        "intelligenceServiceId": None,
        "version": store.version,
    }
    if store.description is not None:
        body["description"] = store.description
    return body
