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
"""8-bit copies of exported networks (core/quantization.py, keypoints-export --int8).

A random network's copy keeps the metadata, quantizes the inner
convolutions and leaves both ends in float; the shipped board network's
belief peaks stay in place on boards it was not calibrated on (drawn with
OpenCV, so no data set is needed).
"""

import os

import cv2
import numpy as np
import onnx
import pytest

from keypoint_perception import export
from keypoint_perception.core.checkpoint import MODELS_DIR, resolve_model_path
from keypoint_perception.core.detector import KeypointDetector
from keypoint_perception.core.model import normalize_image_array
from keypoint_perception.core.onnx_model import (export_onnx, file_sha256, onnx_model_for,
                                                 read_onnx_model)
from keypoint_perception.core.quantization import (float_nodes, MAX_MEAN_BELIEF_DIFFERENCE,
                                                   quantize_onnx, strong_peaks_moved)
from keypoint_perception.training import evaluate

INPUT = (192, 256)  # the lite network's input (height, width)


def _drawn_boards(n, seed):
    """(n, 3, 192, 256) float32 network inputs: a 10 x 7 chessboard warped onto noise."""
    rng = np.random.default_rng(seed)
    square = 24
    board = np.full((9 * square, 12 * square), 255, np.uint8)  # white margin of one square
    for row in range(7):
        for col in range(10):
            if (row + col) % 2 == 0:
                y, x = (row + 1) * square, (col + 1) * square
                board[y:y + square, x:x + square] = 0
    h, w = INPUT
    corners = np.float32([[0, 0], [board.shape[1], 0], [board.shape[1], board.shape[0]],
                          [0, board.shape[0]]])
    views = []
    for _ in range(n):
        scale = rng.uniform(0.45, 0.8)
        centre = np.array([w / 2, h / 2]) + rng.uniform(-30, 30, 2)
        target = centre + scale * (corners - corners.mean(axis=0)) * (h / board.shape[0])
        target += rng.uniform(-12, 12, target.shape)
        H = cv2.getPerspectiveTransform(corners, target.astype(np.float32))
        background = cv2.GaussianBlur(rng.integers(40, 220, (h, w), np.uint8), (0, 0), 3)
        warped = cv2.warpPerspective(board, H, (w, h), borderValue=0)
        mask = cv2.warpPerspective(np.full_like(board, 255), H, (w, h)) > 127
        grey = np.where(mask, warped, background)
        views.append(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB))
    return normalize_image_array(np.stack(views))


def _run(path, images):
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return session.run(None, {'images': images})[0]


@pytest.fixture()
def float_model(random_checkpoint, tmp_path):
    path = str(tmp_path / 'float.onnx')
    export_onnx(random_checkpoint, path)
    return path


def test_an_8bit_copy_keeps_the_metadata_and_leaves_both_ends_in_float(float_model, tmp_path):
    calibration = np.random.default_rng(1).uniform(-0.5, 0.5, (6, 3) + INPUT).astype(np.float32)
    out = str(tmp_path / 'int8.onnx')
    report = quantize_onnx(float_model, out, calibration)
    source, copy = read_onnx_model(float_model), read_onnx_model(out)
    assert source.quantization == {}
    assert copy.object_class.keypoint_names == source.object_class.keypoint_names
    assert copy.test_time_augmentation == 'rot180' and copy.meta['step'] == 7
    assert copy.source_sha256 == source.source_sha256
    assert copy.quantization['calibration_views'] == 6 == report.num_views
    graph, float_graph = onnx.load(out).graph, onnx.load(float_model).graph
    kept = float_nodes(float_graph)
    convs = [n.name for n in float_graph.node if n.op_type == 'Conv']
    assert copy.quantization['float_nodes'] == kept
    assert kept[0] == convs[0] and convs[-1] in kept and len(kept) == 3  # + the sigmoid
    # the kept convolutions read float weights, the others dequantized int8 ones
    initializers = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    for node in (n for n in graph.node if n.op_type == 'Conv'):
        weight = node.input[1]
        if node.name in kept:
            assert initializers[weight].data_type == onnx.TensorProto.FLOAT
        else:
            dequantize = producer[weight]
            assert dequantize.op_type == 'DequantizeLinear'
            assert initializers[dequantize.input[0]].data_type == onnx.TensorProto.INT8
    difference = np.abs(_run(out, calibration) - _run(float_model, calibration))
    assert difference.mean() == pytest.approx(report.mean_belief_difference, rel=1e-4)
    assert report.mean_belief_difference <= MAX_MEAN_BELIEF_DIFFERENCE
    np.testing.assert_equal(copy.quantization['strong_peaks_moved'],
                            report.strong_peaks_moved)  # NaN where no peak was strong
    # it runs where any exported model runs, and says what it is
    detector = KeypointDetector(out, backend='auto')
    assert detector.backend.int8 and '8-bit network' in detector.backend.describe()
    image = np.random.default_rng(2).integers(0, 255, (240, 320, 3), np.uint8)
    assert detector.infer([image]).shape == (1, 4, 48, 64)
    assert not KeypointDetector(float_model, backend='auto').backend.int8


def test_bad_calibration_or_an_already_quantized_source_is_refused(float_model, tmp_path):
    out = tmp_path / 'int8.onnx'
    good = np.zeros((2, 3) + INPUT, np.float32)
    for bad in (np.zeros((2, 3, 96, 128), np.float32), good.astype(np.float64),
                np.zeros((0, 3) + INPUT, np.float32), good[0]):
        with pytest.raises(ValueError, match='calibration must be'):
            quantize_onnx(float_model, str(out), bad)
    assert not out.exists()
    quantize_onnx(float_model, str(out), good)
    with pytest.raises(ValueError, match='already quantized'):
        quantize_onnx(str(out), str(tmp_path / 'twice.onnx'), good)
    assert sorted(os.listdir(tmp_path)) == ['float.onnx', 'int8.onnx', 'random.pt']


