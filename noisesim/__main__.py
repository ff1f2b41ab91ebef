"""``python -m noisesim``: the ``noisesim`` command."""

from noisesim.cli import main

if __name__ == "__main__":
    main()
