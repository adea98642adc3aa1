from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from convmem.identity.models import IdentityResolutionSettings
from convmem.kit.schemas import Lower, RequestModel

IdType = Annotated[str, Field(min_length=2, max_length=30)]


class IdentifierConfigIn(RequestModel):
    idType: IdType
    matchingAlgo: Annotated[Literal["exact", "fuzzy"], Lower] = "exact"
    matchingThreshold: Annotated[int, Field(ge=50, le=99)] = 75
    limit: Annotated[int, Field(ge=1, le=100)] = 100
    limitPolicy: Annotated[Literal["fifo", "lifo"], Lower] = "fifo"
    enforceUnique: bool = True
    normalization: Annotated[Literal["phone", "email", "trim", "none"], Lower] = "trim"


class IdentityResolutionSettingsIn(RequestModel):
    # Clients often PUT back what they fetched, `version` included.
    model_config = ConfigDict(extra="ignore")

    identifierConfigs: Annotated[list[IdentifierConfigIn], Field(min_length=1, max_length=15)]
    matchingRules: Annotated[
        list[Annotated[str, Field(max_length=30)]], Field(min_length=1, max_length=15)
    ]


class IdentityResolutionSettingsOut(BaseModel):
    identifierConfigs: list[dict[str, Any]]
    matchingRules: list[str]
    version: int


def settings_json(row: IdentityResolutionSettings) -> dict[str, Any]:
    return {
        "identifierConfigs": row.identifier_configs,
        "matchingRules": row.matching_rules,
        "version": row.version,
    }
