"""Password hashes of the original Flask app, made by werkzeug, wrapped in PBKDF2 at import.

Werkzeug < 2.3 stored `sha256$<salt>$<hex>` (HMAC-SHA256 keyed by the salt over the UTF-8 password);
later rows may be `pbkdf2:sha256:<n>$<salt>$<hex>`. A salted SHA-256 costs microseconds to check, so
keeping it as it is would let the time of a failed login tell legacy accounts apart (and leave them
cheap to crack if the table leaked). As in Django's "password upgrading without requiring a login",
the importer runs PBKDF2 over the werkzeug hex digest, keeping werkzeug's salt; a login computes the
werkzeug digest from the password, then the same PBKDF2 over it. These hashers come after Argon2 in
PASSWORD_HASHERS, so Django re-hashes a correct login with Argon2 (`must_update`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.contrib.auth.hashers import PBKDF2PasswordHasher, get_hasher
from django.utils.crypto import constant_time_compare

# About one Argon2 check with Django's defaults (~100 ms on the 2-core test machines, where
# 600,000 PBKDF2-SHA256 iterations take ~105 ms and Django's 1,000,000 take ~180 ms), so a
# failed login on an imported account costs what any other does.
WRAP_ITERATIONS = 600_000
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
PBKDF2_METHOD = re.compile(r"pbkdf2:sha256:([1-9][0-9]*)")


def werkzeug_sha256(password: str, salt: str) -> str:
    return hmac.new(salt.encode(), password.encode(), hashlib.sha256).hexdigest()


def werkzeug_pbkdf2_sha256(password: str, salt: str, iterations: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations).hex()


class PBKDF2WrappedWerkzeugSHA256PasswordHasher(PBKDF2PasswordHasher):
    """`pbkdf2_wrapped_werkzeug_sha256$<iterations>$<werkzeug salt>$<PBKDF2 of the hex digest>`."""

    algorithm = "pbkdf2_wrapped_werkzeug_sha256"
    iterations = WRAP_ITERATIONS

    def encode_werkzeug_hash(self, hexdigest: str, salt: str, iterations: int | None = None) -> str:
        return super().encode(hexdigest, salt, iterations)

    def encode(self, password, salt, iterations=None):
        return self.encode_werkzeug_hash(werkzeug_sha256(password, salt), salt, iterations)


class PBKDF2WrappedWerkzeugPBKDF2SHA256PasswordHasher(PBKDF2PasswordHasher):
    """`pbkdf2_wrapped_werkzeug_pbkdf2_sha256$<iterations>$<werkzeug iterations>$<salt>$<hash>`.

    The outer iterations top the werkzeug ones up to `iterations`, so that these rows cost no
    more and no less to check than the sha256 ones.
    """

    algorithm = "pbkdf2_wrapped_werkzeug_pbkdf2_sha256"
    iterations = WRAP_ITERATIONS
    werkzeug_iterations = 260_000  # werkzeug 2.2's default; only for encode() called without one

    def encode_werkzeug_hash(
        self, hexdigest: str, salt: str, werkzeug_iterations: int, iterations: int | None = None
    ) -> str:
        iterations = iterations or max(self.iterations - werkzeug_iterations, 1)
        algorithm, iterations, salt, hash_ = super().encode(hexdigest, salt, iterations).split("$")
        return f"{algorithm}${iterations}${werkzeug_iterations}${salt}${hash_}"

    def encode(self, password, salt, iterations=None, werkzeug_iterations=None):
        werkzeug_iterations = werkzeug_iterations or self.werkzeug_iterations
        hexdigest = werkzeug_pbkdf2_sha256(password, salt, werkzeug_iterations)
        return self.encode_werkzeug_hash(hexdigest, salt, werkzeug_iterations, iterations)

    def decode(self, encoded):
        algorithm, iterations, werkzeug_iterations, salt, hash_ = encoded.split("$", 4)
        assert algorithm == self.algorithm
        return {
            "algorithm": algorithm,
            "hash": hash_,
            "iterations": int(iterations),
            "werkzeug_iterations": int(werkzeug_iterations),
            "salt": salt,
        }

    def verify(self, password, encoded):
        decoded = self.decode(encoded)
        encoded_2 = self.encode(password, decoded["salt"], decoded["iterations"], decoded["werkzeug_iterations"])
        return constant_time_compare(encoded, encoded_2)


@dataclass(frozen=True)
class WerkzeugHash:
    salt: str
    hexdigest: str
    iterations: int | None  # None for `sha256$...`, the PBKDF2 count for `pbkdf2:sha256:<n>$...`


def parse_werkzeug_hash(value: object) -> WerkzeugHash:
    """Read a stored werkzeug hash; ValueError for anything the hashers above cannot check."""
    if not isinstance(value, str) or value.count("$") != 2:
        raise ValueError("not a werkzeug hash")
    method, salt, hexdigest = value.split("$")
    if not salt or not HEX_DIGEST.fullmatch(hexdigest):
        raise ValueError("not a salted werkzeug sha256 or pbkdf2:sha256 hash")
    if method == "sha256":
        return WerkzeugHash(salt, hexdigest, None)
    if match := PBKDF2_METHOD.fullmatch(method):
        return WerkzeugHash(salt, hexdigest, int(match.group(1)))
    raise ValueError(f"unsupported werkzeug method {method[:40]!r}")


def wrap_werkzeug_hash(parsed: WerkzeugHash) -> str:
    """The PBKDF2-wrapped form to store. The hashers must be in PASSWORD_HASHERS, or no one could log in."""
    if parsed.iterations is None:
        hasher = get_hasher(PBKDF2WrappedWerkzeugSHA256PasswordHasher.algorithm)
        return hasher.encode_werkzeug_hash(parsed.hexdigest, parsed.salt)
    hasher = get_hasher(PBKDF2WrappedWerkzeugPBKDF2SHA256PasswordHasher.algorithm)
    return hasher.encode_werkzeug_hash(parsed.hexdigest, parsed.salt, parsed.iterations)


def wrap_werkzeug_hashes(hashes: Iterable[WerkzeugHash]) -> Iterator[str]:
    """wrap_werkzeug_hash over many, in order, one thread per core: PBKDF2 releases the GIL."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        yield from pool.map(wrap_werkzeug_hash, hashes)


def missing_wrapping_hashers() -> list[str]:
    """The wrapping hashers absent from PASSWORD_HASHERS: without them no imported user could log in."""
    missing = []
    for hasher in (PBKDF2WrappedWerkzeugSHA256PasswordHasher, PBKDF2WrappedWerkzeugPBKDF2SHA256PasswordHasher):
        try:
            get_hasher(hasher.algorithm)
        except ValueError:
            missing.append(f"{hasher.__module__}.{hasher.__name__}")
    return missing
