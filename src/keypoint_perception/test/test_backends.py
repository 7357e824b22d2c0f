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
"""Inference backends: PyTorch and ONNX Runtime agree; ONNX export, cache, providers, threads."""

import glob
import json
import os

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest

from keypoint_perception import export
from keypoint_perception.core import backends
from keypoint_perception.core.backends import (choose_backend, execution_providers,
                                               OnnxRuntimeBackend, session_options,
                                               TorchBackend)
from keypoint_perception.core.checkpoint import MODELS_DIR, resolve_model_path
from keypoint_perception.core.config import PipelineConfig
from keypoint_perception.core.detector import KeypointDetector
from keypoint_perception.core.model import make_config
from keypoint_perception.core.onnx_model import (export_onnx, file_sha256, onnx_model_for,
                                                 ONNX_OPSET, OnnxModelError, read_onnx_model)
from keypoint_perception.core.pipeline import StereoKeypointPipeline
from keypoint_perception.core.roi import PixelWindow

#: Backend tolerances (issue 19): belief maps, image pixels.
BELIEF_TOLERANCE = 1e-4
PIXEL_TOLERANCE = 0.01


def _real_pairs(opencv_data):
    lefts = sorted(glob.glob(os.path.join(opencv_data, 'left[0-9]*.jpg')))
    return [[cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
             for path in (left, left.replace('left', 'right'))] for left in lefts]


@pytest.fixture(scope='module')
def detectors():
    """Load the shipped model in both backends (rot180, as the node runs it)."""
    return (KeypointDetector('checkerboard_lite', backend='torch'),
            KeypointDetector('checkerboard_lite', backend='onnxruntime'))


def test_backends_are_what_was_asked_for(detectors):
    torch_detector, ort_detector = detectors
    assert isinstance(torch_detector.backend, TorchBackend)
    assert isinstance(ort_detector.backend, OnnxRuntimeBackend)
    assert ort_detector.backend.providers == ('CPUExecutionProvider',)
    # the shipped export next to the checkpoint is used, not a cache file
    assert ort_detector.onnx_path == os.path.join(MODELS_DIR, 'checkerboard_lite.onnx')
    assert ort_detector.test_time_augmentation == torch_detector.test_time_augmentation == \
        'rot180'


def test_belief_maps_of_both_backends_agree_on_the_real_sequence(detectors, opencv_data):
    torch_detector, ort_detector = detectors
    worst = 0.0
    for left, right in _real_pairs(opencv_data):
        expected = torch_detector.infer([left, right])
        actual = ort_detector.infer([left, right])
        assert actual.shape == expected.shape == (2, 4, 48, 64) and actual.dtype == np.float32
        worst = max(worst, float(np.abs(actual - expected).max()))
    # and on windows of a look (the second, zoomed look's batch)
    windows = [PixelWindow(100, 50, 320, 240), PixelWindow(40, 60, 320, 240)]
    left, right = _real_pairs(opencv_data)[0]
    batch = torch_detector.preprocess([left, right], windows)
    worst = max(worst, float(np.abs(torch_detector.forward(batch)
                                    - ort_detector.forward(batch)).max()))
    assert worst <= BELIEF_TOLERANCE


def test_keypoints_of_both_backends_agree_on_the_real_sequence(detectors, opencv_data, real_rig):
    config = PipelineConfig(input_rectified=False)
    results = [[StereoKeypointPipeline(detector, config).process(left, right, *real_rig)
                for left, right in _real_pairs(opencv_data)] for detector in detectors]
    for expected, actual in zip(*results):
        np.testing.assert_array_equal(expected.valid, actual.valid)
        for view in ('left', 'right'):
            np.testing.assert_allclose(getattr(actual, view).uv, getattr(expected, view).uv,
                                       atol=PIXEL_TOLERANCE)
        np.testing.assert_allclose(actual.xyz, expected.xyz, atol=1e-4)  # 0.1 mm
        np.testing.assert_allclose(actual.confidence, expected.confidence,
                                   atol=BELIEF_TOLERANCE)
    assert sum(r.valid.sum() for r in results[0]) >= 40  # the sequence is mostly found


