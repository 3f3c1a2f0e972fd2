"""Silero VAD's 16 kHz network as dense matrix products: the builder of the vendored models.

``models/silero_vad_16k_dense.onnx`` and ``models/silero_vad_16k_silent.onnx`` are made
here, from ``models/silero_vad.onnx``.
The published model is a torch export: both rates sit behind ``If`` nodes, with
shape-dependent squeezes in nested ``If`` nodes, and the encoder is four 1-D convolutions
over 4, 4, 2 and 1 time steps. onnxruntime runs each convolution as one small matrix
product *per batch row* and walks about a hundred tiny nodes per call, so a batch of 100
windows costs as much per window as a batch of 25 (about 54 us each on this project's
machines).

The 16 kHz branch is linear up to the magnitude and the ReLUs, and every time axis has a
fixed length, so it can be written as a handful of matrix products *over the batch*:

- the STFT: the reflect-padded window is cut into 5 blocks of 128 samples, frame ``t`` is
  blocks ``t`` and ``t + 1``, and one product with the transposed basis gives all four
  frames' spectra;
- each encoder convolution becomes a banded matrix over its flattened (time, channel)
  input: ``out = relu(x @ M + b)``, with ``M`` built from the kernel (:func:`conv_matrix`);
- the LSTM cell stays onnxruntime's ``LSTM`` (one step, gates put in ONNX's i, o, f, c
  order), and the decoder is one product and a sigmoid.

The arithmetic is the model's own; only the order of the float additions changes, so the
probabilities agree with the published model to about 1e-7 (a test checks both on speech).
Measured by ``bench/silero_model.py`` with one intra-op thread: about 60 us per window
alone (110-115 for the published model), 15-17 us per window in batches of 25-200 (54-56).

A window of digital silence (the window and its context all zeros) encodes to one
constant vector, so the second model, :func:`build_silent_model`, is the LSTM step and the
decoder alone on that vector: about a fifth of the work, the same outputs. The provider
sends such windows to it (in a voice call most windows are silence, and a muted or
comfort-silent line sends exact zeros).

Run ``python -m flowkit_local.silero_dense`` to rebuild the vendored files from
``models/silero_vad.onnx``; it needs the ``onnx`` package, which nothing imports when the
models run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnx

__all__ = [
    "DENSE_MODEL_PATH",
    "SILENT_MODEL_PATH",
    "build_dense_model",
    "build_silent_model",
    "conv_matrix",
    "silent_encoding",
]

DENSE_MODEL_PATH = Path(__file__).parent / "models" / "silero_vad_16k_dense.onnx"
"""The 16 kHz network as dense products, built from the vendored model by this module."""

SILENT_MODEL_PATH = Path(__file__).parent / "models" / "silero_vad_16k_silent.onnx"
"""The dense network's recurrent half on a window of zeros (:func:`build_silent_model`)."""

_SOURCE_PATH = Path(__file__).parent / "models" / "silero_vad.onnx"

# The 16 kHz branch's shapes: 64 samples of context + a 512-sample window, reflect-padded
# by 64 on the right, cut into frames of 256 every 128 samples (4 frames), 129 frequency bins.
_WIDTH = 576
_PAD = 64
_HOP = 128
_FRAMES = 4
_BINS = 129
_HIDDEN = 128
# (stride, padding) of the four encoder convolutions, all with kernels of 3.
_ENCODER = ((1, 1), (2, 1), (2, 1), (1, 1))

Float32Array = npt.NDArray[np.float32]


