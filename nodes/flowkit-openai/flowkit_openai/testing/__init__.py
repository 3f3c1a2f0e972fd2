"""Test doubles for the servers this library talks to (they need ``aiohttp``: the test extra).

* :mod:`~flowkit_openai.testing.realtime_server`: :class:`RealtimeTestServer`, an in-process
  WebSocket server that the real ``openai`` SDK accepts as the Realtime API.
* :mod:`~flowkit_openai.testing.realtime_script`: :class:`ScriptedReply`, what it answers.
* :mod:`~flowkit_openai.testing.realtime_conversation`: :class:`ServerConversation`, the
  items a session of it holds, which tests read.

Import them from their modules; this package imports nothing, so ``aiohttp`` is only needed
by whoever uses them.
"""