def test_export_stores_what_is_needed_to_run_the_file_alone(random_checkpoint, tmp_path):
    out = tmp_path / 'models' / 'board.onnx'
    info = export_onnx(random_checkpoint, str(out))
    graph = onnx.load(str(out))
    metadata = {entry.key: entry.value for entry in graph.metadata_props}
    assert metadata['format'] == 'keypoint_perception/onnx-v1'
    assert int(metadata['opset']) == ONNX_OPSET == graph.opset_import[0].version
    assert json.loads(metadata['object_class'])['name'] == 'checkerboard'
    preprocessing = json.loads(metadata['preprocessing'])
    assert (preprocessing['input_width'], preprocessing['input_height']) == (256, 192)
    assert preprocessing['normalization'] == 'pixel / 255 - 0.5'
    assert '(u + 0.5) * W / w - 0.5' in preprocessing['decoding']
    assert metadata['test_time_augmentation'] == 'rot180'
    assert json.loads(metadata['checkpoint_meta'])['step'] == 7
    assert metadata['source_sha256'] == file_sha256(random_checkpoint)
    assert info.object_class.num_keypoints == 4 and info.config.input_width == 256
    # dynamic batch: one graph for batches of 1, 3 and 5
    session = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    for batch in (1, 3, 5):
        beliefs = session.run(None, {'images': np.zeros((batch, 3, 192, 256), np.float32)})[0]
        assert beliefs.shape == (batch, 4, 48, 64)
    # the file alone is enough: a detector from it equals one from the checkpoint
    from_file = KeypointDetector(str(out), backend='auto')
    from_checkpoint = KeypointDetector(random_checkpoint, backend='torch')
    assert from_file.model is None and from_file.backend.name == 'onnxruntime'
    assert from_file.object_class.keypoint_names == from_checkpoint.object_class.keypoint_names
    assert from_file.test_time_augmentation == 'rot180'
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    np.testing.assert_allclose(from_file.infer([image]), from_checkpoint.infer([image]),
                               atol=BELIEF_TOLERANCE)
    # the export did not change the checkpoint's network (eval mode, same weights)
    assert file_sha256(random_checkpoint) == metadata['source_sha256']


def test_an_onnx_file_cannot_run_in_torch_and_foreign_files_are_refused(tmp_path):
    shipped = os.path.join(MODELS_DIR, 'checkerboard_lite.onnx')
    with pytest.raises(ValueError, match='backend onnxruntime'):
        KeypointDetector(shipped, backend='torch')
    foreign = tmp_path / 'foreign.onnx'
    graph = onnx.load(shipped)
    del graph.metadata_props[:]
    onnx.save(graph, str(foreign))
    with pytest.raises(OnnxModelError, match='keypoints-export'):
        KeypointDetector(str(foreign), backend='auto')
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a protobuf at all')
    with pytest.raises(OnnxModelError, match='not a readable ONNX model'):
        read_onnx_model(str(garbage))
    assert resolve_model_path(shipped) == shipped


def test_the_shipped_export_is_the_shipped_checkpoints():
    """Check that each shipped checkpoint has an up-to-date ONNX export next to it.

    Fails when models/<name>.pt changed without a new export; regenerate with
    ``keypoints-export --model <name> --out <models folder>/<name>.onnx``.
    """
    for checkpoint in glob.glob(os.path.join(MODELS_DIR, '*.pt')):
        exported = checkpoint[:-3] + '.onnx'
        assert os.path.isfile(exported), f'{exported} missing: run keypoints-export'
        assert read_onnx_model(exported).source_sha256 == file_sha256(checkpoint), \
            f'{exported} is stale: run keypoints-export again'
        assert onnx_model_for(checkpoint, export=False) == exported


def test_a_checkpoint_is_exported_into_the_cache_once(random_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
    assert onnx_model_for(random_checkpoint, export=False) is None
    detector = KeypointDetector(random_checkpoint, backend='auto')
    assert detector.backend.name == 'onnxruntime'
    cached = detector.onnx_path
    assert cached.startswith(str(tmp_path / 'cache' / 'keypoint_perception' / 'onnx'))
    stamp = os.stat(cached).st_mtime_ns
    assert KeypointDetector(random_checkpoint, backend='auto').onnx_path == cached
    assert os.stat(cached).st_mtime_ns == stamp  # reused, not exported again
    # a stale export next to the checkpoint (another checkpoint's) is not used
    stale = random_checkpoint[:-3] + '.onnx'
    export_onnx(resolve_model_path('checkerboard_lite'), stale)
    assert onnx_model_for(random_checkpoint) == cached
    # auto without a way to export falls back to torch
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'empty_cache'))
    monkeypatch.setattr('keypoint_perception.core.detector.can_export', lambda: False)
    assert KeypointDetector(random_checkpoint, backend='auto').backend.name == 'torch'
    # and so does auto when the export fails (a cache folder it cannot write)
    monkeypatch.setattr('keypoint_perception.core.detector.can_export', lambda: True)
    (tmp_path / 'read_only').write_text('a file where the cache folder would be')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'read_only'))
    with pytest.warns(RuntimeWarning, match='running it in PyTorch'):
        assert KeypointDetector(random_checkpoint, backend='auto').backend.name == 'torch'
    with pytest.raises(OSError):  # asked for explicitly: the error is the user's to see
        KeypointDetector(random_checkpoint, backend='onnxruntime')


