"""Settings for the chat server, configured by environment variables (see README)."""

import os
import re
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = envbool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    # A fixed key would let anyone forge sessions on a real deployment; a development
    # key is only acceptable for the one-machine default, so it is written next to the database.
    _key_file = BASE_DIR / ".secret_key"
    if not _key_file.exists():
        from django.core.management.utils import get_random_secret_key

        _key_file.write_text(get_random_secret_key())
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "accounts",
    "groups",
    "messaging",
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
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

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
            ],
        },
    },
]

# SQLite file by default; DATABASE_URL (e.g. postgres://user@host/db) for anything bigger.
# Persistent connections: every database_sync_to_async call would otherwise reopen the database.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory: a live Daphne started by the tests must see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def redis_channel_layer(url: str, prefix: str = "asgi") -> dict:
    """The channel layer over Redis (tests build theirs here too, with a prefix of their own).

    channels-redis' core layer: events wait in Redis for each process's hub, so a process whose
    connection drops for a moment (up to `expiry`, 60 s) loses nothing. (Its pub/sub layer
    carried workload C of `make bench` about 1.8 times faster, but forgets whatever is
    published while a subscriber reconnects, and nothing tells; see bench/README.md.)
    """
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 defaults (5 s socket timeout, 100-connection pool) break
            # channels-redis 4.3: idle receive loops die and connect bursts fail
            # (django/channels_redis#422). Set both explicitly.
            "hosts": [{"address": url, "socket_timeout": None, "max_connections": 10000}],
            "prefix": prefix,
            "capacity": 1000,
            # A process's hub channel carries all of its traffic: room for bursts.
            "channel_capacity": {"hub.*": 100_000},
        },
    }


REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            # channels 4.3's InMemoryChannelLayer does not compile `channel_capacity` patterns
            # (a glob dict breaks it); it takes a list of (compiled regex, capacity) pairs.
            "CONFIG": {"capacity": 1000, "channel_capacity": [(re.compile(r"^hub\."), 100_000)]},
        }
    }

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "accounts.hashers.PBKDF2WrappedWerkzeugSHA256PasswordHasher",
    "accounts.hashers.PBKDF2WrappedWerkzeugPBKDF2SHA256PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve static files straight from the apps and static/ as well, so a server started
# without collectstatic (the tests, a quick `daphne`) still has its CSS and JavaScript.
WHITENOISE_USE_FINDERS = True

# Chat limits.
CHAT_MAX_TEXT_LENGTH = envint("CHAT_MAX_TEXT_LENGTH", 10_000)
CHAT_HISTORY_PAGE = 50
CHAT_RATE_PER_SECOND = envint("CHAT_RATE_PER_SECOND", 20)
CHAT_RATE_BURST = envint("CHAT_RATE_BURST", 40)
# The same for all of one user's sockets together (in each server process), so that many
# sockets cannot multiply the rate above.
CHAT_USER_RATE_PER_SECOND = envint("CHAT_USER_RATE_PER_SECOND", 30)
CHAT_USER_RATE_BURST = envint("CHAT_USER_RATE_BURST", 60)
CHAT_MAX_SOCKETS_PER_USER = envint("CHAT_MAX_SOCKETS_PER_USER", 20)
# How often each process re-checks the session of every open socket (expired, deleted, a new
# password, an account deactivated behind the actions' back). Logouts and bans close at once.
CHAT_SESSION_CHECK_SECONDS = envint("CHAT_SESSION_CHECK_SECONDS", 60)
# Per user and per server process (chatsite/ratelimit.py): groups created, and Join + Leave.
CHAT_GROUP_CREATES_PER_HOUR = envint("CHAT_GROUP_CREATES_PER_HOUR", 10)
CHAT_GROUP_MOVES_PER_HOUR = envint("CHAT_GROUP_MOVES_PER_HOUR", 60)
CHAT_IMAGE_MAX_BYTES = envint("CHAT_IMAGE_MAX_BYTES", 5_000_000)
# A decoded RGBA pixel takes 4 bytes: 40 MP is 160 MB, and anything above is refused from the
# header alone. Pillow's own bomb check uses the same limit.
CHAT_IMAGE_MAX_PIXELS = envint("CHAT_IMAGE_MAX_PIXELS", 40_000_000)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
