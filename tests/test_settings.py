"""Production configuration: settings refuse to start without a secret, pass the deploy
checks with production values, and the compose file describes the production services."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    # A clean environment: nothing from the test run (DEBUG=1, the test secret) leaks in.
    base = {"PATH": os.environ.get("PATH", ""), "RFM_VAR_DIR": str(tmp_path / "var"), "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


def production_env() -> dict[str, str]:
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "rfm.example.com",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
    }


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = manage("check", env={"DEBUG": "0", "SECRET_KEY": ""}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_deploy_checks_pass_with_production_values(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(), tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_checks_catch_a_weak_secret(tmp_path):
    env = {**production_env(), "SECRET_KEY": "short"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "security.W009" in result.stderr


def test_embedded_default_runs_without_any_service(tmp_path):
    """DEBUG=1 alone: SQLite, memory broker, in-process channel layer."""
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CHANNEL_LAYERS['default']['BACKEND'])"
    )
    env = {"PATH": os.environ.get("PATH", ""), "RFM_VAR_DIR": str(tmp_path), "DEBUG": "1",
           "DJANGO_SETTINGS_MODULE": "rfm_portal.settings"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "memory://",
        "rfm_portal.mlops.channel_layers.ThreadSafeInMemoryChannelLayer",
    ]


def test_compose_file_describes_production():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "redis", "web", "worker", "beat", "consumer"}
    assert services["consumer"]["command"][:3] == ["python", "manage.py", "consume_stream"]
    assert services["db"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    web_command = " ".join(services["web"]["command"])
    assert web_command.index("migrate") < web_command.index("collectstatic") < web_command.index("manage.py serve")
    assert "--workers" in web_command  # several uvicorn worker processes (issue 9)
    assert services["worker"]["command"][:4] == ["celery", "-A", "rfm_portal", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "rfm_portal", "beat"]
    for name in ("web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DEBUG"] == "0"
        assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
        assert services[name]["env_file"] == ".env"
        assert "appdata:/app/var" in services[name]["volumes"]  # artifacts shared by worker and web


def test_dockerfile_and_env_example():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert "pip install -r requirements.txt" in dockerfile
    example = (ROOT / ".env.example").read_text()
    keys = {line.split("=", 1)[0] for line in example.splitlines() if line and not line.startswith("#")}
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "POSTGRES_PASSWORD", "DEBUG"} <= keys
    assert "SECRET_KEY=\n" in example  # no usable secret is ever shipped
