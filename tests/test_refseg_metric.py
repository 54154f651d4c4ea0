"""RefSegMetric against hand-computed intersections and unions."""
import json

import cv2
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

import fianet_mmseg.evaluation  # noqa: F401  (registers the metric)
from fianet_mmseg.evaluation import RefSegMetric

PRECISION_KEYS = ['P@0.5', 'P@0.6', 'P@0.7', 'P@0.8', 'P@0.9']


def make_sample(pred, gt, *, at_input=None, img_shape=None, category=None, index=0,
                expression='the ship'):
    """A data sample dict as mmengine's Evaluator hands it to ``process``."""
    pred = torch.as_tensor(np.asarray(pred))[None]
    gt = torch.as_tensor(np.asarray(gt))[None]
    sample = dict(pred_sem_seg=dict(data=pred), gt_sem_seg=dict(data=gt),
                  ori_shape=tuple(gt.shape[1:]), img_shape=img_shape or tuple(gt.shape[1:]),
                  img_path=f'img_{index}.jpg', expression=expression, ref_id=100 + index,
                  sent_id=500 + index, category=category, sample_idx=index)
    if at_input is not None:
        sample['pred_sem_seg_at_input'] = dict(data=torch.as_tensor(np.asarray(at_input))[None])
    return sample


def run_metric(metric, samples):
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def row(ones, length):
    """A (1, length) mask with 1 at the given positions."""
    mask = np.zeros((1, length), dtype=np.int64)
    mask[0, list(ones)] = 1
    return mask


def test_empty_union_counts_as_zero():
    metric = RefSegMetric(eval_size='original')
    zeros = np.zeros((3, 3), dtype=np.int64)
    result = run_metric(metric, [make_sample(zeros, zeros)])
    assert (metric.results[0]['I'], metric.results[0]['U']) == (0, 0)
    assert result['mIoU'] == 0.0  # the reference quirk: U = 0 gives IoU 0, not 1
    assert result['oIoU'] == 0.0
    assert all(result[key] == 0.0 for key in PRECISION_KEYS)


def test_empty_prediction_and_empty_target():
    metric = RefSegMetric(eval_size='original')
    metric.process({}, [
        make_sample(row([], 5), row([0, 1, 2], 5)),   # nothing predicted: I 0, U 3
        make_sample(row([3, 4], 5), row([], 5)),      # nothing to find: I 0, U 2
    ])
    assert [(r['I'], r['U']) for r in metric.results] == [(0, 3), (0, 2)]
    result = metric.compute_metrics(metric.results)
    assert result['mIoU'] == 0.0 and result['oIoU'] == 0.0


def test_ignored_pixels_are_left_out():
    gt = np.array([[1, 1, 255],
                   [0, 0, 255]])
    pred = np.array([[1, 0, 1],
                     [1, 0, 1]])
    metric = RefSegMetric(eval_size='original')
    result = run_metric(metric, [make_sample(pred, gt)])
    # the two predictions on ignored pixels count nowhere: I = {(0,0)}, U = {(0,0),(0,1),(1,0)}
    assert (metric.results[0]['I'], metric.results[0]['U']) == (1, 3)
    assert result['mIoU'] == pytest.approx(100 / 3)


def test_several_samples_precision_oiou_miou():
    samples = [
        make_sample(row([0, 1, 2], 4), row([0, 1, 3], 4), index=0),   # I 2, U 4: IoU 0.5
        make_sample(row([0, 1, 2], 4), row([0, 1, 2, 3], 4), index=1),  # I 3, U 4: 0.75
        make_sample(row(range(9), 10), row(range(10), 10), index=2),  # I 9, U 10: 0.9
        make_sample(row([0, 1], 5), row([2, 3, 4], 5), index=3),      # I 0, U 5: 0
        make_sample(row(range(4), 9), row(range(9), 9), index=4),     # I 4, U 9: 0.444
    ]
    metric = RefSegMetric(eval_size='original')
    result = run_metric(metric, samples)
    assert [(r['I'], r['U']) for r in metric.results] == [(2, 4), (3, 4), (9, 10), (0, 5),
                                                         (4, 9)]
    assert result['oIoU'] == pytest.approx(100 * 18 / 32)
    assert result['mIoU'] == pytest.approx(100 * (0.5 + 0.75 + 0.9 + 0 + 4 / 9) / 5)
    # IoU exactly 0.5 (and exactly 0.9) meets its threshold; 4/9 does not.
    assert result['P@0.5'] == pytest.approx(60.0)
    assert result['P@0.6'] == pytest.approx(40.0)
    assert result['P@0.7'] == pytest.approx(40.0)
    assert result['P@0.8'] == pytest.approx(20.0)
    assert result['P@0.9'] == pytest.approx(20.0)
    assert set(result) == {*PRECISION_KEYS, 'oIoU', 'mIoU'}  # no category given


