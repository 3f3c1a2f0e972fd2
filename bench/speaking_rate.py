"""Speaking rate of the local TTS voices: seconds of audio per character of text.

``RoomSink`` estimates how long a sentence still being synthesized will take from a speaking
rate, learned from the sentences it received whole and, before the first,
``flowkit.nodes.room.DEFAULT_SECONDS_PER_CHAR``. This measures what the local voices read at
their default speed, which is where that default comes from.

Run: ``python bench/speaking_rate.py`` (a few seconds); JSON in
``bench/results/speaking_rate.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "speaking_rate.json"

# Plain sentences of the length an agent speaks, and one word: short ones are mostly the
# voice's own leading and trailing silence (the sink does not learn from them).
SENTENCES = (
    "The weather in Paris today is sunny, with a high of twenty degrees.",
    "I can help you with that.",
    "Let me check the forecast for tomorrow and get back to you in a moment.",
    "Your appointment is confirmed for Tuesday at half past three.",
    "Sure.",
)
SHORTEST_LEARNED = 16  # characters; as RoomSink's _SHORTEST_TIMED


async def seconds_of(provider: Any, text: str) -> float:
    """Seconds of audio the provider makes for ``text``."""
    seconds = 0.0
    async for frame in provider.synthesize(text):
        seconds += frame.samples_per_channel / frame.sample_rate
    return seconds


async def measure(name: str, provider: Any) -> dict[str, Any]:
    rows = []
    for text in SENTENCES:
        seconds = await seconds_of(provider, text)
        rows.append({"text": text, "chars": len(text), "seconds": round(seconds, 3),
                     "seconds_per_char": round(seconds / len(text), 4)})
    learned = [r["seconds_per_char"] for r in rows if r["chars"] >= SHORTEST_LEARNED]
    return {"voice": name, "sentences": rows,
            "median_seconds_per_char": round(statistics.median(learned), 4),
            "range_seconds_per_char": [min(learned), max(learned)]}


async def run() -> list[dict[str, Any]]:
    from flowkit_local.espeak import EspeakTTSProvider
    from flowkit_local.piper import PiperTTSProvider

    return [await measure("piper (default voice)", PiperTTSProvider()),
            await measure("espeak-ng (default voice)", EspeakTTSProvider())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args()
    voices = asyncio.run(run())

    from rich.console import Console
    from rich.table import Table

    from flowkit.nodes.room import DEFAULT_SECONDS_PER_CHAR

    table = Table(title="seconds of speech per character, at each voice's default speed")
    for column in ("voice", "sentence", "chars", "seconds", "s/char"):
        table.add_column(column, justify="left" if column in ("voice", "sentence") else "right")
    for voice in voices:
        for row in voice["sentences"]:
            table.add_row(voice["voice"], row["text"][:40], str(row["chars"]),
                          f"{row['seconds']:.2f}", f"{row['seconds_per_char']:.4f}")
    console = Console()
    console.print(table)
    for voice in voices:
        low, high = voice["range_seconds_per_char"]
        console.print(f"{voice['voice']}: median {voice['median_seconds_per_char']:.4f} s/char "
                      f"over sentences of {SHORTEST_LEARNED}+ characters ({low:.4f}-{high:.4f})")
    console.print(f"RoomSink's default before it has timed a sentence: {DEFAULT_SECONDS_PER_CHAR}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"voices": voices,
                                     "default_seconds_per_char": DEFAULT_SECONDS_PER_CHAR},
                                    indent=2) + "\n")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
