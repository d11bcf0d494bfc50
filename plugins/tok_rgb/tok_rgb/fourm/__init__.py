"""4M's ViT VQ-VAE tokenizers (EPFL-VILAB / Apple ml-4m): faithful networks and the importer of their Hub folders."""
