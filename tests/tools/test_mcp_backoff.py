"""How far apart reconnect attempts are, on a virtual clock."""

from flowkit.tools.mcp.backoff import MAX_DELAY, ReconnectBackoff


def test_the_first_attempt_is_at_once_then_each_wait_doubles_up_to_the_maximum() -> None:
    now = [100.0]
    backoff = ReconnectBackoff(clock=lambda: now[0])
    assert backoff.remaining() == 0.0
    waits = []
    for _ in range(8):
        backoff.attempt()
        backoff.failed()
        waits.append(backoff.remaining())
        now[0] += backoff.remaining()
        assert backoff.remaining() == 0.0
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_DELAY, MAX_DELAY, MAX_DELAY]


def test_the_wait_counts_from_the_attempt_not_from_the_asking() -> None:
    now = [0.0]
    backoff = ReconnectBackoff(clock=lambda: now[0])
    backoff.attempt()
    now[0] = 0.75  # the failed attempt took most of a second
    backoff.failed()
    assert backoff.remaining() == 0.25


def test_a_server_that_answered_is_retried_at_once_again() -> None:
    now = [0.0]
    backoff = ReconnectBackoff(clock=lambda: now[0])
    for _ in range(3):
        backoff.attempt()
        backoff.failed()
    assert backoff.remaining() == 4.0
    backoff.attempt()
    backoff.succeeded()
    assert backoff.remaining() == 0.0 and backoff.failures == 0
