"""Make the sample questions with the local TTS (Piper, from flowkit-local).

    python examples/audio/make_questions.py

Each file is 16 kHz mono 16-bit PCM: 0.5 s of silence, the question, 1.5 s of silence.
"""

import asyncio
from pathlib import Path

import numpy as np
import soxr
from flowkit_local import PiperTTSProvider

from flowkit.audio import frame_from_samples
from flowkit.audio.wav import write_wav

QUESTIONS = {
    "weather_question.wav": "What is the weather in Paris today?",
    "hello_joke.wav": "Hello. Can you tell me a joke?",
}
RATE = 16_000


async def speak(tts: PiperTTSProvider, text: str) -> np.ndarray:
    parts = [np.frombuffer(f.data, dtype=np.int16) async for f in tts.synthesize(text)]
    voice = np.concatenate(parts).astype(np.float32) / 32768
    return soxr.resample(voice, tts.sample_rate, RATE)


async def main() -> None:
    tts = PiperTTSProvider()
    folder = Path(__file__).parent
    for name, text in QUESTIONS.items():
        voice = await speak(tts, text)
        audio = np.concatenate([np.zeros(RATE // 2), voice, np.zeros(RATE * 3 // 2)])
        pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
        step = RATE // 50
        frames = [
            frame_from_samples(pcm[i:i + step].copy(), RATE) for i in range(0, pcm.size, step)
        ]
        write_wav(folder / name, frames)
        print(f"{name}: {text!r}, {pcm.size / RATE:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
