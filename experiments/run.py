"""Train a GAN: ``python experiments/run.py [--config=PRESET] [--flag=value ...]`` (``--help``).

With no flags: the main preset, an offline progressive WGAN-GP on mnist5k, 4 -> 8 -> 16 -> 32.
"""

import sys

from jaxgan.cli import main

if __name__ == "__main__":
    sys.exit(main())
