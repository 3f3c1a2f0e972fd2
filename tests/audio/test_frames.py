import numpy as np
import pytest
from livekit import rtc

from flowkit.audio import (
    duration_ms,
    duration_s,
    frame_format,
    frame_from_samples,
    samples,
    samples_for,
    silence,
)
from flowkit.audio import frames as frames_module
from flowkit.ports import AudioFormat


def test_samples_is_a_view_of_the_frame_with_shape_samples_by_channels() -> None:
    frame = rtc.AudioFrame.create(16000, 2, 160)
    view = samples(frame)
    assert view.shape == (160, 2)
    assert view.dtype == np.int16
    view[3, 1] = 1234
    view[5, 0] = -7
    # Interleaved: sample 3 of channel 1 is element 3 * 2 + 1 of frame.data.
    assert frame.data[3 * 2 + 1] == 1234
    assert frame.data[5 * 2] == -7
    assert np.shares_memory(view, np.frombuffer(frame.data, np.int16))


def test_samples_trims_a_buffer_longer_than_the_frame() -> None:
    frame = rtc.AudioFrame(bytearray(200), 8000, 1, 40)  # 100 int16 in the buffer
    assert samples(frame).shape == (40, 1)


def test_samples_of_a_bytes_frame_is_read_only() -> None:
    frame = rtc.AudioFrame(bytes(64), 8000, 1, 32)
    view = samples(frame)
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 1


def test_frame_from_samples_shares_memory_with_a_contiguous_array() -> None:
    array = np.arange(320, dtype=np.int16).reshape(160, 2)
    frame = frame_from_samples(array, 16000)
    assert (frame.sample_rate, frame.num_channels, frame.samples_per_channel) == (16000, 2, 160)
    array[10, 1] = -999
    assert frame.data[21] == -999
    assert np.shares_memory(samples(frame), array)


def test_a_frame_made_from_samples_keeps_its_view_and_stays_a_livekit_frame() -> None:
    array = np.arange(160, dtype=np.int16)
    frame = frame_from_samples(array, 8000)
    view = samples(frame)
    # Each consumer gets the view made with the frame, not one rebuilt from frame.data.
    assert view is samples(frame)
    assert view.shape == (160, 1)
    view[7, 0] = -321
    assert frame.data[7] == -321 and array[7] == -321
    assert isinstance(frame, rtc.AudioFrame)
    # The SDK's own methods work on it: a combined frame carries the same samples.
    combined = rtc.combine_audio_frames([frame, frame])
    assert combined.samples_per_channel == 320
    assert np.frombuffer(combined.data, np.int16)[160 + 7] == -321


@pytest.mark.parametrize(
    # The way the installed livekit gets (fields set directly when its constructor sets only
    # those, per the probe at import), and the constructor itself.
    "fast_init",
    sorted({frames_module._FAST_INIT, False}),
    ids=lambda fast: "fields-set-directly" if fast else "sdk-init",
)
def test_a_frame_made_from_samples_has_what_the_sdk_constructor_gives(
    fast_init: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Either way a frame carries the very fields (and values) the SDK's constructor sets.
    monkeypatch.setattr(frames_module, "_FAST_INIT", fast_init)
    array = np.arange(320, dtype=np.int16).reshape(160, 2)
    fast = frame_from_samples(array, 16000)
    sdk = rtc.AudioFrame(array.reshape(-1).view(np.uint8).data, 16000, 2, 160)
    assert set(vars(fast)) - {"array"} == set(vars(sdk))
    assert (fast.sample_rate, fast.num_channels, fast.samples_per_channel) == (16000, 2, 160)
    assert fast.userdata == {} and fast.userdata is not sdk.userdata
    assert bytes(fast.data) == bytes(sdk.data)
    # The SDK hands the frame's address to its native code: both point at the array.
    assert fast._proto_info().data_ptr == sdk._proto_info().data_ptr == array.ctypes.data


def test_frame_from_samples_mono_1d() -> None:
    array = np.arange(80, dtype=np.int16)
    frame = frame_from_samples(array, 8000)
    assert frame.num_channels == 1
    np.testing.assert_array_equal(samples(frame)[:, 0], array)


def test_frame_from_samples_copies_a_strided_array_correctly() -> None:
    stereo = np.arange(200, dtype=np.int16).reshape(100, 2)
    left = stereo[:, 0]  # strided: not contiguous
    frame = frame_from_samples(left, 8000)
    np.testing.assert_array_equal(samples(frame)[:, 0], left)
    assert not np.shares_memory(samples(frame), stereo)


def test_frame_from_samples_copies_a_read_only_array() -> None:
    array = np.arange(10, dtype=np.int16)
    array.flags.writeable = False
    frame = frame_from_samples(array, 8000)
    np.testing.assert_array_equal(samples(frame)[:, 0], array)


def test_frame_from_samples_rejects_floats_and_bad_shapes() -> None:
    with pytest.raises(TypeError, match="int16"):
        frame_from_samples(np.zeros(10), 8000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        frame_from_samples(np.zeros((2, 2, 2), np.int16), 8000)
    with pytest.raises(ValueError, match="positive"):
        frame_from_samples(np.zeros(4, np.int16), 0)


def test_durations_and_formats() -> None:
    frame = silence(20, 48000, 2)
    assert frame.samples_per_channel == 960
    assert duration_ms(frame) == 20
    assert duration_s(frame) == 0.02
    assert frame_format(frame) == AudioFormat(48000, 2)
    assert not samples(frame).any()
    assert samples_for(10, 44100) == 441
    with pytest.raises(ValueError, match="whole number"):
        samples_for(1, 22050)