def conv_matrix(
    weight: Float32Array, bias: Float32Array, steps_in: int, stride: int, padding: int
) -> tuple[Float32Array, Float32Array, int]:
    """A 1-D convolution over a fixed number of steps as one matrix product.

    For ``x`` of shape ``[batch, steps_in, channels_in]`` flattened to
    ``[batch, steps_in * channels_in]``, ``x @ matrix + bias_row`` is the convolution's
    output ``[batch, steps_out, channels_out]`` flattened the same way.

    Args:
        weight: The kernel, ``[channels_out, channels_in, kernel]``.
        bias: ``[channels_out]``.
        steps_in: The input's time steps.
        stride: The convolution's stride.
        padding: Zero padding on each side, in steps.

    Returns:
        The matrix ``[steps_in * channels_in, steps_out * channels_out]``, the bias tiled
        over the output steps, and ``steps_out``.
    """
    channels_out, channels_in, kernel = weight.shape
    steps_out = (steps_in + 2 * padding - kernel) // stride + 1
    matrix = np.zeros((steps_in * channels_in, steps_out * channels_out), np.float32)
    for step_out in range(steps_out):
        for tap in range(kernel):
            step_in = step_out * stride + tap - padding
            if 0 <= step_in < steps_in:  # taps on the padding multiply zeros
                rows = slice(step_in * channels_in, (step_in + 1) * channels_in)
                columns = slice(step_out * channels_out, (step_out + 1) * channels_out)
                matrix[rows, columns] += weight[:, :, tap].T
    return matrix, np.tile(bias, steps_out).astype(np.float32), steps_out


def _branch_constants(model: onnx.ModelProto) -> dict[str, Float32Array]:
    """The weights of the 16 kHz branch (the top ``If``'s then-branch), by torch name."""
    from onnx import numpy_helper

    top = next(node for node in model.graph.node if node.op_type == "If")
    branch = next(a.g for a in top.attribute if a.name == "then_branch")
    constants: dict[str, Float32Array] = {}
    for node in branch.node:
        if node.op_type == "Constant" and "Inline_0_" in node.output[0]:
            name = node.output[0].split("Inline_0_", 1)[1].lstrip("_")
            constants[name] = numpy_helper.to_array(node.attribute[0].t)
    return constants


def _gates_for_onnx(rows: Float32Array) -> Float32Array:
    """Reorder LSTM rows from torch's gate order (i, f, g, o) to ONNX's (i, o, f, c)."""
    quarter = rows.shape[0] // 4
    return np.concatenate(
        [rows[:quarter], rows[3 * quarter :], rows[quarter : 3 * quarter]], axis=0
    )


class _GraphParts:
    """Nodes and weights being put together into one of the two models."""

    def __init__(self) -> None:
        self.initializers: list[onnx.TensorProto] = []
        self.nodes: list[onnx.NodeProto] = []

    def constant(self, name: str, value: npt.NDArray[np.generic]) -> str:
        """Add a weight (once per name) and return its name for the nodes' inputs."""
        from onnx import numpy_helper

        for existing in self.initializers:  # the two halves share small constants ("zero")
            if existing.name == name:
                if not np.array_equal(numpy_helper.to_array(existing), value):
                    raise ValueError(f"two different constants named {name!r}: rename one")
                return name
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def ints(self, name: str, *values: int) -> str:
        """Add an int64 constant (shapes, axes) and return its name."""
        return self.constant(name, np.array(values, dtype=np.int64))

    def model(
        self,
        name: str,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
    ) -> onnx.ModelProto:
        """The checked model of the nodes added so far."""
        import onnx
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", 16)],
            producer_name="flowkit_local.silero_dense",
        )
        model.ir_version = 8  # what onnxruntime 1.17 (flowkit-local's oldest) reads
        onnx.checker.check_model(model)
        return model


