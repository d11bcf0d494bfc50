"""Build a config's tokenizer on the meta device (no memory, no weights) and print its parameter
counts and token range: a check that a GPU-size config such as `tokcore:titok-video-v1` builds.

    python scripts/titok_v1_params.py [CONFIG]    # default tokcore:titok-video-v1
"""

import sys

import torch

from tokcore import config
from tokcore.tokenizer import build_tokenizer

if __name__ == "__main__":
    spec = config.load(sys.argv[1] if len(sys.argv) > 1 else "tokcore:titok-video-v1").data
    with torch.device("meta"):
        tok = build_tokenizer(spec["model"], spec.get("modality"))
    info = tok.info()
    for part, count in info["parameters"].items():
        print(f"{part}: {count / 1e6:.1f} M parameters")
    print(f"input {info['input_shape']}, tokens {info['num_tokens']}, codebook {info['codebook_size']}")
