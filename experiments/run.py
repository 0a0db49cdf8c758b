"""Train a GAN: ``python experiments/run.py --loss=wgan-gp --dataset=ring8`` (``--help`` for all flags).

With no flags: an offline progressive WGAN-GP on mnist5k, 4 -> 8 -> 16 -> 32.
"""

import sys

from jaxgan.engine import main

if __name__ == "__main__":
    sys.exit(main())
