"""An independent, deliberately plain FIANet written from docs/reference.md.

Test oracle only. It follows the reference implementation's structure and
parameter names (the layout of ``official_keys`` in the parity fixture), with
the official Swin written out by hand (window partition, cyclic shift,
concatenating patch merging). ``test_model_parity.py`` first checks it against
the reference logits of the parity fixture
(``tests/fixtures/reference_logits_small.pt``), then uses it to check the project's model
in configurations the fixture does not cover.
"""
from __future__ import annotations

import math
import zlib
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import BertConfig, BertModel


def fill_like_fixture(name: str, shape: Sequence[int]) -> Tensor:
    """The parity fixture's deterministic weight rule (tests/fixtures/README.md)."""
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode('utf-8')))
    shape = tuple(shape)
    if name.endswith('running_var'):
        return torch.rand(shape, generator=gen) + 0.5
    if name.endswith('running_mean'):
        return torch.randn(shape, generator=gen) * 0.1
    if len(shape) == 1 and name.endswith('.weight'):
        return 1 + 0.1 * torch.randn(shape, generator=gen)
    if len(shape) == 1:
        return 0.05 * torch.randn(shape, generator=gen)
    return torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]))


# ----------------------------------------------------------------- Swin parts
class WindowAttention(nn.Module):

    def __init__(self, dim: int, window: int, heads: int) -> None:
        super().__init__()
        self.window, self.heads = window, heads
        self.scale = (dim // heads)**-0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1)**2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window),
                                            indexing='ij')).flatten(1)  # (2, w*w)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        index = rel[..., 0] * (2 * window - 1) + rel[..., 1]
        self.register_buffer('relative_position_index', index, persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask) -> Tensor:
        nwb, n, c = x.shape
        qkv = self.qkv(x).reshape(nwb, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.reshape(nwb // nw, nw, self.heads, n, n) + mask[None, :, None]
            attn = attn.reshape(-1, self.heads, n, n)
        out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(nwb, n, c)
        return self.proj(out)


class Mlp(nn.Module):

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def to_windows(x: Tensor, w: int) -> Tensor:
    b, h, wd, c = x.shape
    x = x.reshape(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def from_windows(windows: Tensor, w: int, h: int, wd: int) -> Tensor:
    b = windows.shape[0] // ((h // w) * (wd // w))
    x = windows.reshape(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, -1)


class SwinBlock(nn.Module):

    def __init__(self, dim: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.mlp = Mlp(dim)

    def forward(self, x: Tensor, h: int, w: int, mask) -> Tensor:
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).reshape(b, h, w, c)
        pad_b, pad_r = (-h) % self.window, (-w) % self.window
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        if self.shift:
            x = torch.roll(x, (-self.shift, -self.shift), dims=(1, 2))
        x = from_windows(self.attn(to_windows(x, self.window), mask if self.shift else None),
                         self.window, hp, wp)
        if self.shift:
            x = torch.roll(x, (self.shift, self.shift), dims=(1, 2))
        x = x[:, :h, :w].reshape(b, h * w, c)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        x = F.pad(x.reshape(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
        x = torch.cat(parts, -1).reshape(b, -1, 4 * c)
        return self.reduction(self.norm(x))


# --------------------------------------------------------------- FIANet parts
class SILA(nn.Module):

    def __init__(self, v_in: int, l_in: int, key: int, value: int, out: int, heads: int) -> None:
        super().__init__()
        self.key_channels, self.value_channels, self.heads = key, value, heads
        self.f_query = nn.Sequential(nn.Conv1d(v_in, key, 1), nn.InstanceNorm1d(key))
        self.f_key = nn.Sequential(nn.Conv1d(l_in, key, 1))
        self.f_value = nn.Sequential(nn.Conv1d(l_in, value, 1))
        self.W = nn.Sequential(nn.Conv1d(value, out, 1), nn.InstanceNorm1d(out))

    def forward(self, x: Tensor, lang: Tensor, mask: Tensor) -> Tensor:
        b, n = x.shape[:2]
        m = mask.float().unsqueeze(1)  # (B, 1, L)
        q = self.f_query(x.permute(0, 2, 1)).permute(0, 2, 1)  # (B, N, K)
        k = self.f_key(lang) * m
        v = self.f_value(lang) * m
        nl = k.shape[-1]
        q = q.reshape(b, n, self.heads, -1).permute(0, 2, 1, 3)
        k = k.reshape(b, self.heads, -1, nl)
        v = v.reshape(b, self.heads, -1, nl)
        sim = (self.key_channels**-0.5) * (q @ k) + (10000.0 * m.unsqueeze(1) - 10000.0)
        out = sim.softmax(-1) @ v.permute(0, 1, 3, 2)
        out = out.permute(0, 2, 1, 3).reshape(b, n, self.value_channels)
        return self.W(out.permute(0, 2, 1)).permute(0, 2, 1)


def tanh_gate(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim, bias=False), nn.ReLU(),
                         nn.Linear(dim, dim, bias=False), nn.Tanh())


class PWAM(nn.Module):

    def __init__(self, dim: int, l_in: int, heads: int) -> None:
        super().__init__()
        self.vis_project = nn.Sequential(nn.Conv1d(dim, dim, 1), nn.GELU())
        self.image_lang_att = SILA(dim, l_in, dim, dim, dim, heads)
        self.project_mm = nn.Sequential(nn.Conv1d(dim, dim, 1), nn.GELU())

    def forward(self, x, lang, mask):
        vis = self.vis_project(x.permute(0, 2, 1))
        att = self.image_lang_att(x, lang, mask).permute(0, 2, 1)
        return self.project_mm(vis * att).permute(0, 2, 1)


class OPAB(nn.Module):

    def __init__(self, dim: int, l_in: int, heads: int) -> None:
        super().__init__()
        self.go_cross_attn = SILA(dim, l_in, dim, dim, dim, heads)
        self.go_tanh_gating = tanh_gate(dim)
        self.go_embedding = nn.Linear(dim, dim, bias=False)  # unused, as in the reference
        self.sp_cross_attn = SILA(dim, l_in, dim, dim, dim, heads)
        self.conv1 = nn.Conv2d(2, 1, 3, padding=1, bias=False)

    def forward(self, x, h, w, t, t_mask, p, p_mask):
        o = self.go_cross_attn(x, t, t_mask)
        o = self.go_tanh_gating(o) * o
        s = self.sp_cross_attn(x, p, p_mask).permute(0, 2, 1).reshape(x.shape[0], -1, h, w)
        s = torch.cat([s.mean(1, keepdim=True), s.max(1, keepdim=True)[0]], 1)
        s = torch.sigmoid(self.conv1(s)).flatten(2).permute(0, 2, 1)
        return o * s


class Stage(nn.Module):

    def __init__(self, dim, depth, heads, window, l_in, fusion_heads, downsample):
        super().__init__()
        self.window = window
        self.blocks = nn.ModuleList(
            [SwinBlock(dim, heads, window, 0 if i % 2 == 0 else window // 2)
             for i in range(depth)])
        self.fc1, self.fc2 = nn.Linear(dim, dim // 8), nn.Linear(dim // 8, dim)
        self.context_pixel_attn = PWAM(dim, l_in, fusion_heads)
        self.context_tanh_gate = tanh_gate(dim)
        self.object_position_align_blk = OPAB(dim, l_in, fusion_heads)
        self.downsample = PatchMerging(dim) if downsample else None

    def shift_mask(self, h: int, w: int) -> Tensor:
        win, shift = self.window, self.window // 2
        hp, wp = math.ceil(h / win) * win, math.ceil(w / win) * win
        img = torch.zeros(1, hp, wp, 1)
        label = 0
        for hs in (slice(0, -win), slice(-win, -shift), slice(-shift, None)):
            for ws in (slice(0, -win), slice(-win, -shift), slice(-shift, None)):
                img[:, hs, ws] = label
                label += 1
        windows = to_windows(img, win).squeeze(-1)
        diff = windows.unsqueeze(1) - windows.unsqueeze(2)
        return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)

    def forward(self, x, h, w, text):
        mask = self.shift_mask(h, w)
        for block in self.blocks:
            x = block(x, h, w, mask)
        lang, l_mask, t, t_mask, p, p_mask = text
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(1))))).unsqueeze(1)
        r = self.context_pixel_attn(x, lang, l_mask)
        r_gated = self.context_tanh_gate(r) * r
        a = self.object_position_align_blk(x, h, w, t, t_mask, p, p_mask)
        x = x + (r_gated + a) * gate
        if self.downsample is None:
            return r, x, h, w
        return r, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 4, 4)
        self.norm = nn.LayerNorm(dim)

    def forward(self, img):
        img = F.pad(img, (0, (-img.shape[3]) % 4, 0, (-img.shape[2]) % 4))
        x = self.proj(img)
        h, w = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class TMABlock(nn.Module):

    def __init__(self, dim: int, l_in: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.tma = SILA(dim, l_in, dim, dim, dim, 1)
        self.ff = nn.Module()
        self.ff.net = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(0.0),
                                    nn.Linear(2 * dim, dim))

    def forward(self, z, lang, mask):
        z = z + self.tma(self.norm1(z), lang, mask)
        return z + self.ff.net(self.norm2(z))


