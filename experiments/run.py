"""Train a GAN: ``python experiments/run.py [--config=PRESET] [--flag=value ...]`` (``--help``).

With no flags: the main preset, an offline progressive WGAN-GP on mnist5k, 4 -> 8 -> 16 -> 32.
"""

import logging
import signal
import sys

_interrupted: list[int] = []


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum, frame):
    # Remembered, and raised unless a module is being imported: libraries turn an exception
    # there into an ImportError traceback or a half-initialised extension module (an abort at
    # exit). Start-up checks the flag, which also catches an interrupt that JAX's
    # garbage-collection callback swallowed.
    _interrupted.append(signum)
    if not _importing(frame):
        raise KeyboardInterrupt


def _quiet_library_noise():
    # Faults end in one line of ours. Orbax logs a failed save once per writer thread and leaves
    # abandoned reads behind (asyncio's "never retrieved", tensorstore callbacks into a closed
    # event loop, reported as unraisable); an interrupt JAX's callbacks swallow is in the flag.
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.FATAL)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.unraisablehook = lambda unraisable: None


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _on_sigint)
    _quiet_library_noise()
    from jaxgan.training.cli import main

    sys.exit(main(interrupted=lambda: bool(_interrupted)))
