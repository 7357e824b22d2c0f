#!/usr/bin/env python3
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
"""Inference speed per backend: network, threads, stages, and end to end through ROS 2.

One run measures, side by side, each with the machine quiet and with a busy
neighbour (a separate process that keeps one core busy, as another node on
a robot computer would):

1. ``network``: the shipped model on one stereo pair with its test-time
   augmentation (rot180: a batch of 4 views), per backend and thread
   setting (PyTorch 1 and 2 threads; ONNX Runtime 1 and 2 threads, with and
   without spinning; its shipped 8-bit copy, ``keypoints-export --int8``,
   at 1 and 2 threads): mean and p95 milliseconds;
2. ``stages``: per-stage latency of the core pipeline
   (:class:`StereoKeypointPipeline`, node defaults) on the 13 real pairs, per
   backend (and the 8-bit copy) with the thread policy's defaults;
3. ``ros``: end to end through ROS 2: ``stereo_keypoint_node`` in its own
   process (node defaults, ``backend`` set) fed the real pairs at a camera
   rate (``--rates``) for ``--seconds`` over DDS; keypoints_3d messages per
   second, publish-to-result latency (mean, p50, p95) and the node's CPU time
   per pair;
4. ``gpu`` (where CUDA is available, or on ``--batch-device``): stereo
   pairs per second and p50/p95 latency at batch sizes 1 to 32 for each
   backend, of the network alone and of the whole pipeline
   (:meth:`StereoKeypointPipeline.process_batch`).

Usage (from the repository root)::

    source tools/env.sh && python tools/benchmark_inference.py [--write-doc]

``--write-doc`` replaces the ``inference`` section of docs/benchmarks.md (its Markdown:
:mod:`inference_report`).
DDS stays on this machine (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) in
domain ``--domain-id`` (default: ``$ROS_DOMAIN_ID`` or 77).
"""

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from typing import List, Sequence

from benchmark_common import cpu_seconds, load_real_pairs, replace_section, ROOT
from inference_report import BEGIN, END, INT8_MODEL, MODEL, section, STAGES
from keypoint_perception.core import backends
from keypoint_perception.core.config import PipelineConfig
from keypoint_perception.core.detector import KeypointDetector
from keypoint_perception.core.pipeline import StereoKeypointPipeline
import numpy as np
import onnxruntime
import torch

DOC = os.path.join(ROOT, 'docs', 'benchmarks.md')
#: The settings compared by the network benchmark: (backend, threads, spinning, model).
NETWORK_SETTINGS = (('torch', 1, None, MODEL), ('torch', 2, None, MODEL),
                    ('onnxruntime', 1, False, MODEL), ('onnxruntime', 2, True, MODEL),
                    ('onnxruntime', 2, False, MODEL), ('onnxruntime', 1, False, INT8_MODEL),
                    ('onnxruntime', 2, False, INT8_MODEL))
#: The (label, backend, model) of the stage and end-to-end measurements.
PIPELINES = (('torch', 'torch', MODEL), ('onnxruntime', 'onnxruntime', MODEL),
             ('onnxruntime, 8-bit', 'onnxruntime', INT8_MODEL))


@contextlib.contextmanager
def busy_neighbour(active: bool):
    """Keep one core busy with a separate process while the block runs (if ``active``)."""
    spinner = (subprocess.Popen([sys.executable, '-c', 'while True: pass'])
               if active else None)
    try:
        time.sleep(0.5 if active else 0.0)
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def load_average() -> str:
    """Return the 1-minute load average, as text."""
    return f'{os.getloadavg()[0]:.1f}'


