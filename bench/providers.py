"""Local providers: load time, memory, real-time factor and time to first output.

Each provider is measured in a fresh Python process (so its memory is its own): the process
imports the provider, loads its model, then runs it on fixed input. Run:

    python bench/providers.py            # all providers, a table and bench/results/providers.json
    python bench/providers.py --only whisper

Figures (CPU, this machine's cores): load_s (model load), rss_mib (resident memory after use,
minus the interpreter with flowkit imported), rtf (processing seconds per second of audio),
first_output_ms (time to the first frame, token or decision), and a per-provider extra.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUESTION = ROOT / "examples" / "audio" / "weather_question.wav"
SENTENCE = "The weather in Paris today is sunny, with a light breeze and a high of twenty degrees."
PROVIDERS = ("silero", "whisper", "whisper_whole_window", "piper", "espeak", "llama", "smart_turn")


def _rss_mib() -> float:
    # Linux reports ru_maxrss in KiB: the process's peak resident memory.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _speech() -> tuple[np.ndarray, int]:
    from flowkit.audio.wav import read_frames

    frames = list(read_frames(QUESTION))
    pcm = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    return pcm, frames[0].sample_rate


async def _silero() -> dict[str, Any]:
    from flowkit_local import SileroVADProvider

    pcm, rate = _speech()
    start = time.perf_counter()
    provider = SileroVADProvider()
    stream = provider.stream()
    stream.push(pcm[:512], rate)  # the model loads on first use
    load = time.perf_counter() - start
    minutes = 1.0
    chunk = rate // 50
    audio = np.resize(pcm, int(rate * 60 * minutes))
    cpu = time.process_time()
    stream = provider.stream()
    for i in range(0, audio.size, chunk):
        stream.push(audio[i:i + chunk], rate)
    used = time.process_time() - cpu
    return {"load_s": load, "rtf": used / (60 * minutes), "first_output_ms": None,
            "extra": {"cpu_s_per_session_minute": used / minutes}}


async def _whisper(fit_window: bool = True) -> dict[str, Any]:
    from flowkit_local import WhisperSTTProvider

    pcm, rate = _speech()
    # fit_window=False: the encoder on Whisper's whole 30 s window, as faster-whisper pads
    # every utterance (see flowkit_local/whisper_window.py).
    provider = WhisperSTTProvider(fit_window=fit_window)
    start = time.perf_counter()
    provider.load()
    load = time.perf_counter() - start
    times = []
    cpu = time.process_time()
    for _ in range(3):
        t = time.perf_counter()
        result = await provider.recognize(pcm, rate)
        times.append(time.perf_counter() - t)
    # The process's CPU (every thread's), beside the wall time: more CPU than wall time means
    # threads working beside the transcription (flowkit_local/blas.py).
    cpu_ms = (time.process_time() - cpu) / len(times) * 1000
    seconds = pcm.size / rate
    best = min(times)
    return {"load_s": load, "rtf": best / seconds, "first_output_ms": best * 1000,
            "extra": {"text": result.text, "cpu_ms_per_transcription": cpu_ms,
                      "wall_ms_per_transcription": sum(times) / len(times) * 1000}}


async def _tts(provider: Any) -> dict[str, Any]:
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        first = None
        audio = 0.0
        async for frame in provider.synthesize(SENTENCE):
            if first is None:
                first = time.perf_counter() - t
            audio += frame.samples_per_channel / frame.sample_rate
        runs.append((time.perf_counter() - t, first or 0.0, audio))
    total, first, audio = min(runs)
    return {"rtf": total / audio, "first_output_ms": first * 1000,
            "extra": {"audio_s": audio, "sample_rate": provider.sample_rate}}


async def _piper() -> dict[str, Any]:
    from flowkit_local import PiperTTSProvider

    provider = PiperTTSProvider()
    start = time.perf_counter()
    provider.load()
    return {"load_s": time.perf_counter() - start, **await _tts(provider)}


async def _espeak() -> dict[str, Any]:
    from flowkit_local import EspeakTTSProvider

    start = time.perf_counter()
    provider = EspeakTTSProvider()
    figures = await _tts(provider)
    return {"load_s": time.perf_counter() - start, **figures}


async def _llama() -> dict[str, Any]:
    from flowkit_local.llama import LlamaLLMProvider

    from flowkit.providers import ChatMessage
    from flowkit.providers.llm import TextDelta, Usage

    provider = LlamaLLMProvider()
    start = time.perf_counter()
    provider.load()
    load = time.perf_counter() - start
    history = [ChatMessage("system", "You are a helpful assistant."),
               ChatMessage("user", "Tell me about Paris in three sentences.")]
    t = time.perf_counter()
    first = None
    tokens = 0
    async for chunk in provider.chat(history):
        if isinstance(chunk, TextDelta) and first is None:
            first = time.perf_counter() - t
        if isinstance(chunk, Usage):
            tokens = chunk.completion_tokens
    total = time.perf_counter() - t
    generating = total - (first or 0.0)
    return {"load_s": load, "rtf": None, "first_output_ms": (first or 0.0) * 1000,
            "extra": {"tokens": tokens, "tokens_per_s": tokens / generating if generating else 0}}


async def _smart_turn() -> dict[str, Any]:
    import soxr
    from flowkit_local import SmartTurnModel

    pcm, rate = _speech()
    audio = soxr.resample(pcm.astype(np.float32) / 32768, rate, 16_000)
    model = SmartTurnModel()
    start = time.perf_counter()
    model.load()
    load = time.perf_counter() - start
    runs = []
    for _ in range(5):  # one prediction per end of speech: its cost is the figure
        wall, cpu = time.perf_counter(), time.process_time()
        probability = model.predict(audio)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    wall_s, cpu_s = min(runs)
    return {"load_s": load, "rtf": None, "first_output_ms": wall_s * 1000,
            "extra": {"cpu_ms_per_prediction": cpu_s * 1000, "probability": probability}}


async def _whisper_whole_window() -> dict[str, Any]:
    return await _whisper(fit_window=False)


MEASURES = {"silero": _silero, "whisper": _whisper, "whisper_whole_window": _whisper_whole_window,
            "piper": _piper, "espeak": _espeak, "llama": _llama, "smart_turn": _smart_turn}


def _one(name: str) -> dict[str, Any]:
    import flowkit  # noqa: F401 - the baseline includes flowkit itself

    baseline = _rss_mib()
    figures = asyncio.run(MEASURES[name]())
    return {"provider": name, "rss_mib": _rss_mib() - baseline, **figures}


def _table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="local providers (one process each)")
    for column in ("provider", "load s", "RSS MiB", "RTF", "first output ms", "extra"):
        table.add_column(column)
    for row in rows:
        if "error" in row:
            table.add_row(row["provider"], "-", "-", "-", "-", row["error"][:60])
            continue
        rtf = row.get("rtf")
        first = row.get("first_output_ms")
        extra = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in row.get("extra", {}).items()
        )
        table.add_row(row["provider"], f"{row['load_s']:.2f}", f"{row['rss_mib']:.0f}",
                      "-" if rtf is None else f"{rtf:.3f}",
                      "-" if first is None else f"{first:.0f}", extra)
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=PROVIDERS)
    parser.add_argument("--one", choices=PROVIDERS, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "providers.json")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one)))
        return
    rows = []
    for name in [args.only] if args.only else PROVIDERS:
        done = subprocess.run([sys.executable, __file__, "--one", name],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            rows.append({"provider": name, "error": done.stderr.strip().splitlines()[-1]})
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    _table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"benchmark": "providers", "results": rows}, indent=2))


if __name__ == "__main__":
    main()
