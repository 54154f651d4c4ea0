"""Train FIANet (or any mmseg model) from a config with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp] [--auto-scale-lr]
        [--cfg-options key=value ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os

from mmengine.config import DictAction

from fianet_mmseg.utils.run_config import (
    build_runner,
    default_device,
    load_run_config,
    use_mixed_precision,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a FIANet segmentor')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: float16 AmpOptimWrapper on GPU, bfloat16 '
                        'AutocastOptimWrapper on CPU')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by (GPUs x batch per GPU) / '
                        'auto_scale_lr.base_batch_size (8, the reference batch)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_epochs=2 '
                        'model.backbone.depths="[2,2,2,2]"')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed training')
    # torch.distributed.launch passes --local-rank (torch >= 2) or --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    cfg = load_run_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp and cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
        use_mixed_precision(cfg, default_device())
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise KeyError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    cfg.resume = args.resume or cfg.get('resume', False)
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