def test_custom_thresholds_name_their_keys():
    metric = RefSegMetric(eval_size='original', thresholds=(0.25, 0.75))
    result = run_metric(metric, [make_sample(row([0, 1, 2], 4), row([0, 1, 3], 4))])
    assert result['P@0.25'] == 100.0 and result['P@0.75'] == 0.0
    assert 'P@0.5' not in result


def test_input_protocol_upsamples_gt_with_nearest():
    gt = np.zeros((4, 4), dtype=np.uint8)
    gt[0, 0] = 1
    gt[1, 1] = 255
    # at 8x8, nearest doubling: object at [0:2, 0:2], ignored block at [2:4, 2:4]
    at_input = np.zeros((8, 8), dtype=np.int64)
    at_input[0:2, 0:3] = 1   # the 4 object pixels + 2 background pixels
    at_input[2:4, 2:4] = 1   # on ignored pixels: counts nowhere
    original_pred = np.zeros((4, 4), dtype=np.int64)  # must not be used by 'input'
    metric = RefSegMetric()
    result = run_metric(metric, [make_sample(original_pred, gt, at_input=at_input,
                                             img_shape=(8, 8))])
    assert (metric.results[0]['I'], metric.results[0]['U']) == (4, 6)
    assert result['mIoU'] == pytest.approx(100 * 4 / 6)

    metric = RefSegMetric(eval_size='original')
    run_metric(metric, [make_sample(original_pred, gt, at_input=at_input, img_shape=(8, 8))])
    assert (metric.results[0]['I'], metric.results[0]['U']) == (0, 1)


def test_input_protocol_downsamples_gt_with_pillows_nearest():
    # Halving with Pillow's nearest filter keeps source pixel floor((x + 0.5) * 2) = 2x + 1:
    # the odd rows and columns (OpenCV's keeps 2x: the even ones).
    gt = np.zeros((8, 6), dtype=np.uint8)
    gt[1::2, 1::2] = 1   # exactly the pixels Pillow keeps
    gt[0, 0] = 1         # kept by OpenCV only
    at_input = np.ones((4, 3), dtype=np.int64)
    metric = RefSegMetric()
    result = run_metric(metric, [make_sample(np.zeros((8, 6)), gt, at_input=at_input,
                                             img_shape=(4, 3, 3))])
    assert (metric.results[0]['I'], metric.results[0]['U']) == (12, 12)
    assert result['P@0.9'] == 100.0
    # OpenCV's nearest filter keeps the even rows and columns: the metric must not use it
    opencv = cv2.resize(gt, (3, 4), interpolation=cv2.INTER_NEAREST)
    assert int(opencv.sum()) == 1


def test_per_category_keys():
    samples = [
        make_sample(row([0, 1], 2), row([0, 1], 2), category='ship', index=0),      # 1
        make_sample(row([0, 1, 2], 4), row([0, 1, 3], 4), category='ship', index=1),  # 0.5
        make_sample(row([0], 2), row([1], 2), category='vehicle', index=2),         # 0
        make_sample(row([0], 1), row([0], 1), category=None, index=3),              # 1
    ]
    result = run_metric(RefSegMetric(eval_size='original'), samples)
    assert result['mIoU.ship'] == pytest.approx(75.0)
    assert result['mIoU.vehicle'] == 0.0
    assert result['mIoU'] == pytest.approx(62.5)
    assert {key for key in result if key.startswith('mIoU.')} == {'mIoU.ship', 'mIoU.vehicle'}

    result = run_metric(RefSegMetric(eval_size='original', per_category=False), samples)
    assert not any(key.startswith('mIoU.') for key in result)