def test_auto_chooses_onnxruntime_on_the_cpu_and_torch_on_a_gpu(monkeypatch):
    assert choose_backend('auto', 'cpu', 'a.pt') == 'onnxruntime'
    assert choose_backend('auto', 'cuda:0', 'a.pt') == 'torch'
    assert choose_backend('auto', 'cuda:0', 'a.onnx') == 'onnxruntime'
    assert choose_backend('torch', 'cpu', 'a.pt') == 'torch'
    with pytest.raises(ValueError, match='unknown backend'):
        choose_backend('tensorflow', 'cpu', 'a.pt')
    monkeypatch.setattr(backends, 'onnxruntime', None)
    assert choose_backend('auto', 'cpu', 'a.pt') == 'torch'
    with pytest.raises(RuntimeError, match='not installed'):
        choose_backend('onnxruntime', 'cpu', 'a.pt')


def test_gpu_providers_are_tensorrt_fp16_then_cuda_then_cpu():
    config = make_config('lite', 4)
    providers = execution_providers('cuda:1', config, ('TensorrtExecutionProvider',
                                                       'CUDAExecutionProvider',
                                                       'CPUExecutionProvider'))
    (trt, trt_options), (cuda, cuda_options), cpu = providers
    assert (trt, cuda, cpu) == ('TensorrtExecutionProvider', 'CUDAExecutionProvider',
                                'CPUExecutionProvider')
    assert trt_options['device_id'] == cuda_options['device_id'] == 1
    assert trt_options['trt_fp16_enable'] is True
    assert trt_options['trt_profile_min_shapes'] == 'images:1x3x192x256'
    assert trt_options['trt_profile_max_shapes'] == 'images:64x3x192x256'
    only_cuda = execution_providers('cuda', config, ('CUDAExecutionProvider',
                                                     'CPUExecutionProvider'))
    assert [p if isinstance(p, str) else p[0] for p in only_cuda] == [
        'CUDAExecutionProvider', 'CPUExecutionProvider']
    assert execution_providers('cpu', config) == ['CPUExecutionProvider']
    with pytest.raises(ValueError, match='onnxruntime-gpu'):
        execution_providers('cuda:0', config, ('CPUExecutionProvider',))
    with pytest.raises(ValueError, match='"cpu" or "cuda'):
        execution_providers('mps', config, ('CPUExecutionProvider',))


def test_batches_above_the_sessions_limit_run_in_chunks(detectors):
    """Batches larger than the session takes run in chunks, with the same maps.

    A TensorRT session takes at most TENSORRT_MAX_BATCH views per run (its
    optimization profile); 32 stereo pairs with rot180 are 128 views.
    """
    backend = detectors[1].backend
    assert backend.max_batch is None  # CPU provider: no limit
    batch = np.random.default_rng(5).random((7, 3, 192, 256), dtype=np.float32) - 0.5
    whole = backend.run(batch)
    calls = []
    run = backend.session.run

    def recorded(names, feed):
        calls.append(len(feed['images']))
        return run(names, feed)
    backend.session.run = recorded
    backend.max_batch = 3
    try:
        chunked = backend.run(batch)
    finally:
        backend.max_batch = None
        del backend.session.run
    assert calls == [3, 3, 1]
    np.testing.assert_allclose(chunked, whole, atol=1e-5)


def test_sessions_do_not_spin_and_use_one_inter_op_thread():
    options = session_options(2)
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry('session.intra_op.allow_spinning') == '0'
    assert options.get_session_config_entry('session.inter_op.allow_spinning') == '0'
    assert backends.default_threads('onnxruntime', 2) == 2
    assert backends.default_threads('onnxruntime', 1) == 1


def test_keypoints_export_command(tmp_path, random_checkpoint, capsys):
    out = tmp_path / 'exported.onnx'
    assert export.main(['--model', random_checkpoint, '--out', str(out)]) == 0
    assert 'opset 17' in capsys.readouterr().out
    assert read_onnx_model(str(out)).source_sha256 == file_sha256(random_checkpoint)
    assert export.main(['--model', random_checkpoint, '--out', str(tmp_path / 'x.pt')]) == 2
    assert 'must end in .onnx' in capsys.readouterr().err
    assert export.main(['--model', 'no_such_model', '--out', str(out)]) == 2
    assert export.main(['--model', str(out), '--out', str(tmp_path / 'y.onnx')]) == 2
    assert 'already an ONNX file' in capsys.readouterr().err
