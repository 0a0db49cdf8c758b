"""The config: presets, JSON round trip, flat overrides, the CLI's flags, help and errors."""

import dataclasses
import json
import subprocess
import sys

import pytest

from jaxgan import configs, losses
from jaxgan.training.cli import build_parser, parse
from jaxgan.training.config import FIELDS, Config, ConfigError, override, validate


@pytest.mark.parametrize("name", configs.names())
def test_every_preset_is_valid_and_round_trips_through_json(name):
    c = configs.get(name)
    again = Config.from_json(json.loads(c.dumps()))
    assert again == c
    assert validate(again) is again


def test_presets_the_issue_names():
    names = set(configs.names())
    assert {"main", "pggan", "dcgan-mnist5k", "toy-wgan-gp", "toy-wgan", "toy-gan"} <= names
    main = configs.get("main")
    assert main.data.dataset == "mnist5k" and main.schedule.stage_schedule == (4, 8, 16, 32)
    paper = configs.get("pggan")
    assert paper.schedule.stage_schedule[-1] == 1024 and paper.model.fmap_max == 512
    assert (paper.optim.lr_g, paper.optim.betas, paper.optim.ema) == (1e-3, (0.0, 0.99), 0.999)
    assert (paper.loss.drift, paper.loss.n_critic, paper.schedule.kimg_stable) == (0.001, 1, 800.0)
    # Stacked MNIST's WGAN-GP arm trains in PGGAN's form; its networks and budget stay the study's.
    stacked, nsgan = configs.get("stacked-wgan-gp"), configs.get("stacked-nsgan")
    assert (stacked.loss, stacked.optim) == (paper.loss, paper.optim)
    assert (stacked.model, stacked.schedule) == (nsgan.model, nsgan.schedule)


def test_flat_names_are_unique_and_cover_every_field():
    count = sum(len(dataclasses.fields(f.type if not isinstance(f.type, str) else
                                       getattr(Config(), f.name))) for f in dataclasses.fields(Config))  # fmt: skip
    assert len(FIELDS) == count


def test_a_new_loss_brings_its_paper_defaults_unless_overridden():
    c = override(configs.get("toy-wgan-gp"), loss="wgan")
    wgan = losses.get("wgan")
    assert (c.loss.clip, c.loss.gp_weight, c.optim.optimizer) == (0.01, 0.0, "rmsprop")
    assert c.optim.lr_d == wgan.optimizer.learning_rate and c.loss.n_critic == 5
    c = override(configs.get("toy-wgan-gp"), loss="gan", lr_d=3e-4)
    assert c.loss.n_critic == 1 and c.optim.lr_d == 3e-4 and c.optim.lr_g == 2e-4
    # The same loss again changes nothing else.
    assert override(configs.get("toy-wgan-gp"), loss="wgan-gp") == configs.get("toy-wgan-gp")


def test_stage_schedule_keeps_the_preset_network():
    """Nothing is picked behind the user's back: a schedule flag changes only the schedule."""
    c, _ = parse(["--stage_schedule=4,8,16"])
    main = configs.get("main")
    assert c.schedule.stage_schedule == (4, 8, 16)
    assert (c.model.fmap_base, c.model.latent_dim) == (main.model.fmap_base, main.model.latent_dim)


def test_a_schedule_past_the_presets_brings_the_papers_phases():
    """The mission's command on the default preset: the paper's phase lengths and batches travel
    with the schedule (the main preset's 8 kimg, 100 kimg total and 32x32 batches do not fit)."""
    c, _ = parse(["--loss=wgan-gp", "--stage_schedule=4,8,...,1024", "--dataset=folder:/data"])
    s, paper = c.schedule, configs.get("pggan").schedule
    assert s.stage_schedule == paper.stage_schedule
    assert (s.kimg_stable, s.kimg_fade, s.kimg_total, s.batch_per_res) == (800.0, 800.0, 0.0, {})
    assert (s.kimg_stable, s.kimg_fade, s.batch_per_res) == (
        paper.kimg_stable,
        paper.kimg_fade,
        paper.batch_per_res,
    )
    # typed values still win
    c, _ = parse(["--stage_schedule=4,8,...,64", "--kimg_per_phase=2", "--batch_per_res=64:8"])
    assert (c.schedule.kimg_stable, c.schedule.batch_per_res) == (2.0, {64: 8})


def test_a_plain_model_drops_the_presets_schedule():
    c, _ = parse(["--model=dcgan"])
    assert c.model.model == "dcgan" and c.schedule.stage_schedule == ()
    c, _ = parse(["--config=dcgan-mnist5k", "--model=mlp"])
    assert c.schedule.stage_schedule == ()


