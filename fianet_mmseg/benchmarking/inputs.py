"""Synthetic batches in the data loader's format: random images, boxes and text fields."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from torch import Tensor, nn

from .settings import BenchmarkSettings

#: Word-piece ids of [PAD], [CLS] and [SEP] in the uncased BERT vocabulary.
PAD_ID, CLS_ID, SEP_ID = 0, 101, 102
#: A mix in the styles of RRSIS-D and RefSegRS (see docs/data_preparation.md).
EXPRESSIONS = (
    'The gray small windmill',
    'A tennis court on the lower left',
    'The airport in the middle',
    'A oval ground track field',
    'The basketball court is on the right of the tennis court in the middle',
    'The expressway toll station in the middle',
    'A large frustum of a cone chimney',
    'The baseball field on the top',
    'The leftmost storage tank next to the white storage tank on the bottom',
    'The ship docked at the harbor on the upper right of the image',
    'Expressway-Service-area on the lower left of the roundabout',
    'A white vehicle parked along the road in the upper left corner',
    'The overpass crossing the river',
    'car',
    'road marking',
    'heavy-duty vehicle',
    'light-duty vehicle driving on the road',
    'building along the road',
    'low vegetation surrounded by building',
    'building with a parking lot',
    'trailer in the parking area',
    'long truck',
    'impervious surface between the building and the sidewalk',
    'trees on both sides of the bikeway',
)


def tokenize_expressions(expressions: Sequence[str], max_length: int,
                         tokenizer: Optional[str] = None) -> Optional[List[Dict[str, Tensor]]]:
    """Decouple and tokenise expressions as the data pipeline does.

    Returns:
        list[dict] | None: Per expression the four (L,) int64 text fields,
        or None when the tokenizer (default: the offline demo vocabulary,
        uncased BERT) is not installed.
    """
    from ..text import ExpressionEncoder, TextDecoupler
    from ..utils import DEMO_TEXT_ENCODER

    try:
        encoder = ExpressionEncoder(tokenizer or DEMO_TEXT_ENCODER, max_length)
    except (OSError, ImportError):
        return None
    decoupler = TextDecoupler()
    return [{key: torch.as_tensor(value, dtype=torch.long)
             for key, value in encoder(text, decoupler(text)).items()}
            for text in expressions]


def random_text(length: int, vocab_size: int, gen: torch.Generator) -> Dict[str, Tensor]:
    """``[CLS] words [SEP]`` then padding, with an object and a position phrase.

    3 to ``min(L - 2, 14)`` words; the object phrase is 1-3 words from the
    second word on, the position phrase the words after it (or the whole
    expression, as the tokenizer does for expressions without one).
    """
    if vocab_size <= SEP_ID + 1:
        raise ValueError(f'random text needs a vocabulary above {SEP_ID + 1}, got {vocab_size}')
    words = int(torch.randint(3, max(4, min(length - 2, 14) + 1), (1,), generator=gen))
    ids = torch.full((length,), PAD_ID, dtype=torch.long)
    first_word = 1000 if vocab_size > 2000 else SEP_ID + 1  # past the special tokens
    ids[1:words + 1] = torch.randint(first_word, vocab_size, (words,), generator=gen)
    ids[0], ids[words + 1] = CLS_ID, SEP_ID
    attention = (ids != PAD_ID).long()
    object_end = min(words, 2 + int(torch.randint(0, 3, (1,), generator=gen)))
    object_mask = torch.zeros(length, dtype=torch.long)
    object_mask[2:object_end + 1] = 1
    position_mask = torch.zeros(length, dtype=torch.long)
    position_mask[object_end + 1:words + 1] = 1
    if not position_mask.any():
        position_mask = attention.clone()
    return dict(input_ids=ids, attention_mask=attention, object_mask=object_mask,
                position_mask=position_mask)


def synthetic_batch(batch: int, size: Tuple[int, int], length: int, vocab_size: int = 30522,
                    seed: int = 0, texts: Optional[Sequence[Dict[str, Tensor]]] = None) -> dict:
    """A batch as the data loader yields it, from random numbers.

    Images are uint8 (3, H, W); each sample has a rectangular referred
    object in ``gt_sem_seg`` and the four text fields of
    :data:`~fianet_mmseg.constants.TEXT_KEYS` (L,): taken in turn from
    ``texts`` (see :func:`tokenize_expressions`) or made by
    :func:`random_text`.

    Returns:
        dict: ``inputs`` (list of B uint8 tensors) and ``data_samples``.
    """
    from mmseg.structures import SegDataSample

    if length < 6:
        raise ValueError(f'synthetic text needs length >= 6, got {length}')
    height, width = size
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for index in range(batch):
        inputs.append(torch.randint(0, 256, (3, height, width), dtype=torch.uint8,
                                    generator=gen))
        top, left = (int(torch.randint(0, max(1, d // 2), (1,), generator=gen)) for d in size)
        gt = torch.zeros(1, height, width, dtype=torch.long)
        gt[:, top:top + height // 3 + 1, left:left + width // 3 + 1] = 1
        text = texts[index % len(texts)] if texts else random_text(length, vocab_size, gen)
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt))
        sample.set_metainfo(dict(img_shape=(height, width), ori_shape=(height, width),
                                 pad_shape=(height, width), padding_size=[0, 0, 0, 0]))
        sample.set_data(dict(text))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def synthetic_data(settings: BenchmarkSettings, cfg: Config, model: Optional[nn.Module] = None,
                   vocab: Optional[int] = None) -> Tuple[dict, dict]:
    """The synthetic batch of a run and a description of its inputs.

    Sizes come from the settings, else the config (``img_scale``, ``max_length``),
    else 480x480 and 22. The text is :data:`EXPRESSIONS` tokenised when
    ``settings.text == 'expressions'`` and the vocabulary (``vocab``, default the
    model's text encoder's) is the uncased BERT one, else random word pieces.

    Returns:
        tuple: ``(batch, dict(size=[H, W], length=L, text='expressions' | 'random'))``.
    """
    size = tuple(settings.size or cfg.get('img_scale') or (480, 480))
    length = settings.length or cfg.get('max_length') or 22
    vocab = vocab or model.text_encoder.bert.config.vocab_size
    texts = None
    if settings.text == 'expressions' and vocab >= 30522:
        texts = tokenize_expressions(EXPRESSIONS, length)
    data = synthetic_batch(settings.batch, size, length, vocab, seed=settings.seed, texts=texts)
    return data, dict(size=list(size), length=length, text='expressions' if texts else 'random')
