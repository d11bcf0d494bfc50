import pytest

from tokcore import InputError, registry
from tokcore.testing import contract_test

test_contract = contract_test(dist="tok-text")


def test_unicode_normalization_makes_equal_looking_text_equal():
    text = registry.build("modality", {"name": "text"})
    assert text.normalize(["cafe\u0301"]) == text.normalize(["caf\u00e9"]) == ["caf\u00e9"]
    assert registry.build("modality", {"name": "text", "form": "NFKC"}).normalize(["\ufb01ne"]) == ["fine"]


def test_bad_text_names_the_item():
    text = registry.build("modality", {"name": "text", "max_chars": 5})
    with pytest.raises(InputError, match=r"captions\[1\]: text must be str, got bytes"):
        text.validate(["ok", b"raw"], sample="captions")
    with pytest.raises(InputError, match=r"captions\[0\]: text has 11 characters"):
        text.validate(["much longer"], sample="captions")
