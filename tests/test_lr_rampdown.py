"""``lr_rampdown_kimg``: both learning rates fall to 0 along a half cosine over the run's last
images, in the last phase only; every phase keeps one optimizer-state layout, so a run resets,
checkpoints and resumes through its phases as without the ramp."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import configs
from jaxgan.training import build, schedule
from jaxgan.training.config import ConfigError, override

# 4x4 stable (1,000 images), fade into 8x8 (1,000), 8x8 stable until 3,000: batch 10 everywhere.
TINY = {"stage_schedule": (4, 8), "kimg_stable": 1.0, "kimg_fade": 1.0, "kimg_total": 3.0,
        "batch_per_res": {4: 10, 8: 10}, "lr_g": 1e-2, "lr_d": 2e-2}  # fmt: skip


def _step_sizes(tx, updates: int) -> np.ndarray:
    """|update| of each of ``updates`` Adam steps on a constant gradient. With beta1 = 0 and a
    constant gradient Adam's step is lr * g / (|g| + eps), i.e. the learning rate itself."""
    params = {"w": jnp.zeros(())}
    grad = {"w": jnp.ones(())}
    state = tx.init(params)
    sizes = []
    for _ in range(updates):
        u, state = tx.update(grad, state, params)
        sizes.append(abs(float(u["w"])))
    return np.array(sizes)


def _reference(lr: float, images: np.ndarray, ramp_start: float, ramp: float) -> np.ndarray:
    t = np.clip((images - ramp_start) / ramp, 0.0, 1.0)
    return np.array([lr * 0.5 * (1 + math.cos(math.pi * x)) for x in t])


@pytest.mark.parametrize("kimg, n_critic", [(1.0, 1), (0.4, 1), (5.0, 2)])
def test_the_last_phase_follows_a_half_cosine_and_earlier_phases_are_constant(kimg, n_critic):
    c = override(configs.get("main"), **TINY, n_critic=n_critic, lr_rampdown_kimg=kimg)
    phases = schedule.for_config(c).phases()
    last = phases[-1]
    ramp = min(kimg * 1000, last.end - last.start)  # a ramp longer than the phase is the phase
    for phase in phases:
        g_tx, d_tx = build.optimizers(c, phase)
        for tx, lr, per in ((g_tx, 1e-2, 10 * n_critic), (d_tx, 2e-2, 10)):
            n = (phase.end - phase.start) // per
            got = _step_sizes(tx, n)
            if phase is last:
                images = last.start + np.arange(n) * per
                want = _reference(lr, images, last.end - ramp, ramp)
            else:
                want = np.full(n, lr)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


def test_every_phase_has_one_optimizer_state_layout():
    c = override(configs.get("main"), **TINY, lr_rampdown_kimg=0.5)
    params = {"w": jnp.zeros((3,))}
    layouts = set()
    for phase in [None, *schedule.for_config(c).phases()]:
        for tx in build.optimizers(c, phase):
            layouts.add(jax.tree.structure(tx.init(params)))
    assert len(layouts) == 1


def test_without_reset_adam_a_progressive_ramp_is_refused():
    with pytest.raises(ConfigError, match=r"--lr_rampdown_kimg=.*--reset_adam"):
        override(configs.get("main"), lr_rampdown_kimg=10.0, reset_adam=False)
    override(configs.get("toy-wgan-gp"), lr_rampdown_kimg=1.0, reset_adam=False)  # plain: fine


def test_a_plain_run_ramps_over_its_last_images():
    c = override(configs.get("toy-wgan-gp"), steps=40, batch_size=50, n_critic=1,
                 lr_rampdown_kimg=1.0, betas=(0.0, 0.9))  # fmt: skip
    g_tx, _ = build.optimizers(c)
    images = np.arange(40) * 50
    want = _reference(c.optim.lr_g, images, 2000 - 1000, 1000)
    np.testing.assert_allclose(_step_sizes(g_tx, 40), want, rtol=1e-5, atol=1e-9)


def test_a_progressive_run_with_the_ramp_trains_through_its_phases(tmp_path):
    """The optimizers reset into the last phase's ramp; the checkpoint's layout is the one every
    phase builds (tested above), so a resume restores it."""
    from jaxgan.training.loop import train

    tiny = dict(TINY, kimg_stable=0.064, kimg_fade=0.0, kimg_total=0.128,
                batch_per_res={4: 16, 8: 16})  # fmt: skip
    c = override(configs.get("main"), **tiny, fmap_base=32, fmap_max=16, latent_dim=16,
                 lr_rampdown_kimg=0.064, log_every=2, sample_every=0, num_devices=1)  # fmt: skip
    summary = train(c, str(tmp_path), quiet=True)
    assert summary.exit_code == 0
    assert summary.images_seen == schedule.for_config(c).total_images
