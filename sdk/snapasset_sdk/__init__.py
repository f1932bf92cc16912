"""Python client for the SnapAsset image-generation API.

    from snapasset_sdk import SnapAssetClient
    with SnapAssetClient("http://localhost:3001", token="...") as client:
        job = client.create_job("A beautiful sunset over mountains",
                                platforms=["instagram-post", "twitter-post"])
        result = client.wait(job.job_id)
"""

from ._version import __version__
from .aio import AsyncSnapAssetClient
from .client import SnapAssetClient
from .errors import (
    APIConnectionError, AuthError, ConflictError, ForbiddenError, JobCancelledError,
    JobFailedError, NotFoundError, RateLimitError, ServerError, SnapAssetError,
    ValidationError, WaitTimeoutError,
)
from .models import (
    BulkRetryResult, CleanResult, Event, Image, Job, JobError, JobResult, JobSummary, Platform,
    QueueState, QueueStats, WebhookState, Worker,
)

__all__ = [
    "__version__",
    "SnapAssetClient", "AsyncSnapAssetClient",
    "Job", "JobResult", "JobError", "Image", "Event", "JobSummary", "QueueStats",
    "QueueState", "CleanResult", "Platform", "BulkRetryResult", "Worker", "WebhookState",
    "SnapAssetError", "AuthError", "ForbiddenError", "NotFoundError", "ValidationError",
    "ConflictError", "RateLimitError", "ServerError", "JobFailedError", "JobCancelledError",
    "WaitTimeoutError", "APIConnectionError",
]
