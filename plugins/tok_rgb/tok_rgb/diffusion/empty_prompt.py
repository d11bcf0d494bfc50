"""Write a pipeline folder's `empty_prompt.safetensors`: its text encoder's output for "".

    python -m tok_rgb.diffusion.empty_prompt pipelines/stable-diffusion-v1-5

The `controlnet` decoder conditions the UNet on the empty prompt only, so the embedding is
computed once, here, from the folder's `tokenizer/` and `text_encoder/` (CLIP, as the
Stable Diffusion pipelines hold them; needs `transformers`), padded to the tokenizer's
`model_max_length` as diffusers' pipelines do, and no text encoder runs in training or
decoding. Reads safetensors weights only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tok_rgb.diffusion.pipeline import write_empty_prompt


@torch.no_grad()
def empty_prompt_embedding(folder: str | Path) -> torch.Tensor:
    """`(1, model_max_length, hidden)`: the last hidden state of the folder's text encoder for ""."""
    try:
        from transformers import CLIPTextModel, CLIPTokenizer
    except ImportError as exc:
        raise SystemExit(f"computing the empty prompt's embedding needs transformers ({exc}): pip install transformers")
    folder = Path(folder)
    for sub in ("tokenizer", "text_encoder"):
        if not (folder / sub).is_dir():
            raise SystemExit(f"{folder} has no {sub}/; the embedding is computed with the pipeline's own text encoder")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", use_safetensors=True, local_files_only=True).eval()
    ids = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return encoder(ids)[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tok_rgb.diffusion.empty_prompt", description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="a diffusers pipeline folder with tokenizer/ and text_encoder/")
    args = p.parse_args(argv)
    file = write_empty_prompt(args.folder, empty_prompt_embedding(args.folder))
    print(f"wrote {file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
