"""Make the background sounds of examples/background_audio.py (synthesised, no recording).

    python examples/audio/make_background.py

- ``room_tone.wav``: 4 s of soft brown noise (a quiet room's hum), made to loop without a
  click: its end fades into its start.
- ``typing.wav``: 3 s of key clicks (short bursts of filtered noise) at uneven intervals.

Both 16 kHz mono 16-bit PCM, from a fixed seed, so remaking them gives the same files.
"""

from pathlib import Path

import numpy as np

from flowkit.audio import frame_from_samples
from flowkit.audio.wav import write_wav

RATE = 16_000


def room_tone(rng: np.random.Generator, seconds: float = 4.0) -> np.ndarray:
    """Brown noise (integrated white noise, high-passed so it does not drift)."""
    count = int(RATE * seconds)
    fade = RATE // 4
    white = rng.standard_normal(count + fade)
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # remove the slow drift
    brown /= np.abs(brown).max()
    # Loop seam: the last quarter second crossfades into the first, so start follows end.
    ramp = np.linspace(0.0, 1.0, fade)
    loop = brown[:count].copy()
    loop[:fade] = loop[:fade] * ramp + brown[count:] * (1 - ramp)
    return 0.08 * loop


def typing(rng: np.random.Generator, seconds: float = 3.0) -> np.ndarray:
    """Key clicks: 8 ms bursts of noise with a fast decay, 80-250 ms apart."""
    out = np.zeros(int(RATE * seconds))
    at = int(0.05 * RATE)
    click = int(0.008 * RATE)
    while at + click < out.size:
        burst = rng.standard_normal(click) * np.exp(-np.arange(click) / (click / 5))
        out[at : at + click] += rng.uniform(0.08, 0.15) * burst
        at += int(rng.uniform(0.08, 0.25) * RATE)
    return np.clip(out, -1.0, 1.0)


def save(path: Path, audio: np.ndarray) -> None:
    pcm = np.round(audio * 32767).astype(np.int16)
    write_wav(path, [frame_from_samples(pcm, RATE)])


def main() -> None:
    rng = np.random.default_rng(2026)
    folder = Path(__file__).parent
    save(folder / "room_tone.wav", room_tone(rng))
    save(folder / "typing.wav", typing(rng))


if __name__ == "__main__":
    main()