def test_a_kimg_total_made_meaningless_by_a_flag_is_dropped_not_an_error():
    c, _ = parse(
        ["--kimg_stable=30"]
    )  # main: 100 kimg in all ends before the last phase starts (114)
    assert c.schedule.kimg_total == 0.0
    with pytest.raises(ConfigError, match="--kimg_total"):  # typed: the user's own conflict
        parse(["--kimg_stable=30", "--kimg_total=100"])


def test_errors_about_a_preset_value_name_the_preset():
    with pytest.raises(ConfigError, match="--stage_schedule.*from the 'dcgan-mnist5k' preset"):
        parse(["--config=dcgan-mnist5k", "--model=progressive"])
    with pytest.raises(ConfigError, match="--dataset.*from the 'toy-gan' preset"):
        parse(["--config=toy-gan", "--model=dcgan"])


def test_allowed_values_have_one_source():
    from jaxgan.metrics import IN_TRAINING
    from jaxgan.models import CRITIC_NORMS

    text = build_parser().format_help()
    assert "{" + ",".join(losses.OBJECTIVES) + "}" in text
    assert "{" + ",".join(CRITIC_NORMS) + "}" in text
    assert "{" + ",".join(IN_TRAINING) + "}" in text
    assert tuple(configs.modes.OBJECTIVES) == tuple(losses.OBJECTIVES)


def test_mission_command_resolves_to_the_paper_settings():
    c, _ = parse(["--config=pggan", "--loss=wgan-gp", "--stage_schedule=4,8,...,1024"])
    assert c.schedule.stage_schedule == (4, 8, 16, 32, 64, 128, 256, 512, 1024)
    assert c == configs.get("pggan")


@pytest.mark.parametrize(
    "flags, needle",
    [
        ({"ema": 1.0}, "--ema"),
        ({"n_critic": 0}, "--n_critic"),
        ({"model": "resnet"}, "--model"),
        ({"critic_norm": "batch"}, "--critic_norm"),
        ({"critic_norm": "layer"}, "--critic_norm=layer is not available for --model=progressive"),
        ({"stage_schedule": ()}, "--stage_schedule"),
        ({"lr_per_res": {64: -1.0}}, "--lr_per_res"),
        ({"eval_metrics": ("fid",)}, "--eval_metrics"),
        ({"kimg_total": 40.0}, "--kimg_total=40.0 ends before the last stable phase"),
        ({"kimg_total": -1.0}, "--kimg_total=-1.0: must be a number >= 0"),
        ({"nonsense": 1}, "--nonsense"),
    ],
)
def test_bad_values_name_the_flag(flags, needle):
    with pytest.raises(ConfigError, match=needle):
        override(configs.get("main"), **flags)


def test_per_res_flags_name_only_scheduled_resolutions():
    with pytest.raises(ConfigError, match="--lr_per_res"):
        parse(["--lr_per_res=64:1e-3"])
    c, _ = parse(["--stage_schedule=4,8"])  # the preset's 16 and 32 entries are simply unused
    assert c.schedule.batch_per_res[32] == 32


def test_config_file_loads_like_a_preset(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(override(configs.get("toy-gan"), steps=7).dumps())
    c, _ = parse([f"--config={path}", "--seed=3"])
    assert c.schedule.steps == 7 and c.output.seed == 3 and c.loss.loss == "gan"


def test_help_shows_each_default_once_and_lists_presets():
    text = build_parser().format_help()
    for name in configs.names():
        assert f"  {name} " in text
    assert "(default: None)" not in text
    import re

    for block in re.split(r"\n  --", text)[1:]:
        assert block.count("(main:") + block.count("(default:") <= 1, block


def test_print_config_prints_the_resolved_json():
    out = subprocess.run(
        [sys.executable, "experiments/run.py", "--config=toy-wgan", "--steps=11", "--print_config"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    c = Config.from_json(json.loads(out.stdout))
    assert c == override(configs.get("toy-wgan"), steps=11)


def test_kimg_per_phase_drops_the_presets_total_unless_given():
    """A shortened main job ends with its last phase, not 100 kimg later."""
    main = configs.get("main")
    assert main.schedule.kimg_total == 100.0
    c, _ = parse(["--stage_schedule=4,8", "--kimg_per_phase=0.5"])
    s = c.schedule
    assert (s.kimg_stable, s.kimg_fade, s.kimg_total) == (0.5, 0.5, 0.0)
    c, _ = parse(["--stage_schedule=4,8", "--kimg_per_phase=0.5", "--kimg_total=3"])
    assert c.schedule.kimg_total == 3.0
