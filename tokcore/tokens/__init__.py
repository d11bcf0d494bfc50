"""Token stores: pre-computed tokens of whole datasets (`tokcore tokenize`), read with
`TokenStore`, exported to npy / LMDB / WebDataset, decoded back with `tokcore decode`.

Importing this package (and `TokenStore`) needs numpy only; the job itself is in
`tokcore.tokens.tokenize` and imports torch.
"""

from tokcore.tokens.store import TokenStore

__all__ = ["TokenStore"]
