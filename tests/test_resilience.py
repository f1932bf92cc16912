"""Production hardening over real processes (issue 11): `snapasset worker` and the Procfile's web
process against a redis-server of the test's own — a Redis without persistence, a Redis that goes
away, a worker that dies."""

from __future__ import annotations

import pytest

from snapasset.config import Env
from snapasset.connections import NOT_PERSISTENT
from tests.conftest import running_web, wait_for

PRODUCTION = {Env.ENV: "production"}
STARTED = "up to"   # the worker's "Worker …: up to N jobs at once" line, once it listens


def _log(tmp_path, index: int = 0) -> str:
    return (tmp_path / f"worker-{index}.log").read_text()


@pytest.mark.parametrize("options, warned", [
    (("--save", "", "--appendonly", "no"), True),
    (("--save", "", "--appendonly", "yes"), False),
    (("--save", "3600", "1", "--appendonly", "no"), False),
    (("--save", "", "--appendonly", "no", "--rename-command", "CONFIG", ""), False),   # CONFIG forbidden
])
def test_a_production_worker_warns_once_when_redis_keeps_nothing(worker_process, redis_server, tmp_path,
                                                                 options, warned):
    server = redis_server(*options)
    worker_process({**PRODUCTION, Env.REDIS_URL: server.url})
    wait_for(lambda: STARTED in _log(tmp_path), timeout=60, interval=0.1)
    assert _log(tmp_path).count(NOT_PERSISTENT) == (1 if warned else 0), _log(tmp_path)


def test_a_production_web_process_warns_too(settings, redis_server, tmp_path):
    server = redis_server("--save", "", "--appendonly", "no")
    log = tmp_path / "web.log"
    with running_web(settings.replace(redis_url=server.url), log, PRODUCTION):
        pass
    assert log.read_text().count(NOT_PERSISTENT) == 1, log.read_text()
