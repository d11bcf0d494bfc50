from tokcore.testing import contract_test

test_contract = contract_test(dist="tok-coordtok")