def _timed(function, repeats: int, warmup: int = 3) -> np.ndarray:
    """Milliseconds of ``function()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return np.asarray(times)


def _network_runner(setting, pair):
    """A function running the network on one stereo pair in one backend and thread setting.

    As the pipeline's observe stage runs it (:meth:`KeypointDetector.forward`:
    the rot180 copies, one batch of 4 views, the maps merged back).
    """
    backend, threads, spinning, model = setting
    detector = KeypointDetector(model, backend=backend, num_threads=threads)
    if backend == 'onnxruntime':
        detector.backend = backends.OnnxRuntimeBackend(
            detector.onnx_path, detector.config, num_threads=threads, spinning=spinning)
    batch = detector.preprocess(pair)
    return lambda: detector.forward(batch)


def network_gmac(model: str = MODEL) -> float:
    """Multiply-accumulates of the float network on one view, in GMAC (its convolutions)."""
    detector = KeypointDetector(model, backend='torch')
    total = []

    def count(module, inputs, output):
        kh, kw = module.kernel_size
        total.append(output[0].numel() * module.in_channels // module.groups * kh * kw)

    hooks = [m.register_forward_hook(count) for m in detector.model.modules()
             if isinstance(m, torch.nn.Conv2d)]
    width, height = detector.input_size
    with torch.no_grad():
        detector.model(torch.zeros(1, detector.config.in_channels, height, width))
    for hook in hooks:
        hook.remove()
    return sum(total) / 1e9


def sgemm_gflops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """Float32 matrix product speed of ONNX Runtime on this CPU at ``threads`` threads, GFLOP/s.

    A large SGEMM (ONNX Runtime's MLAS, the kernels under its convolutions)
    runs near the cores' float32 FMA peak: the reference for how close a
    network's convolutions come to it.  (PyTorch's ``torch.mm`` is no such
    reference on AMD cores: its MKL reached half of it on the EPYC here.)
    """
    from onnx import helper, TensorProto
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['a', 'b'], ['c'])], 'sgemm',
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in 'ab'],
        [helper.make_tensor_value_info('c', TensorProto.FLOAT, [size, size])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], ir_version=8)
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           backends.session_options(threads),
                                           providers=['CPUExecutionProvider'])
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    seconds = _timed(lambda: session.run(None, {'a': a, 'b': a}), repeats).min() / 1e3
    return 2 * size ** 3 / seconds / 1e9


def network_latency(pairs, repeats: int) -> list:
    """Rows (setting, quiet ms, busy ms) of the network on one stereo pair (rot180: 4 views)."""
    rows, default_threads = [], torch.get_num_threads()
    for setting in NETWORK_SETTINGS:
        run = _network_runner(setting, pairs[0])
        measured = {}
        for busy in (False, True):
            with busy_neighbour(busy):
                measured[busy] = _timed(run, repeats)
        rows.append((setting, measured[False], measured[True]))
        print(f'network {setting}: quiet {measured[False].mean():.1f} ms, busy '
              f'{measured[True].mean():.1f} ms', flush=True)
    torch.set_num_threads(default_threads)  # the torch backend's default again
    return rows


def stage_latency(pairs, cameras, backend: str, repeats: int, model: str = MODEL) -> dict:
    """Per-stage milliseconds (lists) of the pipeline with node defaults on the real pairs."""
    detector = KeypointDetector(model, backend=backend)
    pipeline = StereoKeypointPipeline(detector, PipelineConfig(input_rectified=False))
    pipeline.process(*pairs[0], *cameras)  # warm-up
    times = {name: [] for name in STAGES + ('total',)}
    for _ in range(repeats):
        for left, right in pairs:
            start = time.perf_counter()
            result = pipeline.process(left, right, *cameras)
            times['total'].append((time.perf_counter() - start) * 1e3)
            for name in STAGES:
                times[name].append(result.timings_ms.get(name, 0.0))
    return {name: np.asarray(values) for name, values in times.items()}


def end_to_end(backend: str, seconds: float, rate: float, domain_id: int, log_dir: str,
               label: str = '', second_look: Sequence[int] = (), **params) -> dict:
    """Feed the node the real pairs at ``rate`` Hz for ``seconds``; measure what comes out.

    ``second_look``: indices of the pairs with a second look (for
    :func:`latency_figures`); ``params``: node parameters other than the
    defaults.
    """
    # ROS 2 only here: the other parts run where rclpy is missing (a GPU machine)
    from soak import load_sets
    from stereo_harness import NodeHarness, stamp_to_ns
    sets, _ = load_sets()
    params = dict({'backend': backend, 'num_threads': '0', 'test_time_augmentation': 'auto',
                   'input_rectified': 'false', 'reliable_qos': 'false'}, **params)
    log_path = os.path.join(log_dir, f'node_{label or backend}.log'.replace(' ', '_'))
    with NodeHarness(domain_id, log_path, params) as harness:
        # warm-up: the first pairs pay one-off costs, and best-effort inputs may lose a
        # pair while the connections settle: send until three results came back
        deadline, k = time.monotonic() + 120.0, 0
        while len(harness.published_order) < 3 and time.monotonic() < deadline:
            messages = sets[k % len(sets)]
            stamp = harness.node.get_clock().now().to_msg()
            for message in messages.values():
                message.header.stamp = stamp
            harness.send(messages)
            harness.wait_published(stamp_to_ns(stamp), 2.0)
            k += 1
        sent, pair_of = {}, {}
        harness.published_order.clear()
        cpu_start = cpu_seconds(harness.proc.pid)
        start = time.monotonic()
        k = 0
        while time.monotonic() < start + seconds and harness.alive():
            due = start + k / rate
            while time.monotonic() < due:
                harness.spin(min(0.005, max(0.0, due - time.monotonic())))
            messages = sets[k % len(sets)]
            stamp = harness.node.get_clock().now().to_msg()
            for message in messages.values():
                message.header.stamp = stamp
            sent[stamp_to_ns(stamp)] = time.monotonic()
            pair_of[stamp_to_ns(stamp)] = k % len(sets)
            harness.send(messages)
            k += 1
        elapsed = time.monotonic() - start
        cpu = cpu_seconds(harness.proc.pid) - cpu_start
        harness.spin(2.0)
        received = [s for s in harness.published_order if s in sent]
        latencies = np.asarray([harness.received_at[s] - sent[s] for s in received]) * 1e3
        pair_index = np.asarray([pair_of[s] for s in received], dtype=int)
        in_time = [s for s in received if harness.received_at[s] <= start + elapsed]
    return dict({'sent': len(sent), 'processed': len(received),
                 'pairs_per_s': len(in_time) / elapsed,
                 'node_cpu_ms': 1e3 * cpu / max(1, len(in_time))},
                **latency_figures(latencies, pair_index, second_look))


def latency_figures(latencies: np.ndarray, pair_index: np.ndarray,
                    second_look: Sequence[int] = ()) -> dict:
    """Summary of end-to-end latencies (ms): overall, by content and per pair.

    Args:
        latencies: (N,) milliseconds, one per received pair.
        pair_index: (N,) int, which of the real pairs each one was.
        second_look: indices of the pairs on which the pipeline takes its
            second look (:func:`second_look_pairs`).

    Returns:
        ``latency_mean``, ``latency_p50``, ``latency_p95`` over all pairs;
        ``second_look_mean`` and ``first_look_mean``: the mean over the
        pairs with and without a second look (NaN where there are none);
        ``steady_p95_ratio``: p95 / mean of each real pair's own latencies,
        the largest over the pairs (the jitter a camera sees that keeps
        looking at one scene, without the content's share).
    """
    if not len(latencies):
        nan = float('nan')
        return dict.fromkeys(('latency_mean', 'latency_p50', 'latency_p95', 'second_look_mean',
                              'first_look_mean', 'steady_p95_ratio'), nan)
    second = np.isin(pair_index, list(second_look))
    ratios = [np.percentile(latencies[pair_index == k], 95) / latencies[pair_index == k].mean()
              for k in np.unique(pair_index) if (pair_index == k).sum() >= 5]
    return {'latency_mean': float(latencies.mean()),
            'latency_p50': float(np.percentile(latencies, 50)),
            'latency_p95': float(np.percentile(latencies, 95)),
            'second_look_mean': float(latencies[second].mean()) if second.any() else np.nan,
            'first_look_mean': float(latencies[~second].mean()) if (~second).any() else np.nan,
            'steady_p95_ratio': float(max(ratios, default=np.nan))}


def second_look_pairs(pairs, cameras, model: str = MODEL,
                      roi_refinement: str = 'always') -> List[int]:
    """Indices of the real pairs on which the pipeline takes the second look.

    With the node's defaults and ``roi_refinement``: the pairs whose first
    look gives windows (:meth:`StereoKeypointPipeline.second_look_windows`,
    the rule :meth:`~StereoKeypointPipeline.process_batch` follows).
    """
    detector = KeypointDetector(model, backend='onnxruntime')
    config = PipelineConfig(input_rectified=False, roi_refinement=roi_refinement)
    pipeline = StereoKeypointPipeline(detector, config)
    return [k for k, (left, right) in enumerate(pairs)
            if pipeline.second_look_windows(pipeline.look(left, right, *cameras),
                                            (left, right), cameras) is not None]


def gpu_batches(pairs, cameras, device: str, repeats: int) -> list:
    """Rows at batch sizes 1..32 on a GPU: the network alone and the whole pipeline.

    Each row: (backend, pairs per batch, network pairs/s, network p50 ms,
    network p95 ms, pipeline pairs/s, pipeline p50 ms, pipeline p95 ms); the
    pipeline is :meth:`StereoKeypointPipeline.process_batch` with the node's
    defaults (both looks batched on the GPU, the rest on one CPU thread).
    """
    rows = []
    for backend in ('torch', 'onnxruntime'):
        try:
            detector = KeypointDetector(MODEL, device=device, backend=backend)
        except (RuntimeError, ValueError) as e:  # e.g. onnxruntime without CUDA provider
            print(f'gpu {backend}: skipped ({e})', flush=True)
            continue
        pipeline = StereoKeypointPipeline(detector, PipelineConfig(input_rectified=False))

        def synchronize():
            if device.startswith('cuda'):
                torch.cuda.synchronize()
        for batch_pairs in (1, 2, 4, 8, 16, 32):
            chosen = [pairs[i % len(pairs)] for i in range(batch_pairs)]
            images = [image for pair in chosen for image in pair]
            network = _timed(lambda: (detector.forward(detector.preprocess(images)),
                                      synchronize()), repeats)
            whole = _timed(lambda: pipeline.process_batch(chosen, [cameras] * batch_pairs),
                           repeats)
            rows.append((detector.backend.describe(), batch_pairs)
                        + tuple(x for times in (network, whole) for x in (
                            batch_pairs * 1e3 / times.mean(), np.percentile(times, 50),
                            np.percentile(times, 95))))
            print(f'gpu {rows[-1]}', flush=True)
    return rows


def main(argv=None):
    """Measure, print and optionally write docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=30, help='network runs per setting')
    parser.add_argument('--stage-repeats', type=int, default=2,
                        help='passes over the 13 pairs per backend for the stages')
    parser.add_argument('--seconds', type=float, default=20.0,
                        help='duration of each end-to-end run')
    parser.add_argument('--rates', type=float, nargs='+', default=[15.0, 30.0],
                        help='camera rates of the end-to-end runs, Hz (default: 15, the '
                             'target rate, and 30, which shows how many pairs per second '
                             'the node keeps up with; each rate adds six runs)')
    parser.add_argument('--domain-id', type=int,
                        default=int(os.environ.get('ROS_DOMAIN_ID', '77')))
    parser.add_argument('--skip', nargs='*', default=[], choices=('network', 'stages', 'ros'),
                        help='parts not to run (for a quick look; not with --write-doc)')
    parser.add_argument('--batch-device', default=None,
                        help='device of the batch table (default: cuda:0 where CUDA is '
                             'available, else no table; "cpu" for a look on this machine)')
    parser.add_argument('--write-doc', action='store_true')
    args = parser.parse_args(argv)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    if 'ros' not in args.skip:
        from keypoint_perception.demo import fastdds_profile
        if not os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE') and fastdds_profile():
            # the Fast DDS profile keypoints-demo and the launch file use for large images
            os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = fastdds_profile()
    pairs, cameras = load_real_pairs()
    loads = []
    network, stages, ros, gpu = [], {}, [], []
    gmac, sgemm = float('nan'), {}
    if 'network' not in args.skip:
        loads.append(load_average())
        network = network_latency(pairs, args.repeats)
        gmac = network_gmac()
        policy_threads = backends.default_threads('onnxruntime', backends.available_cores())
        sgemm = {n: sgemm_gflops(n) for n in sorted({1, 2, policy_threads})}
    if 'stages' not in args.skip:
        loads.append(load_average())
        for label, backend, model in PIPELINES:
            stages[label] = {}
            for busy in (False, True):
                with busy_neighbour(busy):
                    stages[label][busy] = stage_latency(pairs, cameras, backend,
                                                        args.stage_repeats, model)
                print(f'stages {label} busy={busy}: total '
                      f'{stages[label][busy]["total"].mean():.1f} ms', flush=True)
    if 'ros' not in args.skip:
        loads.append(load_average())
        runs = [(label, backend, {'model': model}, rate) for label, backend, model in PIPELINES
                for rate in args.rates]
        # the thread policy: ONNX Runtime with one thread (the default is every core)
        runs.append(('onnxruntime, 1 thread', 'onnxruntime', {'num_threads': '1'},
                     min(args.rates)))
        # the latency tail: the second look at half the network time, and none at all
        runs.append(('onnxruntime, second look without augmentation', 'onnxruntime',
                     {'model': MODEL, 'roi_augmentation': 'false'}, min(args.rates)))
        for label, params in (('second look without augmentation', {'roi_augmentation': 'false'}),
                              ('no second look', {'roi_refinement': 'off'})):
            runs.append((f'onnxruntime, 8-bit, {label}', 'onnxruntime',
                         dict(params, model=INT8_MODEL), min(args.rates)))
        second_look = {(model, mode): second_look_pairs(pairs, cameras, model, mode)
                       for model in (MODEL, INT8_MODEL) for mode in ('always', 'off')}
        print(f'pairs with a second look: {second_look}', flush=True)
        with tempfile.TemporaryDirectory() as log_dir:
            for label, backend, params, rate in runs:
                for busy in (False, True):
                    chosen = second_look[params.get('model', MODEL),
                                         params.get('roi_refinement', 'always')]
                    with busy_neighbour(busy):
                        result = end_to_end(backend, args.seconds, rate, args.domain_id,
                                            log_dir, label, chosen, **params)
                    result['second_look_pairs'] = chosen
                    ros.append((label, rate, busy, result))
                    print(f'ros {label} {rate:g} Hz busy={busy}: {result}', flush=True)
    batch_device = args.batch_device or ('cuda:0' if torch.cuda.is_available() else None)
    if batch_device:
        gpu = gpu_batches(pairs, cameras, batch_device, args.repeats)
    loads.append(load_average())
    text = section(args, network, stages, ros, gpu, loads, gmac, sgemm)
    print(text)
    if args.write_doc:
        if args.skip:
            parser.error('--write-doc needs every part (no --skip)')
        replace_section(DOC, BEGIN, END, text)
        print(f'updated {DOC}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
