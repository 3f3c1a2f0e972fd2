"""Voice-session benchmark (issue 7, workload "voice-session v1"): how many voice agents one
process keeps in real time, at what CPU, memory and latency.

Each session is a flowkit graph (RoomSource → Resample 16 kHz → Silero VAD → STT →
TurnDetector → LLM → TTS → RoomSink, with Interruptions), all sessions on ONE event loop in
one process, fed by ONE feeder task (see ``bench/voice_workload.py`` for the workload). Each
N runs in a fresh child process, so its memory figures start from a clean interpreter.

    python bench/voice_sessions.py              # N = 0, 1, 10, 25, 50, 100, 150, 200 (~65 s each)
    python bench/voice_sessions.py --quick      # N = 0, 1, 10, 25 with 2 s + 10 s windows
    python bench/voice_sessions.py --sessions 25 [--profile /tmp/p.txt]

It stops after the first N that misses real time (p99 input lateness > 100 ms, or CPU above
95% of one core). The full run writes ``bench/results/voice_sessions.json``; ``--quick`` and
``--sessions`` write JSON only when ``--json PATH`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "voice_sessions.json"
FULL_N = (0, 1, 10, 25, 50, 100, 150, 200)
QUICK_N = (0, 1, 10, 25)
LATENESS_LIMIT = 0.100
CPU_LIMIT = 0.95
MIB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


# --- one N, in a child process ------------------------------------------------------------------


async def run_sessions(n: int, warmup: float, measure: float, min_silence: float,
                       turn_delay: float, profile: str | None,
                       vad_batch: bool = True, pull_input: bool = False,
                       vad_thread_from: int | None = 128,
                       input_phases: int = 1, vad_batch_wait: float = 0.002,
                       turn_model: bool = False,
                       silence_shortcut: bool = True) -> dict[str, Any]:
    from flowkit_local.silero import SileroVADOptions, SileroVADProvider
    from model_clock import ModelClock
    from voice_workload import (
        FRAME_S,
        LLM_TTFT,
        LOOP_FRAMES,
        PROVIDERS_S,
        STT_DELAY,
        TTS_TTFA,
        Feeder,
        Lateness,
        Session,
        build_session_graph,
        speech_loop,
        tone_chunks,
    )

    import flowkit as fk

    # batch=True: every session's VAD windows of one loop iteration in one ONNX call.
    vad_provider = SileroVADProvider(
        SileroVADOptions(min_silence_duration=min_silence), batch=vad_batch,
        batch_thread_from=vad_thread_from, batch_wait=vad_batch_wait,
        silence_shortcut=silence_shortcut,
    )
    gc.collect()
    # The "baseline RSS (imported, VAD loaded)": before the workload's own audio.
    rss_loaded = rss_bytes()
    # Shared by every session, as graphs/voice_agent.py shares it: loaded after the baseline.
    smart_turn = None
    if turn_model:
        from flowkit_local import SmartTurnModel

        smart_turn = SmartTurnModel()
        smart_turn.load()
    frames, last_speech, speech_source, speech_s = speech_loop()
    chunks = tone_chunks()
    gc.collect()
    rss_pre = rss_bytes()

    lateness = Lateness()
    sessions = [Session(i, round(i * LOOP_FRAMES / n), lateness, pull_input) for i in range(n)]
    runners = []
    build_start = time.perf_counter()
    for session in sessions:
        graph = build_session_graph(session, vad_provider, chunks, endpointing_delay=turn_delay,
                                    turn_model=smart_turn, silence_shortcut=silence_shortcut)
        runner = fk.GraphRunner(graph, job=fk.JobContext(io=session.io))
        await runner.start()
        runners.append(runner)
    build_s = time.perf_counter() - build_start

    # The Silero model's own CPU, on whichever thread runs it (the loop's or the batcher's).
    model = ModelClock(vad_provider)

    loop = asyncio.get_running_loop()
    feeder = Feeder(sessions, frames, last_speech, phases=input_phases)
    t0 = loop.time() + 0.05
    feed_task = loop.create_task(feeder.run(t0))
    await asyncio.sleep(t0 + warmup - loop.time())

    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
    load0 = os.getloadavg()
    busy0, model0 = node_busy_s(runners), model.ns
    w0 = loop.time()
    cpu0 = cpu_seconds()
    gc0 = gc.get_stats()
    pauses = GCPauses()
    gc.callbacks.append(pauses.on_gc)
    lateness.measuring = True
    rss_samples: list[tuple[float, int]] = [(0.0, rss_bytes())]
    for second in range(1, int(measure) + 1):
        await asyncio.sleep(max(0.0, w0 + second - loop.time()))
        rss_samples.append((loop.time() - w0, rss_bytes()))
    w1 = loop.time()
    cpu1 = cpu_seconds()
    busy1, model1 = node_busy_s(runners), model.ns
    lateness.measuring = False
    gc1 = gc.get_stats()
    gc.callbacks.remove(pauses.on_gc)
    if profiler is not None:
        profiler.stop()
        Path(profile).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
        Path(profile).with_suffix(".html").write_text(profiler.output_html())
    # Let the replies to the last speech of the window finish before reading the timelines.
    await asyncio.sleep(2.0)
    feed_task.cancel()

    endpointing = min_silence + turn_delay
    stages: dict[str, list[float]] = {
        k: [] for k in ("v2v", "added", "vad_end", "stt_llm", "llm_tts", "tts_audio",
                        "stt_timer", "commit")
    }
    asked = missed = 0
    for s in sessions:
        for t_s in s.speech_end:
            if not w0 <= t_s <= w1:
                continue
            asked += 1
            v = _after(s.vad_end, t_s)
            f = _after(s.stt_final, v)
            r = _after(s.llm_request, v)
            t = _after(s.tts_first_text, r)
            p = _after(s.play_start, t)
            if p is None or p - t_s > 5.0:
                missed += 1
                continue
            assert v is not None and f is not None and r is not None and t is not None
            v2v = p - t_s
            stages["v2v"].append(v2v)
            stages["added"].append(v2v - endpointing - PROVIDERS_S)
            stages["vad_end"].append(v - t_s - min_silence)
            stages["stt_llm"].append(r - v - STT_DELAY - turn_delay)
            stages["llm_tts"].append(t - r - LLM_TTFT)
            stages["tts_audio"].append(p - t - TTS_TTFA)
            stages["stt_timer"].append(f - v - STT_DELAY)
            stages["commit"].append(r - f)

    errors = sum(len(r.node_errors) for r in runners)
    wall = w1 - w0
    cpu = cpu1 - cpu0
    ts = np.array([t for t, _ in rss_samples])
    rs = np.array([b for _, b in rss_samples], dtype=float) / MIB
    slope = float(np.polyfit(ts, rs, 1)[0]) * 60.0 if len(ts) > 2 else None
    collections = [b["collections"] - a["collections"] for a, b in zip(gc0, gc1, strict=True)]
    batcher_stats = None
    if vad_batch:
        batcher = vad_provider.batcher(loop)
        batcher_stats = {"calls": batcher.calls, "windows": batcher.windows,
                         "runs": batcher.runs,
                         "mean_batch": round(batcher.windows / max(batcher.calls, 1), 2)}
    # Where the CPU went, per session-frame: each node's own time as the runtime measured
    # it (nodes it calls synchronously), the model, and the rest.
    split_us: dict[str, float] | None = None
    if n and lateness.total:
        per_frame = 1e6 / lateness.total
        split_us = {name: round((busy1[name] - busy0.get(name, 0.0)) * per_frame, 2)
                    for name in busy1 if busy1[name] > busy0.get(name, 0.0)}
        split_us["silero model"] = round((model1 - model0) / 1e9 * per_frame, 2)
        split_us["everything else"] = round(cpu * per_frame - sum(split_us.values()), 2)
    result = {
        "sessions": n,
        "vad_batch": vad_batch,
        "input": "pull (frames())" if pull_input else "push (deliver())",
        "vad_thread_from": vad_thread_from,
        "input_phases": input_phases,
        "vad_batch_wait_ms": round(vad_batch_wait * 1000.0, 3),
        "silence_shortcut": vad_provider.silence_shortcut,
        "turn_model": smart_turn.name if smart_turn is not None else None,
        "vad_batcher": batcher_stats,
        "speech": {"source": speech_source, "seconds": round(speech_s, 3)},
        "warmup_s": warmup,
        "measure_s": round(wall, 3),
        "build_s": round(build_s, 3),
        "cpu_s": round(cpu, 3),
        "cpu_fraction_of_core": round(cpu / wall, 4),
        "cpu_s_per_session_minute": round(cpu / (n * wall / 60.0), 4) if n else None,
        "cpu_us_per_session_frame": split_us,
        "lateness_p50_ms": _ms(lateness.percentile(50)),
        "lateness_p99_ms": _ms(lateness.percentile(99)),
        "lateness_max_ms": _ms(lateness.max),
        "input_frames": lateness.total,
        "rss_imported_vad_loaded_mib": round(rss_loaded / MIB, 2),
        "rss_pre_sessions_mib": round(rss_pre / MIB, 2),
        "rss_mib": round(float(rs.mean()), 2),
        "rss_start_mib": round(float(rs[0]), 2),
        "rss_end_mib": round(float(rs[-1]), 2),
        "rss_growth_mib_per_min": round(slope, 3) if slope is not None else None,
        "rss_per_session_in_process_mib": round((rs.mean() - rss_pre / MIB) / n, 3) if n else None,
        "gc_collections": collections,
        # The longest pause of each generation's collections in the window.
        "gc_pause_max_ms": [round(ms, 2) for ms in pauses.longest],
        # When the VAD's end-of-speech decisions come, in ms after their tick's first frame
        # was due (v1 only: with input phases the groups' ticks differ).
        "vad_decision_phase_ms": _decision_phase(sessions, feeder.t0, FRAME_S, w0, w1)
        if input_phases == 1 else None,
        # The rest of the tick, the same way (v1 only): when the feeder's burst of every
        # session's frame ended, and when the Silero model calls started and ended.
        "tick_phases_ms": {
            "burst_end": _phase(feeder.burst_ends, feeder.t0, FRAME_S, w0, w1),
            "model_start": _phase([c[0] for c in model.calls], feeder.t0, FRAME_S, w0, w1),
            "model_end": _phase([c[1] for c in model.calls], feeder.t0, FRAME_S, w0, w1),
        } if input_phases == 1 else None,
        # Other processes on the machine: the 1-minute load average before and after.
        "loadavg_1min": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "node_errors": errors,
        "replies": len(stages["v2v"]),
        "speech_ends": asked,
        "missed_replies": missed,
        "endpointing_delay_s": endpointing,
        "min_silence_s": min_silence,
        "turn_delay_s": turn_delay,
        "latency_ms": {
            k: {"p50": _ms(_pct(v, 50)), "p95": _ms(_pct(v, 95))} for k, v in stages.items()
        },
    }
    result["real_time"] = bool(
        result["lateness_p99_ms"] is not None
        and result["lateness_p99_ms"] <= LATENESS_LIMIT * 1000
        and result["cpu_fraction_of_core"] <= CPU_LIMIT
    )
    return result


class GCPauses:
    """The longest pause of each generation's collections, timed with ``gc.callbacks``."""

    def __init__(self) -> None:
        self.longest = [0.0, 0.0, 0.0]
        self._started = 0.0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        ms = (time.perf_counter() - self._started) * 1000.0
        generation = info["generation"]
        self.longest[generation] = max(self.longest[generation], ms)


