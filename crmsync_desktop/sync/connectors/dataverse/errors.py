"""Dataverse error codes (``error.code`` in the body, docs §7.1) that decide the domain error class.

The HTTP status decides everything else (:func:`..http.errors.error_for_status`).
"""

from __future__ import annotations

from crmsync_desktop import errors

EXPIRED_VERSION_STAMP = "0x80044352"
DUPLICATE_RECORD = "0x80040237"

CODE_MAP: dict[str, type[errors.RemoteError]] = {
    EXPIRED_VERSION_STAMP: errors.FullResyncRequired,
    "0x80060882": errors.ConcurrencyError,  # ConcurrencyVersionMismatch
    "0x80060883": errors.ConcurrencyError,  # ConcurrencyVersionNotProvided
    DUPLICATE_RECORD: errors.ConcurrencyError,
    "0x80060892": errors.ConcurrencyError,  # DuplicateRecordEntityKey
    "0x80040217": errors.NotFoundError,  # ObjectDoesNotExist
    "0x80040220": errors.PrivilegeError,  # PrivilegeDenied
    "0x80048405": errors.PrivilegeError,  # AccessDenied
    "0x80040231": errors.PrivilegeError,  # PrincipalPrivilegeDenied
    "0x80072322": errors.ThrottledError,  # ThrottlingBurstRequestLimitExceededError
    "0x80072321": errors.ThrottledError,  # ThrottlingTimeExceededError
    "0x80072326": errors.ThrottledError,  # ThrottlingConcurrencyLimitExceededError
    "0x8004a001": errors.ServerError,  # CrmSqlGovernorDatabaseRequestDenied: server busy
}