def _add_encoder(parts: _GraphParts, weights: dict[str, Float32Array], source: Path) -> str:
    """The STFT and the four convolutions, from ``input``; returns the encoding's name."""
    from onnx import helper

    basis = weights["stft.forward_basis_buffer"][:, 0, :]  # [2 * bins, 256]
    ints, constant = parts.ints, parts.constant
    parts.nodes += [
        helper.make_node("Pad", ["input", ints("pads", 0, 0, 0, _PAD)], ["padded"], mode="reflect"),
        helper.make_node(
            "Reshape", ["padded", ints("blocks_shape", -1, _FRAMES + 1, _HOP)], ["blocks"]
        ),
        helper.make_node(
            "Slice", ["blocks", ints("zero", 0), ints("four", _FRAMES), ints("one", 1)], ["heads"]
        ),
        helper.make_node("Slice", ["blocks", "one", ints("five", _FRAMES + 1), "one"], ["tails"]),
        helper.make_node("Concat", ["heads", "tails"], ["frames"], axis=2),
        helper.make_node("MatMul", ["frames", constant("basis_t", basis.T)], ["spectrum"]),
        helper.make_node(
            "Split", ["spectrum", ints("halves", _BINS, _BINS)], ["real", "imag"], axis=2
        ),
        helper.make_node("Mul", ["real", "real"], ["real_sq"]),
        helper.make_node("Mul", ["imag", "imag"], ["imag_sq"]),
        helper.make_node("Add", ["real_sq", "imag_sq"], ["power"]),
        helper.make_node("Sqrt", ["power"], ["magnitude"]),
        helper.make_node(
            "Reshape", ["magnitude", ints("flat", -1, _FRAMES * _BINS)], ["encoder_in"]
        ),
    ]
    steps, previous = _FRAMES, "encoder_in"
    for index, (stride, padding) in enumerate(_ENCODER):
        matrix, bias, steps = conv_matrix(
            weights[f"encoder.{index}.reparam_conv.weight"],
            weights[f"encoder.{index}.reparam_conv.bias"],
            steps,
            stride,
            padding,
        )
        parts.nodes += [
            helper.make_node(
                "Gemm",
                [
                    previous,
                    constant(f"encoder{index}_matrix", matrix),
                    constant(f"encoder{index}_bias", bias),
                ],
                [f"encoder{index}_linear"],
            ),
            helper.make_node("Relu", [f"encoder{index}_linear"], [f"encoder{index}_out"]),
        ]
        previous = f"encoder{index}_out"
    if steps != 1:
        raise ValueError(
            f"the encoder should end on one time step, got {steps}: {source} is not Silero "
            "VAD v5/v6; pass the vendored model"
        )
    return previous


def _add_recurrent(parts: _GraphParts, weights: dict[str, Float32Array], encoded: str) -> None:
    """The LSTM step and the decoder, from ``encoded [batch, 128]`` and ``state``."""
    from onnx import helper

    constant = parts.constant
    lstm_bias = np.concatenate(
        [
            _gates_for_onnx(weights["decoder.rnn.bias_ih"]),
            _gates_for_onnx(weights["decoder.rnn.bias_hh"]),
        ]
    )[None]
    parts.nodes += [
        helper.make_node("Unsqueeze", [encoded, parts.ints("zero", 0)], ["lstm_in"]),
        helper.make_node("Split", ["state"], ["h_in", "c_in"], axis=0),
        helper.make_node(
            "LSTM",
            [
                "lstm_in",
                constant("lstm_w", _gates_for_onnx(weights["decoder.rnn.weight_ih"])[None]),
                constant("lstm_r", _gates_for_onnx(weights["decoder.rnn.weight_hh"])[None]),
                constant("lstm_b", lstm_bias),
                "",
                "h_in",
                "c_in",
            ],
            ["", "h_out", "c_out"],
            hidden_size=_HIDDEN,
        ),
        helper.make_node("Concat", ["h_out", "c_out"], ["stateN"], axis=0),
        helper.make_node("Squeeze", ["h_out", "zero"], ["hidden"]),
        helper.make_node("Relu", ["hidden"], ["hidden_relu"]),
        helper.make_node(
            "Gemm",
            [
                "hidden_relu",
                constant("decoder_w", weights["decoder.decoder.2.weight"][:, :, 0].T),
                constant("decoder_b", weights["decoder.decoder.2.bias"]),
            ],
            ["logit"],
        ),
        helper.make_node("Sigmoid", ["logit"], ["output"]),
    ]


def _value(name: str, *shape: int | str) -> onnx.ValueInfoProto:
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


_STATE = ("state", 2, "batch", _HIDDEN)
_OUTPUTS = (("output", "batch", 1), ("stateN", 2, "batch", _HIDDEN))


