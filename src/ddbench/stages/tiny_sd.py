"""A tiny, randomly initialised Stable Diffusion folder built locally (tests, trying the SD path).

`build_tiny_stable_diffusion(folder)` writes a diffusers `StableDiffusionPipeline` folder
(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/) of about a few MB,
loadable with `from_pretrained(folder, local_files_only=True)`. Every part comes from a small
config; the CLIP tokenizer's vocabulary is a byte-level alphabet built here, so nothing is
downloaded. Its samples are noise-like: it exercises the code path, not image quality.

    python -m ddbench.stages.tiny_sd resources/tiny_sd
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

MAX_TOKENS = 32  # prompt length of the tiny text encoder (real CLIP: 77)
# a few merges so the tokenizer is a genuine BPE: "an", "im", "ag", "ima", "image</w>" ...
_MERGES = [("a", "n"), ("i", "m"), ("a", "g"), ("im", "ag"), ("imag", "e</w>"), ("o", "f</w>")]


def _byte_alphabet() -> list[str]:
    """CLIP's byte-level alphabet: one printable character for each of the 256 byte values."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_clip_tokenizer():
    """A CLIP BPE tokenizer over the byte alphabet (each byte, with and without `</w>`), plus a few merges."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for ch in _byte_alphabet():
            vocab[ch + suffix] = len(vocab)
    for left, right in _MERGES:
        vocab.setdefault(left + right, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=list(_MERGES), model_max_length=MAX_TOKENS)


def build_tiny_stable_diffusion(folder: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny StableDiffusionPipeline folder (random weights from `seed`) and return its path."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    tokenizer = tiny_clip_tokenizer()
    width = 32  # text embedding width = the UNet's cross-attention width
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=width,
            attention_head_dim=8,
            norm_num_groups=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            block_out_channels=(16, 32),
            latent_channels=4,
            norm_num_groups=8,
            sample_size=16,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=width,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=MAX_TOKENS,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m ddbench.stages.tiny_sd FOLDER")
    print(build_tiny_stable_diffusion(sys.argv[1]))
