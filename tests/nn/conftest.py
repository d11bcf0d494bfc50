import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: intra-op threads only add overhead, and on a busy machine
    OpenMP's waiting threads can make a 2-second test take a minute."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
