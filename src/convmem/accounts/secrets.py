"""Credential formats and hashing (plain functions, no database).

Tokens and secrets are long random strings, so a salted SHA-256 is enough to
keep them safe at rest, and it keeps checking credentials cheap on every request
(a slow password hash would cost milliseconds per request).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}\Z")
API_KEY_SID = re.compile(r"^SK[0-9a-f]{32}\Z")


def new_account_sid() -> str:
    return "AC" + secrets.token_hex(16)


def new_api_key_sid() -> str:
    return "SK" + secrets.token_hex(16)


def new_secret() -> str:
    return secrets.token_hex(16)


def hash_secret(secret: str) -> str:
    salt = secrets.token_hex(8)
    digest = hashlib.sha256((salt + secret).encode()).hexdigest()
    return f"sha256${salt}${digest}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "sha256":
        return False
    candidate = hashlib.sha256((salt + secret).encode()).hexdigest()
    return hmac.compare_digest(candidate, digest)
