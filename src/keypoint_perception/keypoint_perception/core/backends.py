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
"""Where the keypoint network runs: PyTorch or ONNX Runtime, CPU or GPU (no ROS).

A backend maps a preprocessed batch, (B, 3, h_in, w_in) float32
(:meth:`~.detector.KeypointDetector.preprocess`), to the last stage's belief
maps, (B, J, h_in / 4, w_in / 4) float32 in [0, 1], on the host.  The two
agree to about 1e-6 (tested to 1e-4):

* :class:`TorchBackend` -- the :class:`~.model.BeliefMapNet` of a
  checkpoint on a torch device (``cpu``, ``cuda:N``), float32;
* :class:`OnnxRuntimeBackend` -- the network exported to ONNX
  (:mod:`.onnx_model`) in an ONNX Runtime session: the CPU execution
  provider, or on ``cuda:N`` the TensorRT execution provider (fp16 enabled,
  engines cached) and the CUDA execution provider (float32), each only where
  the installed ``onnxruntime`` (``onnxruntime-gpu``) has it, with the CPU
  provider last.

Thread policy (:func:`default_threads`, :func:`session_options`): a robot
computer runs other nodes, so the node must keep its latency when another
process keeps a core busy.  PyTorch's intra-op pool waits at every operator
for its slowest thread, and a thread that shares its core with a busy process
holds all of them up (a busy neighbour made its 2 threads 3.2x slower on 2
cores).  ONNX Runtime's threads are told not to spin: a waiting thread sleeps
instead of competing for the cores with the node's own post-processing
thread (:mod:`keypoint_perception.nodes.pipelining`) and with other
processes.  With every available core the node's end-to-end latency grew
1.26x with a busy neighbour on 2 cores (spinning threads: 2.3x for the
network alone) and it kept the most pairs per second; docs/benchmarks.md
("Inference backends and threads") has the measurements.
"""

import os
from typing import Any, List, Optional, Tuple

import numpy as np
import torch

from .config import INFERENCE_BACKENDS
from .model import BeliefMapNet, BeliefNetConfig
from .onnx_model import cache_dir, INPUT_NAME, is_onnx_path, OUTPUT_NAME, QUANTIZATION_KEY

try:  # optional: without ONNX Runtime every network runs in PyTorch
    import onnxruntime
except ImportError:  # pragma: no cover - depends on the installation
    onnxruntime = None