def test_output_file_has_one_line_per_sample(tmp_path):
    out = tmp_path / 'sub' / 'per_sample.jsonl'
    metric = RefSegMetric(eval_size='original', output_file=str(out))
    run_metric(metric, [
        make_sample(row([0, 1, 2], 4), row([0, 1, 3], 4), category='ship', index=0,
                    expression='the red ship'),
        make_sample(row([], 3), row([], 3), index=1, expression='a vehicle'),
    ])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [
        dict(sample_idx=0, ref_id=100, sent_id=500, expression='the red ship',
             category='ship', img_path='img_0.jpg', I=2, U=4, IoU=0.5),
        dict(sample_idx=1, ref_id=101, sent_id=501, expression='a vehicle', category=None,
             img_path='img_1.jpg', I=0, U=0, IoU=0.0),
    ]


def test_results_hold_no_masks():
    metric = RefSegMetric(eval_size='original')
    metric.process({}, [make_sample(np.ones((16, 16)), np.ones((16, 16)), category='ship')])
    assert set(metric.results[0]) == {'sample_idx', 'ref_id', 'sent_id', 'expression',
                                      'category', 'img_path', 'I', 'U'}
    assert metric.results[0]['I'] == 256 and isinstance(metric.results[0]['I'], int)


def test_missing_input_size_prediction_names_the_option():
    metric = RefSegMetric()
    with pytest.raises(KeyError, match="pred_sem_seg_at_input.*eval_size='original'"):
        metric.process({}, [make_sample(np.zeros((4, 4)), np.zeros((4, 4)))])


def test_shape_mismatch_in_original_mode_names_the_option():
    metric = RefSegMetric(eval_size='original')
    with pytest.raises(ValueError, match=r"sample 0 .*img_0\.jpg.*eval_size='input'"):
        metric.process({}, [make_sample(np.zeros((4, 4)), np.zeros((8, 8)))])


def test_input_prediction_not_at_img_shape():
    metric = RefSegMetric()
    with pytest.raises(ValueError, match=r"img_shape is \(8, 8\).*eval_size='original'"):
        metric.process({}, [make_sample(np.zeros((4, 4)), np.zeros((4, 4)),
                                        at_input=np.zeros((6, 6)), img_shape=(8, 8))])


def test_unexpected_gt_labels_and_bad_options():
    metric = RefSegMetric(eval_size='original')
    with pytest.raises(ValueError, match=r'gt_sem_seg holds labels \[7\]'):
        metric.process({}, [make_sample(np.zeros((2, 2)), np.array([[0, 1], [7, 255]]))])
    with pytest.raises(ValueError, match='eval_size'):
        RefSegMetric(eval_size='resized')
    with pytest.raises(ValueError, match='thresholds'):
        RefSegMetric(thresholds=(0.5, 50))
    with pytest.raises(ValueError, match='no sample'):
        RefSegMetric().compute_metrics([])


def seg_data_sample(gt, at_input, category, index):
    """A SegDataSample as FIANet's predict() returns it (original size 4x4, input 8x8)."""
    sample = SegDataSample(metainfo=dict(img_shape=(8, 8), ori_shape=(4, 4),
                                         img_path=f'{index}.jpg', expression='the ship',
                                         ref_id=index, category=category,
                                         sample_idx=index))
    at_input = torch.as_tensor(at_input)[None]
    # mmseg resizes the prediction to the original size; here by taking every second pixel
    sample.pred_sem_seg = PixelData(data=at_input[:, ::2, ::2].clone())
    sample.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    sample.set_data({'pred_sem_seg_at_input': PixelData(data=at_input)})
    return sample


def test_runs_beside_mmseg_iou_metric_in_one_evaluator():
    gt = np.zeros((4, 4), dtype=np.int64)
    gt[0:2, 0:2] = 1                       # 16 object pixels at 8x8
    at_input = np.zeros((8, 8), dtype=np.int64)
    at_input[0:6, 0:2] = 1                 # I 8, U 16 + 4 = 20 at the input size
    evaluator = Evaluator([METRICS.build(dict(type='RefSegMetric')),
                           IoUMetric(prefix='semseg')])
    evaluator.dataset_meta = dict(classes=('background', 'object'))
    evaluator.process(data_samples=[seg_data_sample(gt, at_input, 'ship', 0),
                                    seg_data_sample(gt, at_input, 'ship', 1)])
    result = evaluator.evaluate(2)
    assert result['oIoU'] == pytest.approx(40.0)
    assert result['mIoU'] == pytest.approx(40.0)
    assert result['mIoU.ship'] == pytest.approx(40.0)
    assert result['P@0.5'] == 0.0
    assert {'semseg/mIoU', 'semseg/aAcc', 'semseg/mAcc'} <= set(result)
