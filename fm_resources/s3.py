"""S3 clients (through dagster-aws) that ride out an outage: every call is retried through connection errors,
timeouts, throttling and 5xx answers with exponential backoff (0.5 s, 1 s, 2 s, ... at most 8 s between tries),
for at most FM_S3_RETRY_S seconds in all (default 60), then the last error is raised. botocore's own retries
are off (one attempt per try), and each try has a 5 s connect and a 30 s read timeout, so a dead endpoint
costs bounded time. 4xx answers other than throttling (NoSuchKey, AccessDenied, ...) are raised at once."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from fm_resources.settings import aws_identity, s3_retry_seconds

log = logging.getLogger(__name__)

_sleep = time.sleep  # patched by tests
RETRY_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
               "InternalError", "ServiceUnavailable", "503", "500", "502", "504"}


def transient(exc: BaseException) -> bool:
    """Whether another try may succeed: the endpoint unreachable or slow, throttling, or a 5xx."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

    if isinstance(exc, (ConnectionError, HTTPClientError, ReadTimeoutError)):
        return True
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return str(err.get("Code")) in RETRY_CODES or int(status) >= 500
    try:
        from boto3.exceptions import S3UploadFailedError
        from s3transfer.exceptions import RetriesExceededError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (RetriesExceededError, S3UploadFailedError)) and transient_cause(exc)


def transient_cause(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__ or getattr(exc, "last_exception", None)
    return cause is not None and cause is not exc and transient(cause)


_last_warning = [0.0]


def say_retrying(message: str, every_s: float = 30.0) -> None:
    """A warning that S3 is being retried, at most one per `every_s` (the rest at debug level)."""
    now = time.monotonic()
    if now - _last_warning[0] >= every_s:
        _last_warning[0] = now
        log.warning(message)
    else:
        log.debug(message)


def with_retries(fn, *args, what: str = "S3 call", budget_s: float | None = None, **kwargs):
    """fn(*args, **kwargs), retried as the module doc says."""
    budget = s3_retry_seconds() if budget_s is None else budget_s
    deadline = time.monotonic() + budget
    wait, tries = 0.5, 0
    while True:
        tries += 1
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            left = deadline - time.monotonic()
            if not transient(exc) or left <= 0:
                if tries > 1:
                    exc.add_note(f"{what}: gave up after {tries} tries over {budget:.0f} s (FM_S3_RETRY_S)")
                raise
            pause = min(wait, left, 8.0)
            say_retrying(f"{what} failed ({type(exc).__name__}); retrying for up to {left:.0f} s (FM_S3_RETRY_S)")
            _sleep(pause)
            wait *= 2


class RetryingClient:
    """A boto3 S3 client whose API calls go through `with_retries`; `pages` replaces the paginator so that a
    listing resumes from its last page after an outage instead of starting over."""

    def __init__(self, client):
        self._client = client
        self.exceptions = client.exceptions

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_") or name in ("get_paginator", "can_paginate"):
            return attr
        return lambda *a, **kw: with_retries(attr, *a, what=f"S3 {name}", **kw)

    def get_bytes(self, Bucket: str, Key: str) -> bytes:
        """An object's bytes; the download is retried as a whole (a connection lost mid-body too)."""
        return with_retries(lambda: self._client.get_object(Bucket=Bucket, Key=Key)["Body"].read(),
                            what=f"S3 get_object {Key}")

    def pages(self, **kwargs) -> Iterator[dict]:
        """list_objects_v2 pages (Bucket, Prefix, Delimiter...), each page retried on its own."""
        token = None
        while True:
            page = self.list_objects_v2(**kwargs, **({"ContinuationToken": token} if token else {}))
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return


_CLIENTS: dict[tuple, RetryingClient] = {}
_CLIENTS_LOCK = threading.Lock()


def s3_client(endpoint_url: str | None, region_name: str | None = None) -> RetryingClient:
    """A RetryingClient over boto3 (credentials and endpoint as boto3 reads them; AWS_ENDPOINT_URL etc.).

    One client per process, endpoint, region and credentials environment, made on first use: building a boto3
    session and client parses botocore's JSON service models (0.2-0.5 s of CPU), which a Celery worker running
    hundreds of steps, or a step with many resources, would otherwise pay on every step (bench/cluster.py).
    boto3 clients are thread-safe; the process id in the key keeps a forked worker from sharing its parent's
    connections."""
    key = (os.getpid(), endpoint_url, region_name, aws_identity())
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            # one attempt per try (the retries are ours) and bounded waits for a dead endpoint
            config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
            client = _CLIENTS[key] = RetryingClient(boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, region_name=region_name, config=config))
        return client
