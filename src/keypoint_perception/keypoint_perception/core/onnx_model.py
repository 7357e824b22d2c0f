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
"""A trained keypoint network as a self-describing ONNX file (no ROS).

:func:`export_onnx` writes the last stage of a checkpoint's
:class:`~.model.BeliefMapNet` as an ONNX graph (input ``images``: (B, 3,
h_in, w_in) float32, normalized as :func:`~.model.normalize_images` does;
output ``beliefs``: (B, J, h_in / 4, w_in / 4) float32 belief maps; the batch
axis B is dynamic) and stores in the model's ``metadata_props`` everything
needed to run it without the checkpoint: the object class (keypoints,
template, symmetries), the network configuration (input size, stride), the
preprocessing and the default test-time augmentation (:data:`METADATA_KEYS`).
:func:`read_onnx_model` reads them back.

An ONNX file is a protobuf of tensors and operators: reading it runs no
code from it (unlike a pickle).  Writing one needs the pip-only ``onnx``
package; reading one needs ``onnxruntime``.  :func:`onnx_model_for` finds
or makes the ONNX file of a checkpoint: the exported file next to it when it
was exported from exactly this checkpoint (the shipped models), else one in
the user's cache (``$XDG_CACHE_HOME/keypoint_perception/onnx``), exported on
first use.
"""

import copy
from dataclasses import dataclass, field
import hashlib
import json
import os
from typing import Any, Dict, Optional
import warnings

import numpy as np
import torch

from .checkpoint import load_checkpoint, object_class_dict
from .config import PipelineConfig
from .model import BeliefMapNet, BeliefNetConfig
from .objects import ObjectClass

try:  # optional, pip only: needed to write an ONNX file, never to run one
    import onnx
except ImportError:  # pragma: no cover - depends on the installation
    onnx = None
try:  # optional: reading the metadata of an ONNX file goes through ONNX Runtime
    import onnxruntime
except ImportError:  # pragma: no cover - depends on the installation
    onnxruntime = None

#: Value of the ``format`` metadata entry of an exported network.
ONNX_FORMAT = 'keypoint_perception/onnx-v1'

#: ONNX operator set of exported networks (ONNX Runtime >= 1.12, TensorRT >= 8.5).
ONNX_OPSET = 17

#: Names of the graph's input and output.
INPUT_NAME, OUTPUT_NAME = 'images', 'beliefs'

#: Largest belief difference allowed between ONNX Runtime and PyTorch when an
#: export checks itself (the backends agree to about 1e-6).
EXPORT_TOLERANCE = 1e-4

#: metadata_props keys of an exported network (all values are strings; the
#: structured ones JSON).
METADATA_KEYS = ('format', 'opset', 'object_class', 'network_config', 'preprocessing',
                 'test_time_augmentation', 'checkpoint_meta', 'source_sha256', 'exported_with')

#: The metadata entry an 8-bit copy (:mod:`.quantization`) adds; absent in a
#: float network.
QUANTIZATION_KEY = 'quantization'


class OnnxModelError(ValueError):
    """An ONNX file that is not a network exported by :func:`export_onnx`."""


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported network's metadata says about it.

    Attributes:
        path: the ONNX file.
        object_class: the :class:`~.objects.ObjectClass` it detects.
        config: its :class:`~.model.BeliefNetConfig` (input size, stride).
        test_time_augmentation: ``'none'`` or ``'rot180'``, the one the
            checkpoint was validated with.
        meta: the checkpoint's metadata (provenance, validation metrics).
        opset: the ONNX operator set it was exported with.
        source_sha256: SHA-256 of the checkpoint file it was exported from.
        quantization: for an 8-bit copy (:func:`~.quantization.quantize_onnx`)
            how it was made and how far it is from the float network; {}
            for a float network.
    """

    path: str
    object_class: ObjectClass
    config: BeliefNetConfig
    test_time_augmentation: str
    meta: Dict[str, Any]
    opset: int
    source_sha256: str
    quantization: Dict[str, Any] = field(default_factory=dict)


class _LastStage(torch.nn.Module):
    """The network with its last stage's belief maps as the only output."""

    def __init__(self, network: BeliefMapNet):
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)[-1]


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def preprocessing_description(config: BeliefNetConfig) -> Dict[str, Any]:
    """Describe the preprocessing an exported network expects, as stored in its metadata.

    It is :meth:`~.detector.KeypointDetector.preprocess`: grey images
    replicated to RGB, the image (or the window of a zoomed look) resized to
    the input size with ``cv2.INTER_AREA``, NCHW float32 ``x / 255 - 0.5``;
    and the decoding of the output back to image pixels
    (:func:`~.heatmaps.decode_keypoints`, :func:`~.heatmaps.heatmap_to_image`).
    """
    return {'input_width': config.input_width, 'input_height': config.input_height,
            'channels': 'RGB (grey replicated)', 'layout': 'NCHW', 'dtype': 'float32',
            'resize': 'cv2.resize INTER_AREA of the image or window to the input size',
            'normalization': 'pixel / 255 - 0.5', 'stride': config.stride,
            'output': 'last-stage belief maps (B, J, input_height / stride, '
                      'input_width / stride), sigmoid, in [0, 1]',
            'decoding': 'per map, the highest 3x3 non-maximum-suppressed cell with belief '
                        f'>= {PipelineConfig.peak_threshold:g} (the nodes\' default '
                        'peak_threshold), refined by one Newton step on '
                        'log belief (DARK, Zhang et al. 2020); a cell (u, v) of a map of '
                        'width w and height h maps to the pixel ((u + 0.5) * W / w - 0.5, '
                        '(v + 0.5) * H / h - 0.5) of the W x H image or window that was '
                        'resized (x and y scale separately; pixel centres at integers, '
                        'OpenCV); a class with symmetries is labelled in the canonical order '
                        'of keypoint_perception.core.heatmaps.canonical_symmetry_order'}


