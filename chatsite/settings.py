"""Settings for the chat server, configured by environment variables (see README)."""

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

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
    "axes",
    "csp",
    "accounts",
    "groups",
    "messaging",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
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
# Seconds after sending during which a message may still be edited; 0 (the default): no limit.
CHAT_EDIT_WINDOW = envint("CHAT_EDIT_WINDOW", 0)
CHAT_HISTORY_PAGE = 50
# Search (messaging.search): results a page, and how many candidate rows one page may read.
CHAT_SEARCH_PAGE = 50
CHAT_SEARCH_SCAN = envint("CHAT_SEARCH_SCAN", 20_000)
# A resume (`Connect` with `Seq`) replays at most this many changes; further behind, `State`
# says `Reset` and the client loads its conversations again.
CHAT_REPLAY_MAX = envint("CHAT_REPLAY_MAX", 5000)
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

# ---- Security and limits (README: "Security and limits", "Deploying behind HTTPS") ----------

# Login lockout (django-axes) on every login form, the admin's included: CHAT_LOGIN_FAILURES wrong
# passwords for one username from one address lock that pair out for CHAT_LOGIN_LOCKOUT_MINUTES,
# the right password included. By the pair, not the username alone, so that a stranger cannot
# lock a user out of their own account. The address is REMOTE_ADDR (accounts.login.client_ip):
# behind a proxy, run Daphne with --proxy-headers, and the proxy must overwrite X-Forwarded-For.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: it refuses a locked-out pair before any check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("CHAT_LOGIN_FAILURES", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("CHAT_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "accounts.login.client_ip"
AXES_USERNAME_CALLABLE = "accounts.login.lockout_username"
# A lockout lasts its minutes from the failure that caused it: tries while locked do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # failures are kept (admin: Axes); a row per successful login is not

# New accounts from one address in any hour (accounts.views.register); 429 beyond.
CHAT_REGISTRATIONS_PER_HOUR = envint("CHAT_REGISTRATIONS_PER_HOUR", 20)

# ---- Who may join (README: "Who may join") -------------------------------------------------

# open: anyone may register; invite: only through a valid invite link; closed: only admins add
# accounts (invite links then only bring existing users into their group).
REGISTRATION_MODES = ("open", "invite", "closed")
CHAT_REGISTRATION = os.environ.get("CHAT_REGISTRATION", "open").strip().lower()
if CHAT_REGISTRATION not in REGISTRATION_MODES:
    raise ImproperlyConfigured(f"CHAT_REGISTRATION must be one of {', '.join(REGISTRATION_MODES)}.")
# The most an invite link may carry: days until it expires, and uses (the forms refuse more).
CHAT_INVITE_MAX_DAYS = envint("CHAT_INVITE_MAX_DAYS", 90)
CHAT_INVITE_MAX_USES = envint("CHAT_INVITE_MAX_USES", 1000)
# Password reset requests from one address, and for one email address, in any hour (per process).
CHAT_PASSWORD_RESETS_PER_HOUR = envint("CHAT_PASSWORD_RESETS_PER_HOUR", 5)

# Email (password reset links): printed to the console unless EMAIL_HOST names an SMTP server.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = envint("EMAIL_PORT", 587)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)  # implicit TLS (port 465)
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", not EMAIL_USE_SSL)  # STARTTLS (port 587); Django refuses both
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "chat@localhost")

# Content-Security-Policy on every page (django-csp): scripts, styles and sockets of this site
# only, nothing inline (page data comes as json_script blocks, which are not run). 'self' in
# connect-src covers the site's own ws:// and wss:// in current browsers. Images may also be
# data:/blob: URLs: the preview of an image about to be sent.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# HTTPS. Off by default, so that the development server works over plain http://127.0.0.1:8000.
# DJANGO_HTTPS=true: the site is served over HTTPS only (secure cookies, redirect, HSTS).
# DJANGO_BEHIND_PROXY=true: a TLS proxy in front sets X-Forwarded-Proto, and Django (and the
# WebSocket origin check in chatsite.asgi) believe it; the proxy must overwrite that header.
HTTPS = envbool("DJANGO_HTTPS", False)
if envbool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = envint("CHAT_HSTS_SECONDS", 31_536_000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS and envbool("CHAT_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = HTTPS and envbool("CHAT_HSTS_PRELOAD", True)

# The Daphne fast write paths (chatsite/fastwrite.py); false sends every frame through ASGI send().
CHAT_FAST_WRITE = envbool("CHAT_FAST_WRITE", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-axes logs every login at INFO; lockouts are warnings.
    "loggers": {"axes": {"level": "WARNING"}},
}
