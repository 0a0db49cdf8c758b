"""Train a GAN: ``python experiments/run.py [--config=PRESET] [--flag=value ...]`` (``--help``).

With no flags: the main preset, an offline progressive WGAN-GP on mnist5k, 4 -> 8 -> 16 -> 32.
"""

import sys

if __name__ == "__main__":
    try:
        from jaxgan.cli import main
    except KeyboardInterrupt:  # Ctrl-C while jax loads: a quiet exit, as during start-up
        sys.stderr.write("run.py: interrupted\n")
        sys.exit(130)
    sys.exit(main())
