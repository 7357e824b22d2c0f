# Copyright 2026 The keypoint_perception authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""8-bit integer copies of exported networks for CPUs (ONNX Runtime static quantization).

:func:`quantize_onnx` turns a network written by
:func:`~.onnx_model.export_onnx` into one whose convolutions run on 8-bit
integers: weights int8 per output channel, activations uint8 with ranges
calibrated on real network inputs (static post-training quantization,
Jacob et al. 2018, "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference"; ONNX Runtime's
``quantize_static`` in the QDQ format, which keeps the graph's operators and
wraps them in QuantizeLinear/DequantizeLinear pairs that the CPU execution
provider fuses into integer kernels).  Two ends of the graph stay in
float32 (:func:`float_nodes`): the first convolution, on the pixels (in 8
bits it moved 27% of the strong belief peaks of the ``kuka_iiwa`` network by
more than a cell, 4% when kept in float), and the last convolution of the
last stage with its sigmoid, so that the belief maps keep the resolution
sub-pixel peak refinement needs.

The result is self-describing like its source: the source's metadata is
copied and a ``quantization`` entry (JSON: method, calibration views,
difference to the float network on them) is added.  Integer kernels change
the belief maps by a few thousandths, so its keypoints differ from the float
network's by a fraction of a pixel: measure before using it
(``docs/benchmarks.md``, "8-bit network").  Needs the pip-only ``onnx`` package
and ``onnxruntime``; no ROS.
"""

from dataclasses import dataclass
import json
import os
import tempfile
from typing import Dict, List

import numpy as np

from .onnx_model import INPUT_NAME, OUTPUT_NAME, QUANTIZATION_KEY, read_onnx_model

try:  # optional, pip only: needed to write an ONNX file, never to run one
    import onnx
    import onnxruntime
    from onnxruntime import quantization as ort_quantization
except ImportError:  # pragma: no cover - depends on the installation
    onnx = onnxruntime = ort_quantization = None

#: Largest mean belief difference to the float network on the calibration
#: views that :func:`quantize_onnx` accepts; beyond it the calibration did not
#: fit the network (belief maps are sigmoids in [0, 1], mostly near 0; a
#: peak's height may change by tenths while its place stays).
MAX_MEAN_BELIEF_DIFFERENCE = 0.02
#: A belief map whose float peak is at least this high counts as a strong
#: peak in :attr:`QuantizationReport.strong_peaks_moved`.
STRONG_PEAK = 0.3


@dataclass(frozen=True)
class QuantizationReport:
    """What :func:`quantize_onnx` wrote and how far it is from the float network.

    Attributes:
        path: the written ONNX file.
        num_views: calibration views used.
        float_nodes: names of the graph nodes left in float32.
        max_belief_difference: largest |int8 - float| belief over the
            calibration views (belief maps are in [0, 1]).
        mean_belief_difference: mean |int8 - float| belief.
        strong_peaks_moved: share of the float network's strong peaks (belief
            >= :data:`STRONG_PEAK`) whose highest cell moved by more than one
            cell in 8 bits, in [0, 1] (NaN without strong peaks): the mean
            difference above is over whole maps, mostly near 0, and cannot
            see a peak that moved.
    """

    path: str
    num_views: int
    float_nodes: List[str]
    max_belief_difference: float
    mean_belief_difference: float
    strong_peaks_moved: float = float('nan')

    def as_metadata(self) -> Dict[str, object]:
        """Return the ``quantization`` metadata entry (JSON-ready)."""
        return {'method': 'onnxruntime quantize_static, QDQ, MinMax calibration',
                'weights': 'int8, symmetric, per output channel',
                'activations': 'uint8, asymmetric, per tensor',
                'float_nodes': self.float_nodes, 'calibration_views': self.num_views,
                'max_belief_difference': self.max_belief_difference,
                'mean_belief_difference': self.mean_belief_difference,
                'strong_peaks_moved': self.strong_peaks_moved}


class _Views(object if ort_quantization is None else ort_quantization.CalibrationDataReader):
    """Feeds the calibration views to ONNX Runtime's calibrator in batches."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int = 8):
        self.input_name, self.images, self.batch, self.start = input_name, images, batch, 0

    def get_next(self):
        if self.start >= len(self.images):
            return None
        chunk = self.images[self.start:self.start + self.batch]
        self.start += self.batch
        return {self.input_name: chunk}


def float_nodes(graph) -> List[str]:
    """Names of the nodes :func:`quantize_onnx` leaves in float32.

    The first convolution (on the network input) and, walking back from the
    graph's output along first inputs, every node up to and including the
    first convolution met (the last stage's 1x1 convolution and its sigmoid).

    Args:
        graph: an ``onnx.GraphProto`` (the exported network's).
    """
    producer = {out: node for node in graph.node for out in node.output}
    names, node = [], producer.get(graph.output[0].name)
    while node is not None:
        names.append(node.name)
        if node.op_type == 'Conv':
            break
        node = producer.get(node.input[0])
    first = next((n for n in graph.node if n.op_type == 'Conv'), None)
    if first is not None and first.name not in names:
        names.insert(0, first.name)
    return names


