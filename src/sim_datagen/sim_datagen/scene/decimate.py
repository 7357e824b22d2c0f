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
"""Render copies of URDFs with decimated visual meshes (made once, cached).

TinyRenderer pays ~0.17 us per triangle and view before a pixel is shaded;
the Panda's visual meshes have ~100k triangles (~17 ms per view).  A
source with ``visual_decimation: r`` is rendered from a copy of its URDF
whose visual OBJ meshes with more than ``min_faces`` triangles are
simplified by quadric edge collapse (``fast_simplification``, removing the
fraction ``r`` of each material group's triangles).  Everything else is
the original: links, joints, inertials and collision meshes (so the
placement, the keypoints on the link frames and the bounding boxes do not
change), and the materials and texture.  New vertices take the texture
coordinate of the nearest original vertex of their group; normals are
area-weighted face normals, smoothed across edges flatter than 40 deg.

The copies are deterministic and written once to the cache folder
(``$SIM_DATAGEN_CACHE``, else ``$KEYPOINTS_WS/build/cache/sim_datagen``,
else ``~/.cache/sim_datagen``), keyed by a hash of the inputs; parallel
workers write them atomically.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from typing import Dict, List, Tuple

from keypoint_perception.core.files import atomic_open
import numpy as np

#: bump when the output of :func:`decimate_obj` changes
VERSION = 1


def cache_dir() -> str:
    """Folder of the decimated copies (see the module docstring)."""
    if os.environ.get('SIM_DATAGEN_CACHE'):
        return os.environ['SIM_DATAGEN_CACHE']
    if os.environ.get('KEYPOINTS_WS'):
        return os.path.join(os.environ['KEYPOINTS_WS'], 'build', 'cache', 'sim_datagen')
    return os.path.join(os.path.expanduser('~'), '.cache', 'sim_datagen')


def _atomic_write(path: str, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def _read_obj(path: str):
    """Vertices, uvs, normals and faces grouped by material of an OBJ file.

    Returns:
        ``(v (N, 3), vt (M, 2), mtllib lines, [(usemtl line, faces (F, 3, 3) int)])``
        with 0-based ``(v, vt, vn)`` indices per corner (-1 = none).
    """
    v, vt, vn, head, groups = [], [], [], [], []
    cur: List[List[int]] = []
    mtl = ''
    with open(path) as f:
        for line in f:
            tag, _, rest = line.strip().partition(' ')
            if tag == 'v':
                v.append([float(x) for x in rest.split()[:3]])
            elif tag == 'vt':
                vt.append([float(x) for x in rest.split()[:2]])
            elif tag == 'vn':
                vn.append([float(x) for x in rest.split()[:3]])
            elif tag == 'mtllib':
                head.append(line.strip())
            elif tag == 'usemtl':
                if cur:
                    groups.append((mtl, np.array(cur, np.int64).reshape(-1, 3, 3)))
                cur, mtl = [], line.strip()
            elif tag == 'f':
                corners = []
                for c in rest.split():
                    idx = (c.split('/') + ['', ''])[:3]
                    corners.append([int(x) - 1 if x else -1 for x in idx])
                for k in range(1, len(corners) - 1):  # fan
                    cur += [corners[0], corners[k], corners[k + 1]]
    if cur:
        groups.append((mtl, np.array(cur, np.int64).reshape(-1, 3, 3)))
    return (np.array(v, np.float64).reshape(-1, 3), np.array(vt, np.float64).reshape(-1, 2),
            head, groups)


def _normals(p: np.ndarray, faces: np.ndarray, crease_deg: float = 40.0) -> np.ndarray:
    """Per-corner normals (F, 3, 3): smooth across edges flatter than ``crease_deg``."""
    fn = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
    unit = fn / np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-20)
    vsum = np.zeros_like(p)
    for k in range(3):
        np.add.at(vsum, faces[:, k], fn)
    vn = vsum / np.maximum(np.linalg.norm(vsum, axis=1, keepdims=True), 1e-20)
    out = vn[faces]                                            # (F, 3, 3)
    sharp = np.einsum('fkc,fc->fk', out, unit) < np.cos(np.radians(crease_deg))
    out[sharp] = np.repeat(unit[:, None, :], 3, axis=1)[sharp]
    return out


def _nearest(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Index into ``src`` of the nearest point for each row of ``dst`` (brute force)."""
    out = np.empty(len(dst), np.int64)
    s2 = (src * src).sum(axis=1)
    for i in range(0, len(dst), 2048):
        d = s2[None, :] - 2.0 * dst[i:i + 2048] @ src.T
        out[i:i + 2048] = np.argmin(d, axis=1)
    return out


