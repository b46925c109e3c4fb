"""One settings module, driven by the environment.

Embedded default (no variables set, DEBUG=1): SQLite, Celery on an in-process
memory broker with an embedded worker, in-memory channel layer.
Production: DATABASE_URL (PostgreSQL), REDIS_URL (Celery broker + channels-redis),
SECRET_KEY required, DEBUG off, HTTPS settings on.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production settings refuse to start without one; "
            "set SECRET_KEY (e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))') "
            "or DEBUG=1 for a local, embedded run."
        )
    # Local embedded runs only: a fixed development key, never used with DEBUG off.
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-rfm-portal-0123456789"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Where runtime files live: the SQLite database, uploaded files, model artifacts.
VAR_DIR = Path(os.environ.get("RFM_VAR_DIR", BASE_DIR / "var"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "/media/"
ARTIFACT_ROOT = Path(os.environ.get("ARTIFACT_ROOT", VAR_DIR / "artifacts"))
DATA_DIR = BASE_DIR / "data"
VAR_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "rfm_portal.accounts",
    "rfm_portal.customers",
    "rfm_portal.mlops",
    "rfm_portal.dashboard",
    "segmentation",
    "cltv",
    "churn",
    "uplift",
    "embeddings",
    "streaming",
    "campaigns",
]

MIDDLEWARE = [
    # No free database connection (pool timeout, refused): 503 + Retry-After instead of a 500.
    "rfm_portal.serving.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every page needs a login unless a view opts out with @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "rfm_portal.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "rfm_portal.dashboard.context_processors.navigation",
            ],
        },
    },
]

WSGI_APPLICATION = "rfm_portal.wsgi.application"
ASGI_APPLICATION = "rfm_portal.asgi.application"

# --- Database -----------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    # psycopg 3's connection pool, one per process: a request borrows a connection and gives it back when it
    # ends (CONN_MAX_AGE must be 0 with a pool). A process never holds more than DB_POOL_MAX_SIZE; a request
    # that waits DB_POOL_TIMEOUT seconds for one gets 503 + Retry-After (rfm_portal.serving), never a 500.
    # Total on the server: web workers x DB_POOL_MAX_SIZE (+ each Celery worker process's own pool).
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # With a pool, Django turns this into the pool's check on borrowing: a connection the server closed while
        # it sat idle (a PostgreSQL restart, a proxy's idle timeout) is replaced instead of failing a request.
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DB_POOL_CHECK", True)
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": int(os.environ.get("DB_POOL_MIN_SIZE", 1)),
            "max_size": int(os.environ.get("DB_POOL_MAX_SIZE", 4)),
            "timeout": float(os.environ.get("DB_POOL_TIMEOUT", 10)),
            "max_idle": float(os.environ.get("DB_POOL_MAX_IDLE", 300)),
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {"timeout": 30},
        }
    }
# Hot-path caches of the scoring APIs (seconds; 0 = read the database on every call). A verified API key
# is remembered this long per process (revocation reaches other processes within it); the active model
# version is re-read at most this often (a promotion reaches other processes within it).
API_KEY_CACHE_SECONDS = float(os.environ.get("API_KEY_CACHE_SECONDS", 10))
ACTIVE_MODEL_RECHECK_SECONDS = float(os.environ.get("ACTIVE_MODEL_RECHECK_SECONDS", 2))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files: everything, plotly.js included, is served from here --------
STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
if DEBUG:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root

# Uploads: imports stream large files to disk rather than holding them in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 50 * 1024 * 1024

# --- Redis, Celery, Channels ---------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 defaults socket_timeout to 5 s, which aborts channels-redis' blocking BZPOPMIN
            # (5 s) and drops every idle websocket (django/channels_redis#422): allow the wait.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}],
                       "prefix": os.environ.get("CHANNELS_PREFIX", "rfm")},
        }
    }
else:
    # Embedded: an in-process broker; `manage.py serve` runs a worker thread beside the
    # web server, so tasks and the in-memory channel layer share one process.
    CELERY_BROKER_URL = "memory://"
    # The memory transport polls; kombu's default of 1 s would delay every task start.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.1}
    CHANNEL_LAYERS = {"default": {"BACKEND": "rfm_portal.mlops.channel_layers.ThreadSafeInMemoryChannelLayer"}}

CELERY_RESULT_BACKEND = None  # Job rows are the record of every task.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", 60 * 60))
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", 55 * 60))
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
if REDIS_URL:
    # With late acks Redis redelivers a task unacked after visibility_timeout; keep that
    # beyond the hard time limit so a long, healthy task is never run twice at once.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 5 * 60}
CELERY_TIMEZONE = TIME_ZONE
# Scheduled retraining (celery beat); each capability keeps its entries beside its tasks.
from churn.schedule import CHURN_BEAT_SCHEDULE  # noqa: E402
from cltv.schedule import CLTV_BEAT_SCHEDULE  # noqa: E402
from embeddings.schedule import EMBEDDINGS_BEAT_SCHEDULE  # noqa: E402
from segmentation.schedule import SEGMENTATION_BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE: dict = {**SEGMENTATION_BEAT_SCHEDULE, **CLTV_BEAT_SCHEDULE, **CHURN_BEAT_SCHEDULE}
from uplift.schedule import UPLIFT_BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE.update(UPLIFT_BEAT_SCHEDULE)
# Uplift profit targeting defaults (per contacted customer; margin = share of revenue kept). Changeable on the page.
UPLIFT_CONTACT_COST = float(os.environ.get("UPLIFT_CONTACT_COST", 0.25))
UPLIFT_INCENTIVE_COST = float(os.environ.get("UPLIFT_INCENTIVE_COST", 2.0))
UPLIFT_MARGIN = float(os.environ.get("UPLIFT_MARGIN", 0.4))
# Campaign customers the uplift learners are trained and compared on (a seeded sample stratified by
# arm and outcome above it; every customer is still scored). 20k vs 100k: Qini share of the oracle
# 0.737 vs 0.749 at 5× the rows and ≈ 3.5× the time (docs/benchmarks.md, Uplift). 0 = no cap.
UPLIFT_MAX_TRAIN_ROWS = int(os.environ.get("UPLIFT_MAX_TRAIN_ROWS", 20_000))
CELERY_BEAT_SCHEDULE.update(EMBEDDINGS_BEAT_SCHEDULE)
# Campaign planner: channels offered on a new campaign (cost per contact; effect relative to the channel the uplift
# model learned from) and contact fatigue (customers contacted in the last N days are left out).
CAMPAIGN_DEFAULT_CHANNELS = [
    {"name": "email", "cost": 0.05, "effect_factor": 1.0},
    {"name": "sms", "cost": 0.15, "effect_factor": 1.2},
    {"name": "direct_mail", "cost": 0.9, "effect_factor": 1.6},
]
CAMPAIGN_FATIGUE_DAYS = int(os.environ.get("CAMPAIGN_FATIGUE_DAYS", 14))

# --- REST ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rfm_portal.accounts.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # No input reaches a 500: JSON bodies are depth-limited and every error answers JSON (rfm_portal/core/api.py).
    "DEFAULT_PARSER_CLASSES": ["rfm_portal.core.parsers.DepthLimitedJSONParser"],
    "EXCEPTION_HANDLER": "rfm_portal.core.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "RFM Portal API",
    "DESCRIPTION": "Customer-intelligence scoring for CRM integrations. Authenticate with "
    "`Authorization: Api-Key <key>` or a portal session.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and ReDoc come from drf-spectacular-sidecar's static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Security (production values switch on with DEBUG off) ---------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the portal's fetch() calls read the CSRF token
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django's default config gives "django" its own console handler and lets it propagate to root's:
        # every request line (runserver/daphne log under django.*) was printed twice. Root prints it once.
        "django": {"level": os.environ.get("LOG_LEVEL", "INFO"), "handlers": [], "propagate": True},
    },
}

# Product settings
IMPORT_ERROR_REPORT_LIMIT = 1000  # bad lines kept on an ImportJob; the count is always exact

# --- Faults: jobs that never hang, login throttling (issue 9) ----------------------
# A running job beats every JOB_HEARTBEAT_SECONDS; the reaper (beat entry below, and every
# worker start) fails jobs silent for JOB_STALE_AFTER_SECONDS with their training model
# version, and jobs no worker took within JOB_PENDING_TIMEOUT_SECONDS.
JOB_HEARTBEAT_SECONDS = float(os.environ.get("JOB_HEARTBEAT_SECONDS", 10))
JOB_STALE_AFTER_SECONDS = int(os.environ.get("JOB_STALE_AFTER_SECONDS", 90))
JOB_PENDING_TIMEOUT_SECONDS = int(os.environ.get("JOB_PENDING_TIMEOUT_SECONDS", 2 * 60 * 60))
JOB_REAPER_INTERVAL_SECONDS = float(os.environ.get("JOB_REAPER_INTERVAL_SECONDS", 30))
CELERY_BEAT_SCHEDULE["mlops-reap-stale-jobs"] = {
    "task": "mlops.reap_stale_jobs",
    "schedule": JOB_REAPER_INTERVAL_SECONDS,
    "options": {"expires": JOB_REAPER_INTERVAL_SECONDS},
}
# A broker that is down fails a submit within seconds, not after kombu's long retries.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BROKER_CONNECTION_TIMEOUT = float(os.environ.get("CELERY_BROKER_CONNECTION_TIMEOUT", 2))
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "socket_connect_timeout": 2}
# A view that could not queue its job answers 503 (APIs) or says so (pages), never a 500.
MIDDLEWARE = [*MIDDLEWARE, "rfm_portal.mlops.middleware.JobQueueUnavailableMiddleware"]
# Login throttling (django-axes): AXES_FAILURE_LIMIT wrong passwords for one username from one
# address lock it for AXES_COOLOFF_MINUTES; every failure is recorded (AccessAttempt/AccessFailureLog).
# Behind a reverse proxy set AXES_IPWARE_PROXY_COUNT so the client address is the real one.
from datetime import timedelta as _timedelta  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "axes"]
AUTHENTICATION_BACKENDS = [
    "rfm_portal.accounts.throttling.PortalAxesBackend",  # first: refuses locked-out logins
    "django.contrib.auth.backends.ModelBackend",
]
MIDDLEWARE = [*MIDDLEWARE, "axes.middleware.AxesMiddleware"]  # last, as axes requires
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = _timedelta(minutes=float(os.environ.get("AXES_COOLOFF_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]  # a stranger cannot lock a user out from elsewhere
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # one row per failure (who, from where, when), beside the counters
AXES_LOCKOUT_CALLABLE = "rfm_portal.accounts.throttling.lockout_response"
if os.environ.get("AXES_IPWARE_PROXY_COUNT"):
    AXES_IPWARE_PROXY_COUNT = int(os.environ["AXES_IPWARE_PROXY_COUNT"])
AXES_VERBOSE = False
LOGGING["loggers"]["axes"] = {"level": "WARNING"}  # failures and lockouts logged; not every clean-up
# Imports: uploads above this size are kept on disk and imported by a background Job (the web
# process never reads them); smaller ones are imported in the request. The spool holds them meanwhile.
IMPORT_BACKGROUND_THRESHOLD_BYTES = int(os.environ.get("IMPORT_BACKGROUND_THRESHOLD_BYTES", 5 * 1024 * 1024))
IMPORT_SPOOL_DIR = Path(os.environ.get("IMPORT_SPOOL_DIR", MEDIA_ROOT / "imports" / "incoming"))
# A worker child whose memory passed this (KB) after a task (a big import, a training) is
# replaced, so workers return to their baseline too; 0 switches it off.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = int(os.environ.get("CELERY_WORKER_MAX_MEMORY_PER_CHILD", 1024 * 1024)) or None
# Lookalikes (Customer2Vec + FAISS); see embeddings/pipeline.py EmbeddingConfig for the meaning of each.
EMBEDDINGS = {
    "dim": int(os.environ.get("EMBEDDINGS_DIM", 32)),
    "epochs": int(os.environ.get("EMBEDDINGS_EPOCHS", 15)),
    "negatives": int(os.environ.get("EMBEDDINGS_NEGATIVES", 5)),
    "seed": int(os.environ.get("EMBEDDINGS_SEED", 7)),
    "threads": int(os.environ.get("EMBEDDINGS_THREADS", 1)),  # fixed: training is deterministic per seed
    "exact_index_max": int(os.environ.get("EMBEDDINGS_EXACT_INDEX_MAX", 50_000)),
    "ivf_index_min": int(os.environ.get("EMBEDDINGS_IVF_INDEX_MIN", 300_000)),
    "max_line_passes": int(os.environ.get("EMBEDDINGS_MAX_LINE_PASSES", 15_000_000)),
    "map_method": os.environ.get("EMBEDDINGS_MAP_METHOD", "tsne"),
    "map_sample": int(os.environ.get("EMBEDDINGS_MAP_SAMPLE", 1500)),
}
LOGGING["loggers"]["faiss.loader"] = {"level": "WARNING"}  # faiss logs every CPU-feature probe at INFO
# --- Streaming (streaming/): events → Redis Stream → consumer group → live risk feed ----------
STREAM = {
    "KEY": os.environ.get("STREAM_KEY", "rfm:events"),
    "GROUP": os.environ.get("STREAM_GROUP", "rfm-consumers"),
    "DEAD_LETTER_KEY": os.environ.get("STREAM_DEAD_LETTER_KEY", "rfm:events:dead"),
    "DEAD_LETTER_MAXLEN": 100_000,  # approximate cap: dead letters are for inspection, never consumed
    # Partition streams, events routed by a hash of the customer id; each is read by one live consumer at
    # a time, so N is the most consumers that share the work (more stand by). 6 splits evenly over 1, 2,
    # 3 or 6 consumers. Change it only with the stream drained (docs/benchmarks.md, streaming).
    "PARTITIONS": int(os.environ.get("STREAM_PARTITIONS", 6)),
    "MEMBER_TTL_MS": int(os.environ.get("STREAM_MEMBER_TTL_MS", 10_000)),  # a silent consumer's partitions move
    "HEARTBEAT_S": float(os.environ.get("STREAM_HEARTBEAT_S", 1.0)),
    # entries per read (at most), applied in one transaction: a read takes what is waiting, so batches are
    # small at low rates (low latency) and grow with the backlog (throughput)
    "BATCH": int(os.environ.get("STREAM_BATCH", 250)),
    "BLOCK_MS": 100,  # how long a read waits for new entries
    "LINGER_MS": int(os.environ.get("STREAM_LINGER_MS", 0)),  # then how long it waits to fill the batch
    "CLAIM_IDLE_MS": int(os.environ.get("STREAM_CLAIM_IDLE_MS", 30_000)),  # then a dead consumer's entries move
    "CLAIM_EVERY_S": float(os.environ.get("STREAM_CLAIM_EVERY_S", 5.0)),
    "MAX_ATTEMPTS": 3,  # failures before an event goes to the dead-letter stream
    "TRIM_EVERY_S": 10.0,
    "FEED_TICK_S": float(os.environ.get("STREAM_FEED_TICK_S", 0.05)),  # feed batched per tick (≤ 20 msgs/s)
    "FEED_MAX_ITEMS": int(os.environ.get("STREAM_FEED_MAX_ITEMS", 100)),  # per message; the rest are counted
    "SHARP_RISE": float(os.environ.get("STREAM_SHARP_RISE", 0.15)),  # probability points that make an alert
    "EMBEDDED_RATE": float(os.environ.get("STREAM_EMBEDDED_RATE", 1.0)),  # events/s simulated by `make run`
}
# --- Currency: every amount on pages, CSV headers and API docs is in this one currency ---
CURRENCY = os.environ.get("CURRENCY", "GBP").strip().upper()
CURRENCY_SYMBOL = os.environ.get("CURRENCY_SYMBOL", "")  # empty: the usual symbol for CURRENCY (e.g. £)
SPECTACULAR_SETTINGS["DESCRIPTION"] += f" Money amounts (CLV, order value, revenue) are in {CURRENCY}."
# ReDoc's bundle as the sidecar ships it, minus its one CDN reference (rfm_portal/dashboard/vendor.py)
SPECTACULAR_SETTINGS["REDOC_DIST"] = "/docs-assets/redoc"
# /predict_cltv's `unit` and `purchase_horizon_unit` share one choice set: one enum in the schema
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["TimeUnitEnum"] = ["days", "weeks"]
# Churn at-risk list: customers whose CLTV P(alive) is below this are treated as already gone and listed
# under "Win back" instead of topping the at-risk list.
CHURN_WINBACK_P_ALIVE = float(os.environ.get("CHURN_WINBACK_P_ALIVE", 0.2))
# --- Audit log and privacy (issue 16): one global audit log; erasure and export of a customer ----------------
INSTALLED_APPS = [*INSTALLED_APPS, "rfm_portal.audit", "rfm_portal.privacy"]
# after auth (knows the user), before axes (which must stay last)
MIDDLEWARE.insert(MIDDLEWARE.index("axes.middleware.AxesMiddleware"),
                  "rfm_portal.audit.middleware.AuditContextMiddleware")
# Country as an uplift-model input (one-hot, countries with >= 1 % of the campaign's customers). Off by default:
# on generated data it changed held-out Qini by +0.0002 / -0.0005 and churn AUC by < 0.001
# (bench/country_input_bench.py); the churn, CLTV and lookalike models never use country.
MODELS_USE_COUNTRY = env_bool("MODELS_USE_COUNTRY", False)

# Batch scoring (rfm_portal/mlops/scoring.py): customers per chunk a Celery worker scores and writes in one
# transaction; CLTV's simulation draws are seeded per block of this many customer ids (chunks align to it).
SCORING_CHUNK_SIZE = int(os.environ.get("SCORING_CHUNK_SIZE", 10_000))
CLTV_SIMULATION_BLOCK = int(os.environ.get("CLTV_SIMULATION_BLOCK", 1_000))
