"""Built-in nodes that need nothing beyond flowkit's core dependencies.

- :mod:`~flowkit.nodes.audio`: Resample (the converter for audio formats), Rechunk, Downmix,
  WavSource, WavSink.
- :mod:`~flowkit.nodes.audio_processing`: AudioProcessing (WebRTC's noise suppression,
  high-pass filter and gain control on the user's audio).
- :mod:`~flowkit.nodes.room`: RoomSource, RoomSink, TranscriptPublisher (through the job's
  RoomIO).
- :mod:`~flowkit.nodes.vad`, :mod:`~flowkit.nodes.stt`, :mod:`~flowkit.nodes.turn`,
  :mod:`~flowkit.nodes.llm`, :mod:`~flowkit.nodes.tools`, :mod:`~flowkit.nodes.tts`: the
  voice pipeline.
- :mod:`~flowkit.nodes.interrupt`, :mod:`~flowkit.nodes.state`: barge-in and agent states.
- :mod:`~flowkit.nodes.background`: BackgroundAudio (ambient and thinking sounds, named
  sounds a :class:`~flowkit.messages.SoundCue` plays, and audio streamed into it, on a track
  of their own).
- :mod:`~flowkit.nodes.room_state`, :mod:`~flowkit.nodes.dtmf`: AgentStatePublisher,
  ChatInput and DTMFInput (telephone keypad presses as digits and user turns).
- :mod:`~flowkit.nodes.push_to_talk`: PushToTalk (a talk button that clients press with
  LiveKit RPC calls: the user is heard while it is held, letting go ends the turn).
- :mod:`~flowkit.nodes.ivr`: IVRWatch (asks the LLM to act when a call with a phone menu
  falls silent or the menu repeats itself).
- :mod:`~flowkit.nodes.amd`: AnsweringMachineDetector (who answered an outbound call: a
  person, a menu, a voicemail or a dead mailbox; user turns held until it knows).
- :mod:`~flowkit.nodes.end_call`: EndCall (hangs up once the goodbye after the
  :data:`~flowkit.tools.end_call.end_call` tool has played: deletes the room, ends the job).
- :mod:`~flowkit.nodes.video`: VideoInput, VideoSampler, ImageEncoder (what the agent sees of
  a participant's camera or screen, as images for a vision LLM).
- :mod:`~flowkit.nodes.avatar`: LocalAvatar (an avatar of flowkit's own that joins the room
  and speaks the voice ``RoomSink(avatar=...)`` sends it, with a picture drawn from it).

See docs/voice-pipeline.md for their ports and behaviour.
"""