def _json(value: Any) -> str:
    """JSON text of checkpoint data (tensors as lists)."""
    def plain(item):
        if isinstance(item, torch.Tensor):
            return item.tolist()
        if isinstance(item, np.ndarray):
            return item.tolist()
        raise TypeError(f'{type(item).__name__} is not JSON data')
    return json.dumps(value, sort_keys=True, default=plain)


def export_onnx(checkpoint_path: str, out_path: str, opset: int = ONNX_OPSET) -> OnnxModelInfo:
    """Export a checkpoint's network to a self-describing ONNX file.

    The network is traced in eval mode on a copy (the checkpoint's model is
    not changed), written atomically (temp file, then rename) and checked:
    ONNX Runtime's belief maps of a random batch of 3 must equal PyTorch's
    to :data:`EXPORT_TOLERANCE`.

    Args:
        checkpoint_path: a checkpoint file (:func:`~.checkpoint.load_checkpoint`).
        out_path: the ONNX file to write (folders are created).
        opset: ONNX operator set.

    Returns:
        the written file's :class:`OnnxModelInfo`.

    Raises:
        FileNotFoundError, CheckpointError: as
            :func:`~.checkpoint.load_checkpoint`.
        RuntimeError: ``onnx`` or ``onnxruntime`` is not installed, or the
            exported graph disagrees with PyTorch.
    """
    if onnx is None or onnxruntime is None:
        raise RuntimeError('exporting to ONNX needs the onnx and onnxruntime packages '
                           '(pip install onnx onnxruntime)')
    model, object_class, payload = load_checkpoint(checkpoint_path)
    config, meta = model.config, dict(payload.get('meta', {}))
    network = _LastStage(copy.deepcopy(model)).eval()
    example = torch.zeros(2, config.in_channels, config.input_height, config.input_width)
    tmp = f'{out_path}.{os.getpid()}.tmp'  # two processes may export at once
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    options = {'input_names': [INPUT_NAME], 'output_names': [OUTPUT_NAME],
               'dynamic_axes': {INPUT_NAME: {0: 'batch'}, OUTPUT_NAME: {0: 'batch'}},
               'opset_version': opset, 'do_constant_folding': True}
    if 'dynamo' in torch.onnx.export.__code__.co_varnames:
        options['dynamo'] = False  # the TorchScript exporter: no onnxscript needed
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation notice
        with torch.no_grad():
            torch.onnx.export(network, (example,), tmp, **options)
    graph = onnx.load(tmp)
    metadata = {
        'format': ONNX_FORMAT, 'opset': str(opset),
        'object_class': _json(object_class_dict(object_class)),
        'network_config': _json(config.to_dict()),
        'preprocessing': _json(preprocessing_description(config)),
        'test_time_augmentation': str(meta.get('test_time_augmentation', 'none')),
        'checkpoint_meta': _json(meta),
        'source_sha256': file_sha256(checkpoint_path),
        'exported_with': f'torch {torch.__version__}, onnx {onnx.__version__}'}
    del graph.metadata_props[:]
    for key in METADATA_KEYS:
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, metadata[key]
    graph.doc_string = (f'{object_class.name} keypoint belief-map network '
                        '(keypoint_perception); see metadata_props')
    onnx.checker.check_model(graph)
    onnx.save(graph, tmp)
    _check_export(tmp, network, config)
    os.replace(tmp, out_path)
    return read_onnx_model(out_path)


def _check_export(path: str, network: torch.nn.Module, config: BeliefNetConfig) -> None:
    """Compare ONNX Runtime with PyTorch on a random batch; raise RuntimeError if they differ."""
    generator = torch.Generator().manual_seed(0)
    batch = torch.rand(3, config.in_channels, config.input_height, config.input_width,
                       generator=generator) - 0.5
    with torch.no_grad():
        expected = network(batch).numpy()
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    actual = session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0]
    difference = float(np.abs(actual - expected).max())
    if not difference <= EXPORT_TOLERANCE:
        os.remove(path)
        raise RuntimeError(f'the exported graph differs from PyTorch by {difference:.3g} '
                           f'(> {EXPORT_TOLERANCE}); nothing written')


