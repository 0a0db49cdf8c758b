"""The main job: an offline progressive WGAN-GP on the 5,000 mnist5k digits, 4x4 -> 32x32.

PGGAN's training recipe (Adam betas (0, 0.99), n_critic 1, drift 0.001) at CPU size: narrow
networks (fmap_base 256, fmap_max 64, latent 64), 8 kimg per phase while growing, then 32x32 until
100 kimg in all (PGGAN's total_kimg), larger minibatches, an EMA of 0.99 (a longer average mixes
in a generator that still moves fast) and a learning rate of 5e-3 rather than PGGAN's 1e-3: at
this budget the networks are undertrained and the higher rate gets further (BUILD_NOTES has the
comparison). About 10 minutes on 2 CPU cores.
"""

from jaxgan.training.config import Config, Data, Loss, Model, Optim, Output, Schedule


def get_config() -> Config:
    return Config(
        data=Data(dataset="mnist5k"),
        model=Model(model="progressive", latent_dim=64, fmap_base=256, fmap_max=64),
        loss=Loss(loss="wgan-gp", n_critic=1, gp_weight=10.0, drift=0.001),
        optim=Optim(optimizer="adam", lr_g=5e-3, lr_d=5e-3, betas=(0.0, 0.99), ema=0.99),
        schedule=Schedule(
            stage_schedule=(4, 8, 16, 32),
            kimg_stable=8.0,
            kimg_fade=8.0,
            kimg_total=100.0,
            batch_per_res={4: 64, 8: 64, 16: 32, 32: 32},
        ),
        output=Output(log_every=100, sample_every=500, ckpt_every=1000),
    )
