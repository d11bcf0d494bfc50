"""Every component tokcore itself registers honours its interface (the plugins run the same
kit over theirs, in their own tests)."""

from tokcore.testing import contract_test

test_contract = contract_test(dist="tokcore")
