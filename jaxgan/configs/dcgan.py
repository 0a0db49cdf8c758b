"""DCGAN on mnist5k (32x32) with WGAN-GP: base width 32, 2000 generator steps (~15-20 min on
2 CPU cores). Other objectives: ``--loss=gan`` etc. (BatchNorm in the critic without a penalty).
"""

from jaxgan.training.config import Config, Data, Loss, Model, Optim, Output, Schedule


def get_config() -> Config:
    return Config(
        data=Data(dataset="mnist5k"),
        model=Model(model="dcgan", latent_dim=128, width=32, critic_norm="none"),
        loss=Loss(loss="wgan-gp", n_critic=5, gp_weight=10.0),
        optim=Optim(optimizer="adam", lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.9)),
        schedule=Schedule(steps=2000, batch_size=64),
        output=Output(log_every=100, sample_every=500, ckpt_every=500),
    )
