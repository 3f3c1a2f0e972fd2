"""Smart Turn: an audio turn model that hears whether the speaker has finished their turn.

Pipecat's Smart Turn v3 (BSD 2-Clause) is a small Whisper-encoder classifier, int8, about
8.7 MB as ONNX: from the last 8 seconds of an utterance at 16 kHz it gives the probability
that the speaker's turn is complete, from how the speech ended rather than from its words.
:class:`SmartTurnModel` runs it on onnxruntime and has the shape
:class:`flowkit.nodes.turn_prediction.AudioTurnModel` asks for, so that a
:class:`~flowkit.nodes.turn_prediction.TurnPredictor` can tell the turn detector when a pause
is only a pause. :class:`SmartTurn` is that node with the model built in.

The model ships inside the ``pipecat-ai`` wheel, the only wheel that carries it. Its
package is installed without its dependencies (``pip install --no-deps
pipecat-ai==1.14.0``): they pin protobuf below 7, which the livekit SDK needs, and nothing
of Pipecat is imported here; the model file is found through the package's install path.
The input features are Whisper's log-mel spectrogram, computed by faster-whisper's
``FeatureExtractor`` (already a dependency, for the recogniser) over 8 s windows, after the
zero-mean, unit-variance normalisation the model was trained with.

Its cost per prediction is measured by ``bench/providers.py`` (docs/providers.md).
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from flowkit.nodes.turn_prediction import TurnPredictor
from flowkit_local.blas import hold_blas_to_one_thread

__all__ = ["SMART_TURN_PACKAGE", "SmartTurn", "SmartTurnModel", "smart_turn_model_path"]

SMART_TURN_PACKAGE = "pipecat-ai==1.14.0"
"""The wheel the model ships in (installed with ``--no-deps``; see the module docstring)."""

_MODEL_FILE = Path("audio", "turn", "smart_turn", "data", "smart-turn-v3.2-cpu.onnx")
_RATE = 16_000
_SECONDS = 8
_NORMALISATION_EPS = 1e-7  # the variance floor of the normalisation the model expects


def smart_turn_model_path() -> Path:
    """Where the installed ``pipecat-ai`` package keeps the Smart Turn v3 model.

    The package is located, not imported (its dependencies are not installed).

    Raises:
        FileNotFoundError: The package, or the model in it, is not installed; the message
            gives the install command.
    """
    spec = importlib.util.find_spec("pipecat")
    roots = list(spec.submodule_search_locations or ()) if spec is not None else []
    for root in roots:
        path = Path(root, _MODEL_FILE)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the Smart Turn v3 model ({_MODEL_FILE.name}) ships in the pipecat-ai wheel, which "
        f"is not installed{' with it' if roots else ''}; install it without its dependencies: "
        f"pip install --no-deps {SMART_TURN_PACKAGE}"
    )


class SmartTurnModel:
    """Smart Turn v3 on onnxruntime: the probability that an utterance ends its turn.

    Thread-safe: the turn predictor calls :meth:`predict` on worker threads, and one model
    serves every session of a process (onnxruntime sessions may run concurrently).

    Attributes:
        name: ``"smart-turn-v3.2"``.
        sample_rate: 16000.
        max_seconds: 8.0: audio before the last 8 s is not looked at.
    """

    name = "smart-turn-v3.2"
    sample_rate = _RATE
    max_seconds = float(_SECONDS)

    def __init__(self, model_path: str | Path | None = None, *, intra_op_threads: int = 1) -> None:
        """Describe the model; it is loaded by :meth:`load` or the first prediction.

        Args:
            model_path: The ONNX file; by default the one in the installed pipecat-ai wheel.
            intra_op_threads: onnxruntime threads per prediction (one keeps a prediction
                from taking the core the sessions' audio runs on).

        Raises:
            ValueError: ``intra_op_threads`` is below 1.
        """
        if intra_op_threads < 1:
            raise ValueError(
                f"SmartTurnModel: intra_op_threads must be at least 1, got {intra_op_threads}"
            )
        self._path = Path(model_path) if model_path is not None else None
        self._threads = intra_op_threads
        self._session: Any = None  # an onnxruntime.InferenceSession (untyped)
        self._features: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SmartTurnModel(path={str(self._path) if self._path else 'pipecat-ai wheel'!r})"

    def load(self) -> None:
        """Load the model now (otherwise the first prediction does), e.g. in a prewarm.

        Raises:
            FileNotFoundError: The model file is missing (see :func:`smart_turn_model_path`).
        """
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime  # type: ignore[import-untyped]
            from faster_whisper.feature_extractor import (  # type: ignore[import-untyped]
                FeatureExtractor,
            )

            path = self._path if self._path is not None else smart_turn_model_path()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            self._session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._features = FeatureExtractor(feature_size=80, chunk_length=_SECONDS)
            # The mel filters are a numpy product: one BLAS thread, or OpenBLAS's spinning
            # threads take a second core through the model call that follows (blas.py).
            hold_blas_to_one_thread()

    def features(self, audio: NDArray[np.float32]) -> NDArray[np.float32]:
        """The model's input for ``audio``: an ``[80, 800]`` log-mel spectrogram.

        The last 8 s of ``audio``, zero-padded in front when shorter (as the model was
        trained), normalised to zero mean and unit variance.
        """
        self.load()
        clip = np.asarray(audio, dtype=np.float32)
        window = _RATE * _SECONDS
        clip = clip[-window:] if clip.size > window else np.pad(clip, (window - clip.size, 0))
        clip = (clip - clip.mean()) / np.sqrt(clip.var() + _NORMALISATION_EPS)
        mel: NDArray[np.float32] = self._features(clip, padding=0)
        return mel[:, : window // 160].astype(np.float32)

    def predict(self, audio: NDArray[np.float32]) -> float:
        """The probability, 0 to 1, that the turn ending with ``audio`` is complete.

        Args:
            audio: Mono samples in [-1, 1] at 16 kHz, ending at the end of speech.

        Raises:
            ValueError: ``audio`` is not one-dimensional.
        """
        if np.ndim(audio) != 1:
            raise ValueError(
                f"SmartTurnModel.predict: expected mono samples (one dimension), got shape "
                f"{np.shape(audio)}"
            )
        features = self.features(audio)
        session = self._session
        assert session is not None
        # The output is named "logits" but holds the sigmoid already: a probability.
        (scores,) = session.run(None, {"input_features": features[np.newaxis]})
        return float(np.clip(np.asarray(scores).ravel()[0], 0.0, 1.0))


class SmartTurn(TurnPredictor):
    """A :class:`~flowkit.nodes.turn_prediction.TurnPredictor` with :class:`SmartTurnModel`."""

    def __init__(self, model: SmartTurnModel | None = None, **options: Any) -> None:
        """Create the node.

        Args:
            model: The model (share one between sessions); a new one by default.
            **options: The predictor's options (``max_pause``, ``complete_threshold``,
                ``audio_wait``).
        """
        super().__init__(model if model is not None else SmartTurnModel(), **options)
