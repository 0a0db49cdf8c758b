"""The PGGAN paper's settings (Karras et al. 2018): 4x4 -> 1024x1024 on CelebA-HQ.

Adam 1e-3, betas (0, 0.99), n_critic 1, WGAN-GP lambda 10 with drift 0.001, generator EMA 0.999,
latent 512, fmap_base 8192 / fmap_max 512, 800 kimg per fade and per stabilisation, mirror
augmentation, minibatch 16 up to 128x128 then 14, 6, 3 (the default per-resolution batches).
Point ``--dataset`` at your images (``folder:PATH`` or a prepared tfds dataset).
"""

from jaxgan.training.config import Config, Data, Loss, Model, Optim, Schedule


def get_config() -> Config:
    return Config(
        data=Data(dataset="tfds:celeb_a_hq/1024", mirror=True),
        model=Model(model="progressive", latent_dim=512, fmap_base=8192, fmap_max=512),
        loss=Loss(loss="wgan-gp", n_critic=1, gp_weight=10.0, drift=0.001),
        optim=Optim(optimizer="adam", lr_g=1e-3, lr_d=1e-3, betas=(0.0, 0.99), ema=0.999),
        schedule=Schedule(
            stage_schedule=(4, 8, 16, 32, 64, 128, 256, 512, 1024),
            kimg_stable=800.0,
            kimg_fade=800.0,
        ),
    )
