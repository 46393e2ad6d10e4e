"""Dataverse-shaped errors: ``{"error": {"code": "0x...", "message": "..."}}`` with the real hex codes.

Every failure inside the emulated service is raised as :class:`DataverseError` and rendered once,
so the status code, the hex code and the message always travel together.
"""

from __future__ import annotations

# Codes from the Dataverse web-service error-code reference (dataverse-web-api.md §7.1).
OBJECT_DOES_NOT_EXIST = "0x80040217"
DUPLICATE_RECORD = "0x80040237"
DUPLICATE_RECORD_ENTITY_KEY = "0x80060892"
CONCURRENCY_VERSION_MISMATCH = "0x80060882"
OPTIMISTIC_CONCURRENCY_NOT_ENABLED = "0x8006088D"
EXPIRED_VERSION_STAMP = "0x80044352"
PRIVILEGE_DENIED = "0x80040220"
VALIDATION = "0x80044331"
PICKLIST_OUT_OF_RANGE = "0x8004431A"
THROTTLING_REQUESTS = "0x80072322"
THROTTLING_TIME = "0x80072321"
THROTTLING_CONCURRENCY = "0x80072326"
SQL_GOVERNOR_BUSY = "0x8004A001"
INVALID_ARGUMENT = "0x80040203"
UNEXPECTED = "0x80040216"
ODATA_BAD_REQUEST = "0x80060888"  # the code Dataverse puts on OData URL/payload errors
PAYLOAD_ERROR = "0x80048d19"  # "Error identified in Payload provided by the user ..."
QUERY_BUILDER_INVALID_PAGING_COOKIE = "0x8004112A"


class DataverseError(Exception):
    """An error response of the emulated Web API."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


def bad_request(message: str, code: str = ODATA_BAD_REQUEST) -> DataverseError:
    return DataverseError(400, code, message)


def not_found(entity: str, record_id: str) -> DataverseError:
    return DataverseError(404, OBJECT_DOES_NOT_EXIST, f"{entity} With Id = {record_id} Does Not Exist")


def segment_not_found(segment: str) -> DataverseError:
    return DataverseError(404, ODATA_BAD_REQUEST, f"Resource not found for the segment '{segment}'.")


def concurrency_mismatch() -> DataverseError:
    return DataverseError(
        412, CONCURRENCY_VERSION_MISMATCH,
        "The version of the existing record doesn't match the RowVersion property provided.",
    )


def already_exists() -> DataverseError:
    return DataverseError(412, DUPLICATE_RECORD, "A record with matching key values already exists.")


def expired_version_stamp() -> DataverseError:
    return DataverseError(
        400, EXPIRED_VERSION_STAMP,
        "Version stamp associated with the client has expired. Please perform a full sync.",
    )


def method_not_allowed(message: str = "The requested method is not supported for this resource.") -> DataverseError:
    return DataverseError(405, ODATA_BAD_REQUEST, message)