def decimate_obj(path: str, out_path: str, reduction: float) -> Tuple[int, int]:
    """Write a simplified copy of an OBJ mesh (materials kept per group).

    Returns:
        (triangles before, triangles after).
    """
    # optional, pip-only dependency (no rosdep key): needed by visual_decimation configs only
    import fast_simplification
    v, vt, head, groups = _read_obj(path)
    lines = [f'# decimated copy of {os.path.basename(path)} (sim_datagen.scene.decimate, '
             f'reduction {reduction})'] + head
    pv, pvt, pvn = [], [], []
    nv = nvt = 0
    before = after = 0
    for mtl, corners in groups:
        before += len(corners)
        vi = corners[:, :, 0]
        used, inv = np.unique(vi, return_inverse=True)
        inv = inv.reshape(-1)
        pts, fcs = v[used], inv.reshape(-1, 3)
        if len(fcs) > 50:
            pts2, fcs2 = fast_simplification.simplify(pts.astype(np.float32), fcs.astype(np.int32),
                                                      target_reduction=float(reduction))
            pts2, fcs2 = np.asarray(pts2, np.float64), np.asarray(fcs2, np.int64)
        else:
            pts2, fcs2 = pts, fcs
        after += len(fcs2)
        # texture coordinate of the nearest original vertex (its first corner)
        has_uv = len(vt) and (corners[:, :, 1] >= 0).all()
        if has_uv:
            first = np.full(len(used), -1, np.int64)
            first[inv[::-1]] = corners[:, :, 1].reshape(-1)[::-1]
            uv2 = vt[first[_nearest(pts, pts2)]]
        nrm = _normals(pts2, fcs2)
        pv.append(pts2)
        pvn.append(nrm.reshape(-1, 3))
        if has_uv:
            pvt.append(uv2)
        if mtl:
            lines.append(mtl)
        for fi, f in enumerate(fcs2):
            cs = []
            for k in range(3):
                t = f'{nvt + f[k] + 1}' if has_uv else ''
                cs.append(f'{nv + f[k] + 1}/{t}/{3 * (after - len(fcs2) + fi) + k + 1}')
            lines.append('f ' + ' '.join(cs))
        nv += len(pts2)
        nvt += len(pts2) if has_uv else 0
    body = (['v %.6f %.6f %.6f' % tuple(x) for x in np.concatenate(pv)]
            + ['vt %.6f %.6f' % tuple(x) for x in (np.concatenate(pvt) if pvt else [])]
            + ['vn %.5f %.5f %.5f' % tuple(x) for x in np.concatenate(pvn)])
    faces_start = len(head) + 1
    _atomic_write(out_path, '\n'.join(lines[:faces_start] + body + lines[faces_start:]) + '\n')
    return before, after


def _face_count(path: str) -> int:
    with open(path) as f:
        return sum(1 for line in f if line.startswith('f '))


def decimated_urdf(urdf: str, reduction: float, min_faces: int = 2000) -> str:
    """Path of a copy of ``urdf`` whose large visual OBJ meshes are decimated (cached).

    Mesh paths (``package://`` or relative, resolved against the URDF's
    folder) become absolute; collision meshes stay the originals.
    """
    # optional, pip-only dependency (no rosdep key): needed by visual_decimation configs only
    import fast_simplification
    urdf = os.path.abspath(urdf)
    base = os.path.dirname(urdf)
    with open(urdf) as f:
        text = f.read()
    key = hashlib.sha256(f'{VERSION} {reduction} {min_faces} '
                         f'{fast_simplification.__version__} '.encode() + text.encode())
    out_dir = os.path.join(cache_dir(), f'{os.path.splitext(os.path.basename(urdf))[0]}_'
                           f'{key.hexdigest()[:12]}')
    out = os.path.join(out_dir, os.path.basename(urdf))
    if os.path.isfile(out):
        return out
    os.makedirs(out_dir, exist_ok=True)

    def resolve(name: str) -> str:
        rel = name[len('package://'):] if name.startswith('package://') else name
        return rel if os.path.isabs(rel) else os.path.normpath(os.path.join(base, rel))

    done: Dict[str, str] = {}

    def visual(m: re.Match) -> str:
        block = m.group(0)

        def mesh(mm: re.Match) -> str:
            src = resolve(mm.group(1))
            if src not in done:
                done[src] = src
                if src.lower().endswith('.obj') and _face_count(src) > min_faces:
                    dst = os.path.join(out_dir, os.path.basename(src))
                    decimate_obj(src, dst, reduction)
                    _copy_materials(src, out_dir)
                    done[src] = dst
            return f'filename="{done[src]}"'
        return re.sub(r'filename="([^"]+)"', mesh, block)

    text = re.sub(r'<visual>.*?</visual>', visual, text, flags=re.S)
    text = re.sub(r'filename="([^"]+)"', lambda m: f'filename="{resolve(m.group(1))}"'
                  if not m.group(1).startswith(out_dir) else m.group(0), text)
    _atomic_write(out, text)
    return out


def _copy_materials(obj: str, out_dir: str) -> None:
    """Copy an OBJ's material libraries and their texture files next to its copy."""
    d = os.path.dirname(obj)
    with open(obj) as f:
        libs = [line.split(None, 1)[1].strip() for line in f if line.startswith('mtllib')]
    for lib in libs:
        src = os.path.join(d, lib)
        if not os.path.isfile(src):
            continue
        shutil.copyfile(src, os.path.join(out_dir, os.path.basename(lib)))
        with open(src) as f:
            for line in f:
                if line.split()[:1] and line.split()[0].startswith('map_'):
                    tex = os.path.join(d, line.split()[-1])
                    dst = os.path.join(out_dir, os.path.basename(tex))
                    if os.path.isfile(tex) and not os.path.isfile(dst):
                        shutil.copyfile(tex, dst)
