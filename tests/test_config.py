"""Configuration is read once from the environment, and production refuses to run without auth."""

import subprocess
import sys

import pytest

from snapasset.config import ConfigError, Settings
from tests.conftest import ROOT


def test_defaults_match_the_spec():
    s = Settings.from_env({})
    assert (s.env, s.port, s.redis_url, s.provider, s.image_model) == ("development", 3001, None, "local", "gpt-image-1")
    assert (s.rate_limit, s.job_rate_limit, s.max_active_jobs) == ("100 per 15 minutes", "20 per hour", 5)
    assert (str(s.media_dir), str(s.database), s.supabase_bucket) == ("media", "snapasset.db", "generated-images")
    assert s.retry_intervals == [10, 40]   # 3 attempts, exponential backoff
    assert s.max_sources == 3 and Settings.from_env({"SNAPASSET_MAX_SOURCES": "1"}).max_sources == 1


def test_openai_key_selects_openai():
    s = Settings.from_env({"OPENAI_API_KEY": "sk-test", "SNAPASSET_IMAGE_MODEL": "gpt-image-2"})
    assert (s.provider, s.image_model) == ("openai", "gpt-image-2")


@pytest.mark.parametrize("env, words", [
    ({"SNAPASSET_ENV": "production", "REDIS_URL": "redis://x"}, "SUPABASE_JWT_SECRET"),
    ({"SNAPASSET_ENV": "production", "SUPABASE_JWT_SECRET": "s" * 40}, "REDIS_URL"),
    ({"SNAPASSET_ENV": "staging"}, "SNAPASSET_ENV"),
    ({"PORT": "eighty"}, "PORT"),
    ({"SNAPASSET_RATE_LIMIT": "lots"}, "SNAPASSET_RATE_LIMIT"),
    ({"SNAPASSET_API_KEYS": "ci:short:jobs"}, "at least 16"),
    ({"SNAPASSET_API_KEYS": "ci:0123456789abcdef0123:root"}, "unknown scope"),
    ({"SUPABASE_URL": "https://x.supabase.co"}, "SUPABASE_SERVICE_ROLE_KEY"),
    ({"SNAPASSET_MAX_SOURCES": "0"}, "SNAPASSET_MAX_SOURCES"),
])
def test_bad_configuration_is_one_clear_line(env, words):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert words in message and "\n" not in message


def test_api_key_never_appears_in_errors_or_repr():
    secret = "0123456789abcdef0123456789"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SNAPASSET_API_KEYS": f"ci:{secret}:nope"})
    assert secret not in str(caught.value)
    settings = Settings.from_env({"SNAPASSET_API_KEYS": f"ci:{secret}:jobs+admin"})
    assert secret not in repr(settings)
    assert settings.api_keys[0].scopes == frozenset({"jobs", "admin"})


def test_production_without_secret_refuses_to_start(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SNAPASSET_ENV": "production", "REDIS_URL": "redis://127.0.0.1:1"}
    for command in (["web"], ["worker"]):
        done = subprocess.run([sys.executable, "-m", "snapasset", *command], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "SUPABASE_JWT_SECRET" in lines[0], done.stderr


def test_dotenv_is_read_in_development(tmp_path):
    (tmp_path / ".env").write_text("SNAPASSET_JWT_IGNORED=1\nSUPABASE_JWT_SECRET=from-dotenv-secret-0123456789abcdef\n")
    done = subprocess.run([sys.executable, "-m", "snapasset", "token", "--user", "alice"],
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    import jwt
    claims = jwt.decode(done.stdout.strip(), "from-dotenv-secret-0123456789abcdef", algorithms=["HS256"],
                        audience="authenticated")
    assert claims["sub"] == "alice"
