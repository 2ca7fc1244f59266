"""Alpha's one settings file: every option comes from the environment.

With DEBUG=1 and nothing else it boots on a SQLite file in ./data, so a first run needs no
other server. Production sets SECRET_KEY, ALLOWED_HOSTS and usually DATABASE_URL.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}.")
    return number


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}.") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {number}.")
    return number


def env_secret(name: str, default: str = "") -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/systemd credentials)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {path}: {exc.strerror}.") from None
    return os.environ.get(name, default)


def system_time_zone() -> str:
    """The machine's own zone name, so days are counted as the host's clock shows them."""
    if os.environ.get("TZ", "").strip(":"):
        return os.environ["TZ"].strip(":")
    try:
        target = os.path.realpath("/etc/localtime")
        if "/zoneinfo/" in target:
            return target.split("/zoneinfo/", 1)[1]
    except OSError:
        pass
    try:
        return Path("/etc/timezone").read_text().strip() or "UTC"
    except OSError:
        return "UTC"


# Core
DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set SECRET_KEY or SECRET_KEY_FILE (or DEBUG=1 for development); "
            "scripts/run-agent.sh and scripts/run-system.sh write one to data/alpha.env."
        )
    SECRET_KEY = "insecure-development-key-never-used-in-production"
ALLOWED_HOSTS = [
    h.strip() for h in env_str("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()
]

# Which role this process plays: "agent" (on a monitored host: the collector and its API only,
# which keeps the follower small), "central" or "all" (both; the default, and what tests use).
ALPHA_ROLE = env_str("ALPHA_ROLE", "all")
if ALPHA_ROLE not in ("agent", "central", "all"):
    raise ImproperlyConfigured(f"ALPHA_ROLE must be agent, central or all, not {ALPHA_ROLE!r}.")
CENTRAL = ALPHA_ROLE != "agent"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "collector",
]
if CENTRAL:
    INSTALLED_APPS += [
        "django_celery_beat",
        "rest_framework.authtoken",
        "inventory_app",
        "alerting",
        "dashboard",
    ]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "alphaproject.middleware.ContentSecurityPolicyMiddleware",
    # Serves collected static files (Swagger UI, admin, charts) under gunicorn: no CDN, no nginx needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "alphaproject.urls"
WSGI_APPLICATION = "alphaproject.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Before the apps': alphaproject/templates/rest_framework/api.html replaces DRF's page.
        "DIRS": [BASE_DIR / "alphaproject" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: a SQLite file in ALPHA_DATA_DIR unless DATABASE_URL names another (PostgreSQL).
DATA_DIR = Path(env_str("ALPHA_DATA_DIR", str(BASE_DIR / "data")))
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'alpha.sqlite3'}")
try:
    # Health checks: a kept connection that a database restart broke is replaced before the next
    # request uses it, instead of costing that request a 500.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
except Exception as exc:  # dj-database-url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Alpha can use: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable server is an error within seconds, not a hang.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 10)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    folder = Path(DATABASES["default"]["NAME"]).parent
    if "DATABASE_URL" in os.environ and not folder.is_dir():
        # A URL someone typed: a typo must not make a folder somewhere.
        raise ImproperlyConfigured(f"DATABASE_URL: the folder {folder} of its SQLite file does not exist.")
    # The embedded default must work on a first run: its folder, which holds the database and
    # the agent's token, readable by this user only.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Persistent connections also for SQLite: opening one (and its PRAGMAs) per API request is
    # a large part of a small request.
    DATABASES["default"]["CONN_MAX_AGE"] = 60
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the API read while the agent writes; IMMEDIATE takes the write lock up
        # front so two writers queue instead of failing half-way through a transaction.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not :memory:, so tests can run the agent in a subprocess against it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-alpha.sqlite3")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Time: stored in UTC; days are counted in TIME_ZONE, by default the machine's own zone.
USE_TZ = True
TIME_ZONE = env_str("TIME_ZONE") or system_time_zone()
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"TIME_ZONE {TIME_ZONE!r} is not a known time zone.") from None
LANGUAGE_CODE = "en-us"
USE_I18N = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("ALPHA_STATIC_ROOT", str(DATA_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# runserver finds static files in the apps without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG

# Dashboard: every page needs a login; the inventory is edited in the admin by staff.
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = LOGIN_URL

# HTTPS. ALPHA_HTTPS=1 when the site is reached over https (itself or through a TLS reverse
# proxy): secure cookies, a redirect of plain http, and HSTS for a year. Behind a proxy,
# ALPHA_BEHIND_PROXY=1 trusts its X-Forwarded-Proto (the proxy must set it, and strip the
# client's), without which every login fails the CSRF origin check.
ALPHA_HTTPS = env_bool("ALPHA_HTTPS", default=False)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE = ALPHA_HTTPS or env_bool("ALPHA_SECURE_COOKIES", default=False)
SECURE_SSL_REDIRECT = env_bool("ALPHA_SSL_REDIRECT", default=ALPHA_HTTPS)
# Health checks come over plain http from the machine itself (container, load balancer).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("ALPHA_HSTS_SECONDS", 31_536_000 if ALPHA_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("ALPHA_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("ALPHA_HSTS_PRELOAD", default=True)
if env_bool("ALPHA_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Origins (https://alpha.example.com) allowed to post forms when the proxy changes the Host.
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]
for origin in CSRF_TRUSTED_ORIGINS:
    if not origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"CSRF_TRUSTED_ORIGINS: {origin!r} must start with https:// (or http://).")
CSRF_FAILURE_VIEW = "alphaproject.middleware.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Agent API
# The bearer token callers of the agent API present; without one the API answers 503.
ALPHA_AGENT_TOKEN = env_secret("ALPHA_AGENT_TOKEN").strip()
if ALPHA_AGENT_TOKEN and len(ALPHA_AGENT_TOKEN) < 16:
    raise ImproperlyConfigured("ALPHA_AGENT_TOKEN must be at least 16 characters long.")

REST_FRAMEWORK = {
    # Nobody gets in by default: each API declares who may (collector.views.AgentView,
    # inventory_app.views.CentralView), so a view that forgot to is closed, not open to the
    # agent's token.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["collector.authentication.NoAccess"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        *(["rest_framework.renderers.BrowsableAPIRenderer"] if CENTRAL else []),
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "collector.api.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Alpha API",
    "DESCRIPTION": "SSH connection counts of this host (agent API), behind a bearer token.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The agent's token holders and staff; on a central server also its logged-in or token users.
    "SERVE_PERMISSIONS": (
        ["rest_framework.permissions.IsAuthenticated"]
        if CENTRAL
        else ["collector.authentication.HasAgentTokenOrIsStaff"]
    ),
    "SERVE_AUTHENTICATION": [
        "collector.authentication.BearerTokenAuthentication",
        *(
            [
                "rest_framework.authentication.TokenAuthentication",
                "rest_framework.authentication.SessionAuthentication",
            ]
            if CENTRAL
            else []
        ),
    ],
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Alerts and their deliveries have a `state` too: named, so the hosts' StateEnum keeps its name.
    "ENUM_NAME_OVERRIDES": (
        {
            "StateEnum": "inventory_app.models.STATES",
            "AlertStateEnum": "alerting.models.ALERT_STATES",
            "DeliveryStateEnum": "alerting.models.DELIVERY_STATES",
        }
        if CENTRAL
        else {}
    ),
}

# Agent
ALPHA_HOST_NAME = env_str("ALPHA_HOST_NAME") or socket.gethostname()
# How often the follower stats its files when no inotify event came (rotation by copy, NFS).
ALPHA_STAT_INTERVAL = env_int("ALPHA_STAT_INTERVAL", 5, minimum=1)
ALPHA_JOURNALCTL = env_str("ALPHA_JOURNALCTL", "journalctl")
# The log files watch_authlog follows when given none: the first that exists, else the journal.
ALPHA_LOG_PATHS = [p for p in env_str("ALPHA_LOG_PATHS", "/var/log/auth.log:/var/log/secure").split(":") if p]
# Days of per-address and per-user detail kept (today included), on an agent and centrally; the
# daily totals are kept for good (manage.py prune, run daily by the agent and by beat).
ALPHA_RETAIN_DETAIL_DAYS = env_int("ALPHA_RETAIN_DETAIL_DAYS", 90, minimum=1)
# Where `manage.py serve_agent_api` serves the agent API.
ALPHA_AGENT_BIND = env_str("ALPHA_AGENT_BIND", "0.0.0.0:8001")

# Polling (central server)
ALPHA_POLL_INTERVAL = env_int("ALPHA_POLL_INTERVAL", 300, minimum=10)
ALPHA_BACKFILL_DAYS = env_int("ALPHA_BACKFILL_DAYS", 30, minimum=1)
ALPHA_POLL_CONNECT_TIMEOUT = env_float("ALPHA_POLL_CONNECT_TIMEOUT", 3.0, minimum=0.1)
ALPHA_POLL_READ_TIMEOUT = env_float("ALPHA_POLL_READ_TIMEOUT", 10.0, minimum=0.1)
# The read timeout of a poll's first request, the agent's small health answer: an agent that
# accepts connections but does not answer is given up on after this, not the full read timeout.
ALPHA_POLL_HEALTH_TIMEOUT = env_float("ALPHA_POLL_HEALTH_TIMEOUT", 3.0, minimum=0.1)
ALPHA_POLL_MAX_BYTES = env_int("ALPHA_POLL_MAX_BYTES", 5_000_000, minimum=10_000)
# Connect and read timeouts bound each socket operation; these bound the whole: one request
# (an answer trickled a byte a second is cut), one host's poll, a round of poll_hosts, and
# "Poll now" / ?refresh=1 (which a web request waits for: below gunicorn's 30 s).
ALPHA_POLL_REQUEST_TIMEOUT = env_float("ALPHA_POLL_REQUEST_TIMEOUT", 30.0, minimum=0.1)
ALPHA_POLL_BUDGET = env_float("ALPHA_POLL_BUDGET", 120.0, minimum=0.1)
ALPHA_POLL_ROUND_TIMEOUT = env_float("ALPHA_POLL_ROUND_TIMEOUT", 270.0, minimum=0.1)
ALPHA_POLL_NOW_TIMEOUT = env_float("ALPHA_POLL_NOW_TIMEOUT", 20.0, minimum=0.1)
# Source addresses stored per host and day at most (a day with more is refused, named).
ALPHA_POLL_MAX_SOURCES = env_int("ALPHA_POLL_MAX_SOURCES", 20_000, minimum=1)
# A poll that has not released its host after this long is presumed dead (worker killed).
ALPHA_POLL_LEASE = env_int("ALPHA_POLL_LEASE", 600, minimum=30)
if ALPHA_POLL_BUDGET * 2 > ALPHA_POLL_LEASE:
    # The budget is what keeps a poll inside its claim: never two polls of one host at once.
    raise ImproperlyConfigured(
        f"ALPHA_POLL_BUDGET ({ALPHA_POLL_BUDGET:g} s) must be at most half of ALPHA_POLL_LEASE "
        f"({ALPHA_POLL_LEASE} s)."
    )
# Hosts polled at once by `poll_hosts` (Celery's concurrency is set on the workers).
ALPHA_POLL_CONCURRENCY = env_int("ALPHA_POLL_CONCURRENCY", 64, minimum=1)

# Alerts (central server)
# The dashboard's address as people reach it: alert messages link to their page there.
ALPHA_PUBLIC_URL = env_str("ALPHA_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
if not ALPHA_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(
        f"ALPHA_PUBLIC_URL must start with https:// (or http://), not {ALPHA_PUBLIC_URL!r}."
    )
# Channels for scripted setups, created or updated at every migrate (alerting/apps.py).
ALPHA_ALERT_WEBHOOK_URL = env_str("ALPHA_ALERT_WEBHOOK_URL").strip()
ALPHA_ALERT_WEBHOOK_SECRET = env_secret("ALPHA_ALERT_WEBHOOK_SECRET").strip()
if ALPHA_ALERT_WEBHOOK_URL and not ALPHA_ALERT_WEBHOOK_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("ALPHA_ALERT_WEBHOOK_URL must start with https:// (or http://).")
if ALPHA_ALERT_WEBHOOK_URL and len(ALPHA_ALERT_WEBHOOK_SECRET) < 16:
    # Unsigned alerts could be forged by anyone who can reach the receiver.
    raise ImproperlyConfigured(
        "ALPHA_ALERT_WEBHOOK_URL needs ALPHA_ALERT_WEBHOOK_SECRET (or _FILE), at least 16 characters."
    )
ALPHA_ALERT_EMAIL_TO = [a.strip() for a in env_str("ALPHA_ALERT_EMAIL_TO").split(",") if a.strip()]
# Seconds one delivery (a webhook request) may take in all, connect and answer included.
ALPHA_ALERT_TIMEOUT = env_float("ALPHA_ALERT_TIMEOUT", 10.0, minimum=0.1)
# A failed delivery is tried again after this many seconds, doubling each time up to the maximum,
# until ALPHA_ALERT_MAX_ATTEMPTS attempts have failed (about a day with the defaults).
ALPHA_ALERT_RETRY_SECONDS = env_float("ALPHA_ALERT_RETRY_SECONDS", 30.0, minimum=0.01)
ALPHA_ALERT_RETRY_MAX_SECONDS = env_float("ALPHA_ALERT_RETRY_MAX_SECONDS", 3600.0, minimum=0.01)
ALPHA_ALERT_MAX_ATTEMPTS = env_int("ALPHA_ALERT_MAX_ATTEMPTS", 30, minimum=1)

# Email (alert channels): Django's mail settings.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set EMAIL_USE_TLS or EMAIL_USE_SSL, not both.")
EMAIL_TIMEOUT = env_float("EMAIL_TIMEOUT", 10.0, minimum=0.1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "alpha@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Celery
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# The threads pool enforces no time limit: ALPHA_POLL_BUDGET is what bounds a poll there. These
# apply to the prefork pool.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
# A worker waits for Redis as long as it takes (it is restarted, not gone), and a poll in flight
# when the broker went away finishes: its claim keeps a redelivered copy from polling twice.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE

LOG_LEVEL = env_str("LOG_LEVEL", "WARNING").upper()
if LOG_LEVEL not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {env_str('LOG_LEVEL')!r}."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
