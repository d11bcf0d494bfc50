"""Generic backbones: the encoders and decoders tokcore registers, and the blocks they share.

Building blocks (plain torch, readable top to bottom):
    shapes        input checks with errors that name the sizes
    transformer   pre-norm transformer block: SDPA multi-head attention and an MLP
    blocks        ResNet block, down/upsampling, spatial self-attention, for 1D/2D/3D convs;
                  `Layers`: the layer factories a trunk is built with
    resnet        VQ-VAE-style convolutional trunks (downsampling and upsampling)
    embeddings    sinusoidal and learned position embeddings, 2D interpolation
    patch         patchify / unpatchify for images
    lowpass       keep the lowest DCT frequencies along time (smooth trajectory decoders)

Registered components (entry points in pyproject.toml, groups tokcore.encoders/decoders):
    conv          `conv2d` (images) and `conv1d` (trajectories)
    vit           `vit` (images, any resolution)
    causal3d      `causal3d` (video and images; time-causal, Cosmos DV4x8x8-style)
    transformer1d `transformer1d` (gaze, camera trajectories; EgoM2P's shape)
    spectral      `dct1d` (one global token per trajectory, in the low-frequency DCT domain)
"""
