"""The text tokenizer through tokcore's own paths: `tokcore train` fits the vocabulary and
writes a checkpoint, `load_tokenizer` reads it, `tokcore tokenize`/`decode` use it."""

import json

import numpy as np
import pytest
import torch

import tokcore
from tokcore.cli import main
from tok_text.vocabulary import normalized_text

CAPTIONS = ["A dog runs along the beach at sunset.", "Two cats sleep on a red sofa, near the window.",
            "A man rides a bicycle down a busy street.", "Snow covers the mountains behind a small village.",
            "A bowl of fruit sits on a wooden table.", "Children play football in a park on a sunny day.",
            "An old train crosses a stone bridge over the river.", "A woman reads a book in a quiet café."]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    lines = [f"{c} {i}" if i % 3 else c for i, c in enumerate(CAPTIONS * 12)]
    (root / "captions.jsonl").write_text("".join(json.dumps({"caption": s}) + "\n" for s in lines), encoding="utf-8")
    out = root / "run"
    assert main(["train", "--config", "tok-text:quick", "--output", str(out),
                 "data.name=text_files", f"data.paths={root / 'captions.jsonl'}", "data.field=caption",
                 "data.val_fraction=0.1", "trainer.vocab_size=300", "trainer.min_frequency=1",
                 "model.encoder.max_length=24", "model.encoder.offsets=true"]) == 0
    return out


def test_fit_writes_an_ordinary_checkpoint(run):
    ckpt = run / "checkpoints" / "step-1"
    meta = json.loads((ckpt / "tokenizer.json").read_text())
    assert meta["modality"] == {"name": "text", "form": "NFC", "max_chars": None}
    assert meta["variable_length"] and meta["token_grid"] == [24] and meta["index_shape"] == []
    assert 100 < meta["codebook_size"] <= 300 and "quantizer" not in meta["model"]
    assert set(meta["plugins"]) == {"tok-text"} and meta["tokcore_version"] == tokcore.__version__
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    fit = rows[-1]
    assert fit["vocab_size"] == meta["codebook_size"] and fit["val/roundtrip_exact"] == 1.0
    assert fit["val/unk_rate"] == 0.0 and 1.0 <= fit["val/tokens_per_word"] < 3
    shown = (run / "samples" / "step-1.txt").read_text(encoding="utf-8").split("\n\n")
    assert shown[0].startswith("input:   ") and "\ndecoded: " in shown[0] and len(shown) == 9  # 8 and the end


def test_load_tokenizer_encodes_with_padding_mask_and_offsets(run):
    tok = tokcore.load_tokenizer(run)
    texts = ["a red dog", "Two cats sleep on a red sofa, near the window."]
    t = tok.encode(texts)
    assert t.indices.dtype == torch.int64 and t.indices.shape == t.mask.shape and t.offsets.shape == (*t.mask.shape, 2)
    lengths = t.mask.sum(1).tolist()
    assert lengths[0] < lengths[1] == t.indices.shape[1]  # padded to the longest
    assert not t.mask[0, lengths[0]:].any() and (t.indices[0, lengths[0]:] == 0).all()  # [PAD] is id 0
    vocab = tok.encoder.tokenizer
    assert vocab.id_to_token(int(t.indices[0, 0])) == "[SOS]" and vocab.id_to_token(int(t.indices[0, lengths[0] - 1])) == "[EOS]"
    for i in range(1, lengths[1] - 1):  # every real token covers its own span of the input
        start, end = t.offsets[1, i].tolist()
        assert vocab.id_to_token(int(t.indices[1, i])).removeprefix("##") == texts[1][start:end].lower()
    assert tok.decode(t) == [normalized_text(vocab, s) for s in texts]
    long = tok.encode(["a dog " * 40])
    assert long.indices.shape == (1, 24) and vocab.id_to_token(int(long.indices[0, -1])) == "[EOS]"  # truncated
    info = tok.info()
    assert info["codebook_size"] == vocab.get_vocab_size() and info["bits_per_sample"] == pytest.approx(24 * np.log2(info["codebook_size"]))


def test_tokenize_and_decode_text_files(run, tmp_path, capsys):
    store_dir, decoded = tmp_path / "tokens", tmp_path / "decoded"
    assert main(["tokenize", "--checkpoint", str(run), "--output", str(store_dir), "--workers", "0", "--quiet"]) == 0
    store = tokcore.TokenStore(store_dir)
    assert len(store) == 96 and store.kind == "indices" and store.dtype == np.uint16 and store.token_shape is None
    tok = tokcore.load_tokenizer(run)
    ds = tokcore.registry.build("dataset", {**json.loads((store_dir / "manifest.json").read_text())["data"]})
    for i in (0, 1, 50):
        key = ds.key(i)
        want = tok.encode([ds[i]["input"]])
        assert store[key].tolist() == want.indices[0][want.mask[0]].tolist()  # ragged: real tokens only
    assert main(["decode", "--checkpoint", str(run), "--tokens", str(store_dir), "--output", str(decoded)]) == 0
    rows = [json.loads(line) for line in (decoded / "decoded.jsonl").read_text().splitlines()]
    assert len(rows) == 96 and rows[0]["files"][0].endswith(".txt")
    vocab = tok.encoder.tokenizer
    for i, row in zip(range(len(ds)), rows):
        assert (decoded / row["files"][0]).read_text(encoding="utf-8") == normalized_text(vocab, ds[i]["input"])


def test_resume_keeps_the_fit_and_dry_run_describes_it(run, capsys):
    before = (run / "checkpoints" / "step-1" / "model.safetensors").read_bytes()
    assert main(["train", "--config", str(run / "config.yaml"), "--output", str(run), "--resume"]) == 0
    assert (run / "checkpoints" / "step-1" / "model.safetensors").read_bytes() == before
    assert main(["train", "--config", str(run / "config.yaml"), "--output", str(run)]) == 2
    assert "already has checkpoints" in capsys.readouterr().err
    assert main(["train", "--config", str(run / "config.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "trainer 'wordpiece' fits the model in one pass" in out and "encoder   wordpiece" in out


def test_a_quantizer_beside_a_discrete_encoder_is_refused(run, capsys):
    assert main(["train", "--config", str(run / "config.yaml"), "--dry-run",
                 "model.quantizer.name=fsq", "model.quantizer.levels=[5,5]"]) == 2
    assert "model.quantizer: encoder 'wordpiece' emits tokens itself; remove model.quantizer" in capsys.readouterr().err


def test_unfitted_encoder_says_how_to_get_a_vocabulary():
    enc = tokcore.registry.build("encoder", {"name": "wordpiece"})
    with pytest.raises(tokcore.TokcoreError, match="has no vocabulary yet: fit one"):
        enc(["text"])
