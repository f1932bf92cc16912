"""No secret in any log or response (issue 11): the access log of the web process as the Procfile
runs it, the worker's log, and the error a failed job shows its owner."""

from __future__ import annotations

import pytest
import requests

from snapasset.config import Env
from snapasset.redaction import clean_message, redact
from tests.conftest import running_web, wait_for
from tests.fake_providers import LEAKED_KEY, Leaky, Undecodable
from workers.bootstrap import bootstrap

JOB = {"prompt": "A beautiful sunset over mountains", "platforms": ["instagram-post"]}


def test_redact_blanks_credentials_wherever_they_sit():
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    line = (f'127.0.0.1 - - "GET /api/sse/jobs?access_token={jwt}&lastEventId=1-0 HTTP/1.1" 200 '
            f'"/api/sse/jobs/gen-1-abcdefghij?token=st.abc.def" Authorization: Bearer {jwt} '
            f'api_key={LEAKED_KEY} "password": "hunter2" whsec_c2VjcmV0c2VjcmV0')
    cleaned = redact(line)
    for secret in (jwt, "st.abc.def", LEAKED_KEY, "hunter2", "c2VjcmV0c2VjcmV0"):
        assert secret not in cleaned
    assert "lastEventId=1-0" in cleaned and "/api/sse/jobs/gen-1-abcdefghij" in cleaned


@pytest.mark.parametrize("line, secret", [
    ('"GET /api/sse/jobs/gen-1-abc?TOKEN=st.abc.def HTTP/1.1"', "st.abc.def"),
    ('"GET /x?Signature=c2lnbmF0dXJl HTTP/1.1"', "c2lnbmF0dXJl"),
    ("Authorization: BASIC dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln from the client", "eyJzdWIiOiJhbGljZSJ9"),
    ("the provider said: invalid sk-proj-abcdefghij", "abcdefghij"),
    ("whsec_c2VjcmV0c2VjcmV0 was rejected", "c2VjcmV0c2VjcmV0"),
    ('{"Service_Role_Key": "srk-123456"}', "srk-123456"),
    ("PASSWD=hunter2", "hunter2"),
])
def test_each_kind_of_credential_is_blanked_on_a_line_of_its_own(line, secret):
    """redact() first looks for any word a credential needs and lets lines with none through
    untouched (most log lines): each kind alone still trips that look."""
    assert secret not in redact(line)


def test_clean_message_is_one_short_line_without_reprs():
    message = clean_message("could not read <_io.BytesIO object at 0x7f3a2c1d9e50>\n  at all " + "x" * 500)
    assert "object at" not in message and "\n" not in message and len(message) <= 300


def test_a_failed_jobs_error_holds_no_secret_and_no_repr(client, auth, settings, redis_handle, run_jobs):
    for provider, code in ((Leaky(), "PROVIDER_ERROR"), (Undecodable(), "INVALID_IMAGE")):
        bootstrap(settings, redis=redis_handle, provider=provider)
        job_id = client.post("/api/jobs", json=JOB, headers=auth).json["jobId"]
        run_jobs()
        job = client.get(f"/api/jobs/{job_id}", headers=auth).json
        text = str(job)
        assert job["status"] == "failed" and job["error"]["code"] == code, job
        assert LEAKED_KEY not in text and "object at 0x" not in text, job["error"]
        assert job["error"]["message"] and job["failedReason"] == job["error"]["message"]


def test_no_credential_reaches_the_access_log_or_the_worker_log(settings, make_token, user, worker_process,
                                                                 tmp_path):
    """Tokens in query strings (the SSE routes take `?access_token=` and `?token=`) and a
    provider's leaked key: none of them in the logs of the web process (gunicorn's access log as
    the Procfile configures it) or of a worker."""
    token = make_token(user)
    bearer = {"Authorization": f"Bearer {token}"}
    worker = worker_process({Env.PROVIDER: "tests.fake_providers:leaky"})
    web_log = tmp_path / "web.log"
    with running_web(settings, web_log) as (base, _):
        created = requests.post(f"{base}/api/jobs", json=JOB, headers=bearer, timeout=10).json()
        stream_token = created["streamUrl"].split("?token=", 1)[1]
        for url in (created["streamUrl"], f"{base}/api/sse/jobs?access_token={token}",
                    f"{base}/api/sse/jobs/{created['jobId']}?access_token={token}",
                    f"{base}/api/jobs/{created['jobId']}?access_token={token}&token={stream_token}"):
            with requests.get(url, stream=True, timeout=10) as response:
                next(response.iter_content(64), None)

        def failed():
            job = requests.get(f"{base}/api/jobs/{created['jobId']}", headers=bearer, timeout=10).json()
            return job if job["status"] == "failed" else None
        job = wait_for(failed, timeout=60, interval=0.2)
    assert LEAKED_KEY not in str(job)
    worker.terminate()
    worker.wait(30)
    logs = {"web": web_log.read_text(), "worker": (tmp_path / "worker-0.log").read_text()}
    assert "/api/sse/jobs" in logs["web"] and "[redacted]" in logs["web"], logs["web"][-2000:]
    assert "PROVIDER_ERROR" in logs["worker"] or "upstream refused" in logs["worker"], logs["worker"][-2000:]
    for name, text in logs.items():
        for secret in (token, stream_token, LEAKED_KEY):
            assert secret not in text, f"{name} log holds a credential"
