"""The user's input held back from the server while a reply that may not be cut plays.

A reply said with ``ReplyRequest(say=..., allow_interruptions=False)``, or one a tool
protected with ``ctx.disallow_interruptions()`` (:mod:`.tool_speech`), asks that the user
not cut it. The server's turn detection knows nothing of that: hearing the user, it would
answer, and the answer, a newer turn, would replace the reply at the TTS node and the sink.
So while such a reply is on its way or being heard, the node holds back everything that
makes the server act: the user's audio, ``commit`` s and replies asked for from code. Once it
has played (the sink's ``FINISHED`` or ``INTERRUPTED`` report; at once without playout
reports, since nothing would say when), what was held goes in order, the audio in appends of
up to a second (so the session's send queue takes a long stretch at once). The server then
hears the user's words late and answers them after the reply, as the LLM node answers a
user turn that ended during such a reply once it has played. Nothing the user said is
dropped (LiveKit Agents ignores ``allow_interruptions=False`` on a ``say`` when the realtime
model detects turns, and otherwise discards the user's audio meanwhile), unless more than
``max_s`` seconds of it wait: the audio beyond that is dropped, with a warning, since only a
sink that never reports keeps a reply playing that long.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from flowkit_openai.realtime.options import SAMPLE_RATE

__all__ = ["HeldInput"]

_BYTES_PER_S = SAMPLE_RATE * 2  # 16-bit mono
_APPEND_BYTES = _BYTES_PER_S  # one second per input_audio_buffer.append on release


class HeldInput:
    """The user's audio, commits and reply requests, held while a reply may not be cut.

    Args:
        blocked: Whether a reply that may not be cut is on its way or being heard now.
        send_audio: Sends the user's PCM16 audio to the server.
        logger: The node's logger.
        max_s: The most seconds of the user's audio to hold.
    """

    def __init__(
        self,
        *,
        blocked: Callable[[], bool],
        send_audio: Callable[[bytes], None],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        max_s: float = 60.0,
    ) -> None:
        self._blocked, self._send_audio, self.log = blocked, send_audio, logger
        self._max_bytes = int(max_s * _BYTES_PER_S)
        self._items: deque[bytes | Callable[[], None]] = deque()
        self._bytes = 0  # of audio held
        self._releasing = False
        self._warned = False

    @property
    def holding(self) -> bool:
        """Something waits to be sent or done."""
        return bool(self._items)

    def audio(self, pcm: bytes) -> None:
        """Send the user's audio now, or hold it (see the module)."""
        if not self.waits():
            self._send_audio(pcm)
            return
        if self._bytes + len(pcm) > self._max_bytes:
            if not self._warned:
                self._warned = True
                self.log.warning(
                    "the user's audio is being dropped: %g s of it wait for a reply said with "
                    "allow_interruptions=False to be played, and the sink has not reported "
                    "that it was; check that the sink's reports reach the model "
                    "(speaker >> model.playout)", self._max_bytes / _BYTES_PER_S,
                )
            return
        self._items.append(pcm)
        self._bytes += len(pcm)

    def run(self, action: Callable[[], None]) -> None:
        """Do ``action`` (a commit, a requested reply) now, or after what is held."""
        if self.waits():
            self._items.append(action)
        else:
            action()

    def waits(self) -> bool:
        """Whether input must wait now; once it need not, what waited goes first."""
        self.release()
        return bool(self._items) or self._blocked()

    def release(self) -> None:
        """Send and do what was held, in order, for as long as nothing blocks it.

        An action may block again (a requested ``say`` that may not be cut): what comes
        after it then stays held.
        """
        if self._releasing:
            return  # an action released below asked again: the loop below goes on
        self._releasing = True
        pcm = bytearray()
        try:
            while self._items and not self._blocked():
                item = self._items.popleft()
                if isinstance(item, bytes):
                    self._bytes -= len(item)
                    pcm += item
                    while len(pcm) >= _APPEND_BYTES:
                        self._send_audio(bytes(pcm[:_APPEND_BYTES]))
                        del pcm[:_APPEND_BYTES]
                    continue
                if pcm:
                    self._send_audio(bytes(pcm))
                    pcm.clear()
                item()
            if pcm:
                self._send_audio(bytes(pcm))
        finally:
            self._releasing = False
        if not self._items:
            self._warned = False
