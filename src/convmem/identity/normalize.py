"""Identifier normalization and fuzzy blocking keys (plain functions)."""

from __future__ import annotations

import re

import phonenumbers

from convmem.kit.errors import ValidationFailed

MAX_VALUE_LENGTH = 255
_WHITESPACE = re.compile(r"\s+")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_NON_DIGIT = re.compile(r"\D")
_PLUS_ONE = re.compile(r"\+1\d{10}\Z")


class InvalidIdentifier(ValueError):
    """The value cannot be normalized for its idType (say, not a phone number)."""


def normalize(value: str, normalization: str) -> str:
    """The stored, matchable form of an identifier value."""
    if normalization == "email":
        result = _WHITESPACE.sub("", value).lower()
        local, at, domain = result.rpartition("@")
        if not at or not local or not domain:
            raise InvalidIdentifier(f"'{value}' is not an email address")
    elif normalization == "phone":
        result = normalize_phone(value)
    elif normalization == "trim":
        result = value.strip()
    else:
        result = value
    if not result:
        raise InvalidIdentifier("the value is empty")
    if len(result) > MAX_VALUE_LENGTH:
        raise InvalidIdentifier(f"the value is longer than {MAX_VALUE_LENGTH} characters")
    return result


def normalize_phone(value: str) -> str:
    """E.164. US numbers may omit +1; other numbers need their country code
    (with or without '+'), as the Memory API documents."""
    text = value.strip()
    digits = _NON_DIGIT.sub("", text)
    if not digits:
        raise InvalidIdentifier(f"'{value}' is not a phone number")
    if text.startswith("+") or text.startswith("00"):
        candidate = "+" + (digits[2:] if text.startswith("00") else digits)
    elif len(digits) == 10:
        candidate = "+1" + digits
    else:
        candidate = "+" + digits
    if _PLUS_ONE.match(candidate):
        # Fast path (phonenumbers takes ~13 µs a value): "+1" and ten digits is
        # a possible North American number (its only length) and its own E.164;
        # tests/test_rules.py checks that phonenumbers agrees.
        return candidate
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier(f"'{value}' is not a phone number") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentifier(f"'{value}' is not a possible phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalize_field(field: str, value: str, normalization: str) -> str:
    try:
        return normalize(value, normalization)
    except InvalidIdentifier as exc:
        raise ValidationFailed(f"{field}: {exc}") from None


def blocking_keys(value: str) -> tuple[str, str]:
    """Two short keys that near-duplicates usually share (prefix and suffix of
    the alphanumeric folding), so fuzzy matching only compares a few values."""
    folded = _NON_ALNUM.sub("", value.lower()) or value.lower()
    return folded[:3], folded[-3:]
