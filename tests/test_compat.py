"""mmcv-lite stand-ins and safe loading of mmengine checkpoints."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO

from fianet_mmseg.compat import MissingCompiledOpError, has_compiled_mmcv_ops


@pytest.mark.slow
def test_mmseg_imports_with_mmcv_lite():
    code = ('import fianet_mmseg, mmseg.models, mmseg.datasets, mmcv.ops; '
            'print(mmcv.ops.__fianet_standin__)')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == 'True'


@pytest.mark.skipif(has_compiled_mmcv_ops(), reason='full mmcv installed: no stand-ins')
def test_point_sample_standin_computes_like_grid_sample():
    from mmcv.ops import point_sample

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 7, 9, generator=gen)
    points = torch.rand(2, 11, 2, generator=gen)  # (x, y) in [0, 1]
    out = point_sample(feats, points, align_corners=False)
    grid = (2 * points - 1).unsqueeze(2)  # (B, P, 1, 2) in [-1, 1]
    expected = F.grid_sample(feats, grid, align_corners=False).squeeze(3)
    assert out.shape == (2, 3, 11)
    torch.testing.assert_close(out, expected)


@pytest.mark.skipif(has_compiled_mmcv_ops(), reason='full mmcv installed: no stand-ins')
def test_compiled_only_standins_raise_clearly():
    from mmcv.ops import CrissCrossAttention, PSAMask, sigmoid_focal_loss

    with pytest.raises(MissingCompiledOpError, match='sigmoid_focal_loss.*full mmcv'):
        sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 2.0, 0.25)
    with pytest.raises(MissingCompiledOpError, match='CrissCrossAttention'):
        CrissCrossAttention(8)
    with pytest.raises(MissingCompiledOpError, match='PSAMask'):
        PSAMask('collect', (3, 3))
    with pytest.raises(ModuleNotFoundError, match='mmcv.ops.nms is not available'):
        from mmcv.ops import nms  # noqa: F401


def test_mmseg_focal_loss_still_works_on_cpu():
    """mmseg's FocalLoss uses its pure-PyTorch path on CPU, never the stand-in."""
    from mmseg.registry import MODELS

    loss = MODELS.build(dict(type='FocalLoss', use_sigmoid=True, loss_weight=1.0))
    labels = torch.randint(0, 3, (2, 4, 4))
    one_hot = F.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    value = loss(torch.randn(2, 3, 4, 4), one_hot)
    assert torch.isfinite(value)


def test_no_standins_when_compiled_ops_exist():
    """With an ``mmcv._ext`` present the installer changes nothing."""
    code = '\n'.join([
        'import importlib.machinery, importlib.util, sys, types',
        "ext = types.ModuleType('mmcv._ext')",
        "ext.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)",
        "sys.modules['mmcv._ext'] = ext",
        "spec = importlib.util.spec_from_file_location(",
        f"    'standins', r'{REPO / 'fianet_mmseg' / 'compat' / 'mmcv_ops.py'}')",
        'mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)',
        'print(mod.install_mmcv_ops_standins(), "mmcv.ops" in sys.modules)',
    ])
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['False', 'False']


def test_mmengine_checkpoint_objects_load_safely(tmp_path):
    """What mmengine's CheckpointHook writes loads with torch's default safe loading."""
    from mmengine.logging import HistoryBuffer, MessageHub

    hub = MessageHub.get_instance('safe-load-test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/lr', torch.tensor(0.1))
    hub.update_info('best_score', torch.tensor(3.0).numpy())
    path = tmp_path / 'ckpt.pth'
    torch.save({'meta': {'message_hub': hub.state_dict(), 'seed': 2401},
                'state_dict': {'w': torch.ones(2)}}, path)
    loaded = torch.load(path)  # weights_only defaults to True on torch >= 2.6
    assert isinstance(loaded['meta']['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    # other pickled objects stay refused
    torch.save({'obj': object()}, tmp_path / 'other.pth')
    with pytest.raises(Exception, match='weights_only'):
        torch.load(tmp_path / 'other.pth')
