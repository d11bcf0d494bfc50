"""NVIDIA Cosmos tokenizers: faithful networks, FSQ, and the importer of their released JIT archives."""
