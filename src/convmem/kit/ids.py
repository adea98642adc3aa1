"""TypeID identifiers: `<prefix>_` + a UUIDv7 in lowercase Crockford base32.

UUIDv7 puts the creation time first, so ids sort by creation time and the
smallest id of a set is the earliest.
"""

from __future__ import annotations

import re
from typing import Final

import uuid_utils
from typeid.codecs import base32

from convmem.kit.errors import BadRequest

STORE: Final = "mem_store"
SERVICE: Final = "mem_service"  # accepted as a store id (older docs)
PROFILE: Final = "mem_profile"
DATA_MAPPING: Final = "mem_datamapping"
IMPORT: Final = "mem_import"
OBSERVATION: Final = "mem_observation"
SUMMARY: Final = "mem_summary"
OPERATION: Final = "mem_operation"
DATA_SYNC: Final = "mem_datasync"  # a run of a data mapping (convmem extension)
DATASET: Final = "tdi_dataset"
# Internal sort keys of rows that have no public id (trait groups, traits).
ROW: Final = "row"

# The spec's pattern: it admits i, l, o and u, which no id we make contains, so
# such an id is well-formed but unknown (404), not malformed.
_SUFFIX = "[0-7][0-9a-z]{25}"


def new_id(prefix: str) -> str:
    # uuid_utils' uuid7 is monotonic within a process, so ids made in the same
    # millisecond still sort in creation order.
    return f"{prefix}_{base32.encode(uuid_utils.uuid7().bytes)}"


def matcher(*prefixes: str) -> re.Pattern[str]:
    return re.compile(rf"^(?:{'|'.join(map(re.escape, prefixes))})_{_SUFFIX}\Z")


STORE_ID = matcher(STORE, SERVICE)
OPERATION_ID = matcher(OPERATION)
PROFILE_ID = matcher(PROFILE)
DATA_MAPPING_ID = matcher(DATA_MAPPING)
DATA_SYNC_ID = matcher(DATA_SYNC)
DATASET_ID = matcher(DATASET)


def is_valid(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.match(value) is not None


def require(
    pattern: re.Pattern[str], value: str, *, field: str, prefix: str, error: type[BadRequest]
) -> None:
    """Raise `error` naming `field` unless `value` is a TypeID matching `pattern`."""
    if not is_valid(pattern, value):
        raise error(
            f"Invalid {field} '{value[:80]}': expected {prefix}_ followed by 26 lowercase "
            "base32 characters"
        )