def _decision_phase(
    sessions: list[Any], t0: float, frame_s: float, w0: float, w1: float
) -> dict[str, float | None]:
    """Median and p95 of the VAD decisions' time after their tick's start, in ms."""
    return _phase([t for s in sessions for t in s.vad_end], t0, frame_s, w0, w1)


def _phase(
    times: list[float], t0: float, frame_s: float, w0: float, w1: float
) -> dict[str, float | None]:
    """Median and p95 of ``times`` (those in the window) after their tick's start, in ms."""
    phases = [((t - t0) % frame_s) * 1000.0 for t in times if w0 <= t <= w1]
    return {"p50": _ms_round(_pct(phases, 50)), "p95": _ms_round(_pct(phases, 95))}


def _ms_round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def node_busy_s(runners: list[Any]) -> dict[str, float]:
    """Each node's own busy seconds so far, summed over the sessions, by node name."""
    totals: dict[str, float] = {}
    for runner in runners:
        for node in runner.metrics().nodes:
            totals[node.name] = totals.get(node.name, 0.0) + node.busy_s
    return totals


def _after(times: list[float], t: float | None) -> float | None:
    if t is None:
        return None
    i = bisect.bisect_left(times, t)
    return times[i] if i < len(times) else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or seconds != seconds else round(seconds * 1000.0, 2)


