"""Loaded first (pytest -p tests.environment): tests run on the real PostgreSQL and Redis.

Each value can be overridden from the environment, e.g. to point a parallel run at its
own database. A missing service makes the tests fail, never skip.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rfm_portal")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghijklmnop")
os.environ.setdefault("CHANNELS_PREFIX", "rfm-test")
os.environ.setdefault("RFM_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test"))
# The scoring APIs' per-process caches are off in the suite (tests change keys and active models with
# .update()); tests/serving enables them where it tests them.
os.environ.setdefault("API_KEY_CACHE_SECONDS", "0")
os.environ.setdefault("ACTIVE_MODEL_RECHECK_SECONDS", "0")
