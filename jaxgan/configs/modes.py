"""The mode-collapse study's arms (``experiments/study.py``): one preset per objective, the same
networks, batch, budget and generator EMA for every objective on a dataset; each objective keeps
its paper's optimizer, n_critic, clipping or penalty.

``modes-<loss>``: 2-D toys (the 8-Gaussian ring of the PacGAN/VEEGAN protocol by default; the
study sets ``--dataset``), 2 -> 128 x 3 ReLU MLPs, batch 256, 6000 generator steps, generator EMA
0.99. ``stacked-<loss>``: Stacked MNIST (1,000 modes) with DCGAN networks of base width 32;
``stacked-wgan-gp`` trains WGAN-GP in PGGAN's form (one critic step per generator step with the
drift term, Adam 1e-3, betas (0, 0.99)), about a third of the paper form's cost per step, so that a
20,000-step run fits one working session.
"""

from collections.abc import Callable

from jaxgan import losses
from jaxgan.configs import pggan
from jaxgan.configs.toys import TOY_WGAN_GP
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

OBJECTIVES = tuple(losses.OBJECTIVES)
STACKED_OBJECTIVES = ("nsgan", "wgan-gp")  # Stacked MNIST: the collapsing one and the fix
#: PGGAN's WGAN-GP recipe, read from the ``pggan`` preset, as flat overrides.
PGGAN_FORM = {k: pggan.get_config().flat()[k]
              for k in ("n_critic", "gp_weight", "drift", "optimizer", "lr_g", "lr_d", "betas")}  # fmt: skip


def _objective(loss: str, toy: bool) -> dict:
    out = objective_defaults(loss)
    if loss == "wgan-gp" and toy:
        out |= TOY_WGAN_GP
    return out


def toy(loss: str) -> Config:
    base = Config(
        data=Data(dataset="ring8-veegan"),
        model=Model(model="mlp", latent_dim=2, hidden=(128, 128, 128)),
        loss=Loss(loss=loss),
        optim=Optim(ema=0.99),
        schedule=Schedule(steps=6000, batch_size=256),
        output=Output(log_every=100, sample_every=1000, ckpt_every=1000),
    )
    return replace(base, **_objective(loss, toy=True))


def stacked(loss: str) -> Config:
    base = Config(
        data=Data(dataset="stacked_mnist"),
        model=Model(model="dcgan", latent_dim=100, width=32),
        loss=Loss(loss=loss),
        optim=Optim(ema=0.999),
        schedule=Schedule(steps=5000, batch_size=64),
        output=Output(log_every=100, sample_every=1000, ckpt_every=500),
    )
    out = replace(base, **_objective(loss, toy=False))
    return replace(out, **PGGAN_FORM) if loss == "wgan-gp" else out


def _bind(fn: Callable[[str], Config], loss: str) -> Callable[[], Config]:
    return lambda: fn(loss)


PRESETS: dict[str, tuple[Callable[[], Config], str]] = {
    **{f"modes-{o}": (_bind(toy, o), f"mode-collapse study, 2-D toys: {o}") for o in OBJECTIVES},
    **{f"stacked-{o}": (_bind(stacked, o), f"mode-collapse study, Stacked MNIST: {o}")
       for o in STACKED_OBJECTIVES},
}  # fmt: skip
