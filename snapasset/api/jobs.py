"""/api/jobs: create, read, list, retry, cancel and delete generation jobs.

``Prefer: wait`` (or ``wait=N``, 1–60 s) on create holds the answer until the job ends or the
time is up (SPEC §6). The request waits on the job's event stream through the app's stream hub
(snapasset.streaming), exactly as an SSE client does: no Redis connection and, under gevent, no
thread of its own; between events it looks at the job's status once a second, so a terminal
event that never came (a worker that died) does not hold it to the end.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace

from flask import Blueprint, current_app, jsonify, request

from snapasset import jobrecord, keys
from snapasset.api import limits, presentation
from snapasset.api.common import (absolute_url, absolutize_result, job_owner, json_body, principal,
                                  require_user, services)
from snapasset.api.sse import stream_state
from snapasset.auth import forbidden
from snapasset.jobrecord import Status, is_terminal
from snapasset.jobs import new_job_id
from snapasset.records import generation_id_for
from snapasset.references import check_picture, content_type
from snapasset.schema import WAIT_DEFAULT, WAIT_MAX, JobRequest, Priority, invalid, parse_job_request
from snapasset.storage import reference_key

__all__ = ["bp", "parse_list_query", "CREATE_BODY_MAX", "allow_large_create_bodies"]

bp = Blueprint("jobs", __name__, url_prefix="/api/jobs")

IDEMPOTENCY_KEY_MAX = 255
# A create body may carry up to 4 reference pictures as data URLs of up to 10 MB each (base64:
# 4/3 of that); every other request keeps the app's small limit (create_app).
CREATE_BODY_MAX = 4 * (10 * 1000 * 1000 * 4 // 3 + 1024) + 64 * 1024
WAIT_SLICE = 1.0
_WAIT = re.compile(r"^\s*wait(?:\s*=\s*(?P<seconds>[^\s,;]*))?\s*$", re.IGNORECASE)


def allow_large_create_bodies() -> None:
    """A before_request hook, run before anything reads the body (create_app registers it first)."""
    if request.endpoint == "jobs.create_job":
        request.max_content_length = CREATE_BODY_MAX


def _prefer_wait() -> int | None:
    """Seconds asked for by `Prefer: wait[=N]` (RFC 7240; other preferences ignored), or None."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            match = _WAIT.match(preference.split(";")[0])
            if match is None:
                continue
            raw = match["seconds"]
            if raw is None or raw == "":
                return WAIT_DEFAULT
            if not raw.isdigit() or not 1 <= int(raw) <= WAIT_MAX:
                raise invalid({"Prefer": f"wait must be a whole number of seconds from 1 to {WAIT_MAX}"})
            return int(raw)
    return None


def _store_uploads(user_id: str, job_id: str, body: JobRequest) -> tuple[JobRequest, dict[str, str]]:
    """Reference pictures sent as data URLs go to storage beside the job's outputs; the job's data
    then shows their stored URLs, and its meta keeps their keys for the worker."""
    storage = services().stores.storage
    stored_keys, stored_urls = {}, {}
    generation_id = generation_id_for(job_id)
    try:
        for index, data in body.uploads:
            ext = check_picture(data)
            key = reference_key(user_id, generation_id, index, ext)
            stored_urls[index] = absolute_url(storage.put(key, data, content_type(ext)))
            stored_keys[str(index)] = key
    except BaseException:
        storage.delete(list(stored_keys.values()))
        raise
    return replace(body, stored_urls=stored_urls), stored_keys


@bp.post("")
def create_job():
    caller = principal()   # who is asking comes before what they ask: a bad token is 401 whatever the body
    svc = services()
    request_body = parse_job_request(json_body(), svc.settings)
    user_id = require_user(request_body.user_id, caller=caller)
    if request_body.priority == Priority.HIGH and not caller.may_prioritise:
        raise forbidden("High priority needs an API key with the 'priority' scope or an admin")
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= IDEMPOTENCY_KEY_MAX):
        raise invalid({"Idempotency-Key": f"must be 1 to {IDEMPOTENCY_KEY_MAX} characters"})
    wait = _prefer_wait()
    job_id = new_job_id()
    request_body, reference_keys = _store_uploads(user_id, job_id, request_body)
    try:
        created = svc.jobs.create(user_id, request_body, idempotency_key=key, job_id=job_id,
                                  quota=limits.current_limits().job_quota(user_id), reference_keys=reference_keys)
    except BaseException:
        svc.stores.storage.delete(list(reference_keys.values()))
        raise
    if not created.created:   # an Idempotency-Key replay: the first job has its own copies
        svc.stores.storage.delete(list(reference_keys.values()))
    body = presentation.created_body(created, estimate=created.estimate or svc.jobs.estimate())
    token = svc.auth.mint_stream_token(user_id, body["jobId"])
    body["statusUrl"] = absolute_url(body["statusUrl"])
    body["streamUrl"] = absolute_url(f"/api/sse/jobs/{body['jobId']}?token={token}")
    if wait is not None:
        body.update(_wait_for_end(body["jobId"], user_id, wait))
    response = jsonify(body)
    response.status_code = 201 if created.created else 200
    response.headers["Location"] = body["statusUrl"]
    if wait is not None:
        response.headers["Preference-Applied"] = f"wait={wait}"
    return response


