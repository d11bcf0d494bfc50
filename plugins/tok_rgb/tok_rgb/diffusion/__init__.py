"""4M's DiVAE: a diffusion decoder conditioned on the quantized latents (`decoder.py`), its
noise schedule and DDIM sampler (`schedule.py`) and its denoising trainer (`trainer.py`).

diffusers is imported only when a DiVAE decoder is built: `pip install 'tok-rgb[diffusion]'`.
"""