class ScaleGate(nn.Module):

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.local_embedding, self.bn1 = nn.Conv2d(dim, dim, 1), nn.BatchNorm2d(dim)
        self.global_embedding, self.bn2 = nn.Conv2d(dim, dim, 1), nn.BatchNorm2d(dim)
        self.global_act, self.bn3 = nn.Conv2d(dim, dim, 1), nn.BatchNorm2d(dim)

    def forward(self, a, b):
        size = a.shape[2:]
        act = F.relu6(self.bn3(self.global_act(b)) + 3) / 6
        act = F.interpolate(act, size=size, mode='bilinear', align_corners=False)
        glob = F.interpolate(self.bn2(self.global_embedding(b)), size=size, mode='bilinear',
                             align_corners=False)
        return self.bn1(self.local_embedding(a)) * act + glob


class TMEM(nn.Module):

    def __init__(self, dims: List[int], l_in: int, blocks: int) -> None:
        super().__init__()
        self.dims = dims
        total = sum(dims)
        self.down_channel = nn.Conv2d(total, total // 4, 1)
        self.block = nn.ModuleList([TMABlock(total // 4, l_in) for _ in range(blocks)])
        self.bn = nn.BatchNorm2d(total // 4)
        self.up_channel = nn.Conv2d(total // 4, total, 1)
        self.fusion = nn.ModuleList([ScaleGate(d) for d in dims])

    def forward(self, feats, lang, mask):
        size = feats[-1].shape[2:]
        z = self.down_channel(torch.cat([F.adaptive_avg_pool2d(f, size) for f in feats], 1))
        b, c = z.shape[:2]
        tokens = z.flatten(2).transpose(1, 2)
        for blk in self.block:
            tokens = blk(tokens, lang, mask)
        z = self.up_channel(self.bn(tokens.transpose(1, 2).reshape(b, c, *size)))
        parts = torch.split(z, self.dims, 1)
        return [g(f, part) for g, f, part in zip(self.fusion, feats, parts)]


class Backbone(nn.Module):

    def __init__(self, embed, depths, heads, window, l_in, fusion_heads, tmem_blocks):
        super().__init__()
        dims = [embed * 2**i for i in range(len(depths))]
        self.patch_embed = PatchEmbed(embed)
        self.layers = nn.ModuleList([
            Stage(dims[i], depths[i], heads[i], window, l_in, fusion_heads[i],
                  i < len(depths) - 1) for i in range(len(depths))])
        for i, d in enumerate(dims):
            self.add_module(f'norm{i}', nn.LayerNorm(d))
        self.tmem = TMEM(dims, l_in, tmem_blocks)

    def forward(self, img, text):
        x, h, w = self.patch_embed(img)
        outs = []
        for i, layer in enumerate(self.layers):
            r, x, h_next, w_next = layer(x, h, w, text)
            r = getattr(self, f'norm{i}')(r)
            outs.append(r.transpose(1, 2).reshape(r.shape[0], -1, h, w))
            h, w = h_next, w_next
        return self.tmem(outs, text[0], text[1])


class Decoder(nn.Module):

    def __init__(self, dims: List[int], hidden: int = 512) -> None:
        super().__init__()
        ins = {4: dims[3] + dims[2], 3: hidden + dims[1], 2: hidden + dims[0]}
        for s, cin in ins.items():
            self.add_module(f'conv1_{s}', nn.Conv2d(cin, hidden, 3, padding=1, bias=False))
            self.add_module(f'bn1_{s}', nn.BatchNorm2d(hidden))
            self.add_module(f'conv2_{s}', nn.Conv2d(hidden, hidden, 3, padding=1, bias=False))
            self.add_module(f'bn2_{s}', nn.BatchNorm2d(hidden))
        self.conv1_1 = nn.Conv2d(hidden, 2, 1)

    def forward(self, c4, c3, c2, c1):
        x = c4
        for s, skip in ((4, c3), (3, c2), (2, c1)):
            if x.shape[-2] < skip.shape[-2] or x.shape[-1] < skip.shape[-1]:
                x = F.interpolate(x, size=skip.shape[2:], mode='bilinear', align_corners=True)
            x = torch.cat([x, skip], 1)
            x = F.relu(getattr(self, f'bn1_{s}')(getattr(self, f'conv1_{s}')(x)))
            x = F.relu(getattr(self, f'bn2_{s}')(getattr(self, f'conv2_{s}')(x)))
        return self.conv1_1(x)


class ReferenceFIANet(nn.Module):
    """The reference model's computation, keys as in ``official_keys``."""

    def __init__(self, embed=128, depths=(2, 2, 2, 2), heads=(4, 8, 16, 32), window=12,
                 fusion_heads=(1, 1, 1, 1), tmem_blocks=1, bert: dict | None = None) -> None:
        super().__init__()
        bert_config = BertConfig(**(bert or {}))
        dims = [embed * 2**i for i in range(len(depths))]
        self.backbone = Backbone(embed, depths, heads, window, bert_config.hidden_size,
                                 fusion_heads, tmem_blocks)
        self.classifier = Decoder(dims)
        self.text_encoder = BertModel(bert_config, add_pooling_layer=False)

    def forward(self, img, input_ids, attention_mask, object_mask, position_mask):
        feats = []
        for mask in (attention_mask, object_mask, position_mask):
            hidden = self.text_encoder(input_ids, attention_mask=mask).last_hidden_state
            feats += [hidden.permute(0, 2, 1), mask]
        c1, c2, c3, c4 = self.backbone(img, feats)
        logits = self.classifier(c4, c3, c2, c1)
        return F.interpolate(logits, size=img.shape[2:], mode='bilinear', align_corners=True)

    def fill_(self) -> dict:
        """Fill every weight with the fixture rule; returns the state dict."""
        state = {k: fill_like_fixture(k, v.shape) for k, v in self.state_dict().items()
                 if not k.endswith('num_batches_tracked')}
        self.load_state_dict(state, strict=False)
        return state


# ------------------------------------------------------------ loss, benchmark
def reference_loss(logits: Tensor, target: Tensor) -> Tensor:
    """docs/reference.md section 7: 0.9 * weighted-mean CE (class weights 0.9 / 1.1) +
    0.1 * Dice summed over samples and classes."""
    weight = torch.tensor([0.9, 1.1], dtype=logits.dtype, device=logits.device)
    ce = F.cross_entropy(logits, target, weight=weight)  # weighted mean
    prob = logits.softmax(dim=1)
    one_hot = F.one_hot(target, 2).permute(0, 3, 1, 2).to(logits.dtype)
    inter = (prob * one_hot).sum(dim=(2, 3))
    dice = 1 - (2 * inter + 1e-6) / (prob.sum(dim=(2, 3)) + one_hot.sum(dim=(2, 3)) + 1e-6)
    return 0.9 * ce + 0.1 * dice.sum()


def build_reference(cfg, device: str = 'cpu') -> ReferenceFIANet:
    """The oracle at the sizes of an mmengine config of the project's model.

    The config's widths, depths, heads, window, fusion heads, TMEM blocks, decoder
    width and text encoder architecture, random weights; the same text encoder
    parameters train as in the config (embeddings and ``trainable_layers``; a fully
    frozen encoder stays in eval mode, as the project's does, ``text_frozen``). Not
    built: the demo's absolute position embedding (one addition).
    """
    from fianet_mmseg.benchmarking.settings import text_encoder_arch

    backbone, neck = cfg.model.backbone, cfg.model.get('neck')
    if neck is None:
        raise ValueError('the reference oracle always has TMEM; the config has neck=None')
    depths = list(backbone.depths)
    heads = backbone.get('fusion_num_heads', 1)
    heads = [heads] * len(depths) if isinstance(heads, int) else list(heads)
    model = ReferenceFIANet(embed=backbone.embed_dims, depths=depths,
                            heads=list(backbone.num_heads), window=backbone.window_size,
                            fusion_heads=heads, tmem_blocks=neck.get('num_blocks', 3),
                            bert=text_encoder_arch(cfg))
    dims = [backbone.embed_dims * 2**i for i in range(len(depths))]
    model.classifier = Decoder(dims, cfg.model.decode_head.get('channels', 512))
    encoder = cfg.model.text_encoder
    trainable = encoder.get('trainable_layers', list(range(10)))
    bert = model.text_encoder
    layers = range(bert.config.num_hidden_layers) if trainable is None else set(trainable)
    bert.embeddings.requires_grad_(bool(encoder.get('train_embeddings', False)))
    for index, layer in enumerate(bert.encoder.layer):
        layer.requires_grad_(index in layers)
    model.text_frozen = not any(p.requires_grad for p in bert.parameters())
    return model.to(device)


def benchmark_step(cfg, data: dict, mode: str, device: str = 'cpu'):
    """The benchmark's baseline (``benchmark.py --baseline tests/reference_fianet.py:
    benchmark_step``): ``(oracle, step)``, one training step (:func:`reference_loss`,
    torch's AdamW, lr from the config, weight decay 0.01) or one inference on ``data``.

    Every call normalises the uint8 batch as the data preprocessor does (the
    project's step includes it too).
    """
    from fianet_mmseg.constants import TEXT_KEYS

    model = build_reference(cfg, device)
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, 3, 1, 1)
    images = torch.stack(data['inputs']).to(device)
    samples = data['data_samples']
    text = {key: torch.stack([s.get(key) for s in samples]).to(device) for key in TEXT_KEYS}
    target = torch.stack([s.gt_sem_seg.data[0] for s in samples]).to(device)

    def normalised() -> Tensor:
        img = images.float()
        if pre.get('bgr_to_rgb', False):
            img = img.flip(1)
        return (img - mean) / std

    if mode == 'infer':
        model.eval()

        def infer() -> None:
            with torch.no_grad():
                model(normalised(), **text).argmax(dim=1)

        return model, infer
    if mode != 'train':
        raise ValueError(f"mode must be 'train' or 'infer', got {mode!r}")
    model.train()
    if model.text_frozen:
        model.text_encoder.eval()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=cfg.optim_wrapper.optimizer.get('lr', 3e-5),
                                  weight_decay=0.01)

    def train() -> None:
        loss = reference_loss(model(normalised(), **text), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return model, train
