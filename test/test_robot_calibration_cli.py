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
"""The mono CLIs on rendered frames: keypoints-detect and keypoints-calibrate-robot.

keypoints-detect runs the shipped board model on a sim_datagen render and on
a cropped, resized copy of it (another size and aspect ratio): its pixels
must match the renderer's labels in each image's own pixels.

keypoints-calibrate-robot needs a trained robot model, which the tests do
not have: the detection step (one function) is replaced by the renderer's
2D labels, so everything after it -- camera_info YAML, joint-state CSV,
forward kinematics, PnP, combining images, the output file -- is tested on
Panda renders against the renderer's true camera-to-base transform.
"""

import hashlib
import json
import math
import os
import sys

import cv2
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'src', 'sim_datagen'))

from keypoint_perception import calibrate_robot, detect  # noqa: E402
from keypoint_perception.cli import EXIT_PARTIAL  # noqa: E402
from keypoint_perception.core.calibration_metrics import pose_errors  # noqa: E402
from keypoint_perception.core.camera import CameraModel  # noqa: E402
from keypoint_perception.core.checkpoint import save_checkpoint  # noqa: E402
from keypoint_perception.core.distortion import unrectify_points  # noqa: E402
from keypoint_perception.core.kinematics import keypoint_anchors, RobotKinematics  # noqa: E402
from keypoint_perception.core.model import BeliefMapNet, make_config  # noqa: E402
from keypoint_perception.core.objects import load_object_class  # noqa: E402
from keypoint_perception.core.robot_calibration import transform_points  # noqa: E402
from keypoint_perception.core.views import ViewKeypoints  # noqa: E402
from keypoint_perception.training.metrics import symmetric_errors  # noqa: E402

#: a clean board render (as the node test's), board fully in view
BOARD = {'square_size': 0.025, 'hands': 0, 'bar': 0, 'n_distractors': 0, 'person': 0,
         'blur_sigma': 0.0, 'motion_blur': 0.0, 'noise_sigma': 0.0, 'distortion': 0,
         'jpeg_quality': 95, 'out_of_view': 0, 'shadow': 0, 'vignetting': 0.0,
         'board_width_frac': 0.5, 'tilt_x': 10.0, 'tilt_y': -15.0, 'roll': 8.0,
         'center_x': 0.0, 'center_y': 0.0}
#: Panda renders that share one camera model (intrinsics fixed, no lens distortion: its
#: k2 is drawn apart from the scene variables; the static-camera test has distortion)
PANDA = {'hfov': 56.0, 'image_size': 2, 'aspect': 1.0, 'cx_offset': 0.0, 'cy_offset': 0.0,
         'distortion': 0,  # hfov 56 deg at image_size 2 (640x480): fx 602 px
         'person': 0, 'n_distractors': 0, 'bar': 0, 'out_of_view': 0,
         'object_size_frac': 0.6}


def _render(config, indices, overrides):
    from sim_datagen.config import load_config
    from sim_datagen.generator import SampleGenerator
    gen = SampleGenerator(load_config(os.path.join(ROOT, 'src', 'sim_datagen', 'config',
                                                   config)))
    try:
        return [gen.generate(i, seed=5, overrides=overrides) for i in indices]
    finally:
        gen.world.close()