def quantize_onnx(model_path: str, out_path: str, calibration: np.ndarray) -> QuantizationReport:
    """Write an 8-bit copy of an exported network, calibrated on network inputs.

    Args:
        model_path: a float32 ONNX network of :func:`~.onnx_model.export_onnx`.
        out_path: the ONNX file to write (written to a temporary file, then
            renamed: no half-written model).
        calibration: (N, 3, h_in, w_in) float32 network inputs, normalized
            as the detector feeds them (``pixel / 255 - 0.5``,
            :func:`~.model.normalize_image_array`), N >= 1: views of the
            object in scenes like the deployment's (e.g. validation renders).

    Returns:
        :class:`QuantizationReport` (also stored in the file's metadata).

    Raises:
        RuntimeError: ``onnx`` or ``onnxruntime`` missing, or the 8-bit
            network's belief maps differ from the float network's by more
            than :data:`MAX_MEAN_BELIEF_DIFFERENCE` on average (nothing is
            written).
        ValueError: ``calibration`` of the wrong shape or dtype, or a
            source that is already quantized.
        OnnxModelError, FileNotFoundError: as
            :func:`~.onnx_model.read_onnx_model`.
    """
    if ort_quantization is None:
        raise RuntimeError('quantizing needs the onnx and onnxruntime packages')
    info = read_onnx_model(model_path)
    expected = (3, info.config.input_height, info.config.input_width)
    calibration = np.asarray(calibration)
    if calibration.ndim != 4 or calibration.shape[1:] != expected or not len(calibration) \
            or calibration.dtype != np.float32:
        raise ValueError(f'calibration must be (N >= 1, {", ".join(map(str, expected))}) '
                         f'float32, got {calibration.shape} {calibration.dtype}')
    source = onnx.load(model_path)
    metadata = {p.key: p.value for p in source.metadata_props}
    if info.quantization:
        raise ValueError(f'{model_path} is already quantized')
    kept = float_nodes(source.graph)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        prepared, quantized = os.path.join(work, 'prepared.onnx'), os.path.join(work, 'q.onnx')
        ort_quantization.quant_pre_process(model_path, prepared)
        ort_quantization.quantize_static(
            prepared, quantized, _Views(INPUT_NAME, calibration),
            quant_format=ort_quantization.QuantFormat.QDQ, per_channel=True,
            activation_type=ort_quantization.QuantType.QUInt8,
            weight_type=ort_quantization.QuantType.QInt8, nodes_to_exclude=kept)
        reference, eight_bit = (_belief_maps(path, calibration) for path in (model_path,
                                                                             quantized))
        difference = np.abs(eight_bit - reference)
        if not difference.mean() <= MAX_MEAN_BELIEF_DIFFERENCE:
            raise RuntimeError(f'the 8-bit network differs from {model_path} by '
                               f'{difference.mean():.3g} in belief on average (> '
                               f'{MAX_MEAN_BELIEF_DIFFERENCE}) on the calibration views; '
                               'nothing written')
        report = QuantizationReport(out_path, len(calibration), kept,
                                    float(difference.max()), float(difference.mean()),
                                    strong_peaks_moved(reference, eight_bit))
        graph = onnx.load(quantized)
        metadata[QUANTIZATION_KEY] = json.dumps(report.as_metadata(), sort_keys=True)
        del graph.metadata_props[:]
        for key, value in metadata.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        graph.doc_string = source.doc_string + ' (8-bit, see the quantization entry)'
        tmp = f'{out_path}.{os.getpid()}.tmp'
        try:
            onnx.save(graph, tmp)
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return report


def strong_peaks_moved(reference: np.ndarray, other: np.ndarray) -> float:
    """Share of strong peaks of ``reference`` that moved by more than one cell in ``other``.

    Args:
        reference: (N, J, h, w) belief maps (the float network's).
        other: belief maps of the same shape (the 8-bit network's).

    Returns:
        The share, in [0, 1], of the maps whose ``reference`` maximum is at
        least :data:`STRONG_PEAK` and whose ``other`` maximum lies more than
        one cell away from it (Chebyshev distance); NaN when no map has a
        strong peak.

    Raises:
        ValueError: shapes differ or are not 4-D.
    """
    if reference.shape != other.shape or reference.ndim != 4:
        raise ValueError(f'belief maps of one (N, J, h, w) shape expected, got '
                         f'{reference.shape} and {other.shape}')
    n, j, h, w = reference.shape
    flat_ref, flat_other = reference.reshape(n, j, -1), other.reshape(n, j, -1)
    strong = flat_ref.max(axis=2) >= STRONG_PEAK
    if not strong.any():
        return float('nan')
    peak_ref = np.stack(np.unravel_index(flat_ref.argmax(axis=2), (h, w)), axis=-1)
    peak_other = np.stack(np.unravel_index(flat_other.argmax(axis=2), (h, w)), axis=-1)
    moved = np.abs(peak_other - peak_ref).max(axis=-1) > 1
    return float(moved[strong].mean())


def _belief_maps(path: str, images: np.ndarray) -> np.ndarray:
    """Belief maps of the ONNX network at ``path`` on ``images``, (N, J, h, w) float32."""
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: images[i:i + 8]})[0]
                           for i in range(0, len(images), 8)])