def child(args: argparse.Namespace) -> None:
    result = asyncio.run(
        run_sessions(args.sessions, args.warmup, args.measure, args.min_silence,
                     args.turn_delay, args.profile, args.vad_batch, args.pull_input,
                     args.vad_thread_from, args.input_phases, args.vad_batch_wait / 1000.0,
                     args.turn_model, args.silence_shortcut)
    )
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # the graphs are left running: the process's end is their end


def run_child(n: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--sessions", str(n),
           "--warmup", str(args.warmup), "--measure", str(args.measure),
           "--min-silence", str(args.min_silence), "--turn-delay", str(args.turn_delay)]
    if args.profile:
        cmd += ["--profile", args.profile]
    if not args.vad_batch:
        cmd += ["--no-vad-batch"]
    if args.pull_input:
        cmd += ["--pull-input"]
    cmd += ["--vad-thread-from", str(args.vad_thread_from or 0)]
    cmd += ["--input-phases", str(args.input_phases)]
    cmd += ["--vad-batch-wait", str(args.vad_batch_wait)]
    if args.turn_model:
        cmd += ["--turn-model"]
    if not args.silence_shortcut:
        cmd += ["--no-silence-shortcut"]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=args.warmup + args.measure + 300)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])  # type: ignore[no-any-return]
    raise RuntimeError(f"N={n}: the child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# --- the floor: resampling + Silero for one session-minute in a tight loop ----------------------


def floor(batch: int = 100) -> dict[str, Any]:
    import soxr
    from flowkit_local.silero import MODEL_PATH, SileroVADProvider
    from voice_workload import speech_loop

    from flowkit.audio.frames import samples

    frames, *_ = speech_loop()
    minute = [frames[i % len(frames)] for i in range(3000)]
    provider = SileroVADProvider()

    def resample_all() -> list[np.ndarray]:
        stream = soxr.ResampleStream(48_000, 16_000, 1, dtype="int16", quality="HQ")
        return [stream.resample_chunk(samples(f))[:, 0] for f in minute]

    def both() -> None:
        stream = soxr.ResampleStream(48_000, 16_000, 1, dtype="int16", quality="HQ")
        vad = provider.stream()
        for f in minute:
            vad.push(stream.resample_chunk(samples(f))[:, 0], 16_000)

    def best(fn: Any, repeat: int = 3) -> float:
        times = []
        for _ in range(repeat):
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        return min(times)

    resampled = resample_all()
    pcm = np.concatenate(resampled)

    def silero_only(provider: SileroVADProvider = provider) -> None:
        vad = provider.stream()
        for block in resampled:
            vad.push(block, 16_000)

    # Batched: one infer_batch call per 32 ms window tick for `batch` sessions.
    width = provider.context + provider.window
    count = pcm.size // provider.window
    windows = (pcm[: count * provider.window].reshape(count, provider.window)
               .astype(np.float32) / 32768.0)

    def batched(provider: SileroVADProvider = provider) -> None:
        states = provider.initial_state(batch)
        rows = np.zeros((batch, width), np.float32)
        for w in range(count):
            rows[:, : provider.context] = rows[:, -provider.context :]
            # Each session at another point of the loop, as in the workload.
            rows[:, provider.context :] = windows[(w + np.arange(batch) * 7) % count]
            _, states = provider.infer_batch(rows, states)

    def raw_onnx(provider: SileroVADProvider = provider) -> None:
        # The model call alone, 1875 windows (a minute): the machine's speed today.
        run, state = provider._session.run, provider.initial_state(1)
        row = np.zeros((1, width), np.float32)
        row[0, provider.context :] = windows[100]
        feed = {"input": row, "state": state, **provider._fixed_inputs}
        for _ in range(count):
            run(None, feed)

    # The published graph (what the provider ran before the dense rewrite), for the ratio.
    published = SileroVADProvider(model_path=MODEL_PATH)
    return {
        "published_model": {
            "raw_onnx_cpu_s_per_session_minute": round(best(lambda: raw_onnx(published)), 4),
            "silero_cpu_s_per_session_minute": round(best(lambda: silero_only(published)), 4),
            "batched_silero_cpu_s_per_session_minute": round(
                best(lambda: batched(published), 2) / batch, 4),
        },
        "raw_onnx_cpu_s_per_session_minute": round(best(raw_onnx), 4),
        "resample_plus_silero_cpu_s_per_session_minute": round(best(both), 4),
        "resample_cpu_s_per_session_minute": round(best(resample_all), 4),
        "silero_cpu_s_per_session_minute": round(best(silero_only), 4),
        "batched_silero_batch": batch,
        "batched_silero_cpu_s_per_session_minute": round(best(batched, 2) / batch, 4),
    }


# --- the report -------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_tables(rows: list[dict[str, Any]], baseline: float | None, zero_row_rss: float | None,
                 floor_figures: dict[str, Any] | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    load = Table(title="voice-session v1: load (measure window)")
    for col in ("N", "CPU s/session-min", "CPU % core", "lateness p50 ms", "p99 ms",
                "real time", "RSS MiB", "RSS/session MiB", "RSS growth MiB/min", "GC gen2"):
        load.add_column(col, justify="right")
    for r in rows:
        per = r.get("rss_per_session_mib")
        load.add_row(
            str(r["sessions"]), _fmt(r["cpu_s_per_session_minute"], 3),
            _fmt(100 * r["cpu_fraction_of_core"]), _fmt(r["lateness_p50_ms"]),
            _fmt(r["lateness_p99_ms"]), "yes" if r["real_time"] else "NO",
            _fmt(r["rss_mib"]), _fmt(per, 2), _fmt(r["rss_growth_mib_per_min"], 2),
            str(r["gc_collections"][2]),
        )
    console.print(load)
    lat = Table(title="latency, ms, p50 / p95 (added = voice-to-voice - endpointing - 400 ms)")
    for col in ("N", "replies", "voice-to-voice", "added", "VAD end", "STT→LLM", "LLM→TTS",
                "TTS→first audio"):
        lat.add_column(col, justify="right")
    for r in rows:
        if not r["sessions"]:
            continue
        lm = r["latency_ms"]

        def pair(key: str, lm: dict[str, Any] = lm) -> str:
            return f"{_fmt(lm[key]['p50'])} / {_fmt(lm[key]['p95'])}"

        lat.add_row(str(r["sessions"]), f"{r['replies']} (missed {r['missed_replies']})",
                    pair("v2v"), pair("added"), pair("vad_end"), pair("stt_llm"),
                    pair("llm_tts"), pair("tts_audio"))
    console.print(lat)
    splits = [r for r in rows if r.get("cpu_us_per_session_frame")]
    if splits:
        names = list(dict.fromkeys(k for r in splits for k in r["cpu_us_per_session_frame"]))
        split = Table(title="where the CPU goes, µs per session-frame (20 ms of one session's "
                            "input): each node's own time as the runtime measures it, the "
                            "Silero model, the rest")
        for col in ("N", *names, "total"):
            split.add_column(col, justify="right")
        for r in splits:
            us = r["cpu_us_per_session_frame"]
            split.add_row(str(r["sessions"]), *(_fmt(us.get(k)) for k in names),
                          _fmt(sum(us.values())))
        console.print(split)
    if baseline is not None and zero_row_rss is not None:
        console.print(f"baseline RSS (imported, Silero loaded): {baseline:.1f} MiB; with the "
                      f"workload's audio and the feeder running (N=0 row): "
                      f"{zero_row_rss:.1f} MiB")
    if floor_figures:
        console.print(
            "floor, CPU s per session-minute: resample + Silero "
            f"{floor_figures['resample_plus_silero_cpu_s_per_session_minute']:.3f} "
            f"(resample {floor_figures['resample_cpu_s_per_session_minute']:.3f}, Silero "
            f"{floor_figures['silero_cpu_s_per_session_minute']:.3f}); Silero batched "
            f"x{floor_figures['batched_silero_batch']}: "
            f"{floor_figures['batched_silero_cpu_s_per_session_minute']:.3f}; the model call "
            f"alone {floor_figures['raw_onnx_cpu_s_per_session_minute']:.3f}"
        )
        old = floor_figures["published_model"]
        console.print(
            "  the published Silero graph instead of the dense rewrite: Silero "
            f"{old['silero_cpu_s_per_session_minute']:.3f}, batched "
            f"{old['batched_silero_cpu_s_per_session_minute']:.3f}, the model call alone "
            f"{old['raw_onnx_cpu_s_per_session_minute']:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 0, 1, 10, 25; 2 s + 10 s")
    parser.add_argument("--sessions", type=int, help="run this one N only")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (default 5)")
    parser.add_argument("--measure", type=float, help="seconds measured (default 60)")
    parser.add_argument("--min-silence", type=float, default=0.55,
                        help="Silero min_silence_duration (part of the endpointing delay)")
    parser.add_argument("--turn-delay", type=float, default=0.0,
                        help="TurnDetector min_endpointing_delay (the rest of it)")
    parser.add_argument("--profile", help="pyinstrument profile of the window to this path")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor measurement")
    parser.add_argument("--json", type=Path, help="where to write the JSON")
    parser.add_argument("--no-vad-batch", dest="vad_batch", action="store_false",
                        help="one Silero call per session and window (the unbatched path)")
    parser.add_argument("--pull-input", action="store_true",
                        help="RoomSource reads each session's input with frames() (a task "
                        "wake-up per frame) instead of taking pushed frames")
    parser.add_argument("--vad-thread-from", type=int, default=128,
                        help="batches of at least this many VAD windows run on the batcher's "
                        "thread (SileroVADProvider batch_thread_from; 0: always on the loop)")
    parser.add_argument("--input-phases", type=int, default=1,
                        help="deal the sessions into this many groups fed 20/phases ms apart "
                        "(a variant of voice-session v1, which is 1: every frame in one tick)")
    parser.add_argument("--vad-batch-wait", type=float, default=2.0, metavar="MS",
                        help="a VAD batch without a window of every session waits up to this "
                        "many ms for the others (SileroVADProvider batch_wait; default 2, "
                        "the provider's; 0: a batch is one loop iteration's windows)")
    parser.add_argument("--turn-model", action="store_true",
                        help="add a TurnPredictor running Smart Turn v3 (flowkit-local, needs "
                        "pipecat-ai installed) to every session, as graphs/voice_agent.py has "
                        "(a variant, not v1)")
    parser.add_argument("--no-silence-shortcut", dest="silence_shortcut", action="store_false",
                        help="soxr called on digital silence too and every VAD window through "
                        "Silero's whole network (Resample and SileroVADProvider "
                        "silence_shortcut=False; to compare)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.vad_thread_from = args.vad_thread_from or None
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 5.0)
    args.measure = args.measure if args.measure is not None else (10.0 if args.quick else 60.0)
    if args.child:
        child(args)
        return
    plan = (args.sessions,) if args.sessions is not None else (QUICK_N if args.quick else FULL_N)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    baseline: float | None = None
    zero_row_rss: float | None = None
    for n in plan:
        print(f"N={n}: running ({args.warmup:g} s warm-up + {args.measure:g} s) ...", flush=True)
        row = run_child(n, args)
        if n == 0:
            baseline = row["rss_imported_vad_loaded_mib"]
            zero_row_rss = row["rss_mib"]
        if n:
            # Per session: against the N=0 process as a whole (the workload's audio included).
            base = zero_row_rss if zero_row_rss is not None else row["rss_pre_sessions_mib"]
            row["rss_per_session_mib"] = round((row["rss_mib"] - base) / n, 3)
        rows.append(row)
        print(f"  cpu {row['cpu_s_per_session_minute']} s/session-min, "
              f"{100 * row['cpu_fraction_of_core']:.1f}% core, lateness p99 "
              f"{row['lateness_p99_ms']} ms, real time {row['real_time']}, "
              f"added p50 {row['latency_ms']['added']['p50']} ms, VAD windows per model "
              f"call {(row['vad_batcher'] or {}).get('mean_batch')}, longest GC pause by "
              f"generation {row['gc_pause_max_ms']} ms, VAD decisions "
              f"{row['vad_decision_phase_ms']} ms into their tick (burst end, model start "
              f"and end: {row['tick_phases_ms']})", flush=True)
        if n and not row["real_time"]:
            print(f"N={n} missed real time: stopping here", flush=True)
            break
    floor_figures = None if args.no_floor else floor()
    print_tables(rows, baseline, zero_row_rss, floor_figures)
    out = args.json if args.json is not None else (
        DEFAULT_JSON if args.sessions is None and not args.quick else None)
    if out is not None:
        first = rows[1] if len(rows) > 1 else rows[0]
        document = {
            "benchmark": "voice_sessions",
            "workload": "voice-session v1 (issue 7)",
            "mode": "quick" if args.quick else ("one N" if args.sessions is not None else "full"),
            "speech": first["speech"],
            "limits": {"lateness_p99_ms": LATENESS_LIMIT * 1000, "cpu_fraction": CPU_LIMIT},
            "baseline_rss_mib": baseline,
            "n0_rss_mib": zero_row_rss,
            "floor": floor_figures,
            "rows": rows,
            "largest_real_time_n": max((r["sessions"] for r in rows if r["real_time"]),
                                       default=None),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "elapsed_s": round(time.perf_counter() - started, 1),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
