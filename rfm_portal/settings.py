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
]

MIDDLEWARE = [
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
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {"timeout": 30},
        }
    }
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
            "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("CHANNELS_PREFIX", "rfm")},
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
from segmentation.schedule import SEGMENTATION_BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE: dict = {**SEGMENTATION_BEAT_SCHEDULE, **CLTV_BEAT_SCHEDULE, **CHURN_BEAT_SCHEDULE}

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

# --- Currency: every amount on pages, CSV headers and API docs is in this one currency ---
CURRENCY = os.environ.get("CURRENCY", "GBP").strip().upper()
CURRENCY_SYMBOL = os.environ.get("CURRENCY_SYMBOL", "")  # empty: the usual symbol for CURRENCY (e.g. £)
SPECTACULAR_SETTINGS["DESCRIPTION"] += f" Money amounts (CLV, order value, revenue) are in {CURRENCY}."
# ReDoc's bundle as the sidecar ships it, minus its one CDN reference (rfm_portal/dashboard/vendor.py)
SPECTACULAR_SETTINGS["REDOC_DIST"] = "/docs-assets/redoc"
# /predict_cltv's `unit` and `purchase_horizon_unit` share one choice set: one enum in the schema
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["TimeUnitEnum"] = ["days", "weeks"]
