import pytest


@pytest.fixture(autouse=True, scope="session")
def _corpus_cache(tmp_path_factory):
    """Corpus caches go to a temporary folder, not the user's home."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TOK_TEXT_CACHE", str(tmp_path_factory.mktemp("tok-text-cache")))
    yield
    mp.undo()
