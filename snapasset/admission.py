"""Admitting a job in one Redis script: the checks that may refuse it and the writes that queue it.

A create used to take the user's turn (a lock), read the job-creation allowance, WATCH the
user's unfinished jobs, read their statuses, queue the job in a MULTI/EXEC of some fifty
commands, count the allowance and give the turn back: seven round trips, and most of a create's
CPU went to redis-py packing commands and parsing one "QUEUED" reply each. Now the writes are
recorded on a pipeline that is never executed (RQ's enqueue, the indexes and the wake-up write
to it as before) and handed, with the checks, to one script. Redis runs a script whole, with
nothing in between, so the checks and the writes are as exact as the lock and the transaction
made them, in one round trip:

1. (retry) the job's stored RQ status must still be one the caller may retry;
2. (create) the job-creation allowance must have a unit left: `limits`' fixed-window counter,
   read and counted exactly as `FixedWindowRateLimiter.test` and `.hit` do, in the key
   `RedisStorage.prefixed_key(item.key_for(...))`, so Flask-Limiter's headers read it as before;
3. fewer than `max_active` of the user's jobs may still be unfinished: the members of the
   user's active set are checked against their RQ status, finished ones pruned;
4. then the recorded writes run, the job joins the active set, the allowance is counted and an
   Idempotency-Key claim, if any, is committed.

Read-only commands may ride along (`reads`): they are sent in the same round trip, right after
the script, and answered whatever it decided — a create reads the wait estimate and the rate
limits' windows for its headers that way, instead of in two more round trips.

A refusal writes nothing. Scripts here read keys they are not given (the members' job hashes),
which a single Redis allows and Redis Cluster does not; SnapAsset runs on a single Redis.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from redis.exceptions import NoScriptError

__all__ = ["Admission", "Refused", "admit", "recorded_commands"]

_ADMIT = """
local function set_of(csv)
  local s = {}
  for v in string.gmatch(csv, '[^,]+') do s[v] = true end
  return s
end
local active_key, quota_key, job_key = KEYS[1], KEYS[2], KEYS[3]
local prefix, field, job_id = ARGV[1], ARGV[2], ARGV[3]
local live = set_of(ARGV[4])
local max_active, active_ttl = tonumber(ARGV[5]), ARGV[6]
local quota_amount, quota_expiry = tonumber(ARGV[7]), ARGV[8]
local required = ARGV[9]
local commit_key, commit_value, commit_ttl = ARGV[10], ARGV[11], ARGV[12]

if required ~= '' then
  local status = redis.call('HGET', job_key, field)
  if not status or not set_of(required)[status] then return {'status', status or false} end
end
local spent = 0
if quota_amount > 0 then
  spent = tonumber(redis.call('GET', quota_key) or '0')
  if spent >= quota_amount then return {'quota', spent} end
end
local running, stale = 0, {}
for _, member in ipairs(redis.call('SMEMBERS', active_key)) do
  local status = redis.call('HGET', prefix .. member, field)
  if status and live[status] then
    if member ~= job_id then running = running + 1 end
  else
    table.insert(stale, member)
  end
end
if max_active >= 0 and running >= max_active then return {'active', running} end

if #stale > 0 then redis.call('SREM', active_key, unpack(stale)) end
local at = 13
while at <= #ARGV do
  local count = tonumber(ARGV[at])
  redis.call(unpack(ARGV, at + 1, at + count))
  at = at + count + 1
end
redis.call('SADD', active_key, job_id)
redis.call('EXPIRE', active_key, active_ttl)
if commit_key ~= '' then redis.call('SET', commit_key, commit_value, 'EX', commit_ttl) end
if quota_amount > 0 then
  spent = redis.call('INCRBY', quota_key, 1)
  if spent == 1 then redis.call('EXPIRE', quota_key, quota_expiry) end
end
return {'ok', spent}
"""
_ADMIT_SHA = hashlib.sha1(_ADMIT.encode()).hexdigest()


@dataclass(frozen=True)
class Admission:
    """What one admission checks, and takes when it admits."""
    job_id: str
    active_key: str                  # the user's unfinished jobs (a set of job ids)
    job_hash_prefix: str             # + a job id: its RQ job hash
    status_field: str                # the field of the job hash that holds its RQ status
    live_statuses: frozenset[str]    # RQ statuses of a job still unfinished
    active_ttl: int
    max_active: int | None = None    # None: take a slot without refusing (an operator's retry)
    quota_key: str | None = None     # the allowance's fixed-window counter, or None
    quota_amount: int = 0
    quota_expiry: int = 0
    required_statuses: frozenset[str] = frozenset()   # (retry) the job's status must be one of these
    commit: tuple[str, str, int] | None = None        # (key, value, ttl) to SET once admitted


@dataclass(frozen=True)
class Refused:
    """Why a job was not admitted: `what` is "status" (the job's stored status, `value`, is not
    one required), "quota" (the allowance is spent: `value` units used) or "active" (`value`
    unfinished jobs already)."""
    what: str
    value: int | str | None


def recorded_commands(pipe: redis.client.Pipeline) -> list[tuple]:
    """The commands written to an unexecuted pipeline, each as (name, *args), in order.

    Relies on: redis-py keeping them in `Pipeline.command_stack` as (args, options) pairs."""
    return [args for args, _options in pipe.command_stack]


def admit(conn: redis.Redis, admission: Admission, commands: list[tuple],
          reads: Sequence[tuple] = ()) -> tuple[int | Refused, list]:
    """Check and admit in one script: the allowance's count after taking one unit (0 when
    there is no allowance), or why not (nothing written); and the replies to `reads`, each a
    read-only command (name, *args) run right after the script in the same round trip."""
    flat: list = []
    for command in commands:
        flat.append(len(command))
        flat.extend(command)
    commit_key, commit_value, commit_ttl = admission.commit or ("", "", 0)
    keys = [admission.active_key, admission.quota_key or admission.active_key,
            admission.job_hash_prefix + admission.job_id]
    args = [admission.job_hash_prefix, admission.status_field, admission.job_id,
            ",".join(sorted(admission.live_statuses)),
            -1 if admission.max_active is None else admission.max_active, admission.active_ttl,
            admission.quota_amount if admission.quota_key else 0, admission.quota_expiry,
            ",".join(sorted(admission.required_statuses)), commit_key, commit_value, commit_ttl, *flat]
    replies = _run(conn, keys, args, reads)
    if isinstance(replies[0], NoScriptError):   # a new or restarted Redis: nothing ran, reads are reads
        conn.script_load(_ADMIT)
        replies = _run(conn, keys, args, reads)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    outcome, value = replies[0][0].decode(), replies[0][1]
    if outcome == "ok":
        return int(value), replies[1:]
    return Refused(outcome, value.decode() if isinstance(value, bytes) else value), replies[1:]


def _run(conn: redis.Redis, keys: list, args: list, reads: Sequence[tuple]) -> list:
    with conn.pipeline(transaction=False) as pipe:
        pipe.evalsha(_ADMIT_SHA, len(keys), *keys, *args)
        for command in reads:
            pipe.execute_command(*command)
        return pipe.execute(raise_on_error=False)
