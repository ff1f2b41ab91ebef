"""noisesim: accuracy of fine-tuned transformers whose weights live on noisy analog devices."""

__version__ = "0.1.0"
