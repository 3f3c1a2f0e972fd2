"""The dense 16 kHz Silero network: what the builder makes, and that it is the published model."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from flowkit_local.silero import MODEL_PATH, SileroVADOptions, SileroVADProvider
from flowkit_local.silero_dense import (
    DENSE_MODEL_PATH,
    SILENT_MODEL_PATH,
    build_dense_model,
    build_silent_model,
    conv_matrix,
)

AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"


def weather_with_silence() -> npt.NDArray[np.int16]:
    with wave.open(str(AUDIO / "weather_question.wav")) as w:
        assert w.getframerate() == 16_000
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    quiet = np.zeros(16_000, np.int16)
    return np.concatenate([quiet, pcm, quiet, pcm // 8, quiet])


def probabilities(
    provider: SileroVADProvider, pcm: npt.NDArray[np.int16]
) -> npt.NDArray[np.float32]:
    """One stream's probability per window, through the provider's batch call."""
    width, context = provider.context + provider.window, provider.context
    row = np.zeros((1, width), np.float32)
    state = provider.initial_state(1)
    out = []
    for start in range(0, pcm.size - provider.window + 1, provider.window):
        row[0, :context] = row[0, -context:]
        row[0, context:] = pcm[start : start + provider.window] / 32768.0
        p, state = provider.infer_batch(row, state)
        out.append(p[0])
    return np.array(out, np.float32)


def test_the_provider_runs_the_dense_model_at_16khz_and_the_published_one_at_8khz() -> None:
    assert SileroVADProvider().model_path == DENSE_MODEL_PATH
    assert SileroVADProvider(SileroVADOptions(sample_rate=8000)).model_path == MODEL_PATH
    assert SileroVADProvider(model_path=MODEL_PATH).model_path == MODEL_PATH


def test_the_dense_model_gives_the_published_models_probabilities_on_speech() -> None:
    pcm = weather_with_silence()
    dense = probabilities(SileroVADProvider(), pcm)
    published = probabilities(SileroVADProvider(model_path=MODEL_PATH), pcm)
    # The recording holds speech and silence both: the comparison covers both ends.
    assert published.max() > 0.9
    assert published.min() < 0.05
    np.testing.assert_allclose(dense, published, atol=1e-5)


def test_a_batch_through_the_dense_model_keeps_each_streams_state_apart() -> None:
    pcm = weather_with_silence()
    provider = SileroVADProvider()
    offsets = [0, 5_000, 11_000]
    length = pcm.size - max(offsets)
    width, context, window = provider.context + provider.window, provider.context, provider.window
    rows = np.zeros((len(offsets), width), np.float32)
    states = provider.initial_state(len(offsets))
    batched = []
    for start in range(0, length - window + 1, window):
        rows[:, :context] = rows[:, -context:]
        for i, offset in enumerate(offsets):
            rows[i, context:] = pcm[offset + start : offset + start + window] / 32768.0
        p, states = provider.infer_batch(rows, states)
        batched.append(p.copy())
    per_row = np.array(batched)
    for i, offset in enumerate(offsets):
        alone = probabilities(provider, pcm[offset : offset + length])
        np.testing.assert_allclose(per_row[:, i], alone, atol=1e-5)


def test_the_vendored_dense_model_is_what_the_builder_makes() -> None:
    assert build_dense_model(MODEL_PATH) == DENSE_MODEL_PATH.read_bytes(), (
        "models/silero_vad_16k_dense.onnx is stale: rebuild it with "
        "python -m flowkit_local.silero_dense"
    )


@pytest.mark.parametrize(
    ("steps", "stride", "padding"), [(4, 1, 1), (4, 2, 1), (2, 2, 1), (5, 1, 0)]
)
def test_a_convolution_matrix_computes_the_convolution(
    steps: int, stride: int, padding: int
) -> None:
    rng = np.random.default_rng(steps * 10 + stride)
    weight = rng.normal(size=(6, 5, 3)).astype(np.float32)
    bias = rng.normal(size=6).astype(np.float32)
    x = rng.normal(size=(2, 5, steps)).astype(np.float32)  # [batch, channels, steps]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    steps_out = (steps + 2 * padding - 3) // stride + 1
    expected = np.stack(
        [
            np.einsum("bik,oik->bo", padded[:, :, t * stride : t * stride + 3], weight) + bias
            for t in range(steps_out)
        ],
        axis=1,
    )  # [batch, steps_out, channels_out]
    matrix, tiled, got_steps = conv_matrix(weight, bias, steps, stride, padding)
    flat = x.transpose(0, 2, 1).reshape(2, -1)  # (step, channel) order, as the model flattens
    assert got_steps == steps_out
    np.testing.assert_allclose(flat @ matrix + tiled, expected.reshape(2, -1), rtol=1e-5, atol=1e-5)


def test_the_dense_model_at_8khz_is_refused_with_the_remedy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no sr input .* leave model_path out"):
        SileroVADProvider(SileroVADOptions(sample_rate=8000), model_path=DENSE_MODEL_PATH)
    # A copy elsewhere is still known by its inputs, not its path.
    copy = tmp_path / "vad.onnx"
    copy.write_bytes(DENSE_MODEL_PATH.read_bytes())
    provider = SileroVADProvider(model_path=copy)
    assert provider.stream().push(np.zeros(1024, np.int16), 16_000) == []
    with pytest.raises(ValueError, match=r"no sr input"):
        SileroVADProvider(SileroVADOptions(sample_rate=8000), model_path=copy)


def test_a_missing_model_file_is_named_with_the_remedy(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx; pass model_path= an existing"):
        SileroVADProvider(model_path=tmp_path / "missing.onnx")


# --------------------------------------------------------------------------- the silence shortcut


class CountingSession:
    """An onnxruntime session that counts the rows it was asked to classify."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.rows = 0

    def run(self, outputs: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.rows += feed["state"].shape[1]
        return self.session.run(outputs, feed)  # type: ignore[attr-defined,no-any-return]


def with_counting(provider: SileroVADProvider) -> CountingSession:
    counting = CountingSession(provider._silent_session)
    provider._silent_session = counting
    return counting


def silent_windows(pcm: npt.NDArray[np.int16], window: int = 512, context: int = 64) -> int:
    """The windows whose samples and context (the window before's tail) are all zero."""
    count, previous_tail = 0, np.zeros(context, np.int16)
    for start in range(0, pcm.size - window + 1, window):
        block = pcm[start : start + window]
        count += not (block.any() or previous_tail.any())
        previous_tail = block[-context:]
    return count


def test_the_silence_shortcut_is_on_for_the_vendored_16khz_model_only(tmp_path: Path) -> None:
    assert SileroVADProvider().silence_shortcut
    assert not SileroVADProvider(silence_shortcut=False).silence_shortcut
    assert not SileroVADProvider(model_path=MODEL_PATH).silence_shortcut
    assert not SileroVADProvider(SileroVADOptions(sample_rate=8000)).silence_shortcut
    # Another dense model may have other weights: its encoding of zeros is not known.
    copy = tmp_path / "vad.onnx"
    copy.write_bytes(DENSE_MODEL_PATH.read_bytes())
    assert not SileroVADProvider(model_path=copy).silence_shortcut


def test_the_silent_model_gives_the_dense_models_outputs_for_windows_of_zeros() -> None:
    provider = SileroVADProvider(silence_shortcut=False)
    silent = SileroVADProvider()._silent_session
    assert silent is not None
    # States from speech, and from the start: the recurrent half is all that differs.
    pcm = weather_with_silence()
    rows = np.zeros((4, provider.context + provider.window), np.float32)
    states = provider.initial_state(4)
    for k in range(40):
        rows[:, provider.context :] = pcm[16_000 + 512 * k : 16_000 + 512 * (k + 1)] / 32768.0
        rows[0] = 0.0  # one stream stays at its initial state
        _, states = provider.infer_batch(rows, states)
    zeros = np.zeros_like(rows)
    dense_p, dense_s = provider._run_whole(zeros, states)
    silent_p, silent_s = silent.run(None, {"state": states})
    assert np.ptp(dense_p) > 0.001  # the states differ, and so do their probabilities
    # Equal bit for bit where the model was built; to rounding on another CPU's kernels.
    np.testing.assert_allclose(silent_p, dense_p, rtol=0, atol=1e-6)
    np.testing.assert_allclose(silent_s, dense_s, rtol=0, atol=1e-6)


def test_a_stream_with_the_shortcut_decides_as_the_whole_network_does() -> None:
    pcm = weather_with_silence()
    whole = SileroVADProvider(silence_shortcut=False)
    shortcut = SileroVADProvider()
    counting = with_counting(shortcut)
    np.testing.assert_allclose(
        probabilities(shortcut, pcm), probabilities(whole, pcm), rtol=0, atol=1e-6
    )
    # Every window of zeros went to the silent model, and only those.
    assert counting.rows == silent_windows(pcm) > 100
    counting.rows = 0
    assert shortcut.stream().push(pcm, 16_000) == whole.stream().push(pcm, 16_000)
    assert counting.rows == silent_windows(pcm)


def test_a_batch_of_silent_and_sounding_rows_is_split_between_the_two_models() -> None:
    pcm = weather_with_silence()
    whole, shortcut = SileroVADProvider(silence_shortcut=False), SileroVADProvider()
    counting = with_counting(shortcut)
    width, context = whole.context + whole.window, whole.context
    offsets = [0, 4_000, 9_000, 14_000, 20_000]
    rows = np.zeros((len(offsets), width), np.float32)
    states_w, states_s = whole.initial_state(len(offsets)), shortcut.initial_state(len(offsets))
    silent_rows = 0
    for start in range(0, pcm.size - max(offsets) - 512, 512):
        rows[:, :context] = rows[:, -context:]
        for i, offset in enumerate(offsets):
            rows[i, context:] = pcm[offset + start : offset + start + 512] / 32768.0
        silent_rows += int((~rows.any(axis=1)).sum())
        p_w, states_w = whole.infer_batch(rows, states_w)
        p_s, states_s = shortcut.infer_batch(rows, states_s)
        np.testing.assert_allclose(p_s, p_w, rtol=0, atol=1e-6)
    np.testing.assert_allclose(states_s, states_w, rtol=0, atol=1e-6)
    assert counting.rows == silent_rows > 100


def test_the_vendored_silent_model_is_what_the_builder_makes() -> None:
    import onnx
    from onnx import numpy_helper

    built = onnx.load_from_string(build_silent_model(MODEL_PATH))
    vendored = onnx.load(str(SILENT_MODEL_PATH))

    def code(model: onnx.ModelProto) -> npt.NDArray[np.float32]:
        (tensor,) = [t for t in model.graph.initializer if t.name == "silent_encoding"]
        model.graph.initializer.remove(tensor)
        return numpy_helper.to_array(tensor)

    # The encoding of zeros is onnxruntime's arithmetic, which may round the last bit
    # differently on another CPU; the rest must be the same bytes.
    np.testing.assert_allclose(code(built), code(vendored), rtol=1e-6)
    assert built.SerializeToString() == vendored.SerializeToString(), (
        "models/silero_vad_16k_silent.onnx is stale: rebuild it with "
        "python -m flowkit_local.silero_dense"
    )


def test_a_missing_silent_model_is_named_with_the_remedy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flowkit_local.silero as silero

    monkeypatch.setattr(silero, "SILENT_MODEL_PATH", tmp_path / "gone.onnx")
    with pytest.raises(FileNotFoundError, match=r"gone\.onnx; reinstall flowkit-local .* "
                       r"silence_shortcut=False"):
        SileroVADProvider()
    assert not SileroVADProvider(silence_shortcut=False).silence_shortcut


def test_the_builder_refuses_two_different_constants_under_one_name() -> None:
    from flowkit_local.silero_dense import _GraphParts

    parts = _GraphParts()
    assert parts.ints("zero", 0) == parts.ints("zero", 0) == "zero"  # shared: added once
    assert len(parts.initializers) == 1
    with pytest.raises(ValueError, match=r"two different constants named 'zero'"):
        parts.ints("zero", 1)
