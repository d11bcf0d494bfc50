"""Existing vocabularies, bounding boxes as text, and the embedded corpus."""

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import WordPiece

from tokcore import InputError, registry
from tok_text import corpus
from tok_text.boxes import parse_boxes, serialize_boxes
from tok_text.trainer import fit_pipeline
from tok_text.wordpiece import from_vocabulary

PARAGRAPHS = [
    "The café served crème brûlée; naïve tourists paid 12.50€ for it!",
    "北京大学 is in Beijing, and 東京 is in Japan.",
    "Hello, world... (said the program) -- 'quoted' and \"double-quoted\" text?",
    "Zyxwvut qqqqqq unknownish xylophonist sesquipedalian antidisestablishmentarianism.",
    "Tabs\tand\nnewlines  and   spaces, ÀÉÎÕÜ in CAPITALS, ǅ and ﬁ ligatures.",
]


@pytest.fixture(scope="module")
def vocab_txt(tmp_path_factory):
    """A BERT-style vocab.txt: a small vocabulary fitted on the corpus, one token per line."""
    texts = [text for _, text in corpus.load(["topics"])]
    tok = fit_pipeline(texts, vocab_size=2000)
    path = tmp_path_factory.mktemp("bert") / "vocab.txt"
    by_id = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    path.write_text("".join(f"{token}\n" for token, _ in by_id), encoding="utf-8")
    return path


def bert_reference(vocab_txt) -> Tokenizer:
    """The tokenizers library's own BERT WordPiece pipeline on the same vocab.txt."""
    vocab = {line: i for i, line in enumerate(vocab_txt.read_text(encoding="utf-8").splitlines())}
    ref = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    ref.normalizer = normalizers.BertNormalizer(lowercase=True)
    ref.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    ref.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    ref.decoder = decoders.WordPiece()
    return ref


def test_bert_vocab_txt_gives_the_library_ids(vocab_txt):
    ours = from_vocabulary(str(vocab_txt))
    ref = bert_reference(vocab_txt)
    t = ours.encode(PARAGRAPHS)
    unk = ref.token_to_id("[UNK]")
    seen_unk = False
    for i, text in enumerate(PARAGRAPHS):
        want = ref.encode(text).ids
        got = t.indices[i][t.mask[i]].tolist()
        assert got == want, text
        seen_unk |= unk in want
    assert seen_unk  # the paragraphs do reach unknown words and characters
    wrap = {ref.token_to_id("[CLS]"), ref.token_to_id("[SEP]")}
    decoded = ours.decode(t)
    assert decoded == [ref.decode([i for i in ref.encode(s).ids if i not in wrap]) for s in PARAGRAPHS]
    assert "[UNK]" in decoded[1]  # kept, not silently dropped


def test_bert_vocab_through_the_trainer(vocab_txt, tmp_path):
    from tokcore import load_tokenizer
    from tokcore.cli import main

    assert main(["train", "--config", "tok-text:bert-vocab", "--output", str(tmp_path / "bert"), f"trainer.vocab={vocab_txt}",
                 "trainer.val_samples=20"]) == 0
    tok = load_tokenizer(tmp_path / "bert")
    ref = bert_reference(vocab_txt)
    t = tok.encode(PARAGRAPHS[:2])
    assert t.indices[1][t.mask[1]].tolist() == ref.encode(PARAGRAPHS[1]).ids


def test_boxes_round_trip_within_one_bin_through_the_tokenizer():
    rng = np.random.default_rng(0)
    size, bins = (640.0, 480.0), 100
    xy0 = rng.uniform(0, 1, (12, 2)) * size
    boxes = np.concatenate([xy0, np.minimum(xy0 + rng.uniform(5, 200, (12, 2)), size)], axis=1)
    labels = ["dog", "traffic light", "person", "cell phone"] * 3
    text = serialize_boxes(boxes, labels, image_size=size, bins=bins)
    assert text.startswith("v0=") and " traffic light v0=" in text
    vocab = fit_pipeline(["a dog and a person", "a traffic light", "a cell phone"] * 5, vocab_size=200,
                         min_frequency=1, coordinate_bins=bins, wrap="bos_eos")
    ids = vocab.encode(text).ids
    assert len(ids) == 12 * 4 + sum(len(vocab.encode(lb, add_special_tokens=False).ids) for lb in labels) + 2
    decoded = vocab.decode(ids)
    back, back_labels = parse_boxes(decoded, image_size=size, bins=bins)
    assert back_labels == labels
    bin_size = np.array([size[0], size[1], size[0], size[1]]) / bins
    assert (np.abs(back - boxes) <= bin_size / 2 + 1e-9).all()  # the bin centre: within half a bin


def test_box_errors_name_the_problem():
    with pytest.raises(InputError, match="2 boxes but 1 labels"):
        serialize_boxes([[0, 0, 1, 1], [1, 1, 2, 2]], ["a"], image_size=(10, 10))
    with pytest.raises(InputError, match=r"box 0 .*expected v0= v1= v2= v3= in order, got v0= v2="):
        parse_boxes("v0=1 v2=3 dog", image_size=(10, 10))
    with pytest.raises(InputError, match="coordinate 1200 is not below bins=1000"):
        parse_boxes("v0=1 v1=2 v2=1200 v3=4 dog", image_size=(10, 10))
    boxes, labels = parse_boxes("v0 = 1 v1 = 2 v2 = 3 v3 = 4 hot dog", image_size=(1000, 1000))
    assert labels == ["hot dog"] and boxes.tolist() == [[1.5, 2.5, 3.5, 4.5]]


def test_corpus_paragraphs_are_prose_and_the_split_is_fixed():
    text = "Summary line.\n\nA paragraph that\nspans lines with :func:`json.dumps` and ``code``.\n\n" \
           ">>> print(1)\n1\n\nExample::\n\n    indented = code\n\n.. note:: directive\n"
    assert list(corpus.paragraphs(text, 5)) == [
        "Summary line.", "A paragraph that spans lines with json.dumps and code.", "Example:"]
    train = registry.build("dataset", {"name": "text_corpus", "sources": ["topics"], "split": "train"})
    val = registry.build("dataset", {"name": "text_corpus", "sources": ["topics"], "split": "val"})
    again = registry.build("dataset", {"name": "text_corpus", "sources": ["topics"], "split": "val"})
    assert len(val) > 0 and [val[i]["input"] for i in range(len(val))] == [again[i]["input"] for i in range(len(again))]
    held = {val[i]["input"] for i in range(len(val))}
    assert not held & {train[i]["input"] for i in range(len(train))}
    assert all(corpus.is_held_out(t, 0.02) for t in held)
    assert len({val.key(i) for i in range(len(val))}) == len(val)
