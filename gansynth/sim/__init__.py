"""The procedural renderer and the SimGAN refiner of its images."""
