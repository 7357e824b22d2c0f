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
"""COCO keypoints export: format rules and agreement with the dataset labels."""

import json
import os

from conftest import CLEAN
import numpy as np
import pytest


def check_coco_keypoints(coco: dict, images_dir: str = None):
    """Assert the COCO keypoints format rules (what pycocotools and trainers rely on)."""
    for k in ('info', 'licenses', 'images', 'annotations', 'categories'):
        assert k in coco, k
    cats = {c['id']: c for c in coco['categories']}
    assert len(cats) == len(coco['categories'])
    for c in coco['categories']:
        J = len(c['keypoints'])
        assert J > 0 and all(isinstance(n, str) for n in c['keypoints'])
        for edge in c['skeleton']:
            assert len(edge) == 2 and all(isinstance(i, int) and 1 <= i <= J for i in edge), \
                edge
    images = {im['id']: im for im in coco['images']}
    assert len(images) == len(coco['images'])
    for im in coco['images']:
        assert isinstance(im['id'], int) and im['width'] > 0 and im['height'] > 0
        assert isinstance(im['file_name'], str) and not os.path.isabs(im['file_name'])
        if images_dir is not None:
            assert os.path.getsize(os.path.join(images_dir, im['file_name'])) > 0
    ann_ids = set()
    for a in coco['annotations']:
        assert a['id'] not in ann_ids
        ann_ids.add(a['id'])
        assert a['image_id'] in images and a['category_id'] in cats
        im, J = images[a['image_id']], len(cats[a['category_id']]['keypoints'])
        kp = a['keypoints']
        assert len(kp) == 3 * J
        v = kp[2::3]
        assert all(isinstance(x, int) and x in (0, 1, 2) for x in v)
        assert a['num_keypoints'] == sum(x > 0 for x in v)
        for j in range(J):
            if v[j] == 0:
                assert kp[3 * j] == 0 and kp[3 * j + 1] == 0
            else:
                assert -0.5 <= kp[3 * j] < im['width'] and -0.5 <= kp[3 * j + 1] < im['height']
        x, y, w, h = a['bbox']
        assert w >= 0 and h >= 0 and x >= 0 and y >= 0
        assert x + w <= im['width'] + 1e-6 and y + h <= im['height'] + 1e-6
        assert a['area'] >= 0 and a['iscrowd'] == 0


@pytest.fixture(scope='module')
def dataset(tmp_path_factory, generator, config):
    """Two rendered samples (one with an out-of-view corner, with segmentation)."""
    from sim_datagen.writer import encode_sample, ShardWriter, write_meta
    out = tmp_path_factory.mktemp('ds')
    od = config['object_def']
    write_meta(str(out), {'object_class': od['name'],
                          'keypoint_names': [k['name'] for k in od['keypoints']],
                          'skeleton': od['skeleton'], 'count': 2, 'seed': 5, 'shard_size': 2})
    old = generator.outputs
    generator.outputs = dict(old, segmentation=True)
    try:
        samples = [generator.generate(0, 5, overrides=CLEAN),
                   generator.generate(1, 5, overrides=dict(CLEAN, out_of_view=1, center_x=1.0,
                                                           board_width_frac=0.8))]
    finally:
        generator.outputs = old
    w = ShardWriter(str(out), 0)
    for s in samples:
        w.write(s['key'], encode_sample(s))
    w.close()
    return str(out), [s['labels'] for s in samples], [s['seg'] for s in samples]


