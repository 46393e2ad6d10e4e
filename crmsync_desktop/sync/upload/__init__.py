"""Upload: client changes to the server within seconds, through the durable Offline Transactions queue.

``capture`` turns client changes into offline transactions, ``delivery`` sends them to the server
in order, ``conflicts`` decides what happens when both sides changed a record, and ``service``
runs both on a short interval and offers the queue operations of the Offline Transactions tab.
"""

from __future__ import annotations

from crmsync_desktop.sync.upload.capture import ChangeCapture, client_token_key
from crmsync_desktop.sync.upload.conflicts import CONFLICT_PREFIX, Outcome, resolve
from crmsync_desktop.sync.upload.delivery import Delivery, DeliverySettings, DrainResult, ServerUnavailable
from crmsync_desktop.sync.upload.events import ConflictLogged, QueueChanged, ServerReachability, UploadEvent
from crmsync_desktop.sync.upload.plans import (
    IntersectLink,
    UploadPlan,
    build_upload_plans,
    dependency_order,
    upload_plan,
)
from crmsync_desktop.sync.upload.service import UploadService, UploadSettings

__all__ = [
    "CONFLICT_PREFIX",
    "ChangeCapture",
    "ConflictLogged",
    "Delivery",
    "DeliverySettings",
    "DrainResult",
    "IntersectLink",
    "Outcome",
    "QueueChanged",
    "ServerReachability",
    "ServerUnavailable",
    "UploadEvent",
    "UploadPlan",
    "UploadService",
    "UploadSettings",
    "build_upload_plans",
    "client_token_key",
    "dependency_order",
    "resolve",
    "upload_plan",
]