def _write(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _key(image):
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_detect_gives_input_pixels_for_any_size(tmp_path, capsys):
    sample = _render('checkerboard.yaml', [3], BOARD)[0]
    image, uv_true = sample['left'], np.asarray(sample['labels']['keypoints_2d']['left'])
    # b_full.png: as rendered (640x480); a_small.png: rows 40..440, scaled by 0.625
    _write(tmp_path / 'b_full.png', image)
    scale, y0 = 0.625, 40
    small = cv2.resize(image[y0:y0 + 400], (400, 250), interpolation=cv2.INTER_AREA)
    _write(tmp_path / 'a_small.png', small)
    uv_small = np.c_[(uv_true[:, 0] + 0.5) * scale - 0.5, (uv_true[:, 1] - y0 + 0.5) * scale - 0.5]
    out = tmp_path / 'out' / 'detections.jsonl'
    rc = detect.main(['--model', 'checkerboard_lite', '--images', str(tmp_path / '*.png'),
                      '--output', str(out), '--annotate', str(tmp_path / 'annotated')])
    assert rc == 0, capsys.readouterr().err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r['image'] for r in lines] == ['a_small.png', 'b_full.png']  # sorted names
    assert [(r['width'], r['height']) for r in lines] == [(400, 250), (640, 480)]
    board = load_object_class('checkerboard')
    for record, truth in zip(lines, (uv_small, uv_true)):
        (obj,) = record['objects']
        assert obj['class'] == 'checkerboard' and obj['instance'] == '0'
        assert [k['name'] for k in obj['keypoints']] == board.keypoint_names
        uv = np.array([k['uv'] for k in obj['keypoints']], dtype=float)
        cell_px = 4 * record['width'] / 256  # one belief cell of the lite network
        assert symmetric_errors(uv, truth, board.symmetries).max() < 1.5 * cell_px
        assert all(0 < k['confidence'] <= 1 for k in obj['keypoints'])
    assert sorted(os.listdir(tmp_path / 'annotated')) == ['a_small.png', 'b_full.png']
    assert '2 images' in capsys.readouterr().out


def test_detect_bad_input_is_one_line(tmp_path, capsys):
    rc = detect.main(['--model', 'checkerboard_lite', '--images', str(tmp_path / '*.png'),
                      '--output', str(tmp_path / 'x.jsonl')])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and '\n' not in err and 'no file matches' in err
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    rc = detect.main(['--model', 'no_such_model', '--images', str(tmp_path / '*.png'),
                      '--output', str(tmp_path / 'x.jsonl')])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith('keypoints-detect: error: --model no_such_model')


def test_detect_writes_an_error_line_for_an_unreadable_image_and_goes_on(tmp_path, capsys):
    (tmp_path / 'sub').mkdir()
    for name in ('a.png', 'sub/c.png'):
        _write(tmp_path / name, np.full((48, 64, 3), 128, np.uint8))
    (tmp_path / 'b.png').write_bytes(b'not a png')
    out = tmp_path / 'x.jsonl'
    # '**/**' matches sub/c.png twice (glob lists it once per way it matches)
    rc = detect.main(['--model', 'checkerboard_lite', '--images',
                      str(tmp_path / '**' / '**' / '*.png'), '--output', str(out),
                      '--threads', '1'])
    assert rc == EXIT_PARTIAL                     # output complete, one image unusable
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r['image'] for r in lines] == ['a.png', 'b.png', 'c.png']   # each once
    assert 'error' in lines[1] and lines[1]['objects'] == [] and lines[1]['width'] is None
    assert [(r['width'], len(r['objects'])) for r in (lines[0], lines[2])] == [(64, 1), (64, 1)]
    captured = capsys.readouterr()
    assert 'b.png' in captured.err and '1 unreadable' in captured.out
    assert sorted(os.listdir(tmp_path)) == ['a.png', 'b.png', 'sub', 'x.jsonl']  # no .tmp


@pytest.mark.parametrize('files, annotate, message', [
    (['one/x.png', 'two/x.png'], None, '2 files share a file name'),
    (['one/x.png', 'one/x.jpg'], 'marked', 'would share annotated copies'),
    (['one/x.png'], 'one', 'would overwrite an input image'),
])
def test_detect_refuses_outputs_that_would_collide(tmp_path, capsys, files, annotate, message):
    for name in files:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        _write(tmp_path / name, np.zeros((8, 8, 3), np.uint8))
    args = ['--model', 'checkerboard_lite', '--images', str(tmp_path / '**' / 'x.*'),
            '--output', str(tmp_path / 'x.jsonl')]
    rc = detect.main(args + (['--annotate', str(tmp_path / annotate)] if annotate else []))
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert not (tmp_path / 'x.jsonl').exists()