def test_export_matches_labels(dataset, tmp_path):
    from sim_datagen.cli import main
    data, labels, segs = dataset
    out = tmp_path / 'coco' / 'annotations.json'
    assert main(['export-coco', '--data', data, '--out', str(out)]) == 0
    coco = json.loads(out.read_text())
    images_dir = str(tmp_path / 'coco' / 'images')
    check_coco_keypoints(coco, images_dir)
    assert len(coco['images']) == 4  # two samples x two views
    cat = coco['categories'][0]
    assert cat['name'] == 'checkerboard' and cat['keypoints'] == labels[0]['keypoint_names']
    assert cat['skeleton'] == [[1, 2], [2, 3], [3, 4], [4, 1]]  # YAML [[0, 1], ...] + 1
    anns = {a['image_id']: a for a in coco['annotations']}
    seen_v = set()
    for im in coco['images']:
        lab = labels[int(im['sample_key'])]
        ci = lab['camera_info'][im['view']]
        assert (im['width'], im['height']) == (ci['width'], ci['height'])
        assert im['file_name'] == f'{im["sample_key"]}_{im["view"]}.jpg'
        uv = np.asarray(lab['keypoints_2d'][im['view']])
        vis = np.asarray(lab['visibility'][im['view']])
        seen_v |= set(vis.tolist())
        if not np.any(vis > 0):
            assert im['id'] not in anns or im['view'] == 'left'
            continue
        a = anns[im['id']]
        kp = np.asarray(a['keypoints'], np.float64).reshape(-1, 3)
        np.testing.assert_array_equal(kp[:, 2], vis)
        np.testing.assert_allclose(kp[vis > 0, :2], uv[vis > 0], atol=1e-9)
        assert np.all(kp[vis == 0, :2] == 0)
        assert a['num_keypoints'] == int(np.sum(vis > 0))
        x, y, w, h = a['bbox']
        if im['view'] == 'left':  # bbox of the board's pixels in the segmentation
            rows, cols = np.nonzero(segs[int(im['sample_key'])] == 1)
            assert (x, y, w, h) == (cols.min(), rows.min(), cols.max() - cols.min() + 1,
                                    rows.max() - rows.min() + 1)
            assert a['area'] == len(rows)
        else:  # bbox of the labelled keypoints
            inside = uv[vis > 0]
            np.testing.assert_allclose([x, y], np.maximum(inside.min(0), 0), atol=1e-9)
            np.testing.assert_allclose([x + w, y + h],
                                       np.minimum(inside.max(0), [im['width'], im['height']]),
                                       atol=1e-9)
    assert 0 in seen_v and 2 in seen_v  # the second sample has a corner out of view
    with open(os.path.join(images_dir, coco['images'][0]['file_name']), 'rb') as f:
        assert f.read(2) == b'\xff\xd8'  # the stored JPEG


def test_export_options(dataset, tmp_path):
    from sim_datagen.coco import export_coco
    data, labels, _ = dataset
    out = tmp_path / 'a.json'
    coco = export_coco(data, str(out), views=['right'], bbox_margin=0.1, write_images=False)
    assert not (tmp_path / 'images').exists()
    assert [im['view'] for im in coco['images']] == ['right', 'right']
    check_coco_keypoints(json.loads(out.read_text()))
    a = coco['annotations'][0]
    im = coco['images'][a['image_id'] - 1]
    lab = labels[int(im['sample_key'])]
    vis = np.asarray(lab['visibility']['right'])
    uv = np.asarray(lab['keypoints_2d']['right'])[vis > 0]
    pad = 0.1 * (uv.max(0) - uv.min(0))
    lo = np.maximum(uv.min(0) - pad, 0)
    hi = np.minimum(uv.max(0) + pad, [im['width'], im['height']])
    np.testing.assert_allclose(a['bbox'], [lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def test_helpers():
    from sim_datagen.coco import coco_keypoints, keypoint_bbox, skeleton_1based
    names = ['a', 'b', 'c']
    assert skeleton_1based([[0, 1], ['b', 'c']], names) == [[1, 2], [2, 3]]
    with pytest.raises(ValueError):
        skeleton_1based([[0, 3]], names)
    kps, n = coco_keypoints([[1.5, 2.5], [-20.0, 5.0], [3.0, 4.0]], [2, 0, 1])
    assert kps == [1.5, 2.5, 2, 0.0, 0.0, 0, 3.0, 4.0, 1] and n == 2
    assert keypoint_bbox([[1.0, 2.0], [-20, 5], [3.0, 6.0]], [2, 0, 1], 10, 10) == \
        [1.0, 2.0, 2.0, 4.0]
    assert keypoint_bbox([[1.0, 2.0]], [0], 10, 10) is None


def test_pycocotools_reads_and_scores(dataset, tmp_path):
    """Load the export with pycocotools; the ground truth scored against itself gives AP 1."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    from sim_datagen.coco import export_coco
    out = tmp_path / 'ann.json'
    export_coco(dataset[0], str(out), write_images=False)
    gt = COCO(str(out))
    dets = [dict(image_id=a['image_id'], category_id=1, keypoints=a['keypoints'], score=1.0)
            for a in gt.dataset['annotations']]
    ev = COCOeval(gt, gt.loadRes(dets), 'keypoints')
    ev.params.kpt_oks_sigmas = np.full(len(gt.loadCats(1)[0]['keypoints']), 0.05)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
