"""OpenAI's DALL-E dVAE (VIMPAC's video tokenizer): faithful networks and the importer of its released pickles."""
