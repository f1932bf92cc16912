"""AsyncSnapAssetClient: the same calls, awaited; streams as async iterators."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from sdk_fakes import BASE, sse
from snapasset_sdk import AsyncSnapAssetClient, JobFailedError, SnapAssetClient

JOB_ID = "gen-1700000000-abc123def0"


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def aclient(sleeps):
    return AsyncSnapAssetClient(BASE, token="tok-123", sleep=sleeps.append)


def test_has_every_public_method_of_the_sync_client():
    public = {n for n in dir(SnapAssetClient) if not n.startswith("_") and
              callable(getattr(SnapAssetClient, n))}
    assert public <= set(dir(AsyncSnapAssetClient))
    assert inspect.iscoroutinefunction(AsyncSnapAssetClient.create_job)
    assert inspect.isasyncgenfunction(AsyncSnapAssetClient.stream_job)


def test_create_and_get(aclient, mocked):
    mocked.post(f"{BASE}/api/jobs", status=201, json={"jobId": JOB_ID, "status": "queued"})
    mocked.get(f"{BASE}/api/jobs/{JOB_ID}", json={"jobId": JOB_ID, "status": "active",
                                                   "progress": 20})

    async def scenario():
        async with aclient as client:
            job = await client.create_job("A beautiful sunset", ["og-image"])
            return job, await client.get_job(job.job_id)

    created, fetched = run(scenario())
    assert created.status == "queued" and fetched.progress == 20
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer tok-123"


def test_stream_job_and_list_jobs_are_async_iterators(aclient, mocked):
    mocked.get(f"{BASE}/api/sse/jobs/{JOB_ID}", content_type="text/event-stream",
               body=sse("1-0", {"type": "connected", "progress": 0}) +
               sse("2-0", {"type": "progress", "progress": 50}) +
               sse("3-0", {"type": "done", "result": {"success": True, "images": []}}))
    mocked.get(f"{BASE}/api/jobs", json={"jobs": [{"jobId": "gen-a", "status": "waiting"}],
                                         "nextCursor": None})

    async def scenario():
        events = [e.progress async for e in aclient.stream_job(JOB_ID)]
        jobs = [j.job_id async for j in aclient.list_jobs()]
        return events, jobs

    assert run(scenario()) == ([0, 50, None], ["gen-a"])


def test_breaking_out_of_a_stream_closes_it(aclient, mocked):
    mocked.get(f"{BASE}/api/sse/jobs/{JOB_ID}", content_type="text/event-stream",
               body=sse("1-0", {"type": "connected"}) + sse("2-0", {"type": "progress"}))

    async def scenario():
        stream = aclient.stream_job(JOB_ID)
        async for event in stream:
            break
        await stream.aclose()
        return event.type

    assert run(scenario()) == "connected"
    assert len(mocked.calls) == 1


def test_wait_raises_the_same_errors(aclient, mocked):
    mocked.get(f"{BASE}/api/sse/jobs/{JOB_ID}", content_type="text/event-stream",
               body=sse("1-0", {"type": "failed", "willRetry": False,
                                "error": {"code": "PROVIDER_ERROR", "message": "down"}}))
    mocked.get(f"{BASE}/api/jobs/{JOB_ID}", json={"jobId": JOB_ID, "status": "failed"})
    with pytest.raises(JobFailedError) as caught:
        run(aclient.wait(JOB_ID))
    assert caught.value.code == "PROVIDER_ERROR"
