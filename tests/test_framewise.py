"""`model.framewise`: an image encoder/decoder tokenizes a video frame by frame (VIMPAC)."""

import pytest
import torch

from tokcore import config
from tokcore.tokenizer import build_tokenizer

IMAGE = {
    "encoder": {"name": "conv2d", "in_channels": 3, "out_dim": 4, "base_channels": 8, "channel_mult": [1, 2],
                "num_res_blocks": 1, "mid_attention": False},
    "quantizer": {"name": "vq", "dim": 4, "codebook_size": 32},
    "decoder": {"name": "conv2d", "in_dim": 4, "out_channels": 3, "base_channels": 8, "channel_mult": [1, 2],
                "num_res_blocks": 1, "mid_attention": False},
}


def tokenizers():
    torch.manual_seed(0)
    image = build_tokenizer(IMAGE).eval()
    video = build_tokenizer({**IMAGE, "framewise": True}, input_shape=(3, 5, 16, 16)).eval()
    video.load_state_dict(image.state_dict())  # same parameter names: image weights fit as they are
    return image, video


def test_framewise_equals_the_image_tokenizer_on_each_frame():
    image, video = tokenizers()
    clip = torch.randn(2, 3, 5, 16, 16)
    tokens = video.encode(clip).indices
    assert tokens.shape == (2, 5, 8, 8)
    for t in range(5):
        assert torch.equal(tokens[:, t], image.encode(clip[:, :, t]).indices)
    recon = video.decode(tokens)
    assert recon.shape == clip.shape
    for t in range(5):
        assert torch.allclose(recon[:, :, t], image.decode(tokens[:, t]), atol=1e-6)
    out = video(clip)  # the training path folds the same way
    assert out.recon.shape == clip.shape and out.latents.shape == (2, 5, 8, 8, 4)
    info = video.info()
    assert info["token_grid"] == [5, 8, 8] and info["framewise"] is True
    assert info["bits_per_sample"] == 5 * 8 * 8 * 5  # log2(32) bits per token


def test_framewise_needs_a_time_axis_and_is_a_config_key(tmp_path):
    _, video = tokenizers()
    with pytest.raises(ValueError, match=r"framewise tokenizer takes \(B, C, T, \.\.\.\) batches"):
        video(torch.randn(2, 16))
    path = tmp_path / "c.yaml"
    path.write_text("tokcore: 1\nmodel: {framewise: yes please}\n")
    with pytest.raises(config.ConfigError, match="model.framewise: expected bool"):
        config.load(path)


def test_the_wrappers_keep_the_image_tokenizers_parameter_names(tmp_path):
    import copy

    from safetensors.torch import save_file

    from tokcore.builtins.models.framewise import FramewiseDecoder, FramewiseEncoder
    from tokcore.run.checkpoint import load_weights

    image, video = tokenizers()
    assert isinstance(video.encoder, FramewiseEncoder) and isinstance(video.decoder, FramewiseDecoder)
    assert not image.framewise and video.framewise
    assert list(video.state_dict()) == list(image.state_dict())
    assert not any(".inner." in k for k in video.state_dict())
    ema = copy.deepcopy(video)  # the weight EMA is a deep copy
    assert list(ema.state_dict()) == list(image.state_dict())
    save_file({k: v.contiguous() for k, v in image.state_dict().items()}, str(tmp_path / "image.safetensors"))
    fresh = build_tokenizer({**IMAGE, "framewise": True}, input_shape=(3, 5, 16, 16))
    loaded, skipped = load_weights(fresh, tmp_path / "image.safetensors", strict=False)  # train.init_from
    assert skipped == [] and len(loaded) == len(image.state_dict())
    with pytest.raises(RuntimeError, match="Unexpected key"):  # strict loading still checks names
        fresh.load_state_dict({**image.state_dict(), "encoder.bogus": torch.zeros(1)})


def test_framewise_example_inputs_are_one_frame_clips():
    _, video = tokenizers()
    x = video.encoder.example_input(2)
    assert x.shape == (2, 3, 1, 16, 16)
    z = video.encoder(x)
    assert z.shape == (2, 1, 8, 8, 4)
    assert video.decoder.example_input(2).shape[:2] == (2, 1)
    assert video.decoder(z).shape == x.shape
    assert build_tokenizer({**IMAGE, "framewise": True}).input_shape == (3, 1, 16, 16)
