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
"""``keypoints-train --stream`` over real DDS (localhost only, own domain ids, issue 18).

The trainer runs as a process, its simulators as ``sim_stream_node``
processes (96x72 renders, a few samples/s, the lite network, batch 2):

* two nodes started here feed one trainer; both are trained on, feedback
  goes to one of them only, and only that node's Dirichlet parameters move;
* of two simulators the trainer started, one is killed: training goes on,
  the trainer starts it again and trains on it again; SIGTERM stops the
  trainer and every simulator it started, and a simulator whose trainer
  was killed (SIGKILL) stops too;
* ``--resume`` starts the simulators from the checkpoint's parameters.
"""

import csv
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from _helpers import wait_for_log

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = '183'

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KP = os.path.join(ROOT, 'src', 'keypoint_perception')
SIM = os.path.join(ROOT, 'src', 'sim_datagen')
SIZE = ['96', '72']
TINY = ['--batch', '2', '--threads', '1', '--val-samples', '4', '--sim-size', *SIZE]


def _env(domain_id):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([KP, SIM, env.get('PYTHONPATH', '')])
    env['OMP_NUM_THREADS'] = '1'
    env['ROS_DOMAIN_ID'] = str(domain_id)
    return env


def _trainer(args, domain_id, log_path):
    log = open(log_path, 'w')
    try:
        return subprocess.Popen([sys.executable, '-m', 'keypoint_perception.training.train',
                                 '--stream', *TINY, *args], env=_env(domain_id), stdout=log,
                                stderr=subprocess.STDOUT)
    finally:
        log.close()


def _finish(proc, log_path, timeout=120, returncode=0):
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        pytest.fail('trainer did not finish:\n' + open(log_path).read()[-4000:])
    assert proc.returncode == returncode, open(log_path).read()[-4000:]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _alpha(rows, namespace, step):
    """{variable: alpha list} of the last logged rows of ``namespace`` at ``step``."""
    return {r['variable']: [float(a) for a in r['alpha'].split()] for r in rows
            if r['namespace'] == namespace and int(r['step']) == step}


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as f:  # a zombie is dead too
        return f.read().split(')')[-1].split()[0] != 'Z'