#: Largest batch a TensorRT engine is built for (optimization profile).
TENSORRT_MAX_BATCH = 64


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` can be imported."""
    return onnxruntime is not None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_threads(backend: str, cores: int) -> int:
    """Intra-op threads of a backend when ``num_threads`` is 0 (the policy, see module doc).

    Args:
        backend: ``'torch'`` or ``'onnxruntime'``.
        cores: CPU cores available (:func:`available_cores`).

    Returns:
        ONNX Runtime: every available core, threads not spinning.  PyTorch:
        torch's own default (one thread per physical core), kept because
        PyTorch's results depend on its thread count in the last bits and
        the stored reference outputs were made with it; its pool stalls when
        a core is shared, one reason ONNX Runtime is the CPU default.
    """
    return cores if backend == 'onnxruntime' else torch.get_num_threads()


def session_options(num_threads: int, spinning: bool = False):
    """ONNX Runtime session options of the thread policy.

    ``num_threads`` intra-op threads, one inter-op thread (the graph is a
    chain: nothing runs in parallel between operators), sequential
    execution, all graph optimizations (batch norm folded into the
    convolutions, fused activations) and no spinning: a waiting thread
    sleeps instead of keeping a core busy.

    Args:
        num_threads: intra-op threads (>= 1).
        spinning: let waiting threads spin (ONNX Runtime's own default;
            only for comparisons, see docs/benchmarks.md).
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    for key in ('session.intra_op.allow_spinning', 'session.inter_op.allow_spinning'):
        options.add_session_config_entry(key, '1' if spinning else '0')
    return options


def _device_index(device: str) -> int:
    """N of ``cuda:N`` (0 for ``cuda``)."""
    _, _, index = device.partition(':')
    return int(index) if index else 0


def execution_providers(device: str, config: BeliefNetConfig,
                        available: Tuple[str, ...] = ()) -> List[Any]:
    """ONNX Runtime execution providers for a device, best first, CPU last.

    Args:
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        config: the network's configuration (TensorRT's optimization profile
            covers batches 1 to :data:`TENSORRT_MAX_BATCH` of its input size).
        available: the installed providers (default:
            ``onnxruntime.get_available_providers()``).

    Returns:
        the ``providers`` argument of ``onnxruntime.InferenceSession``:
        names, or (name, options) pairs.  On ``cuda:N``: TensorRT with
        ``trt_fp16_enable`` (half-precision kernels where TensorRT finds
        them faster) and its engines cached under
        :func:`~.onnx_model.cache_dir`, then CUDA (float32), then CPU.

    Raises:
        ValueError: an unknown device, or ``cuda`` with neither the CUDA nor
            the TensorRT provider installed.
    """
    available = tuple(available or onnxruntime.get_available_providers())
    if device == 'cpu':
        return ['CPUExecutionProvider']
    if device != 'cuda' and not device.startswith('cuda:'):
        raise ValueError(f'device {device!r}: the onnxruntime backend runs on "cpu" or '
                         '"cuda[:N]"')
    index = _device_index(device)
    shape = f'{config.in_channels}x{config.input_height}x{config.input_width}'
    providers: List[Any] = []
    if 'TensorrtExecutionProvider' in available:
        providers.append(('TensorrtExecutionProvider', {
            'device_id': index, 'trt_fp16_enable': True,
            'trt_engine_cache_enable': True,
            'trt_engine_cache_path': os.path.join(cache_dir(), 'tensorrt'),
            'trt_profile_min_shapes': f'{INPUT_NAME}:1x{shape}',
            'trt_profile_opt_shapes': f'{INPUT_NAME}:4x{shape}',
            'trt_profile_max_shapes': f'{INPUT_NAME}:{TENSORRT_MAX_BATCH}x{shape}'}))
    if 'CUDAExecutionProvider' in available:
        providers.append(('CUDAExecutionProvider', {'device_id': index}))
    if not providers:
        raise ValueError(f'device {device!r}: this onnxruntime has no CUDA or TensorRT '
                         f'execution provider (installed: {", ".join(available)}); install '
                         'onnxruntime-gpu or use backend torch')
    return providers + ['CPUExecutionProvider']


class TorchBackend:
    """The network in PyTorch (float32) on a torch device.

    Attributes:
        name: ``'torch'``.
        network: the :class:`~.model.BeliefMapNet`, eval mode, on ``device``.
        device: the ``torch.device``.
        num_threads: torch intra-op threads set for this process.
    """

    name = 'torch'

    def __init__(self, network: BeliefMapNet, device: str = 'cpu', num_threads: int = 0):
        """Move the network to the device and set torch's threads.

        Args:
            network: the network (moved to ``device``, set to eval mode).
            device: torch device string.
            num_threads: torch intra-op threads; 0 keeps torch's default
                (:func:`default_threads`).  torch's setting is per process:
                it applies to every torch computation of the process.
        """
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        self.num_threads = torch.get_num_threads()
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()

    def describe(self) -> str:
        """One line: library, device, threads."""
        return f'torch {torch.__version__} on {self.device}, {self.num_threads} threads'

    @torch.no_grad()
    def run(self, batch: torch.Tensor) -> np.ndarray:
        """Last-stage belief maps of a batch.

        Args:
            batch: (B, 3, h_in, w_in) float32 tensor (any device).

        Returns:
            (B, J, h, w) float32 numpy array on the host.
        """
        return self.network(batch.to(self.device))[-1].float().cpu().numpy()


class OnnxRuntimeBackend:
    """The exported network in an ONNX Runtime session.

    Attributes:
        name: ``'onnxruntime'``.
        path: the ONNX file.
        session: the ``onnxruntime.InferenceSession``.
        providers: the execution providers the session uses, best first.
        num_threads: intra-op threads of the session.
    """

    name = 'onnxruntime'

    def __init__(self, path: str, config: BeliefNetConfig, device: str = 'cpu',
                 num_threads: int = 0, spinning: bool = False):
        """Open a session with the thread policy's options.

        Args:
            path: ONNX file written by :func:`~.onnx_model.export_onnx`.
            config: the network's configuration (input size).
            device: ``'cpu'`` or ``'cuda[:N]'`` (:func:`execution_providers`).
            num_threads: intra-op threads; 0 = :func:`default_threads`.
            spinning: see :func:`session_options`.

        Raises:
            RuntimeError: onnxruntime is not installed.
            ValueError: see :func:`execution_providers`.
        """
        if onnxruntime is None:
            raise RuntimeError('backend onnxruntime: onnxruntime is not installed '
                               '(pip install onnxruntime, or rosdep key '
                               'python3-onnxruntime-pip)')
        self.path, self.spinning = path, spinning
        self.num_threads = num_threads or default_threads(self.name, available_cores())
        self.session = onnxruntime.InferenceSession(
            path, session_options(self.num_threads, spinning),
            providers=execution_providers(device, config))
        self.providers: Tuple[str, ...] = tuple(self.session.get_providers())
        #: the most views one session run takes (TensorRT's optimization profile), or None
        self.max_batch: Optional[int] = (TENSORRT_MAX_BATCH if 'TensorrtExecutionProvider'
                                         in self.providers else None)
        #: an 8-bit copy (:func:`~.quantization.quantize_onnx`) rather than the float network
        self.int8 = QUANTIZATION_KEY in self.session.get_modelmeta().custom_metadata_map

    def __deepcopy__(self, memo):
        """Return ``self``: a session cannot be copied, and running it changes nothing in it."""
        return self

    def describe(self) -> str:
        """One line: library, providers, threads."""
        return (f'onnxruntime {onnxruntime.__version__}, {"/".join(self.providers)}, '
                f'{self.num_threads} threads, spinning {"on" if self.spinning else "off"}'
                + (', 8-bit network' if self.int8 else ''))

    def run(self, batch: torch.Tensor) -> np.ndarray:
        """Last-stage belief maps of a batch.

        Args:
            batch: (B, 3, h_in, w_in) float32 tensor or array (copied to the
                host when it is on a GPU).

        Returns:
            (B, J, h, w) float32 numpy array on the host; a batch larger than
            ``max_batch`` runs in chunks of at most ``max_batch``.
        """
        if isinstance(batch, torch.Tensor):
            batch = batch.detach().cpu().numpy()
        batch = np.ascontiguousarray(batch, np.float32)
        step = self.max_batch or max(len(batch), 1)
        maps = [self.session.run([OUTPUT_NAME], {INPUT_NAME: batch[k:k + step]})[0]
                for k in range(0, max(len(batch), 1), step)]
        return maps[0] if len(maps) == 1 else np.concatenate(maps)


def choose_backend(requested: str, device: str, model_path: str) -> str:
    """Return the backend a model runs in: ``'torch'`` or ``'onnxruntime'``.

    Args:
        requested: one of :data:`~.config.INFERENCE_BACKENDS`; ``'auto'``
            is ONNX Runtime for an ONNX file, and for a checkpoint on the CPU
            when onnxruntime is installed; PyTorch otherwise (a checkpoint on
            a GPU).
        device: ``'cpu'``, ``'cuda[:N]'``, ...
        model_path: the resolved model file (``.onnx`` or a checkpoint).

    Raises:
        ValueError: an unknown backend, or ``'torch'`` for an ONNX file
            (PyTorch runs checkpoints only).
        RuntimeError: ``'onnxruntime'`` without onnxruntime installed.
    """
    if requested not in INFERENCE_BACKENDS:
        raise ValueError(f'unknown backend {requested!r}; expected one of '
                         f'{", ".join(INFERENCE_BACKENDS)}')
    onnx_file = is_onnx_path(model_path)
    if requested == 'torch' and onnx_file:
        raise ValueError(f'{model_path}: an ONNX file runs with backend onnxruntime (or auto); '
                         'backend torch needs the checkpoint (.pt)')
    if requested == 'onnxruntime' and onnxruntime is None:
        raise RuntimeError('backend onnxruntime: onnxruntime is not installed '
                           '(pip install onnxruntime)')
    if requested != 'auto':
        return requested
    if onnx_file or (device == 'cpu' and onnxruntime is not None):
        return 'onnxruntime'
    return 'torch'
