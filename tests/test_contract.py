"""Every component tokcore itself registers honours its interface (the plugins run the same
kit over theirs, in their own tests)."""

import pytest

from tokcore import registry
from tokcore.testing import ContractError, contract_cases, contract_test

test_contract = contract_test(dist="tokcore")


def test_nothing_to_check_fails_and_says_why_instead_of_skipping():
    # pytest skips an empty parametrization ("got empty parameter set"): a renamed plugin whose
    # test still names the old distribution would pass without checking anything
    test = contract_test(dist="tok-not-installed")
    with pytest.raises(ContractError, match="^no installed distribution 'tok-not-installed' registers components, "
                       "so there is nothing to check; install it"):
        test()
    with pytest.raises(ContractError, match="did you mean 'tokcore'"):
        contract_cases(dist="tokcor")
    assert contract_cases(dist="tokcore", kinds=["quantizer"])  # there is something: cases, no error


def test_a_disabled_distribution_says_so(monkeypatch):
    monkeypatch.setenv("TOKCORE_DISABLE_PLUGINS", "tok-gaze")
    with registry.scope(fresh=True):
        with pytest.raises(ContractError, match="^distribution 'tok-gaze' is disabled: disabled by TOKCORE_PLUGINS"):
            contract_cases(dist="tok-gaze")
