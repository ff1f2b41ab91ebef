"""The device profiles shipped with noisesim (``*.yaml``), installed as the package ``noisesim.profiles``."""
