"""The shipped training configs: they build their models, and the three methods of one encoder
train on the same recipe (data, optimiser, schedule, precision), so their comparison stays fair."""
from pathlib import Path

import pytest

from hiif.models import create_model
from hiif.train import Config, init_sources
from hiif.weights import ZOO

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ENCODERS = ("edsr", "rdn", "swinir")
METHODS = ("hiif", "liif", "lte")


def load(name: str) -> Config:
    return Config.load(CONFIGS / f"{name}.yaml")


@pytest.mark.parametrize("encoder", ENCODERS)
def test_the_three_methods_of_an_encoder_share_one_recipe(encoder):
    configs = {m: load(f"{m}-{encoder}") for m in METHODS}
    recipes = {m: (c.optim, c.data, c.raw.get("precision"), c.raw.get("ema"), c.raw.get("seed"),
                   c.raw.get("freeze"), c.model["args"]["encoder_spec"]) for m, c in configs.items()}
    assert recipes["hiif"] == recipes["liif"] == recipes["lte"]
    for method, config in configs.items():
        assert config.name == f"{method}-{encoder}" and config.model["name"] == method
        # warm starts alike: the same kinds of parts, each method's decoder from its own method
        sources = init_sources(config.raw.get("init"))
        assert [s["parts"] for s in sources] == \
            [s["parts"] for s in init_sources(configs["hiif"].raw.get("init"))]
        for source in sources:
            if source["parts"] != "encoder" and source["from"] in ZOO:
                assert source["from"].startswith(f"{method}-")


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_builds_its_model_and_names_known_donors(path):
    config = Config.load(path)
    assert config.name == path.stem
    model = create_model(config.model)
    assert model.method == config.model["name"]
    for source in init_sources(config.raw.get("init")):
        # a zoo model, or a file that another config's run produces (exported into runs/)
        assert source["from"] in ZOO or source["from"].startswith("runs/"), source


@pytest.mark.parametrize("encoder", ("rdn", "swinir"))
def test_the_gpu_recipes_are_the_cpu_ones_with_what_a_gpu_affords(encoder):
    """configs/gpu/: the same model and data recipe as configs/, its own encoder from scratch under
    each method's EDSR decoder, and never continued from the CPU-trained weights of the same name."""
    gpu = {m: Config.load(CONFIGS / "gpu" / f"{m}-{encoder}.yaml") for m in METHODS}
    for method, config in gpu.items():
        cpu = load(f"{method}-{encoder}")
        assert config.name == cpu.name and config.model == cpu.model
        assert {k: v for k, v in config.data.items() if k not in ("train_dir", "name")} == \
            {k: v for k, v in cpu.data.items() if k not in ("train_dir", "name")}
        assert config.raw["precision"] == cpu.raw["precision"] and config.raw["ema"] == cpu.raw["ema"]
        assert init_sources(config.raw["init"]) == [{"from": f"{method}-edsr", "parts": "decoder"}]
        assert config.raw["resume_from_weights"] is False
        assert create_model(config.model).method == method
    recipes = [(c.optim, c.data, c.raw.get("freeze")) for c in gpu.values()]
    assert recipes[0] == recipes[1] == recipes[2]