def test_two_nodes_feed_the_trainer_and_only_the_chosen_one_gets_feedback(tmp_path):
    env = _env(184)
    nodes = {}
    for ns, seed in (('/h10_a', 11), ('/h10_b', 12)):
        log = open(tmp_path / f'{ns[1:]}.log', 'w')
        nodes[ns] = subprocess.Popen(
            [sys.executable, '-m', 'sim_datagen.nodes.stream_node', '--ros-args',
             '-r', f'__ns:={ns}', '-p', f'seed:={seed}', '-p', 'rate:=4.0',
             '-p', f'width:={SIZE[0]}', '-p', f'height:={SIZE[1]}'],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
    run = tmp_path / 'run'
    try:
        trainer = _trainer(['--stream-namespaces', '/h10_a', '/h10_b', '--feedback-to',
                            '/h10_a', '--feedback-every', '2', '--feedback-quantile', '0.5',
                            '--steps', '4', '--eval-every', '4', '--out', str(run)],
                           184, tmp_path / 'trainer.log')
        _finish(trainer, tmp_path / 'trainer.log')
    finally:
        for p in nodes.values():
            p.terminate()
            p.wait(10)
    out = open(tmp_path / 'trainer.log').read()
    assert 'feedback round 2 at step 4' in out, out[-3000:]
    assert out.count("applied by ['/h10_a']") == 2, out[-3000:]   # confirmed by the node
    # both sources were trained on (4 validation samples + 4 steps of 1 stereo sample)
    used = {r['namespace']: int(r['used']) for r in _rows(run / 'sources.csv')}
    assert set(used) == {'/h10_a', '/h10_b'} and min(used.values()) >= 2, used
    assert sum(used.values()) == 8
    # the nodes themselves: /h10_a applied two rounds, /h10_b none
    log_a, log_b = open(tmp_path / 'h10_a.log').read(), open(tmp_path / 'h10_b.log').read()
    # each message carries a tag unique to the trainer process, echoed in sampler_state
    assert re.search(r"feedback 2 from 'keypoints-train \S+:\d+ round 2 step 4 #\d+'",
                     log_a), log_a[-2000:]
    assert 'feedback 1' not in log_b and 'rejected' not in log_b, log_b[-2000:]
    # the logged parameters: /h10_a gained 2 rounds x ceil(0.5 * 4) = 4 counts per variable
    rows = _rows(run / 'priors.csv')
    a0, a4 = _alpha(rows, '/h10_a', 0), _alpha(rows, '/h10_a', 4)
    b0, b4 = _alpha(rows, '/h10_b', 0), _alpha(rows, '/h10_b', 4)
    assert a0 and a4 and b0 == b4 and a0 == b0
    for name in a0:
        assert sum(a4[name]) - sum(a0[name]) == pytest.approx(4.0), name
    assert os.path.getsize(run / 'priors.png') > 0


def test_a_killed_simulator_does_not_stop_training_and_is_used_again(tmp_path):
    run = tmp_path / 'run'
    log_path = tmp_path / 'trainer.log'
    trainer = _trainer(['--sim-workers', '2', '--sim-rate', '4', '--steps', '1000',
                        '--eval-every', '2', '--source-timeout', '3', '--out', str(run)],
                       185, log_path)
    sims = run / 'simulators'
    try:
        assert wait_for_log(log_path, 'step 2:', timeout=90), open(log_path).read()[-3000:]
        pids = {ns: int(open(sims / f'{ns}.pid').read()) for ns in ('kp_sim0', 'kp_sim1')}
        os.kill(pids['kp_sim1'], signal.SIGKILL)
        killed_at = max(int(r['step']) for r in _rows(run / 'sources.csv'))
        assert wait_for_log(log_path, 'source /kp_sim1: simulator process exited; started '
                            'again', timeout=30), open(log_path).read()[-3000:]
        restarted = int(open(sims / 'kp_sim1.pid').read())
        assert restarted != pids['kp_sim1']

        def used_after_restart():
            rows = [r for r in _rows(run / 'sources.csv') if r['namespace'] == '/kp_sim1']
            before = [int(r['used']) for r in rows if int(r['step']) <= killed_at]
            after = [int(r['used']) for r in rows if r['restarts'] == '1']
            return bool(after) and max(after) > max(before)

        deadline = time.time() + 60
        while not used_after_restart():
            assert trainer.poll() is None, open(log_path).read()[-3000:]
            assert time.time() < deadline, open(log_path).read()[-3000:]
            time.sleep(0.5)
        # training went on meanwhile, and the restarted node continues its stream
        assert max(int(r['step']) for r in _rows(run / 'sources.csv')) > killed_at
        assert 'start_index:=0' not in ' '.join(open(f'/proc/{restarted}/cmdline').read()
                                                .split('\0'))
    finally:
        trainer.send_signal(signal.SIGTERM)
        try:
            trainer.wait(30)
        except subprocess.TimeoutExpired:
            trainer.kill()
    assert trainer.returncode == 143, open(log_path).read()[-3000:]
    for ns in ('kp_sim0', 'kp_sim1'):
        pid = int(open(sims / f'{ns}.pid').read())
        assert not _alive(pid), f'{ns} ({pid}) still running after the trainer stopped'


def test_resume_restores_network_and_every_simulators_prior(tmp_path):
    run = tmp_path / 'run'
    args = ['--sim-workers', '1', '--sim-rate', '4', '--feedback-every', '2',
            '--eval-every', '4', '--out', str(run)]
    # a run of 6 steps "interrupted" after step 4 (its time budget), then resumed
    first = _trainer(args + ['--steps', '6', '--minutes', '1e-6'], 186, tmp_path / 'first.log')
    _finish(first, tmp_path / 'first.log')
    ckpt = torch.load(run / 'last.pt', map_location='cpu', weights_only=False)
    saved = ckpt['stream']['sampler_states']['/kp_sim0']
    next_index = ckpt['stream']['next_indices']['/kp_sim0']  # after the last sample used
    assert ckpt['step'] == 4 and ckpt['stream']['feedback_rounds'] == 2
    assert saved['num_updates'] == 2
    second = _trainer(args + ['--steps', '6', '--resume'], 186, tmp_path / 'second.log')
    _finish(second, tmp_path / 'second.log')
    out = open(tmp_path / 'second.log').read()
    assert 'resuming' in out and 'at step 4' in out
    assert 'rendering the fixed validation set' not in out  # the same set is kept
    assert [int(r['step']) for r in _rows(run / 'metrics.csv')] == [4, 6]
    # logged at the start of the resumed run (step 4): the restarted node's own state
    rows = [r for r in _rows(run / 'priors.csv') if r['namespace'] == '/kp_sim0']
    resumed = [r for r in rows if int(r['step']) == 4 and r['num_updates'] == '0']
    assert resumed, rows[-5:]
    for r in resumed:
        assert [float(a) for a in r['alpha'].split()] == pytest.approx(
            saved['variables'][r['variable']]['theta']), r
    assert any(sum(saved['variables'][n]['theta']) > sum(saved['variables'][n]['theta0'])
               for n in saved['variables'])
    # the node was started again and continued its stream (from sample next_index on)
    log = open(run / 'simulators' / 'kp_sim0.log').read()
    assert log.count('streaming checkerboard') == 2
    ckpt = torch.load(run / 'last.pt', map_location='cpu', weights_only=False)
    assert ckpt['step'] == 6 and ckpt['stream']['feedback_rounds'] == 3
    assert ckpt['stream']['next_indices']['/kp_sim0'] >= next_index + 2


def test_the_validation_set_can_be_read_from_validation_shards(tmp_path):
    from keypoint_perception.core.dataset import iter_shard, read_meta
    from keypoint_perception.training.stream_records import validation_from_shards
    data = tmp_path / 'ds'  # ten shards of one sample: shard-000009 is the validation shard
    subprocess.run([sys.executable, '-m', 'sim_datagen.cli', 'generate', '--config',
                    'checkerboard', '--count', '10', '--shard-size', '1', '--seed', '5',
                    '--out', str(data)], env=_env(183), check=True, capture_output=True)
    views, bins, num_bins = validation_from_shards([str(data)], (64, 48), 8)
    sample = next(iter_shard(str(data / 'shard-000009.tar')))
    assert views.images.shape == (2, 48, 64, 3)  # its left and right view
    assert bins == [{n: v['bin'] for n, v in sample['labels']['variables'].items()}]
    assert num_bins['tilt_x'] == 6 and num_bins['roll'] == 8
    assert num_bins == {n: v['bins']
                        for n, v in read_meta(str(data))['sampler_state']['variables'].items()}
    with pytest.raises(FileNotFoundError):
        validation_from_shards([str(data)], (64, 48), 0)


def test_simulators_stop_when_their_trainer_is_killed(tmp_path):
    code = ('import sys, time\n'
            'from keypoint_perception.training.stream_sources import SimulatorPool\n'
            'pool = SimulatorPool(1, sys.argv[1])\n'
            # stands in for sim_stream_node; sh ignores the node arguments the pool appends
            # (sleep itself exits at once on them: the test raced against that exit)
            'pool.command = ["sh", "-c", "exec sleep 60", "sim"]\n'
            'pool.start_all()\n'
            'print("started", flush=True)\n'
            'time.sleep(60)\n')
    trainer = subprocess.Popen([sys.executable, '-c', code, str(tmp_path)], env=_env(183),
                               stdout=subprocess.PIPE, text=True)
    try:
        assert trainer.stdout.readline().strip() == 'started'
        pid = int(open(tmp_path / 'kp_sim0.pid').read())
        assert _alive(pid)
        trainer.kill()
        trainer.wait(10)
        deadline = time.time() + 10
        while _alive(pid):
            assert time.time() < deadline, f'simulator {pid} outlived its trainer'
            time.sleep(0.1)
    finally:
        trainer.kill()