def build_dense_model(source: Path = _SOURCE_PATH) -> bytes:
    """Build the dense 16 kHz model from a Silero VAD v5/v6 ONNX file.

    Args:
        source: The published model (the vendored ``silero_vad.onnx`` by default).

    Returns:
        The serialized ONNX model: inputs ``input [batch, 576]`` and
        ``state [2, batch, 128]``, outputs ``output [batch, 1]`` and
        ``stateN [2, batch, 128]`` (no ``sr`` input: it is 16 kHz only).

    Raises:
        KeyError: ``source`` lacks a weight of the expected network (another model).
    """
    import onnx

    weights = _branch_constants(onnx.load(str(source)))
    parts = _GraphParts()
    _add_recurrent(parts, weights, _add_encoder(parts, weights, source))
    model = parts.model(
        "silero_vad_16k_dense",
        [_value("input", "batch", _WIDTH), _value(*_STATE)],
        [_value(*shape) for shape in _OUTPUTS],
    )
    return model.SerializeToString()


def silent_encoding(source: Path = _SOURCE_PATH) -> Float32Array:
    """The encoder's output for a row of zeros, ``[1, 128]``, as onnxruntime computes it.

    Zeros in, the STFT's magnitude is zero and each convolution gives its bias through the
    ReLUs: a constant. It is computed by running the dense model's own encoder nodes, with
    the same kernels as the dense model, so the silent model's outputs equal the dense
    model's on silence exactly (bit for bit on the machine that built it; elsewhere a
    differently vectorised kernel may round the last bit differently).
    """
    import onnx
    import onnxruntime as ort  # type: ignore[import-untyped]

    parts = _GraphParts()
    encoded = _add_encoder(parts, _branch_constants(onnx.load(str(source))), source)
    model = parts.model(
        "silero_vad_16k_encoder", [_value("input", "batch", _WIDTH)], [_value(encoded, 1, _HIDDEN)]
    )
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), sess_options=settings, providers=["CPUExecutionProvider"]
    )
    (code,) = session.run(None, {"input": np.zeros((1, _WIDTH), np.float32)})
    return np.asarray(code, dtype=np.float32)


def build_silent_model(source: Path = _SOURCE_PATH) -> bytes:
    """Build the model of a window of digital silence: the dense model without its encoder.

    A row of 576 zeros (the window and its context) always encodes to the same vector
    (:func:`silent_encoding`), so such a window's probability and new state need only the
    LSTM step and the decoder, about a fifth of the dense model's work. The provider runs
    this model for those rows; its outputs are the dense model's for them.

    Args:
        source: The published model (the vendored ``silero_vad.onnx`` by default).

    Returns:
        The serialized ONNX model: input ``state [2, batch, 128]`` (one row per silent
        window), outputs ``output [batch, 1]`` and ``stateN [2, batch, 128]``.
    """
    import onnx
    from onnx import helper

    weights = _branch_constants(onnx.load(str(source)))
    parts = _GraphParts()
    # The constant encoding repeated for each state row: [batch, 128].
    parts.nodes += [
        helper.make_node("Shape", ["state"], ["state_shape"]),
        helper.make_node(
            "Slice",
            ["state_shape", parts.ints("batch_at", 1), parts.ints("batch_end", 2)],
            ["batch_size"],
        ),
        helper.make_node(
            "Concat", ["batch_size", parts.ints("width", _HIDDEN)], ["encoded_shape"], axis=0
        ),
        helper.make_node(
            "Expand",
            [parts.constant("silent_encoding", silent_encoding(source)), "encoded_shape"],
            ["encoded"],
        ),
    ]
    _add_recurrent(parts, weights, "encoded")
    model = parts.model(
        "silero_vad_16k_silent", [_value(*_STATE)], [_value(*shape) for shape in _OUTPUTS]
    )
    return model.SerializeToString()


def main() -> None:
    """Rebuild the two vendored 16 kHz models from ``models/silero_vad.onnx``."""
    builders = ((DENSE_MODEL_PATH, build_dense_model), (SILENT_MODEL_PATH, build_silent_model))
    for path, build in builders:
        path.write_bytes(build())
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
