default_scope = 'mmseg'
# Registers FIANet's components (fianet_mmseg.REGISTERING_MODULES; importing the package
# first installs the mmcv-lite stand-ins) before mmseg builds anything.
custom_imports = dict(
    imports=['fianet_mmseg.models', 'fianet_mmseg.datasets', 'fianet_mmseg.evaluation',
             'fianet_mmseg.visualization', 'fianet_mmseg.engine'],
    allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
# Prediction | ground truth overlays with the expression (phrases marked) as caption.
visualizer = dict(type='RefSegVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=2401)  # the reference's seed
# DDP without fixed device ids: works for one GPU per process and for CPU (gloo) runs.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', device_ids=None,
                         broadcast_buffers=False, find_unused_parameters=False)
