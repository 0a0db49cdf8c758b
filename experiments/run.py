"""Train a GAN: ``python experiments/run.py [--config=PRESET] [--flag=value ...]`` (``--help``).

With no flags: the main preset, an offline progressive WGAN-GP on mnist5k, 4 -> 8 -> 16 -> 32.
"""

import logging
import signal
import sys

# SIGINT/SIGTERM from the very start are recorded, never raised (an exception inside an import or
# an orbax call leaves half-built modules or threads behind); training stops on them cleanly.
_caught: list[int] = []


def _record(signum, frame):
    _caught.append(signum)


def _quiet_library_noise():
    # Faults end in one line of ours. Orbax logs a failed save once per writer thread and leaves
    # abandoned reads behind (asyncio's "never retrieved", tensorstore callbacks into a closed
    # event loop, reported as unraisable).
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.FATAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.unraisablehook = lambda unraisable: None


if __name__ == "__main__":
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _record)
    _quiet_library_noise()
    from jaxgan.training.cli import main

    sys.exit(main(caught=_caught))
