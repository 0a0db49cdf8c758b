"""2-D toys (8-Gaussian ring by default): the same 2 -> 512 x 3 MLPs, latent 2, batch 256, for
each objective. WGAN-GP uses the WGAN-GP toy script's lambda 0.1 and Adam betas (0.5, 0.9)
(Algorithm 1's beta1 = 0 with lambda 10 oscillates on the toys); the others their paper's optimizer.
``--dataset=grid25`` (or swissroll, ring8-veegan, grid25-veegan) switches the toy.
"""

from collections.abc import Callable

from jaxgan.training.config import (
    Config,
    Data,
    Loss,
    Model,
    Optim,
    Output,
    Schedule,
    objective_defaults,
    replace,
)


def _toy(loss: str) -> Config:
    base = Config(
        data=Data(dataset="ring8"),
        model=Model(model="mlp", latent_dim=2, hidden=(512, 512, 512)),
        loss=Loss(loss=loss),
        optim=Optim(),
        schedule=Schedule(steps=3000, batch_size=256),
        output=Output(log_every=100, sample_every=500, ckpt_every=1000),
    )
    return replace(base, **objective_defaults(loss))


#: WGAN-GP on the toys: the WGAN-GP toy script's lambda 0.1 and Adam betas (0.5, 0.9).
TOY_WGAN_GP = {"gp_weight": 0.1, "betas": (0.5, 0.9)}


def wgan_gp() -> Config:
    return replace(_toy("wgan-gp"), **TOY_WGAN_GP)


PRESETS: dict[str, tuple[Callable[[], Config], str]] = {
    "toy-wgan-gp": (wgan_gp, "WGAN-GP on the 8-Gaussian ring (the WGAN-GP toy script's settings)"),
    "toy-wgan": (
        lambda: _toy("wgan"),
        "WGAN with weight clipping (c 0.01, RMSProp 5e-5) on the ring",
    ),
    "toy-gan": (lambda: _toy("gan"), "the minimax (BCE) GAN on the ring: watch it drop modes"),
    "toy-nsgan": (lambda: _toy("nsgan"), "the non-saturating GAN on the ring"),
}
