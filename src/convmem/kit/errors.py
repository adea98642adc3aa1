"""Every error the API answers, rendered in one JSON shape by one handler.

    ConvmemError                      (status, Twilio code)
    ├── BadRequest                    400  400
    │   ├── ValidationFailed          400  520046
    │   ├── MalformedStoreId          400  520049
    │   ├── MalformedOperationId      400  520051
    │   ├── StoreLimitExceeded        400  520044
    │   ├── TraitGroupLimitExceeded   400  520053
    │   └── TraitLimitExceeded        400  520054
    ├── Unauthorized                  401  20003
    ├── NotFound                      404  20404
    │   ├── StoreNotFound             404  520041
    │   ├── TraitGroupNotFound        404  520047
    │   ├── DataMappingNotFound       404  520048
    │   ├── DatasetNotFound           404  520058  (convmem's own code)
    │   ├── OperationNotFound         404  520052
    │   ├── ProfileNotFound           404  520009
    │   ├── IdentifierNotFound        404  520014
    │   └── IdentifierValueNotFound   404  520017
    ├── Conflict                      409  20409
    │   ├── StoreNotActive            409  520042
    │   ├── StoreNameTaken            409  520045
    │   ├── ProtectedResource         409  520050
    │   ├── TraitGroupExists          409  520055
    │   ├── DataMappingNameTaken      409  520056
    │   ├── DatasetNameTaken          409  20409
    │   ├── InUse                     409  20409
    │   ├── WriteConflict             409  20409
    │   └── TraitGroupInUse           409  20409
    ├── RequestTimeout                408  408
    ├── PreconditionFailed            412  520043
    ├── PayloadTooLarge               413  20413
    ├── UnsupportedMediaType          415  20415
    └── TooManyRequests               429  20429   (+ Retry-After)

Errors raised by Starlette itself (404 of an unknown route, 405) are rendered
in the same shape by app.install_error_handlers.

Body: {"code": int, "message": str, "more_info": url, "status": int}.

Not an error but answered the same way: ProfileMoved (301 on reads, 308 on
writes) for an id that was merged into another profile.
"""

from __future__ import annotations

from typing import ClassVar

MORE_INFO = "https://www.twilio.com/docs/api/errors/{code}"


class ConvmemError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[int] = 20500
    default_message: ClassVar[str] = "Internal Server Error"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        self.message = message or self.default_message
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, object]:
        return error_body(self.status, self.code, self.message)


def error_body(status: int, code: int, message: str) -> dict[str, object]:
    return {
        "code": code,
        "message": message,
        "more_info": MORE_INFO.format(code=code),
        "status": status,
    }


class BadRequest(ConvmemError):
    status = 400
    code = 400
    default_message = "Failed to complete request due to a bad request"


class ValidationFailed(BadRequest):
    code = 520046
    default_message = "Request failed schema validation"


class MalformedStoreId(BadRequest):
    code = 520049
    default_message = "Malformed store id"


class MalformedOperationId(BadRequest):
    code = 520051
    default_message = "Malformed operation id"


class StoreLimitExceeded(BadRequest):
    code = 520044
    default_message = "Store limit per account exceeded"


class TraitGroupLimitExceeded(BadRequest):
    code = 520053
    default_message = "Trait group limit per store exceeded"


class TraitLimitExceeded(BadRequest):
    code = 520054
    default_message = "Trait limit per trait group exceeded"


class Unauthorized(ConvmemError):
    status = 401
    code = 20003
    default_message = "Failed to complete request due to lack of authentication credentials"


class Forbidden(ConvmemError):
    status = 403
    code = 20403
    default_message = "Forbidden"


class NotFound(ConvmemError):
    status = 404
    code = 20404
    default_message = "Not Found"


class StoreNotFound(NotFound):
    code = 520041
    default_message = "Memory Store not found"


class TraitGroupNotFound(NotFound):
    code = 520047
    default_message = "Trait group not found"


class DataMappingNotFound(NotFound):
    code = 520048
    default_message = "Data mapping not found"


class DatasetNotFound(NotFound):
    # No Twilio code exists for convmem's datasets; this one is convmem's own.
    code = 520058
    default_message = "Dataset not found"


class OperationNotFound(NotFound):
    code = 520052
    default_message = "Operation not found"


class ProfileNotFound(NotFound):
    code = 520009
    default_message = "Profile not found"


class IdentifierNotFound(NotFound):
    code = 520014
    default_message = "Identifier not found"


class IdentifierValueNotFound(NotFound):
    code = 520017
    default_message = "Identifier value not found"


class ImportNotFound(NotFound):
    default_message = "Import not found"


class Conflict(ConvmemError):
    status = 409
    code = 20409
    default_message = "Conflict"


class StoreNotActive(Conflict):
    code = 520042
    default_message = "Memory Store is not active"


class StoreNameTaken(Conflict):
    code = 520045
    default_message = "A Memory Store with this displayName already exists"


class ProtectedResource(Conflict):
    code = 520050
    default_message = "Protected resource cannot be changed"


class TraitGroupExists(Conflict):
    code = 520055
    default_message = "Trait group already exists"


class DataMappingNameTaken(Conflict):
    code = 520056
    default_message = "A data mapping with this displayName already exists in the store"


class DatasetNameTaken(Conflict):
    default_message = "A dataset with this displayName already exists"


class InUse(Conflict):
    """A resource another one still refers to (a dataset a mapping reads, a
    trait an enabled mapping writes)."""

    default_message = "The resource is in use"


class WriteConflict(Conflict):
    default_message = "The request conflicted with concurrent writes to the same profiles; retry it"


class TraitGroupInUse(InUse):
    default_message = "Trait group is referenced by a data mapping"


class RequestTimeout(ConvmemError):
    status = 408
    code = 408
    default_message = "Request body not received in time"


class PreconditionFailed(ConvmemError):
    status = 412
    code = 520043
    default_message = "If-Match does not match the current ETag of the resource"


class PayloadTooLarge(ConvmemError):
    status = 413
    code = 20413
    default_message = "Request body too large"


class UnsupportedMediaType(ConvmemError):
    status = 415
    code = 20415
    default_message = "Unsupported Content-Encoding"


class TooManyRequests(ConvmemError):
    status = 429
    code = 20429
    default_message = (
        "Too many requests. Please retry according to the Retry-After response header."
    )


class ProfileMoved(Exception):
    """The profile id is an alias of `canonical_id` since a merge."""

    def __init__(self, canonical_id: str) -> None:
        super().__init__(canonical_id)
        self.canonical_id = canonical_id
