"""ONNX export of forward_tensors (dynamic batch) checked with onnxruntime on CPU."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import BASE_CONFIG as CONFIG
from conftest import (
    as_cli_options,
    load_script,
    make_tiny_checkpoint,
    options_dict,
    require,
    split_records,
    tiny_model_overrides,
    tiny_test_options,
)
from mmengine.dataset import pseudo_collate

from fianet_mmseg.apis import get_inference_pipeline, inference_model, init_model, onnx_export

pytestmark = [pytest.mark.slow, pytest.mark.numerics]  # one export, ~30 s on two CPU cores
onnx = require('onnx', 'pip install "fianet-mmseg[onnx]"')
onnxruntime = require('onnxruntime', 'pip install "fianet-mmseg[onnx]"')

SIZE, LENGTH = 64, 12
#: The export tool's check (``--atol``): onnxruntime against PyTorch, max |logit difference|.
ONNX_ATOL = 1e-3


def load_tool():
    return load_script('tools/deployment/export_onnx.py')


def export_options(data_root) -> list:
    """The tiny model at SIZE x SIZE with LENGTH tokens (so real data fits the graph)."""
    return tiny_test_options(data_root) + [
        f'test_dataloader.dataset.pipeline.1.scale=({SIZE},{SIZE})',
        f'test_dataloader.dataset.pipeline.3.max_length={LENGTH}']


@pytest.fixture(scope='module')
def exported(rrsisd_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp('onnx')
    checkpoint = make_tiny_checkpoint(rrsisd_root, folder / 'tiny.pth')
    tool = load_tool()
    out = folder / 'tiny.onnx'
    # geometry from the config's pipeline (Resize scale, max_length)
    differences = tool.main([CONFIG, str(checkpoint), str(out),
                             '--cfg-options', *export_options(rrsisd_root)])
    return tool, checkpoint, out, differences


def test_export_checks_batches_other_than_the_exported_one(exported):
    _, _, out, differences = exported
    assert out.is_file()
    assert sorted(differences) == [1, 3] and onnx_export.EXPORT_BATCH not in differences
    assert all(0 <= d <= 1e-3 for d in differences.values())
    graph = onnx.load(str(out)).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in graph.input}
    assert isinstance(dims['img'][0], str) and dims['img'][1:] == [3, SIZE, SIZE]
    for name in ('input_ids', 'attention_mask', 'object_mask', 'position_mask'):
        assert isinstance(dims[name][0], str) and dims[name][1:] == [LENGTH]
    assert not list(out.parent.glob('.export-*'))  # no temporary file left


def test_onnx_matches_pytorch_on_real_samples_at_batch_4(exported, rrsisd_root):
    _, checkpoint, out, _ = exported
    model = init_model(CONFIG, str(checkpoint),
                       cfg_options=options_dict(export_options(rrsisd_root)))
    pipeline = get_inference_pipeline(model)
    records = split_records(rrsisd_root, 'test') + split_records(rrsisd_root, 'val')[:1]
    batch = pseudo_collate([pipeline(r['img_path'], r['expression']) for r in records])
    data = model.data_preprocessor(batch, False)
    text = data['text']
    inputs = (data['inputs'], text['input_ids'], text['attention_mask'], text['object_mask'],
              text['position_mask'])
    assert inputs[0].shape == (4, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = model.forward_tensors(*inputs).numpy()
    session = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    (logits,) = session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    assert logits.shape == (4, 2, SIZE, SIZE)
    assert np.abs(logits - expected).max() <= 1e-3
    margin = expected[:, 1] - expected[:, 0]
    clear = np.abs(margin) > 1e-2
    assert np.array_equal(logits.argmax(1)[clear], expected.argmax(1)[clear])


def test_failed_check_never_replaces_the_output(exported, tmp_path):
    _, checkpoint, out, _ = exported
    target = tmp_path / 'model.onnx'
    target.write_bytes(b'previous model')
    model = init_model(CONFIG, str(checkpoint),
                       cfg_options=options_dict(export_options('unused')))
    checks = {1: onnx_export.example_inputs(model, 1, SIZE, SIZE, LENGTH)}
    reference = onnx_export.torch_reference(model)

    def shifted(inputs):  # disagrees with the exported graph by 1 everywhere
        return reference(inputs) + 1.0

    candidate = tmp_path / 'candidate.onnx'
    shutil.copy(out, candidate)
    passed, differences = onnx_export.check_and_commit(str(candidate), str(target), shifted, checks,
                                                1e-3)
    assert not passed and differences[1] == pytest.approx(1.0, abs=1e-3)
    assert target.read_bytes() == b'previous model' and not candidate.exists()
    # --keep-failed keeps the rejected model beside the output
    shutil.copy(out, candidate)
    passed, _ = onnx_export.check_and_commit(str(candidate), str(target), shifted, checks, 1e-3,
                                      keep_failed=True)
    assert not passed and (tmp_path / 'model.failed.onnx').is_file()
    assert target.read_bytes() == b'previous model'
    # the unshifted reference passes and moves the candidate onto the output
    shutil.copy(out, candidate)
    passed, _ = onnx_export.check_and_commit(str(candidate), str(target), reference, checks, 1e-3)
    assert passed and target.read_bytes() == out.read_bytes() and not candidate.exists()


def test_cli_exits_non_zero_with_the_difference(exported, tmp_path, monkeypatch, capsys):
    tool, checkpoint, out, _ = exported
    target = tmp_path / 'cli.onnx'
    target.write_bytes(b'previous model')
    # reuse the exported graph instead of exporting again; the reference is off by 0.5
    monkeypatch.setattr(onnx_export, 'export', lambda model, path, inputs, opset=None:
                        shutil.copy(out, path))
    original = onnx_export.torch_reference
    monkeypatch.setattr(onnx_export, 'torch_reference',
                        lambda model: (lambda inputs: original(model)(inputs) + 0.5))
    with pytest.raises(SystemExit) as stop:
        tool.main([CONFIG, str(checkpoint), str(target), '--shape', str(SIZE), str(SIZE),
                   '--length', str(LENGTH), '--cfg-options', *tiny_test_options('unused')])
    assert stop.value.code == 1
    captured = capsys.readouterr()
    assert 'batch 1: 0.5' in captured.out and 'FAILED' in captured.err
    assert target.read_bytes() == b'previous model'
    assert not list(tmp_path.glob('.export-*'))


def test_init_model_with_onnx_gives_the_pytorch_results(exported, rrsisd_root):
    """``init_model(..., onnx=FILE)``: inference_model's logits and masks through
    onnxruntime, within the bound the export tool checked the file against (--atol 1e-3:
    float32 with other kernels and summation orders; 3e-4 measured here)."""
    _, checkpoint, out, _ = exported
    options = options_dict(export_options(rrsisd_root))
    records = split_records(rrsisd_root, 'test')
    images, texts = [r['img_path'] for r in records], [r['expression'] for r in records]
    exact = inference_model(init_model(CONFIG, str(checkpoint), cfg_options=options),
                            images, texts)
    model = init_model(CONFIG, str(checkpoint), cfg_options=options, onnx=str(out))
    assert model.inference_backend == 'onnxruntime'
    calls = []
    model.decode_head.forward = lambda *a, **k: calls.append(1)  # PyTorch's head must not run
    ran = inference_model(model, images, texts)
    assert not calls
    for got, want in zip(ran, exact):
        difference = (got.seg_logits.data - want.seg_logits.data).abs().max().item()
        assert difference <= ONNX_ATOL
        margin = want.seg_logits.data[1] - want.seg_logits.data[0]
        clear = margin.abs() > 2 * ONNX_ATOL
        assert torch.equal(got.pred_sem_seg.data[0][clear], want.pred_sem_seg.data[0][clear])


def test_onnx_of_another_geometry_is_refused_with_its_sizes(exported, rrsisd_root, tmp_path):
    _, checkpoint, out, _ = exported
    options = options_dict(tiny_test_options(rrsisd_root))  # 96x96 input: not the graph's
    model = init_model(CONFIG, str(checkpoint), cfg_options=options, onnx=str(out))
    record = split_records(rrsisd_root, 'test')[0]
    with pytest.raises(ValueError, match=rf'exported for {SIZE}x{SIZE} images and {LENGTH} '):
        inference_model(model, record['img_path'], record['expression'])
    with pytest.raises(FileNotFoundError, match='does not exist'):
        init_model(CONFIG, str(checkpoint), cfg_options=options, onnx=str(tmp_path / 'x.onnx'))
    with pytest.raises(ValueError, match="give precision='fp32'"):
        init_model(CONFIG, str(checkpoint), cfg_options=options, onnx=str(out),
                   precision='bf16')


def test_benchmark_times_the_onnxruntime_path(exported, capsys):
    """``benchmark.py --path onnxruntime --onnx FILE``: the graph's step, with the PyTorch
    step's FLOPs."""
    _, _, out, _ = exported
    tool = load_script('tools/analysis_tools/benchmark.py')
    tool.main([CONFIG, '--random-init', '--batch', '2', '--size', str(SIZE), str(SIZE),
               '--length', str(LENGTH), '--iters', '1', '--warmup', '0', '--device', 'cpu',
               '--mode', 'infer', '--compare', 'config', 'onnxruntime', '--interleave',
               '--onnx', str(out), '--cfg-options', *as_cli_options(tiny_model_overrides())])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith('{')]
    config, onnx_path, summary = lines
    assert onnx_path['path'] == 'onnxruntime' and onnx_path['gflop'] == config['gflop'] > 0
    assert set(summary['summary']['speedup_vs_config']) == {'config', 'onnxruntime'}
    with pytest.raises(SystemExit):
        tool.parse_args([CONFIG, '--mode', 'infer', '--path', 'onnxruntime'])  # no --onnx
