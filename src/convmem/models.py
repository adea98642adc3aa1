"""Imports every domain's models so `Base.metadata` knows all tables."""

from convmem.accounts.models import Account, ApiKey
from convmem.datasets.models import Dataset
from convmem.identity.models import IdentityResolutionSettings
from convmem.imports.models import ImportReportLine, ProfileImport
from convmem.kit.db import Base
from convmem.mappings.models import DataMapping, MappingSync, SyncReportLine
from convmem.memories.models import (
    ConversationSummary,
    Observation,
    ObservationConversation,
    ObservationRevision,
)
from convmem.operations.models import Operation
from convmem.profiles.models import Profile, ProfileIdentifier, ProfileMerge, ProfileTraitGroup
from convmem.stores.models import Store
from convmem.traits.models import TraitDefinition, TraitGroup

__all__ = [
    "Account",
    "ApiKey",
    "Base",
    "ConversationSummary",
    "DataMapping",
    "Dataset",
    "IdentityResolutionSettings",
    "ImportReportLine",
    "MappingSync",
    "Observation",
    "ObservationConversation",
    "ObservationRevision",
    "Operation",
    "Profile",
    "ProfileIdentifier",
    "ProfileImport",
    "ProfileMerge",
    "ProfileTraitGroup",
    "Store",
    "SyncReportLine",
    "TraitDefinition",
    "TraitGroup",
]
