"""A clip's frame count through the token store: `frame_count` reads it off a modality's
time axis at tokenize time, and `Tokenizer.decode(frames=)` hands it only to a decoder whose
`forward` names it (Cosmos's trims its padded clip to it)."""

import torch

from tokcore.tokenizer import build_tokenizer
from tokcore.tokens.tokenize import frame_count

CONV = {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "mid_attention": False}


def test_frame_count_comes_from_the_time_axis_of_the_layout():
    assert frame_count("CTHW", torch.zeros(2, 3, 5, 4, 4)) == 5
    assert frame_count("TC", torch.zeros(2, 16, 2)) == 16
    assert frame_count("CHW", torch.zeros(2, 3, 4, 4)) is None
    assert frame_count("", torch.zeros(2, 3)) is None  # no layout, no time axis
    assert frame_count("CTHW", ["text"]) is None


def tiny():
    return build_tokenizer({"encoder": {"name": "conv1d", "in_channels": 2, "out_dim": 3, **CONV},
                            "quantizer": {"name": "fsq", "levels": [5, 5, 5]},
                            "decoder": {"name": "conv1d", "in_dim": 3, "out_channels": 2, **CONV}})


def test_frames_reach_a_decoder_that_names_them_and_no_other():
    tok = tiny()
    x = torch.randn(2, 16, 2)
    tokens = tok.encode(x)
    plain = tok.decode(tokens)
    assert torch.equal(tok.decode(tokens, frames=7), plain)  # conv1d's forward does not take frames

    seen = []
    decode = tok.decoder.forward

    def forward(z, frames=None):  # a decoder that pads clips and trims them to `frames`
        seen.append(frames)
        out = decode(z)
        return out if frames is None else out[:, :frames]

    tok.decoder.forward = forward
    assert tok.decode(tokens, frames=7).shape == (2, 7, 2)
    assert tok.decode(tokens).shape == plain.shape
    assert seen == [7, None]
