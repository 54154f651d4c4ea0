"""The FIANet segmentor: text encoder + FIAM-Swin + TMEM + decoder."""
from __future__ import annotations

import copy
from typing import Dict, List, Optional

import torch.nn.functional as F
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from ...constants import INPUT_SIZE_PRED
from ..layers import TextFeatures
from ..utils import stack_text_inputs


@MODELS.register_module()
class FIANet(EncoderDecoder):
    """Referring segmentation with fine-grained image-text alignment.

    An mmseg :class:`EncoderDecoder` that also owns a text encoder. Each
    expression arrives as wordpiece ids plus three masks (whole expression,
    ground-object phrase, spatial-position phrases); the text encoder reads
    the ids once per mask, the backbone aligns every stage with the three
    views, the neck (TMEM) with the whole expression, and the head predicts
    two-class logits (background, referred object).

    Args:
        backbone (dict): Backbone config, normally ``FIAMSwinTransformer``.
        text_encoder (dict): Text encoder config (``BertTextEncoder``). Its
            width fills ``text_channels`` of backbone and neck when unset.
        decode_head (dict): Head config, normally ``SimpleDecodeHead``.
        neck (dict | None): Neck config (``TMEM``), or None for no neck.
        **kwargs: :class:`EncoderDecoder` arguments (``train_cfg``,
            ``test_cfg``, ``data_preprocessor``, ``init_cfg``...).
            ``test_cfg.mode`` must be ``'whole'``.

    Forward inputs:
        ``inputs`` (B, 3, H, W) normalised images, ``data_samples`` and
        ``text``: a dict of (B, L) tensors with the keys of
        :data:`~fianet_mmseg.constants.TEXT_KEYS` (built from the data
        samples when omitted).
    """

    def __init__(self, backbone: dict, text_encoder: dict, decode_head: dict,
                 neck: Optional[dict] = None, **kwargs) -> None:
        encoder = MODELS.build(text_encoder)
        backbone = copy.deepcopy(backbone)
        if backbone.get('text_channels') is None:
            backbone['text_channels'] = encoder.width
        if neck is not None:
            neck = copy.deepcopy(neck)
            if neck.get('text_channels') is None:
                neck['text_channels'] = encoder.width
        super().__init__(backbone=backbone, decode_head=decode_head, neck=neck, **kwargs)
        self.text_encoder = encoder
        mode = (self.test_cfg or {}).get('mode', 'whole')
        if mode != 'whole':
            raise ValueError(f"FIANet supports test_cfg.mode='whole' only, got {mode!r}: "
                             'each expression refers to the whole image')

    # ------------------------------------------------------------------ text
    def encode_text(self, text: Dict[str, Tensor]) -> TextFeatures:
        """Run the text encoder on the three views.

        Args:
            text (dict): ``input_ids``, ``attention_mask``, ``object_mask``,
                ``position_mask``, each (B, L).

        Returns:
            TextFeatures: word features (B, D, L) and float masks (B, L).
        """
        masks = [text['attention_mask'], text['object_mask'], text['position_mask']]
        feats = self.text_encoder(text['input_ids'], masks)
        dtype = feats[0].dtype
        return TextFeatures(*(f.transpose(1, 2) for f in feats), *(m.to(dtype) for m in masks))

    def _text_inputs(self, data_samples: OptSampleList,
                     text: Optional[Dict[str, Tensor]]) -> Dict[str, Tensor]:
        if text is not None:
            return text
        text = stack_text_inputs(data_samples)
        return {key: value.to(self.data_preprocessor.device) for key, value in text.items()}

    # ---------------------------------------------------------------- vision
    def extract_feat(self, inputs: Tensor, text: TextFeatures) -> List[Tensor]:
        """Images (B, 3, H, W) -> the four (neck-enhanced) maps."""
        feats = self.backbone(inputs, text)
        if self.with_neck:
            feats = self.neck(feats, text)
        return feats

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict],
                      text: Optional[Dict[str, Tensor]] = None) -> Tensor:
        """Logits (B, 2, H, W) at the input size of ``batch_img_metas``."""
        if text is None:
            raise ValueError('FIANet.encode_decode needs the text inputs')
        feats = self.extract_feat(inputs, self.encode_text(text))
        return self.decode_head.predict(feats, batch_img_metas, self.test_cfg)

    def forward_tensors(self, img: Tensor, input_ids: Tensor, attention_mask: Tensor,
                        object_mask: Tensor, position_mask: Tensor) -> Tensor:
        """Tensor-only forward for export and parity checks.

        Args:
            img (Tensor): Normalised images, (B, 3, H, W).
            input_ids, attention_mask, object_mask, position_mask (Tensor):
                (B, L) each.

        Returns:
            Tensor: Logits (B, 2, H, W), resized to the input bilinearly with
            align_corners True, like the reference.
        """
        text = dict(input_ids=input_ids, attention_mask=attention_mask,
                    object_mask=object_mask, position_mask=position_mask)
        logits = self.decode_head(self.extract_feat(img, self.encode_text(text)))
        return F.interpolate(logits, size=img.shape[2:], mode='bilinear',
                             align_corners=self.align_corners)

    # ---------------------------------------------------------- mmseg modes
    def forward(self, inputs: Tensor, data_samples: OptSampleList = None, mode: str = 'tensor',
                text: Optional[Dict[str, Tensor]] = None):
        """mmseg's three modes (``loss``, ``predict``, ``tensor``), with text."""
        text = self._text_inputs(data_samples, text)
        if mode == 'loss':
            return self.loss(inputs, data_samples, text)
        if mode == 'predict':
            return self.predict(inputs, data_samples, text)
        if mode == 'tensor':
            return self._forward(inputs, data_samples, text)
        raise RuntimeError(f'Invalid mode "{mode}". Only supports loss, predict and tensor mode')

    def loss(self, inputs: Tensor, data_samples: SampleList,
             text: Optional[Dict[str, Tensor]] = None) -> dict:
        """Losses of the decode (and auxiliary) heads."""
        text = self._text_inputs(data_samples, text)
        feats = self.extract_feat(inputs, self.encode_text(text))
        losses = dict()
        losses.update(self._decode_head_forward_train(feats, data_samples))
        if self.with_auxiliary_head:
            losses.update(self._auxiliary_head_forward_train(feats, data_samples))
        return losses

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None,
                text: Optional[Dict[str, Tensor]] = None) -> SampleList:
        """Masks at the original size (``pred_sem_seg``) and at the input size."""
        text = self._text_inputs(data_samples, text)
        if data_samples is not None:
            batch_img_metas = [sample.metainfo for sample in data_samples]
        else:
            shape = inputs.shape[2:]
            batch_img_metas = [dict(ori_shape=shape, img_shape=shape, pad_shape=shape,
                                    padding_size=[0, 0, 0, 0])] * inputs.shape[0]
        seg_logits = self.encode_decode(inputs, batch_img_metas, text)
        return self.postprocess_result(seg_logits, data_samples)

    def _forward(self, inputs: Tensor, data_samples: OptSampleList = None,
                 text: Optional[Dict[str, Tensor]] = None) -> Tensor:
        """Raw head logits at 1/4 of the input."""
        text = self._text_inputs(data_samples, text)
        return self.decode_head.forward(self.extract_feat(inputs, self.encode_text(text)))

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """mmseg's post-processing, plus the argmax at the input size.

        Besides ``seg_logits`` / ``pred_sem_seg`` (resized to the original
        image), every sample gets ``pred_sem_seg_at_input``: the argmax of the
        logits at the network's input size, which is what the reference
        evaluates. It is prepared as mmseg prepares ``seg_logits``: the
        padding cut off (``img_padding_size`` or ``padding_size``, both
        (left, right, top, bottom)) and a test-time flip undone.
        """
        at_input = []
        for index in range(seg_logits.shape[0]):
            meta = data_samples[index].metainfo if data_samples is not None else {}
            # the argmax (the first of equal maxima, as argmax): torch 2.13's CPU argmax over
            # a leading dim of 2 took 18 ms for 480x480, max's indices 0.8 ms
            at_input.append(_unpad_and_unflip(seg_logits[index], meta).max(
                dim=0, keepdim=True).indices)
        results = super().postprocess_result(seg_logits, data_samples)
        for sample, pred in zip(results, at_input):
            sample.set_data({INPUT_SIZE_PRED: PixelData(data=pred)})
        return results


def _unpad_and_unflip(logits: Tensor, meta: dict) -> Tensor:
    """(C, H, W) logits of one sample -> without padding, flip undone (mmseg's order)."""
    left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size',
                                                                     [0, 0, 0, 0]))
    height, width = logits.shape[1:]
    logits = logits[:, top:height - bottom, left:width - right]
    if meta.get('flip'):
        direction = meta.get('flip_direction')
        if direction not in ('horizontal', 'vertical'):
            raise ValueError(f'FIANet: unknown flip_direction {direction!r} in the metainfo')
        logits = logits.flip(dims=(2,) if direction == 'horizontal' else (1,))
    return logits
