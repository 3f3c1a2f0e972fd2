"""The openai SDK's exceptions, mapped onto flowkit's :class:`ProviderError` kinds.

The mapping decides what a :class:`~flowkit.providers.FallbackLLM` does next: a timeout,
an overloaded or unreachable server (429, 5xx, connection refused) is worth retrying or
handing to the next provider; a rejected key or request (401, 403, other 4xx) is not, and a
server whose answers cannot be parsed is not OpenAI-compatible, which retrying cannot fix.
Every message names the provider and the endpoint, because with several OpenAI-compatible
servers in one graph "connection error" alone does not say which one failed.
"""

from __future__ import annotations

import json

import openai
import pydantic

from flowkit.providers.errors import (
    ProviderError,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    error_for_status,
)
from flowkit_openai._client import PLACEHOLDER_API_KEY

__all__ = ["MALFORMED_ERRORS", "malformed_answer", "map_openai_error"]

MALFORMED_ERRORS: tuple[type[Exception], ...] = (
    json.JSONDecodeError,
    pydantic.ValidationError,
    openai.APIResponseValidationError,
    AttributeError,
    TypeError,
    KeyError,
    ValueError,
)
"""What parsing a non-conforming answer raises (bad JSON, missing or mistyped fields)."""


def _detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return error.message


def _transport_kind(error: BaseException) -> str | None:
    """``timeout`` or ``connection`` for an HTTP transport error the SDK let through.

    Raw response bodies (audio) are read past the SDK's wrapping, so httpx's own errors
    arrive here. They are told apart by class name because the SDK's HTTP library has
    changed (``httpx``, ``httpx2``) and both share the hierarchy.
    """
    names = {klass.__name__ for klass in type(error).__mro__}
    if "TimeoutException" in names:
        return "timeout"
    if "TransportError" in names:
        return "connection"
    return None


def malformed_answer(provider: str, base_url: str, error: BaseException) -> ProviderError:
    """The error for an answer that is not what the OpenAI API specifies.

    Args:
        provider: The provider's name.
        base_url: The endpoint that sent the answer.
        error: What parsing raised.

    Returns:
        A non-retryable :class:`ProviderError` that says what was wrong and what to check.
    """
    return ProviderError(
        f"the server at {base_url} sent a malformed answer ({type(error).__name__}: "
        f"{error}); check that base_url points at an OpenAI-compatible API (usually ending "
        "in /v1) and that the server supports this request",
        provider=provider,
    )


def map_openai_error(
    provider: str,
    base_url: str,
    error: BaseException,
    *,
    api_key: str | None = None,
    timeout: float | None = None,
) -> ProviderError:
    """Translate an exception from the openai SDK (or from parsing its answer).

    Args:
        provider: The provider's name, put at the start of the message.
        base_url: The endpoint the request went to.
        error: The exception the SDK raised.
        api_key: The key that was sent, to say when it was only the placeholder.
        timeout: The timeout in force, in seconds, for the message.

    Returns:
        :class:`ProviderTimeout` for timeouts (``APITimeoutError``, HTTP 408/504),
        :class:`ProviderUnavailable` for connection errors, 429 and 5xx and errors the
        server reported in the middle of a stream, :class:`ProviderRejected` for 401, 403
        and other 4xx, and a plain non-retryable :class:`ProviderError` for malformed
        answers.
    """
    if isinstance(error, ProviderError):
        return error
    within = f"within {timeout:g} s" if timeout is not None else "within the timeout"
    if isinstance(error, openai.APITimeoutError):
        return ProviderTimeout(
            f"no answer from {base_url} {within}; raise the provider's timeout "
            "or check that the server is not overloaded",
            provider=provider,
        )
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__
        reason = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        return ProviderUnavailable(
            f"the connection to {base_url} failed{reason}; check that the server is running "
            "and that base_url is right",
            provider=provider,
        )
    transport = _transport_kind(error)
    if transport == "timeout":
        return ProviderTimeout(
            f"{base_url} stopped sending {within}; raise the provider's timeout "
            "or check that the server is not overloaded",
            provider=provider,
        )
    if transport == "connection":
        return ProviderUnavailable(
            f"the connection to {base_url} failed mid-answer ({type(error).__name__}: "
            f"{error}); retry, or add a fallback provider",
            provider=provider,
        )
    if isinstance(error, openai.APIResponseValidationError):
        return malformed_answer(provider, base_url, error)
    if isinstance(error, openai.APIStatusError):
        detail = f"{_detail(error)} [{base_url}]"
        mapped = error_for_status(provider, error.status_code, detail)
        if error.status_code in (401, 403) and api_key == PLACEHOLDER_API_KEY:
            return ProviderRejected(
                f"{mapped.args[0].removeprefix(provider + ': ')}; no API key was configured: "
                "pass api_key= or set OPENAI_API_KEY",
                provider=provider,
                status=error.status_code,
            )
        return mapped
    if isinstance(error, openai.APIError):
        # An error event inside an otherwise good stream: the server failed mid-answer.
        return ProviderUnavailable(
            f"the server at {base_url} reported an error mid-stream: {error.message}; "
            "retry, or add a fallback provider",
            provider=provider,
        )
    if isinstance(error, openai.OpenAIError):
        return ProviderRejected(
            f"the openai client refused the request ({error}); check the provider's settings",
            provider=provider,
        )
    if isinstance(error, MALFORMED_ERRORS):
        return malformed_answer(provider, base_url, error)
    return ProviderError(
        f"request to {base_url} failed ({type(error).__name__}: {error})", provider=provider
    )
