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
"""Bad input to a command-line tool is one clear line and a non-zero exit (issue 16 #14)."""

import json
import os
import subprocess
import sys

from keypoint_perception.cli import (ArgumentParser, checked_input, command_line, EXIT_BAD_INPUT,
                                     EXIT_FAILURE, InputError, positive_int)
from keypoint_perception.training import evaluate, feedback, train, view_pack
import pytest
import torch
import yaml

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIM_DATAGEN = os.path.join(os.path.dirname(PACKAGE), 'sim_datagen')


def _tool(module, *args):
    """Run ``python -m keypoint_perception.<module> args``; returns (status, stdout, stderr)."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
        [PACKAGE, SIM_DATAGEN, os.environ.get('PYTHONPATH', '')]))
    env.pop('KEYPOINTS_DEBUG', None)
    r = subprocess.run([sys.executable, '-m', f'keypoint_perception.{module}', *map(str, args)],
                       env=env, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def _in_process(main, capsys, *args):
    """Call a tool's wrapped ``main`` here (fast); returns (status, stdout, stderr)."""
    try:
        status = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def _assert_one_line(status, err, *fragments):
    assert status == EXIT_BAD_INPUT, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert 'Traceback' not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """keypoints-train sets torch's thread count; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def corrupt_model(tmp_path):
    path = tmp_path / 'corrupt.pt'
    path.write_bytes(b'PK\x03\x04 this is not a zip archive')
    return path


def test_train_with_an_empty_training_folder(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    status, _, err = _tool('training.train', '--data', empty, '--out', tmp_path / 'run')
    _assert_one_line(status, err, f'keypoints-train: error: --data {empty}: no shards')
    assert not (tmp_path / 'run').exists()


def test_train_with_a_missing_folder(tmp_path, capsys):
    status, _, err = _in_process(
        train.main, capsys, '--data', tmp_path / 'nope', '--out', tmp_path / 'r')
    _assert_one_line(status, err, f'--data {tmp_path / "nope"}: no such dataset folder')


@pytest.mark.parametrize('option, value, fragment', [
    ('--steps', '0', 'argument --steps: must be a positive integer, got 0'),
    ('--batch', '-2', 'argument --batch: must be a positive integer, got -2'),
    ('--hard-examples', '1.5', 'argument --hard-examples: must be in [0, 1], got 1.5'),
    ('--lr', 'fast', "argument --lr: 'fast' is not a number"),
])
def test_train_with_sizes_out_of_range(tmp_path, option, value, fragment, capsys):
    status, _, err = _in_process(
        train.main, capsys, '--data', tmp_path, '--out', tmp_path / 'run', option, value)
    _assert_one_line(status, err, 'keypoints-train: error: ', fragment)


def test_train_with_an_unknown_object_class(tmp_path, capsys):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'shard-000000.tar').write_bytes(b'')
    status, _, err = _in_process(
        train.main, capsys, '--data', data, '--out', tmp_path / 'run', '--object', 'no_such_class')
    _assert_one_line(status, err, "--object no_such_class: no object class 'no_such_class'")


def test_train_with_an_object_yaml_that_does_not_parse(tmp_path, capsys):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'shard-000000.tar').write_bytes(b'')
    bad = tmp_path / 'mug.yaml'
    bad.write_text('name: mug\nkeypoints: [{name: rim, position: [0, 0\n')
    status, _, err = _in_process(
        train.main, capsys, '--data', data, '--out', tmp_path / 'run', '--object', bad)
    _assert_one_line(status, err, f'--object {bad}: ')


def test_train_from_a_corrupt_checkpoint(tmp_path, corrupt_model, capsys):
    data = tmp_path / 'data'
    data.mkdir()
    (data / 'shard-000000.tar').write_bytes(b'')
    status, _, err = _in_process(
        train.main, capsys, '--data', data, '--out', tmp_path / 'run', '--init', corrupt_model)
    _assert_one_line(status, err, f'--init {corrupt_model}: ', 'not a readable checkpoint')


def test_eval_with_a_corrupt_model(tmp_path, corrupt_model, capsys):
    status, _, err = _in_process(
        evaluate.main, capsys, 'synthetic', '--data', tmp_path, '--model', corrupt_model)
    _assert_one_line(status, err, f'keypoints-eval: error: --model {corrupt_model}: ')


def test_eval_with_a_camera_info_yaml_that_does_not_parse(tmp_path, capsys):
    bad = tmp_path / 'left.yaml'
    bad.write_text('image_width: [640\n')
    status, _, err = _in_process(
        evaluate.main, capsys, 'real', '--data', tmp_path, '--left-info', bad)
    _assert_one_line(status, err, f'--left-info {bad}: ')


def test_eval_of_a_folder_without_shards(tmp_path, capsys):
    status, _, err = _in_process(
        evaluate.main, capsys, 'synthetic', '--data', tmp_path)
    _assert_one_line(status, err, f'--data {tmp_path}: no shards')


def test_feedback_on_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    (tmp_path / 'meta.json').write_text(json.dumps({'count': 3}))
    status, _, err = _in_process(
        feedback.main, capsys, '--data', tmp_path, '--out', tmp_path / 'fb')
    _assert_one_line(status, err, f'keypoints-feedback: error: --data {tmp_path}: ',
                     "missing key 'sampler_state'")


def test_feedback_with_an_out_of_range_fraction(tmp_path, capsys):
    status, _, err = _in_process(
        feedback.main, capsys, '--data', tmp_path, '--out', tmp_path / 'fb', '--worst', '0')
    _assert_one_line(status, err, 'argument --worst: must be in (0, 1]')


def test_pack_of_an_empty_folder(tmp_path, capsys):
    status, _, err = _in_process(
        view_pack.main, capsys, '--data', tmp_path, '--out', tmp_path / 'p.npz')
    _assert_one_line(status, err, f'keypoints-pack: error: --data {tmp_path}: no shards')


def test_debug_shows_the_traceback(tmp_path):
    status, _, err = _tool('training.train', '--data', tmp_path / 'nope', '--out',
                           tmp_path / 'r', '--debug')
    assert status != 0 and 'Traceback' in err and 'InputError' in err


def test_command_line_maps_errors_to_one_line_and_a_status(capsys):
    @command_line('tool')
    def main(argv=None):
        p = ArgumentParser(prog='tool')
        p.add_argument('--count', type=positive_int, default=1)
        p.add_argument('--config', default='')
        args = p.parse_args(argv)
        if args.config:
            with checked_input(f'--config {args.config}'):
                yaml.safe_load('a: [1,\n  b')
        return 3 if args.count == 3 else None

    assert main([]) == 0
    assert main(['--count', '3']) == 3
    assert main(['--config', 'x.yaml']) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith('tool: error: --config x.yaml: ') and err.count('\n') == 1
    with pytest.raises(SystemExit) as usage:
        main(['--count', '-1'])
    assert usage.value.code == EXIT_BAD_INPUT
    assert capsys.readouterr().err == ('tool: error: argument --count: must be a positive '
                                       'integer, got -1 (see tool --help)\n')


def test_command_line_reports_an_unexpected_error_in_one_line(capsys):
    @command_line('tool')
    def main(argv=None):
        raise RuntimeError('the disk\nis full')

    assert main([]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err == ('tool: error: RuntimeError: the disk is full '
                   '(run with --debug for the traceback)\n')
    with pytest.raises(RuntimeError):
        main(['--debug'])


def test_checked_input_names_the_input_and_keeps_the_cause():
    with pytest.raises(InputError) as err:
        with checked_input('--model m.pt'):
            raise FileNotFoundError('no model m.pt')
    assert str(err.value) == '--model m.pt: no model m.pt'
    assert isinstance(err.value.__cause__, FileNotFoundError)
