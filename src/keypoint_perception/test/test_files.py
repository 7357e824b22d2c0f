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
"""core.files.atomic_open: a file appears whole or not at all."""

import os
import stat

import pytest

from keypoint_perception.core.files import atomic_open


def test_the_file_appears_only_when_the_block_ends(tmp_path):
    path = tmp_path / 'out.jsonl'
    with atomic_open(str(path), encoding='utf-8') as f:
        f.write('first\n')
        f.flush()
        assert not path.exists()                  # not yet: only a hidden temporary file
        assert len(os.listdir(tmp_path)) == 1
    assert path.read_text() == 'first\n' and os.listdir(tmp_path) == ['out.jsonl']
    old_umask = os.umask(0o027)
    try:
        with atomic_open(str(path), 'wb') as f:
            f.write(b'second\n')
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b'second\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640   # as a new file under the umask


@pytest.mark.parametrize('error', [RuntimeError, KeyboardInterrupt, SystemExit])
def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_one(tmp_path, error):
    path = tmp_path / 'out.json'
    path.write_text('old')
    with pytest.raises(error):
        with atomic_open(str(path)) as f:
            f.write('half of the new')
            raise error()
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['out.json']