def _wait_for_end(job_id: str, user_id: str, seconds: int) -> dict:
    """The job's GET body once it has ended, or as it stands when `seconds` have passed."""
    state = stream_state(current_app._get_current_object())
    deadline = time.monotonic() + seconds
    with state.hub.subscribe(keys.job_events(job_id)) as subscription:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            entries = subscription.receive(min(WAIT_SLICE, remaining))
            if any(is_terminal(entry.event) for entry in entries):
                break
            if not entries and state.jobs.current_status(job_id) in Status.ENDED:
                break
    return _job_body(job_id, user_id)


def _job_body(job_id: str, user_id: str | None) -> dict:
    """GET /api/jobs/:id body: where a waiting job stands in the queue, how its webhook fared,
    image URLs absolute."""
    jobs = services().jobs
    job = jobs.fetch(job_id, user_id)
    body = presentation.describe(job, queue_position=jobs.queue_position(job),
                                 webhook=jobs.webhook_state(job.id) if jobrecord.data_of(job).get("webhookUrl") else None)
    if "result" in body:
        body["result"] = absolutize_result(body["result"])
    return body


@bp.get("/<job_id>")
def get_job(job_id: str):
    return jsonify(_job_body(job_id, job_owner()))


@bp.get("")
def list_jobs():
    user_id = require_user()
    status, limit, cursor = parse_list_query({})
    jobs, next_cursor = services().jobs.list(user_id, status=status, limit=limit, cursor=cursor)
    return jsonify(presentation.list_body(jobs, status=status, next_cursor=next_cursor))


def parse_list_query(details: dict) -> tuple[str | None, int, str | None]:
    """`status`, `limit` and `cursor` of a job list's query; every problem (with those already in
    `details`) named per field in one 400."""
    status = request.args.get("status") or None
    if status is not None and status not in Status.ALL:
        details["status"] = f"must be one of {', '.join(Status.ALL)}"
    raw_limit = request.args.get("limit", "20")
    limit = 20
    try:
        limit = int(raw_limit)
        if not 1 <= limit <= 100:
            raise ValueError
    except ValueError:
        details["limit"] = "must be a whole number from 1 to 100"
    cursor = request.args.get("cursor") or None
    if cursor is not None and not cursor.isdigit():
        details["cursor"] = "is not a cursor this API handed out"
    if details:
        raise invalid(details)
    return status, limit, cursor


@bp.post("/<job_id>/retry")
def retry_job(job_id: str):
    body = request.get_json(silent=True) if request.get_data(cache=True).strip() else None
    user_id = job_owner(body.get("userId") if isinstance(body, dict) else None)
    services().jobs.retry(job_id, user_id)
    return jsonify(presentation.retried_body(job_id))


@bp.delete("/<job_id>/cancel")
def cancel_job(job_id: str):
    user_id = job_owner()
    services().jobs.cancel(job_id, user_id)
    return jsonify(presentation.cancelled_body(job_id))


@bp.delete("/<job_id>")
def delete_job(job_id: str):
    """A finished job and everything it left: rows first (a row must never point at a removed
    file), then its images and uploaded references, then the job and its history in Redis. A
    failure part-way (storage unreachable: 503) leaves the job in place to delete again."""
    svc = services()
    job = svc.jobs.deletable(job_id, job_owner())
    generation_id = generation_id_for(job.id)
    records, storage = svc.stores.records, svc.stores.storage
    generation = records.get_generation(generation_id)
    stored = [image["storage_key"] for image in (generation or {}).get("images", [])]
    stored += list(jobrecord.reference_keys(job).values())
    records.delete_generation(generation_id)
    storage.delete(stored)
    svc.jobs.remove(job)
    return "", 204
