"""Validates responses against the official OpenAPI document of the Memory API."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx2 as httpx
from openapi_schema_validator import OAS30Validator

# A copy of the official document (Apache-2.0), kept in the repo so tests run anywhere.
SPEC_PATH = Path(__file__).resolve().parents[1] / "spec" / "twilio_memory_v1.json"


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in spec()["paths"]:
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template))
        out.append((re.compile(f"^{pattern}$"), template))
    # Literal segments win over parameters (/Profiles/Lookup before /Profiles/{id}).
    out.sort(key=lambda item: item[1].count("{"))
    return out


def template_for(path: str) -> str | None:
    for pattern, template in _templates():
        if pattern.match(path):
            return template
    return None


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_schema(method: str, template: str, status: int) -> dict[str, Any] | None:
    operation = spec()["paths"][template].get(method.lower())
    if operation is None:
        return None
    declared = operation["responses"].get(str(status))
    if declared is None:
        return None
    content = _resolve(declared).get("content", {}).get("application/json")
    return content["schema"] if content else None


def error_schema() -> dict[str, Any]:
    return {"$ref": "#/components/schemas/TwilioError"}


def validate(schema: dict[str, Any], body: Any) -> None:
    document = {**schema, "components": spec()["components"]}
    OAS30Validator(document).validate(body)


def check_response(response: httpx.Response) -> None:
    """Assert the body matches the spec's schema for this operation and status.

    Error bodies must always be TwilioError, even for statuses the spec does
    not list for the operation (a 401 on a control-plane path, say).
    """
    template = template_for(response.request.url.path)
    if template is None or not response.content:
        return
    if not response.headers.get("content-type", "").startswith("application/json"):
        return
    body = response.json()
    schema = response_schema(response.request.method, template, response.status_code)
    if schema is None and response.status_code >= 400:
        schema = error_schema()
    if schema is not None:
        validate(schema, body)
