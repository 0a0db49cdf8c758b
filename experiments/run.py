"""Train a GAN: ``python experiments/run.py [--config=PRESET] [--flag=value ...]`` (``--help``).

With no flags: the main preset, an offline progressive WGAN-GP on mnist5k, 4 -> 8 -> 16 -> 32.
"""

import signal
import sys

_interrupted: list[int] = []


def _on_sigint(signum, frame):
    # Remembered as well as raised: a KeyboardInterrupt raised while JAX's garbage-collection
    # callback runs is swallowed, so start-up checks the flag too.
    _interrupted.append(signum)
    raise KeyboardInterrupt


def _quiet_lost_interrupt(unraisable, default=sys.unraisablehook):
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):  # else: remembered in the flag
        default(unraisable)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _quiet_lost_interrupt
    try:
        from jaxgan.cli import main
    except KeyboardInterrupt:  # Ctrl-C while jax loads: a quiet exit, as during start-up
        sys.stderr.write("run.py: interrupted\n")
        sys.exit(130)
    sys.exit(main(interrupted=lambda: bool(_interrupted)))
