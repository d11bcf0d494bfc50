"""The one progress display (training steps and tokenized samples)."""

from tokcore.runtime.progress import Progress


def test_lines_when_not_a_terminal(capsys):
    p = Progress(10, desc="tokenize", unit="sample", every_s=0.0)
    p.update(4)
    p.write("a message")
    p.close()
    out = capsys.readouterr()
    assert out.err.startswith("tokenize: 4/10 samples, ") and "ETA" in out.err
    assert out.out == "a message\n" and p.n == 4


def test_training_counts_steps_and_prints_no_lines(capsys):
    p = Progress(100, unit="step", initial=20, every_s=None)
    p.advance_to(30)
    p.set_postfix(loss="0.1")
    p.close()
    assert p.n == 30 and capsys.readouterr().err == ""


def test_disabled_shows_nothing(capsys):
    p = Progress(10, enabled=False, every_s=0.0)
    p.update(5)
    p.write("hidden")
    p.close()
    assert capsys.readouterr() == ("", "")