def read_onnx_model(path: str) -> OnnxModelInfo:
    """Read an exported network's description from its metadata (nothing is executed).

    Raises:
        FileNotFoundError: no such file.
        RuntimeError: ``onnxruntime`` is not installed.
        OnnxModelError: not an ONNX file, or one without this package's
            metadata (not written by :func:`export_onnx`).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no ONNX file {path}')
    if onnxruntime is None:
        raise RuntimeError(f'{path}: reading an ONNX model needs onnxruntime '
                           '(pip install onnxruntime)')
    try:
        session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    except Exception as e:  # ONNX Runtime raises its own exception types
        raise OnnxModelError(f'{path}: not a readable ONNX model '
                             f'({" ".join(str(e).split())[:300]})') from e
    metadata = session.get_modelmeta().custom_metadata_map
    if metadata.get('format') != ONNX_FORMAT:
        raise OnnxModelError(f'{path}: an ONNX model without keypoint_perception metadata '
                             f'(format {metadata.get("format")!r}, expected {ONNX_FORMAT!r}); '
                             'export networks with keypoints-export')
    try:
        info = OnnxModelInfo(
            path, ObjectClass.from_dict(json.loads(metadata['object_class'])),
            BeliefNetConfig.from_dict(json.loads(metadata['network_config'])),
            metadata['test_time_augmentation'], json.loads(metadata['checkpoint_meta']),
            int(metadata['opset']), metadata['source_sha256'],
            json.loads(metadata.get(QUANTIZATION_KEY) or '{}'))
    except (KeyError, TypeError, ValueError) as e:
        raise OnnxModelError(f'{path}: invalid keypoint_perception metadata '
                             f'({" ".join(str(e).split())})') from e
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != [INPUT_NAME] or OUTPUT_NAME not in [o.name for o in outputs]:
        raise OnnxModelError(f'{path}: the graph must have input {INPUT_NAME!r} and output '
                             f'{OUTPUT_NAME!r}')
    return info


def model_object_class(path: str) -> ObjectClass:
    """Return the object class a model file detects, reading it as the detector would.

    Args:
        path: a checkpoint or an ONNX file of :func:`export_onnx` (by its
            extension).

    Raises:
        FileNotFoundError, CheckpointError, OnnxModelError, RuntimeError: as
            :func:`~.checkpoint.load_checkpoint` and :func:`read_onnx_model`.
    """
    if is_onnx_path(path):
        return read_onnx_model(path).object_class
    return load_checkpoint(path)[1]


def can_export() -> bool:
    """Whether :func:`export_onnx` can run here (``onnx`` and ``onnxruntime`` installed)."""
    return onnx is not None and onnxruntime is not None


def is_onnx_path(path: str) -> bool:
    """Whether a model path names an ONNX file (by its ``.onnx`` extension)."""
    return path.lower().endswith('.onnx')


def cache_dir() -> str:
    """Folder of ONNX files exported on first use: ``$XDG_CACHE_HOME/keypoint_perception/onnx``.

    ``$XDG_CACHE_HOME`` defaults to ``~/.cache`` (XDG Base Directory
    Specification).
    """
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'keypoint_perception', 'onnx')


def onnx_model_for(checkpoint_path: str, export: bool = True) -> Optional[str]:
    """Return the ONNX file of a checkpoint, exported into the cache on first use.

    Looked for, in order: the ``.onnx`` next to the checkpoint (same name)
    when its ``source_sha256`` is the checkpoint's and it is not an 8-bit
    copy (:mod:`.quantization`); the cache file
    ``<cache_dir>/<name>-<sha256[:16]>.onnx``; else, with ``export``, the
    checkpoint is exported there (:func:`export_onnx`, a few seconds).

    Returns:
        the ONNX path, or None when there is none and ``export`` is false.

    Raises:
        as :func:`export_onnx` when exporting.
    """
    source = file_sha256(checkpoint_path)
    name = os.path.splitext(os.path.basename(checkpoint_path))[0]
    sibling = os.path.splitext(checkpoint_path)[0] + '.onnx'
    cached = os.path.join(cache_dir(), f'{name}-{source[:16]}.onnx')
    for candidate in (sibling, cached):
        if os.path.isfile(candidate):
            try:
                info = read_onnx_model(candidate)
            except (OnnxModelError, RuntimeError):
                continue  # a damaged cache file is exported again
            if info.source_sha256 == source and not info.quantization:  # not an 8-bit copy
                return candidate
    if not export:
        return None
    export_onnx(checkpoint_path, cached)
    return cached
