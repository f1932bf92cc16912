"""Property-based requests over every operation of /openapi.json (schemathesis): whatever a client
sends — valid or not — the answer is never a 5xx, and every error is in SPEC §4's shape.

Bounded (a fixed number of derandomized examples per operation) so that the whole file runs in
well under a minute. The user event stream (`GET /api/sse/jobs`) is left out: a valid request to
it streams forever. (schemathesis' own pytest plugin does not run on pytest 9, so each operation
is a parametrized test driving its hypothesis strategy.)"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from rq.suspension import resume

from snapasset.openapi import build_document

EXAMPLES_PER_OPERATION = 25
ERROR_FIELDS = {"error", "message", "code", "timestamp"}
METHODS = ("get", "post", "put", "patch", "delete")
STREAMS_FOREVER = {("get", "/api/sse/jobs")}
# /ready's contract is 503 while no worker listens, and none does here
DOCUMENTED_503 = {("get", "/ready")}
OPERATIONS = [(method, path) for path, item in build_document(server_url="http://testserver")["paths"].items()
              for method in item if method in METHODS and (method, path) not in STREAMS_FOREVER]


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in OPERATIONS])
def test_no_request_gets_a_server_error(app, redis_handle, make_token, method, path):
    operation = schemathesis.openapi.from_wsgi("/openapi.json", app)[path][method]
    # an admin's token, so admin routes reach their handlers; a generated Authorization wins
    admin = {"Authorization": f"Bearer {make_token(admin=True)}"}

    @given(case=operation.as_strategy())
    @hypothesis_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
    def never_a_server_error(case):
        response = case.call(headers={**admin, **(case.headers or {})})
        documented = (method, path) in DOCUMENTED_503 and response.status_code == 503
        assert response.status_code < 500 or documented, (case.method, case.formatted_path, case.body, response.text[:500])
        if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
            assert ERROR_FIELDS <= set(response.json()), response.text[:500]

    try:
        never_a_server_error()
    finally:
        resume(redis_handle.client)   # a generated POST /api/queue/pause holds every worker on this Redis