def test_read_image_gives_8_bit_rgb_of_deep_grey_and_alpha_files(tmp_path):
    deep = np.zeros((4, 6), np.uint16)
    deep[0, 0], deep[1, 1] = 4095, 2048                  # 12-bit data in a 16-bit PNG
    cv2.imwrite(str(tmp_path / 'deep.png'), deep)
    image = detect.read_image(str(tmp_path / 'deep.png'))
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [255] * 3 and image[1, 1].tolist() == [128] * 3
    deep_rgba = np.zeros((4, 6, 4), np.uint16)
    deep_rgba[..., 3] = 65535                            # opaque 16-bit alpha: not a colour
    deep_rgba[0, 0, :3] = 4095
    cv2.imwrite(str(tmp_path / 'deep_alpha.png'), deep_rgba)
    assert detect.read_image(str(tmp_path / 'deep_alpha.png'))[0, 0].tolist() == [255] * 3
    bgra = np.zeros((4, 6, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 10, 200, 0  # blue 10, red 200, transparent
    cv2.imwrite(str(tmp_path / 'alpha.png'), bgra)
    assert detect.read_image(str(tmp_path / 'alpha.png'))[0, 0].tolist() == [200, 0, 10]


def test_joint_values_beyond_the_urdf_limits_are_found_with_a_margin_per_joint():
    import pybullet_data
    kinematics = RobotKinematics(os.path.join(pybullet_data.getDataPath(),
                                              'franka_panda/panda.urdf'))
    values = {'panda_joint1': 2.9671 + 0.05, 'panda_joint4': -90.0, 'panda_joint6': 3.9,
              'panda_finger_joint1': 0.045, 'panda_finger_joint2': 0.14, 'not_a_joint': 1e3}
    # 0.1 rad beyond a revolute limit, a quarter of the fingers' 4 cm beyond theirs
    assert kinematics.outside_limits(values) == ['panda_joint4', 'panda_finger_joint2']


@pytest.fixture(scope='module')
def panda_model(tmp_path_factory):
    """Write an untrained panda checkpoint: the CLIs load it like a trained one."""
    path = tmp_path_factory.mktemp('model') / 'panda_untrained.pt'
    object_class = load_object_class('panda')
    save_checkpoint(str(path), BeliefMapNet(make_config('lite', object_class.num_keypoints)),
                    object_class)
    return str(path)


def _fake_detector(monkeypatch, pixels_by_image):
    """Replace the CLI's one detection call by known pixels per image content."""
    def detect_keypoints(detector, image, peak_threshold, roi_refinement, roi_scale):
        assert roi_refinement == 'always' and roi_scale == 1.75  # the CLI's defaults
        uv = pixels_by_image[_key(image)]
        return ViewKeypoints(uv=uv, confidence=np.ones(len(uv), np.float32),
                             beliefs=np.zeros((len(uv), 1, 1), np.float32))
    monkeypatch.setattr(calibrate_robot, 'detect_keypoints', detect_keypoints)


def _camera_yaml(path, camera):
    import yaml
    with open(path, 'w') as f:
        yaml.safe_dump(camera.to_yaml_dict(), f)


def test_calibrate_robot_on_panda_renders(tmp_path, monkeypatch, panda_model, capsys):
    """Each rendered frame's T_camera_base is the renderer's robot pose in the left camera."""
    samples = _render('panda.yaml', [0, 1, 2], PANDA)
    infos = [s['labels']['camera_info']['left'] for s in samples]
    assert all(info == infos[0] for info in infos)  # one camera for all frames
    info = infos[0]
    camera = CameraModel(width=info['width'], height=info['height'], K=info['K'], D=info['D'],
                         distortion_model=info['distortion_model'], R=info['R'], P=info['P'])
    _camera_yaml(tmp_path / 'cam.yaml', camera)
    rng = np.random.default_rng(0)
    joints = sorted(samples[0]['labels']['object']['joints'])
    rows, pixels = ['image,' + ','.join(joints)], {}
    for n, sample in enumerate(samples):
        _write(tmp_path / f'frame_{n}.png', sample['left'])
        image = detect.read_image(str(tmp_path / f'frame_{n}.png'))
        uv = np.asarray(sample['labels']['keypoints_2d']['left']) + rng.normal(0, 0.3, (7, 2))
        pixels[_key(image)] = uv
        q = sample['labels']['object']['joints']
        rows.append(f'frame_{n}.png,' + ','.join(repr(q[j]) for j in joints))
    _write(tmp_path / 'frame_9.png', samples[0]['right'])  # no joint states for it
    (tmp_path / 'joints.csv').write_text('\n'.join(rows) + '\n')
    _fake_detector(monkeypatch, pixels)
    out = tmp_path / 'calib.json'
    rc = calibrate_robot.main([
        '--model', panda_model, '--images', str(tmp_path / 'frame_*.png'),
        '--camera-info', str(tmp_path / 'cam.yaml'), '--joint-states',
        str(tmp_path / 'joints.csv'), '--output', str(out)])
    assert rc == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result['class'] == 'panda' and result['base_frame'] == 'panda_link0'
    records = result['images']
    assert [r['image'] for r in records] == ['frame_0.png', 'frame_1.png', 'frame_2.png',
                                             'frame_9.png']
    for record, sample in zip(records, samples):
        dt, dr = pose_errors(np.array(record['T_camera_base']),
                             np.array(sample['labels']['object_pose']))
        assert dt < 0.02 and math.degrees(dr) < 1.0, (record['image'], dt, math.degrees(dr))
        assert len(record['inliers']) == 7 and record['reprojection_error_px'] < 1.0
    assert records[3]['T_camera_base'] is None and 'no row' in records[3]['failure']
    assert result['aggregate'] is not None  # three different cameras: see the next test


def test_calibrate_robot_combines_a_static_camera(tmp_path, monkeypatch, panda_model, capsys):
    """Eight frames of one static camera, one with a wrong detection: the joint estimate."""
    object_class = load_object_class('panda')
    kinematics = RobotKinematics(calibrate_robot.default_urdf('panda'))
    anchors = keypoint_anchors(object_class)
    camera = CameraModel(width=640, height=480, K=[[600, 0, 320], [0, 600, 240], [0, 0, 1]],
                         D=[-0.2, 0.05, 0, 0, 0], distortion_model='plumb_bob', R=np.eye(3),
                         P=[[600, 0, 320, 0], [0, 600, 240, 0], [0, 0, 1, 0]])
    _camera_yaml(tmp_path / 'cam.yaml', camera)
    T_true = np.eye(4)  # the camera 1.5 m away, looking at the robot from the side
    T_true[:3, :3] = cv2.Rodrigues(np.array([1.9, 0.0, 0.0]))[0]
    T_true[:3, 3] = [0.05, 0.2, 1.5]
    rng = np.random.default_rng(1)
    joints = kinematics.joint_names
    rows, pixels = ['image,' + ','.join(joints)], {}
    for n in range(8):
        q = {j: float(rng.uniform(-0.8, 0.8)) for j in joints}
        q['panda_joint4'] = float(rng.uniform(-2.5, -1.0))
        uv = unrectify_points(camera, transform_points(
            T_true, kinematics.keypoint_positions(q, anchors))) + rng.normal(0, 0.5, (7, 2))
        if n == 3:
            uv[:5] += 25.0  # a wrong detection: most keypoints 35 px off
        image = np.full((480, 640, 3), n, np.uint8)  # distinct contents
        _write(tmp_path / f'f{n}.png', image)
        pixels[_key(image)] = uv
        rows.append(f'f{n}.png,' + ','.join(repr(q[j]) for j in joints))
    (tmp_path / 'joints.csv').write_text('\n'.join(rows) + '\n')
    _fake_detector(monkeypatch, pixels)
    out = tmp_path / 'calib.json'
    rc = calibrate_robot.main([
        '--model', panda_model, '--images', str(tmp_path / 'f*.png'), '--camera-info',
        str(tmp_path / 'cam.yaml'), '--joint-states', str(tmp_path / 'joints.csv'),
        '--output', str(out)])
    assert rc == 0, capsys.readouterr().err
    aggregate = json.loads(out.read_text())['aggregate']
    assert 'f3.png' not in aggregate['images_used'] and len(aggregate['images_used']) >= 6
    dt, dr = pose_errors(np.array(aggregate['T_camera_base']), T_true)
    assert dt < 0.01 and math.degrees(dr) < 0.5, (dt, math.degrees(dr))
    assert all(0 < s < 0.05 for s in aggregate['translation_std_m'])
    np.testing.assert_allclose(np.array(aggregate['T_base_camera']) @ T_true, np.eye(4),
                               atol=0.02)


def test_calibrate_robot_bad_joint_states_are_one_line(tmp_path, panda_model, capsys):
    camera = CameraModel(width=64, height=48, K=np.diag([50.0, 50.0, 1.0]), D=[],
                         distortion_model='', R=np.eye(3), P=np.c_[np.diag([50.0, 50, 1]),
                                                                   np.zeros(3)])
    _camera_yaml(tmp_path / 'cam.yaml', camera)
    _write(tmp_path / 'a.png', np.zeros((48, 64, 3), np.uint8))
    (tmp_path / 'joints.csv').write_text('frame,panda_joint1\na.png,0.1\n')
    rc = calibrate_robot.main([
        '--model', panda_model, '--images', str(tmp_path / '*.png'), '--camera-info',
        str(tmp_path / 'cam.yaml'), '--joint-states', str(tmp_path / 'joints.csv'),
        '--output', str(tmp_path / 'c.json')])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and '\n' not in err
    assert err.startswith('keypoints-calibrate-robot: error: --joint-states') and \
        '"image"' in err
    (tmp_path / 'joints.csv').write_text('image,panda_joint1\na.png,zero\n')
    rc = calibrate_robot.main([
        '--model', panda_model, '--images', str(tmp_path / '*.png'), '--camera-info',
        str(tmp_path / 'cam.yaml'), '--joint-states', str(tmp_path / 'joints.csv'),
        '--output', str(tmp_path / 'c.json')])
    assert rc == 2 and "'zero' is not a number" in capsys.readouterr().err


def test_calibrate_robot_names_joint_columns_and_goes_on_past_an_unreadable_image(
        tmp_path, monkeypatch, panda_model, capsys):
    camera = CameraModel(width=64, height=48, K=np.diag([50.0, 50.0, 1.0]), D=[],
                         distortion_model='', R=np.eye(3), P=np.c_[np.diag([50.0, 50, 1]),
                                                                   np.zeros(3)])
    _camera_yaml(tmp_path / 'cam.yaml', camera)
    _write(tmp_path / 'a.png', np.zeros((48, 64, 3), np.uint8))
    (tmp_path / 'b.png').write_bytes(b'not a png')
    joints = [f'panda_joint{i}' for i in range(1, 8)]
    args = ['--model', panda_model, '--images', str(tmp_path / '*.png'), '--camera-info',
            str(tmp_path / 'cam.yaml'), '--joint-states', str(tmp_path / 'joints.csv'),
            '--output', str(tmp_path / 'c.json'), '--threads', '1']
    misspelt = ['panda_jiont3' if j == 'panda_joint3' else j for j in joints]
    (tmp_path / 'joints.csv').write_text(
        'image,' + ','.join(misspelt) + '\na.png' + ',0.1' * 7 + '\n')
    assert calibrate_robot.main(args) == 2
    err = capsys.readouterr().err
    assert "no column for the joints ['panda_joint3']" in err and 'panda_jiont3' in err
    # a spreadsheet's byte-order mark, degrees instead of radians, an unreadable image
    (tmp_path / 'joints.csv').write_text(
        '\ufeffimage,' + ','.join(joints) + ',tool_joint,,\n'
        + 'a.png,0,0,0,-90,0,90,0,1,,\nb.png' + ',0' * 7 + ',0\n', encoding='utf-8')
    _fake_detector(monkeypatch, {_key(np.zeros((48, 64, 3), np.uint8)): np.full((7, 2), np.nan)})
    assert calibrate_robot.main(args) == 1                  # nothing detected: no estimate
    err = capsys.readouterr().err
    assert "['tool_joint'] are not joints of the URDF" in err
    assert "['panda_joint4', 'panda_joint6'] lie outside their URDF limits" in err
    records = json.loads((tmp_path / 'c.json').read_text())['images']
    assert [r['image'] for r in records] == ['a.png', 'b.png']
    assert records[1]['failure'].startswith('unreadable image')
    assert 'keypoints detected' in records[0]['failure']
