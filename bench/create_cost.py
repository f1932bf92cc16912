"""CPU per job creation, in one process (no gunicorn, no wrk): how much of a create is ours.

    python bench/create_cost.py [--requests 3000]

Starts an embedded Redis, creates the app, and POSTs /api/jobs through Flask's test client
(4 platforms, each request as one of 1,000 users, limits set high so nothing is refused), then
GETs /health the same number of times. Prints the CPU time per request of each and their ratio:
the in-process part of bench/load.py's create ÷ health, without the server and the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snapasset import create_app  # noqa: E402
from snapasset.auth import mint_access_token  # noqa: E402
from snapasset.config import Settings  # noqa: E402
from snapasset.connections import start_embedded_redis  # noqa: E402

USERS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="snapasset-bench-"))
    redis = start_embedded_redis(tmp / "redis")
    try:
        settings = Settings(redis_url=redis.url, jwt_secret="bench-secret-" + "x" * 40,
                            media_dir=tmp / "media", database=tmp / "snapasset.db", data_dir=tmp / "data",
                            max_active_jobs=1_000_000, rate_limit="100000000 per minute",
                            job_rate_limit="100000000 per minute")
        client = create_app(settings).test_client()
        headers = [{"Authorization": f"Bearer {mint_access_token(settings, f'load-user-{i}')}"}
                   for i in range(USERS)]
        body = json.dumps({"prompt": "A lighthouse on a rocky coast at sunset",
                           "platforms": ["instagram-post", "instagram-story", "twitter-post", "facebook-post"]})

        def create(i: int) -> None:
            answer = client.post("/api/jobs", data=body, headers=headers[i % USERS], content_type="application/json")
            assert answer.status_code == 201, answer.get_data(as_text=True)

        def health(_: int) -> None:
            assert client.get("/health").status_code == 200

        figures = {}
        for name, call in (("health", health), ("create", create)):
            for i in range(200):   # warm-up
                call(i)
            started = time.process_time()
            for i in range(args.requests):
                call(i)
            figures[name] = (time.process_time() - started) / args.requests * 1000
        print(f"{args.requests} requests each, Flask test client, one process")
        print(f"  GET /health      {figures['health']:.3f} ms CPU per request")
        print(f"  POST /api/jobs   {figures['create']:.3f} ms CPU per request")
        print(f"create ÷ health (requests per CPU second): {figures['health'] / figures['create']:.2f}")
    finally:
        redis.close(save=False)


if __name__ == "__main__":
    from bench.pipeline import stop_on_sigterm
    stop_on_sigterm()
    main()
