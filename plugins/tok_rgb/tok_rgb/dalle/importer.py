"""`tokcore import dalle SOURCE`: OpenAI's released DALL-E dVAE (`encoder.pkl`, `decoder.pkl`;
VIMPAC's video tokenizer) as a tokcore run of the `dalle` encoder and decoder.

The two files are whole pickled modules in torch's zip format (`torch.save(model)`); loading
them with `torch.load` would import and run whatever they name. They are parsed instead
(`tok_rgb.pickles`): `data.pkl` is interpreted opcode by opcode, the classes it names are
recorded and never imported (only those of the `dall_e` package and torch's own `nn` modules are
accepted; anything else is refused), and each tensor is cut out of its storage record. Widths,
depth and vocabulary are read off the tensors' shapes.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from tok_rgb.pickles import module_tensors, read_torch_zip
from tokcore.api import Imported, Importer, InputError

CONFIG = "tok-rgb:dalle"
ALLOWED = ("dall_e.", "torch.nn.modules.")  # the classes a pickled dVAE names (recorded, never imported)


def read_dalle_pickle(file: Path) -> dict[str, torch.Tensor]:
    """The state dict of a pickled DALL-E `Encoder`/`Decoder`, read without unpickling."""
    what = "DALL-E dVAE pickle (encoder.pkl or decoder.pkl)"
    root = read_torch_zip(file, what=what, classes=lambda module, name: module.startswith(ALLOWED))
    return module_tensors(root, file=file, what=what)


class DalleImporter(Importer):
    """OpenAI's DALL-E dVAE from its released `encoder.pkl` and `decoder.pkl` (SOURCE: the
    folder holding both, or one of the two files).

    Args:
        input_size: height and width recorded as the tokenizer's input shape (DALL-E: 256)."""

    def __init__(self, input_size: int = 256):
        self.input_size = input_size

    def read(self, source: Path) -> Imported:
        folder = source.parent if source.is_file() else source
        weights: dict[str, torch.Tensor] = {}
        files: dict[str, str] = {}
        for part in ("encoder", "decoder"):
            file = folder / f"{part}.pkl"
            if not file.is_file():
                raise InputError(f"{file}: missing; DALL-E's dVAE is released as encoder.pkl and decoder.pkl")
            for key, value in read_dalle_pickle(file).items():
                weights[f"{part}.{key}"], files[f"{part}.{key}"] = value, str(file)
        settings = _architecture(weights, files, folder)
        return Imported(config=CONFIG, weights=weights, files=files, settings=settings,
                        input_shape=(3, self.input_size, self.input_size),
                        notes=["DALL-E dVAE: " + ", ".join(f"{k[len('model.'):]}={v}" for k, v in settings.items())])


def _architecture(weights: dict[str, torch.Tensor], files: dict[str, str], source: Path) -> dict[str, int]:
    def shape(key: str) -> tuple[int, ...]:
        if key not in weights:
            raise InputError(f"{files.get(key, source)}: tensor '{key}' is missing; not a DALL-E dVAE "
                             "(or the file is truncated)")
        return tuple(weights[key].shape)

    blocks = {int(m.group(1)) for k in weights if (m := re.match(r"encoder\.blocks\.group_1\.block_(\d+)\.", k))}
    n_hid = shape("encoder.blocks.input.w")[0]
    vocab = shape("encoder.blocks.output.conv.w")[0]
    if shape("decoder.blocks.input.w")[1] != vocab:
        key = "decoder.blocks.input.w"
        raise InputError(f"{files[key]}: tensor '{key}' takes {shape(key)[1]} codes, but the encoder gives {vocab}; "
                         "the two files are of different models")
    return {"model.encoder.n_hid": n_hid, "model.encoder.n_blk_per_group": max(blocks, default=0),
            "model.encoder.vocab_size": vocab, "model.decoder.n_init": shape("decoder.blocks.input.w")[0],
            "model.decoder.n_hid": shape("decoder.blocks.output.conv.w")[1],
            "model.decoder.n_blk_per_group": max(blocks, default=0), "model.decoder.vocab_size": vocab}
