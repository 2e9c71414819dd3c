"""HIIF: arbitrary-scale image super-resolution with HIIF, LIIF and LTE.

    import hiif
    image = hiif.upscale("photo.png", 3.3)                 # PIL image, HIIF-EDSR
    up = hiif.Upscaler("hiif-rdn")                          # encode once, render any scale/region
    enc = up.encode("photo.png"); a = up.render(enc, (2.5, 1.7))
    model = hiif.load_model("path/to/official.pth")         # official checkpoints load unchanged
    hiif.compare("photo.png", 4, "rdn").figure().save("fig.png")  # bicubic/LIIF/LTE/HIIF figure
    hiif.scale_sweep("photo.png", [2, 4, 8, 30]).save("sweep.png")  # one window at four scales
    hiif.upscale("photo.png", width=3840)                  # to a size (the aspect kept)
    hiif.zoom("photo.png", 8, versus="bicubic").save("zoom.webp")  # an animated zoom for talks
"""
from .demo import compare, scale_sweep
from .engine import (MAX_SCALE, Encoded, Upscaler, output_size, scale_for_size, upscale,
                     validate_scale)
from .imageio import ImageError, load_image
from .models import ImplicitSR, create_model
from .weights import ZOO, WeightsError, load_model, save_safetensors
from .animation import zoom

__all__ = ["upscale", "compare", "scale_sweep", "zoom", "Upscaler", "Encoded", "load_model", "create_model", "save_safetensors",
           "validate_scale", "output_size", "scale_for_size", "load_image", "ImageError", "WeightsError",
           "ImplicitSR", "ZOO", "MAX_SCALE"]
__version__ = "0.1.0"
