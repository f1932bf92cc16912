"""Configuration is read once from the environment, and production refuses to run without auth."""

import subprocess
import sys

import pytest

from snapasset.config import ConfigError, Settings
from tests.conftest import ROOT


def test_defaults_match_the_spec():
    s = Settings.from_env({})
    assert (s.env, s.port, s.redis_url, s.provider, s.image_model) == ("development", 3001, None, "local", "gpt-image-2")
    assert s.image_models == ("gpt-image-2",) and s.cors_origins is None
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
    ({"SNAPASSET_IMAGE_MODEL": "gpt-image-1"}, "gpt-image-1 was shut down on 2026-10-23"),
    ({"SNAPASSET_IMAGE_MODEL": "gpt-image-1-2025-04-15"}, "shut down"),
    ({"SNAPASSET_IMAGE_MODELS": "gpt-image-2,dall-e-3"}, "dall-e-3 was retired"),
    ({"SNAPASSET_IMAGE_MODEL": "gpt-image-9"}, "unknown OpenAI image model"),
    ({"SNAPASSET_ENV": "production", "REDIS_URL": "redis://x", "SUPABASE_JWT_SECRET": "s" * 40},
     "SNAPASSET_PUBLIC_URL"),
])
def test_bad_configuration_is_one_clear_line(env, words):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert words in message and "\n" not in message


def test_models_a_request_may_choose_always_include_the_default():
    s = Settings.from_env({"SNAPASSET_IMAGE_MODEL": "gpt-image-2.5-flare",
                           "SNAPASSET_IMAGE_MODELS": "gpt-image-2, gpt-image-1.5"})
    assert (s.image_model, s.image_models) == ("gpt-image-2.5-flare", ("gpt-image-2.5-flare", "gpt-image-2", "gpt-image-1.5"))


def test_a_retired_model_refuses_the_worker_and_web_to_start_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SNAPASSET_IMAGE_MODEL": "dall-e-2", "PYTHONPATH": str(ROOT)}
    assert_web_and_worker_refuse_in_one_line(env, "dall-e-2 was retired", tmp_path)


def test_production_with_local_storage_hands_out_absolute_urls_from_the_public_url():
    base = {"SNAPASSET_ENV": "production", "REDIS_URL": "redis://x", "SUPABASE_JWT_SECRET": "s" * 40}
    assert Settings.from_env({**base, "SNAPASSET_PUBLIC_URL": "https://api.example.com/"}).public_base_url \
        == "https://api.example.com"
    assert Settings.from_env({}).public_base_url == "http://localhost:3001"


def test_api_key_never_appears_in_errors_or_repr():
    secret = "0123456789abcdef0123456789"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"SNAPASSET_API_KEYS": f"ci:{secret}:nope"})
    assert secret not in str(caught.value)
    settings = Settings.from_env({"SNAPASSET_API_KEYS": f"ci:{secret}:jobs+admin"})
    assert secret not in repr(settings)
    assert settings.api_keys[0].scopes == frozenset({"jobs", "admin"})


def assert_web_and_worker_refuse_in_one_line(env: dict, words: str, cwd) -> None:
    for command in (["web"], ["worker"]):
        done = subprocess.run([sys.executable, "-m", "snapasset", *command], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and words in lines[0], done.stderr


def test_production_without_secret_refuses_to_start(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SNAPASSET_ENV": "production", "REDIS_URL": "redis://127.0.0.1:1"}
    assert_web_and_worker_refuse_in_one_line(env, "SUPABASE_JWT_SECRET", tmp_path)


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
