"""The dense 16 kHz Silero network: what the builder makes, and that it is the published model."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from flowkit_local.silero import MODEL_PATH, SileroVADOptions, SileroVADProvider
from flowkit_local.silero_dense import DENSE_MODEL_PATH, build_dense_model, conv_matrix

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
