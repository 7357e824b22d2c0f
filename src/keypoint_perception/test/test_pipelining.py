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
"""TwoStageRunner: two stages one job apart, in order, newest job wins when behind (no ROS)."""

import threading
import time

from keypoint_perception.nodes.pipelining import TwoStageRunner
import pytest


class Recorder:
    """Stages that log when they start and end, optionally held until released."""

    def __init__(self, first_seconds=0.0, second_seconds=0.0):
        """Make stages that take the given times."""
        self.first_seconds, self.second_seconds = first_seconds, second_seconds
        self.events, self.done, self.dropped, self.errors = [], [], [], []
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def log(self, *event):
        with self.lock:
            self.events.append(event)

    def first(self, job):
        self.log('first start', job)
        self.gate.wait()
        time.sleep(self.first_seconds)
        if job == 'bad first':
            raise ValueError('first failed')
        self.log('first end', job)
        return f'net({job})'

    def second(self, job, result):
        self.log('second start', job)
        time.sleep(self.second_seconds)
        if job == 'bad second':
            raise RuntimeError('second failed')
        assert result == f'net({job})'
        self.done.append(job)
        self.log('second end', job)

    def runner(self):
        return TwoStageRunner(self.first, self.second,
                              lambda job, error: self.errors.append((job, type(error))),
                              self.dropped.append, name='test')


@pytest.fixture
def recorder():
    made = []

    def make(*args):
        recorder = Recorder(*args)
        made.append(recorder.runner())
        return recorder, made[-1]
    yield make
    for runner in made:
        runner.stop()


def test_the_first_stage_of_the_next_job_overlaps_the_second_stage_of_this_one(recorder):
    stages, runner = recorder(0.05, 0.2)
    for job in range(3):
        runner.submit(job, wait=True)
    assert runner.wait_idle(10)
    assert stages.done == [0, 1, 2] and runner.dropped == 0
    events = stages.events
    # job 1's network ran while job 0 was post-processed
    assert events.index(('first start', 1)) < events.index(('second end', 0))
    assert events.index(('first end', 1)) < events.index(('second end', 0))
    # but never two jobs in the first stage, nor a finished network output waiting behind
    # another: job 2 starts only after the second stage took job 1
    assert events.index(('second start', 1)) < events.index(('first start', 2))


def test_the_newest_job_wins_when_behind_and_the_replaced_ones_are_counted(recorder):
    stages, runner = recorder()
    stages.gate.clear()  # hold the first stage on job 0
    runner.submit(0)
    deadline = time.monotonic() + 5
    while ('first start', 0) not in stages.events and time.monotonic() < deadline:
        time.sleep(0.01)
    for job in (1, 2, 3):
        runner.submit(job)
    stages.gate.set()
    assert runner.wait_idle(10)
    assert stages.done == [0, 3]
    assert stages.dropped == [1, 2] and runner.dropped == 2


def test_waiting_submissions_lose_nothing(recorder):
    stages, runner = recorder(0.01, 0.02)
    for job in range(8):
        runner.submit(job, wait=True)
    assert runner.wait_idle(10)
    assert stages.done == list(range(8)) and stages.dropped == [] and runner.dropped == 0


def test_a_failing_stage_drops_its_job_and_the_runner_goes_on(recorder):
    stages, runner = recorder()
    for job in ('bad first', 'a', 'bad second', 'b'):
        runner.submit(job, wait=True)
    assert runner.wait_idle(10)
    assert stages.done == ['a', 'b']
    assert stages.errors == [('bad first', ValueError), ('bad second', RuntimeError)]


def test_stop_ends_both_threads_and_refuses_new_jobs(recorder):
    stages, runner = recorder()
    runner.submit('a', wait=True)
    assert runner.wait_idle(10)
    runner.stop()
    assert not any(thread.is_alive() for thread in runner._threads)
    assert runner.submit('b') is False and stages.done == ['a']
