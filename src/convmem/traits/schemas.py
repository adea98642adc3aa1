from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from convmem.kit.schemas import Meta, RequestModel, Upper
from convmem.traits.rules import TraitSpec

GroupName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_\-\.]+$")]
Description = Annotated[str, Field(max_length=1024)]


class ValidationRuleIn(RequestModel):
    """All rule types in one model; rules.check_rule rejects fields of another type.

    (The SDK sends every field of every rule type, unset ones as null.)
    """

    ruleType: Annotated[Literal["STRING", "NUMBER", "BOOLEAN", "ARRAY"], Upper]
    pattern: Annotated[str, Field(max_length=1000)] | None = None
    minLength: Annotated[int, Field(ge=0)] | None = None
    maxLength: Annotated[int, Field(ge=1)] | None = None
    min: float | None = None
    max: float | None = None
    minItems: Annotated[int, Field(ge=0)] | None = None
    maxItems: Annotated[int, Field(ge=0)] | None = None


class TraitDefinitionIn(RequestModel):
    dataType: Annotated[Literal["STRING", "NUMBER", "BOOLEAN", "ARRAY", ""], Upper]
    description: Description | None = None
    validationRule: ValidationRuleIn | None = None
    idTypePromotion: Annotated[str, Field(max_length=30)] | None = None

    def spec(self) -> TraitSpec | None:
        """The definition, or None for the deletion marker `dataType: ""`."""
        if self.dataType == "":
            return None
        rule = self.validationRule.model_dump(exclude_none=True) if self.validationRule else None
        if rule is not None:
            for key in ("min", "max"):
                if key in rule and float(rule[key]).is_integer():
                    rule[key] = int(rule[key])
        return TraitSpec(self.dataType, self.description, rule, self.idTypePromotion)


class TraitGroupCreate(RequestModel):
    displayName: GroupName
    description: Description | None = None
    traits: dict[str, TraitDefinitionIn] = Field(default_factory=dict)


class TraitGroupPatch(RequestModel):
    description: Description | None = None
    traits: dict[str, TraitDefinitionIn] | None = None


class TraitGroupOut(BaseModel):
    displayName: str
    description: str | None = None
    traits: dict[str, dict[str, Any]] | None = None
    version: int


class TraitGroupPage(BaseModel):
    traitGroups: list[TraitGroupOut]
    meta: Meta


class TraitGroupWithTraits(BaseModel):
    traitGroup: TraitGroupOut
    meta: Meta | None = None


def group_json(
    name: str, description: str | None, version: int, traits: dict[str, TraitSpec] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"displayName": name}
    if description is not None:
        body["description"] = description
    if traits is not None:
        body["traits"] = {trait: spec.as_json() for trait, spec in traits.items()}
    body["version"] = version
    return body
