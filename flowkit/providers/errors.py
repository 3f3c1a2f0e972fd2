"""Errors a speech or language provider raises, sorted by what the caller should do next.

Every provider failure is a :class:`ProviderError` whose ``retryable`` flag tells a caller
(and :mod:`flowkit.providers.fallback`) whether trying again, or trying another provider,
can help: a timeout or an overloaded service can recover, a rejected API key cannot.
Provider libraries map their transport's errors onto these classes, most simply with
:func:`error_for_status`.
"""

from __future__ import annotations

__all__ = [
    "ProviderError",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "error_for_status",
]


class ProviderError(Exception):
    """A provider (STT, LLM, TTS) failed to serve a request.

    Attributes:
        provider: The provider's name, as its ``name`` property gives it.
        retryable: ``True`` when the same request may succeed later or elsewhere.
        status: The HTTP (or similar) status code behind the error, when there was one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        retryable: bool | None = None,
        status: int | None = None,
    ) -> None:
        prefix = f"{provider}: " if provider else ""
        super().__init__(prefix + message)
        self.provider = provider
        self.status = status
        # The class gives the default; an instance may override it (a 409 that is retryable).
        if retryable is not None:
            self.retryable = retryable


class ProviderTimeout(ProviderError):  # noqa: N818 - reads as a state
    """The provider did not answer in time. Retryable."""

    retryable = True


class ProviderUnavailable(ProviderError):  # noqa: N818 - reads as a state
    """The provider is overloaded, down or unreachable (429, 5xx, connection). Retryable."""

    retryable = True


class ProviderRejected(ProviderError):  # noqa: N818 - reads as a state
    """The provider refused the request itself (401, 403, 400, bad model name). Not retryable.

    Retrying sends the same bad request again, so the remedy is a change of configuration or
    input, which the message should name.
    """

    retryable = False


def error_for_status(provider: str, status: int, detail: str = "") -> ProviderError:
    """Map an HTTP status code to the matching :class:`ProviderError`.

    Args:
        provider: The provider's name, for the message.
        status: The HTTP status code of the failed response.
        detail: The body or reason the service gave, quoted in the message.

    Returns:
        :class:`ProviderTimeout` for 408 and 504, :class:`ProviderUnavailable` for 429 and
        other 5xx codes, :class:`ProviderRejected` for every other code.
    """
    said = f": {detail}" if detail else ""
    if status in (408, 504):
        return ProviderTimeout(
            f"timed out (HTTP {status}){said}; retry, or raise the request timeout",
            provider=provider,
            status=status,
        )
    if status == 429 or 500 <= status < 600:
        return ProviderUnavailable(
            f"unavailable (HTTP {status}){said}; retry later or add a fallback provider",
            provider=provider,
            status=status,
        )
    if status in (401, 403):
        remedy = "check the API key and the account's access to this model"
    else:
        remedy = "check the request and the provider's settings (model, voice, language)"
    return ProviderRejected(
        f"rejected the request (HTTP {status}){said}; {remedy}",
        provider=provider,
        status=status,
    )
