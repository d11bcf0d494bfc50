"""Generic building blocks for tokenizer models: plain torch, each file readable top to bottom.
A documented part of the plugin API: plugins build their own models from these.

    shapes        input checks with errors that name the sizes
    transformer   pre-norm transformer block: SDPA multi-head attention and an MLP
    blocks        ResNet block, down/upsampling, spatial self-attention, for 1D/2D/3D convs;
                  `Layers`: the layer factories a trunk is built with
    resnet        VQ-VAE-style convolutional trunks (downsampling and upsampling)
    embeddings    sinusoidal and learned position embeddings, 2D interpolation
    patch         patchify / unpatchify for images
    lowpass       the orthonormal DCT-II basis; keep the lowest frequencies along time

The encoders and decoders core registers (conv, vit, causal3d, transformer1d, dct1d) are
built from these in `tokcore.builtins.models`.
"""
