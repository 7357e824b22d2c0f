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
"""Two stages of per-frame work in two threads, one frame apart (no ROS).

:class:`TwoStageRunner` runs a *first* stage (the network) and a *second*
stage (post-processing and publishing) of each submitted job in two worker
threads, so that while job t is in the second stage, job t+1 is already in
the first: on two cores the network of one stereo pair overlaps the NumPy
post-processing of the previous one (ONNX Runtime and PyTorch release the
GIL while they compute).

Jobs pass through in submission order, at most one per stage, and the first
stage takes a new job only once the second stage has taken the previous
one, so no finished network output waits behind another (latency stays one
network pass plus one post-processing).  A job submitted while another is
still waiting to start:

* replaces it (``wait=False``: the newest pair wins when the node is
  behind; the replaced job is handed to ``on_drop``), or
* waits until the first stage has taken it (``wait=True``: every job is
  processed; the submitter is held back instead).
"""

import threading
from typing import Any, Callable, Optional


class TwoStageRunner:
    """Run ``first(job)`` then ``second(job, first_result)`` for each job, pipelined.

    Attributes:
        dropped: number of jobs replaced before they started.
    """

    def __init__(self, first: Callable[[Any], Any], second: Callable[[Any, Any], None],
                 on_error: Callable[[Any, BaseException], None],
                 on_drop: Callable[[Any], None], name: str = 'stages'):
        """Start the two worker threads (daemons: they never keep a process alive).

        Args:
            first: the first stage; its return value goes to ``second``.
            second: the second stage, called in submission order.
            on_error: called with the job and the exception when either stage
                raises (the job goes no further; the runner keeps running).
            on_drop: called with a job replaced by a newer one.
            name: prefix of the threads' names.
        """
        self._first, self._second = first, second
        self._on_error, self._on_drop = on_error, on_drop
        self._condition = threading.Condition()
        self._pending = None  # submitted, not yet taken by the first stage
        self._handoff = None  # (job, result) done by the first stage, not yet taken
        self._busy = 0  # jobs taken by a stage and not finished
        self._stopping = False
        self.dropped = 0
        self._threads = [threading.Thread(target=loop, name=f'{name}_{stage}', daemon=True)
                         for stage, loop in (('first', self._run_first),
                                             ('second', self._run_second))]
        for thread in self._threads:
            thread.start()

    def submit(self, job, wait: bool = False) -> bool:
        """Queue ``job`` for the first stage (see the module docstring for ``wait``).

        Returns:
            False when the runner is stopped (the job is not queued).
        """
        replaced = None
        with self._condition:
            while wait and self._pending is not None and not self._stopping:
                self._condition.wait()
            if self._stopping:
                return False
            replaced, self._pending = self._pending, job
            if replaced is not None:
                self.dropped += 1
            self._condition.notify_all()
        if replaced is not None:
            self._on_drop(replaced)
        return True

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until every submitted job went through (or was dropped); False on timeout."""
        with self._condition:
            return self._condition.wait_for(
                lambda: self._pending is None and self._handoff is None and not self._busy,
                timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads after the jobs they are running; queued jobs are discarded."""
        with self._condition:
            self._stopping = True
            self._pending = self._handoff = None
            self._condition.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _run_first(self):
        while True:
            with self._condition:
                # a new job only once the second stage took the previous result
                self._condition.wait_for(lambda: self._stopping or (
                    self._pending is not None and self._handoff is None))
                if self._stopping:
                    return
                job, self._pending = self._pending, None
                self._busy += 1
                self._condition.notify_all()
            try:
                result = self._first(job)
            except Exception as error:  # noqa: B902 -- reported, the runner goes on
                self._finish(job, error)
                continue
            with self._condition:
                self._handoff = (job, result)
                self._busy -= 1
                self._condition.notify_all()

    def _run_second(self):
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._stopping or self._handoff is not None)
                if self._stopping:
                    return
                (job, result), self._handoff = self._handoff, None
                self._busy += 1
                self._condition.notify_all()
            try:
                self._second(job, result)
            except Exception as error:  # noqa: B902 -- reported, the runner goes on
                self._finish(job, error)
                continue
            with self._condition:
                self._busy -= 1
                self._condition.notify_all()

    def _finish(self, job, error: BaseException):
        """Report a failed job and mark its stage free."""
        try:
            self._on_error(job, error)
        except Exception:  # noqa: B902 -- a failing report must not stop the stage
            pass
        finally:
            with self._condition:
                self._busy -= 1
                self._condition.notify_all()
