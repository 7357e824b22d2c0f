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
"""Writing output files whole or not at all."""

import contextlib
import os
import tempfile
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'w', **kwargs) -> Iterator[IO]:
    """Open ``path`` for writing so that it appears only complete (write, then rename).

    The data goes to a new temporary file next to ``path`` (same file
    system; a hidden name ``.<name>.<random>.tmp``, so that concurrent
    writers do not collide), which replaces ``path`` when the ``with``
    block ends normally, with the permissions a new file gets (umask).  If
    the block raises (including ``KeyboardInterrupt`` and ``SystemExit``),
    the temporary file is removed and an existing ``path`` is left as it
    was.

    Args:
        path: the file to write.
        mode: a writing mode of :func:`open` (``'w'``, ``'wb'``).
        **kwargs: passed to :func:`open` (``encoding``, ``newline``).

    Raises:
        OSError: the temporary file cannot be written or renamed.
    """
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix='.tmp', dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(fd, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