def test_the_board_networks_peaks_stay_in_place_in_8_bits(tmp_path):
    shipped = os.path.join(MODELS_DIR, 'checkerboard_lite.onnx')
    out = str(tmp_path / 'board_int8.onnx')
    quantize_onnx(shipped, out, _drawn_boards(16, seed=0))
    held_out = _drawn_boards(8, seed=1)  # boards the calibration did not see
    reference, quantized = _run(shipped, held_out), _run(out, held_out)
    n, j, h, w = reference.shape
    flat_ref, flat_q = reference.reshape(n, j, -1), quantized.reshape(n, j, -1)
    strong = flat_ref.max(axis=2) > 0.3
    assert strong.sum() >= 16  # the float network sees most corners of the drawn boards
    peak_ref = np.stack(np.unravel_index(flat_ref.argmax(axis=2), (h, w)), axis=-1)
    peak_q = np.stack(np.unravel_index(flat_q.argmax(axis=2), (h, w)), axis=-1)
    moved = np.abs(peak_q - peak_ref).max(axis=-1)[strong]
    assert np.mean(moved <= 1) >= 0.9, moved
    heights = np.abs(flat_q.max(axis=2) - flat_ref.max(axis=2))[strong]
    assert np.median(heights) < 0.1


def test_int8_export_needs_calibration_data(random_checkpoint, tmp_path, capsys):
    out = str(tmp_path / 'int8.onnx')
    assert export.main(['--model', random_checkpoint, '--out', out, '--int8']) == 2
    assert '--int8 and --calibration-data go together' in capsys.readouterr().err
    assert export.main(['--model', random_checkpoint, '--out', out, '--int8',
                        '--calibration-data', str(tmp_path)]) == 2
    assert 'no shards (shard-*.tar) in the folder' in capsys.readouterr().err
    missing = str(tmp_path / 'missing')
    assert export.main(['--model', random_checkpoint, '--out', out, '--int8',
                        '--calibration-data', str(tmp_path), missing]) == 2
    assert f'--calibration-data {tmp_path}: no shards' in capsys.readouterr().err
    # renders of another class: the folder is named, with both classes
    panda = tmp_path / 'panda_calib'
    panda.mkdir()
    (panda / 'meta.json').write_text('{"object_class": "panda"}')
    (panda / 'shard-000000.tar').write_bytes(b'')
    assert export.main(['--model', random_checkpoint, '--out', out, '--int8',
                        '--calibration-data', str(panda)]) == 2
    err = capsys.readouterr().err
    assert f"--calibration-data {panda}: renders of 'panda'" in err and "'checkerboard'" in err
    assert export.main(['--model', random_checkpoint, '--out', random_checkpoint]) == 2
    assert not os.path.exists(out)


def test_strong_peaks_moved_counts_only_strong_peaks_that_left_their_cell():
    reference = np.zeros((1, 4, 5, 5), np.float32)
    other = np.zeros_like(reference)
    reference[0, 0, 2, 2], other[0, 0, 2, 3] = 0.9, 0.8  # strong, moved by one cell: kept
    reference[0, 1, 2, 2], other[0, 1, 4, 2] = 0.5, 0.5  # strong, moved by two: counted
    reference[0, 2, 1, 1], other[0, 2, 4, 4] = 0.2, 0.9  # weak in the reference: ignored
    reference[0, 3, 0, 0], other[0, 3, 0, 0] = 0.3, 0.3  # strong, in place
    assert strong_peaks_moved(reference, other) == pytest.approx(1 / 3)
    assert np.isnan(strong_peaks_moved(np.zeros_like(reference), other))
    with pytest.raises(ValueError, match='one'):
        strong_peaks_moved(reference, other[:, :3])


def test_the_shipped_8bit_copies_are_of_the_shipped_networks():
    """Each models/<name>_int8.onnx is quantized from the shipped models/<name>.pt.

    Regenerate with ``keypoints-export --model <name> --out <models folder>/
    <name>_int8.onnx --int8 --calibration-data <renders of the class>``.
    """
    copies = sorted(f for f in os.listdir(MODELS_DIR) if f.endswith('_int8.onnx'))
    assert 'checkerboard_lite_int8.onnx' in copies
    for name in copies:
        info = read_onnx_model(os.path.join(MODELS_DIR, name))
        source = os.path.join(MODELS_DIR, name[:-len('_int8.onnx')] + '.pt')
        assert info.quantization['calibration_views'] >= 128, name  # 64 stereo samples
        assert info.source_sha256 == file_sha256(source), f'{name} is stale: quantize again'
        assert resolve_model_path(name[:-len('.onnx')]) == os.path.join(MODELS_DIR, name)


def test_an_8bit_copy_is_never_taken_for_the_float_export(float_model, random_checkpoint,
                                                          tmp_path, capsys):
    sibling = random_checkpoint[:-3] + '.onnx'  # where the float export of random.pt would be
    quantize_onnx(float_model, sibling, np.zeros((2, 3) + INPUT, np.float32))
    assert read_onnx_model(sibling).source_sha256 == file_sha256(random_checkpoint)
    assert onnx_model_for(random_checkpoint, export=False) is None
    exported = onnx_model_for(random_checkpoint)  # exported into the cache instead
    assert exported != sibling and not read_onnx_model(exported).quantization
    # keypoints-eval validation scores checkpoints only, and says so
    status = evaluate.main(['validation', '--data', str(tmp_path), '--model', sibling])
    assert status == 2 and 'validation scores a checkpoint' in capsys.readouterr().err
