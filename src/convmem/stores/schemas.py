from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field

from convmem.kit.schemas import RequestModel
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
