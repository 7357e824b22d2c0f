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
"""Fuzz the perception node over real DDS (issue 16: nothing a publisher sends ends it).

A few hundred malformed stereo sets of every category of
``tools/benchmark_fuzz.py`` (encodings, sizes, empty and big-endian images,
NaN/zero/extreme calibration, unknown distortion models, invalid stamps,
skews, missing topics, empty frame ids, stale and duplicate sets), in bursts,
each followed by a valid set.  Crashes and lost valid pairs must be 0.  The
node runs with approximate sync (test_node_faults.py runs exact sync);
localhost only, a domain id of its own; about 30-60 s on 2 cores.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tools'))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
DOMAIN_ID = 122

import benchmark_fuzz  # noqa: E402
from stereo_harness import NodeHarness  # noqa: E402

SETS_PER_CATEGORY = 10
BURST = 10


def test_fuzz_no_crash_no_lost_valid_pair(tmp_path):
    """Every category, approximate sync: 0 crashes, every valid set after a burst published."""
    log_path = str(tmp_path / 'node.log')
    lines = []
    t0 = time.monotonic()
    results = benchmark_fuzz.run_fuzz(
        lambda: NodeHarness(DOMAIN_ID, log_path, dict(benchmark_fuzz.FUZZ_PARAMS,
                                                      approximate_sync='true',
                                                      sync_slop='0.05')),
        list(benchmark_fuzz.CATEGORIES), SETS_PER_CATEGORY, BURST, seed=16,
        restart=False, log=lines.append)
    elapsed = time.monotonic() - t0
    report = '\n'.join(lines)
    assert set(results) == set(benchmark_fuzz.CATEGORIES)
    assert sum(r.sets for r in results.values()) >= 200, report
    assert all(r.sets == SETS_PER_CATEGORY for r in results.values()), report
    assert sum(r.crashes for r in results.values()) == 0, report
    assert sum(r.lost_pairs for r in results.values()) == 0, report
    assert elapsed < 300, f'fuzz took {elapsed:.0f} s:\n{report}'
