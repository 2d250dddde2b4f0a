"""What both HTTP transports share: the request line, headers, and reading Centrifugo's
answer. Imports no HTTP library."""

from __future__ import annotations

import json as stdlib_json
from typing import Any

from .. import json as dialect
from .._generated.api_methods import ApiMethod
from ..errors import ApiError, AuthenticationError, TransportError, UnsupportedMethodError


def base_url(url: str) -> str:
    return url.rstrip("/")


def headers(api_key: str | None) -> dict[str, str]:
    out = {"Content-Type": "application/json"}
    if api_key is not None:
        out["X-API-Key"] = api_key
    return out


def response(method: ApiMethod[Any, Any, Any], url: str, status: int, content: bytes) -> Any:
    """The response message of an HTTP answer, or the exception it means."""
    if status == 200:
        try:
            return dialect.loads(method.response, content)
        except dialect.JSONDecodeError as exc:
            raise TransportError(f"{method.path}: undecodable reply: {exc}") from exc
    if status == 401:
        raise AuthenticationError(f"{method.path}: API key refused (HTTP 401)")
    if status == 404 and not content.startswith(b"{"):
        raise UnsupportedMethodError(
            method.path, f"HTTP 404 for POST {url}; a Centrifugo PRO method, or a wrong url"
        )
    # Centrifugo's transport error mode (http_api.error_mode: transport) answers errors with an
    # HTTP status and the error object as the body.
    try:
        error = stdlib_json.loads(content)
    except ValueError:
        error = None
    if isinstance(error, dict) and isinstance(error.get("code"), int) and error["code"]:
        raise ApiError.for_code(error["code"], str(error.get("message", "")), method.path)
    text = content.decode(errors="replace").strip()[:200]
    raise TransportError(f"{method.path}: HTTP {status} from {url}: {text!r}")
