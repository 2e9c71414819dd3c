"""Training: patches, schedule, exact resume from a checkpoint, export."""
import ctypes
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hiif
from hiif.data.patches import PatchSampler
from hiif.evaluate import model_card
from hiif.train import (Config, Trainer, describe_init, describe_schedule, fitted_step_total, learning_rate,
                        seconds_per_step, write_fitted_config)

IMAGES = [(np.random.default_rng(i).random((120, 150, 3)) * 255).astype(np.uint8) for i in range(3)]


def tiny_config(method="hiif", **extra):
    encoder = {"name": "edsr-baseline", "args": {"no_upsampling": True, "n_resblocks": 1, "n_feats": 8}}
    model = {"hiif": {"name": "hiif", "args": {"encoder_spec": encoder, "hidden_dim": 32, "blocks": 4}},
             "lte": {"name": "lte", "args": {"encoder_spec": encoder, "hidden_dim": 32, "imnet_spec": {
                 "name": "mlp", "args": {"out_dim": 3, "hidden_list": [32]}}}}}[method]
    raw = {"name": f"tiny-{method}", "model": model,
           "data": {"patch": 16, "scale_min": 1, "scale_max": 4, "queries": 64},
           "optim": {"lr": 1e-3, "batch": 2, "steps": 50, "warmup": 2}, "precision": "fp32", "seed": 3, **extra}
    return Config(raw["name"], raw["model"], raw["data"], raw["optim"], raw)


def test_patch_sampler_shapes_and_ranges():
    batch = PatchSampler(IMAGES, patch=48, queries=2304, seed=0).sample(3)
    assert batch["lr"].shape == (3, 3, 48, 48) and batch["coord"].shape == (3, 2304, 2)
    assert batch["cell"].shape == (3, 2) and batch["gt"].shape == (3, 2304, 3)
    assert batch["lr"].min() >= -1 and batch["lr"].max() <= 1
    assert batch["coord"].abs().max() < 1
    # cell = 2 / HR size with HR = round(48 s), s in [1, 4]
    assert (batch["cell"] <= 2 / 48 + 1e-6).all() and (batch["cell"] >= 2 / 192 - 1e-6).all()


def test_schedule_warmup_then_cosine():
    optim = {"lr": 1e-3, "steps": 100, "warmup": 10, "min_lr": 1e-5}
    assert learning_rate(0, optim) == pytest.approx(1e-4)
    assert learning_rate(10, optim) == pytest.approx(1e-3)
    assert learning_rate(100, optim) == pytest.approx(1e-5)
    assert learning_rate(55, optim) < learning_rate(30, optim)


def test_schedule_cut_short_anneals_from_where_it_was():
    long = {"lr": 1e-3, "steps": 300, "warmup": 10, "min_lr": 1e-5}
    cut = {**long, "steps": 140, "horizon": 300, "anneal_from": 80}
    assert [learning_rate(s, cut) for s in range(80)] == [learning_rate(s, long) for s in range(80)]
    assert learning_rate(80, cut) == pytest.approx(learning_rate(80, long))  # no jump
    assert learning_rate(140, cut) == pytest.approx(1e-5)
    rates = [learning_rate(s, cut) for s in range(80, 141)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert learning_rate(110, cut) < learning_rate(110, long)
    assert describe_schedule(cut) == "Adam 0.001, cosine to 300, annealed 80→140"
    assert describe_schedule(long) == "Adam 0.001, cosine to 300"


def test_schedule_restart_leaves_the_finished_cycle_as_it_was():
    done = {"lr": 1e-3, "steps": 140, "warmup": 10, "min_lr": 1e-5, "horizon": 300, "anneal_from": 80}
    more = {**done, "steps": 200, "restart_at": 140, "restart_lr": 2e-4}
    assert [learning_rate(s, more) for s in range(141)][:140] == [learning_rate(s, done) for s in range(140)]
    assert learning_rate(140, more) == pytest.approx(2e-4)
    assert learning_rate(200, more) == pytest.approx(1e-5)
    assert learning_rate(170, more) < 2e-4
    assert describe_schedule(more) == ("Adam 0.001, cosine to 300, annealed 80→140, "
                                       "restarted at 140 from 0.0002 to 200")


@pytest.mark.parametrize("method", ["hiif", "lte"])
def test_resume_is_exact(tmp_path, method):
    config = lambda: tiny_config(method, ema=0.9)  # noqa: E731
    straight = Trainer(config(), run_dir=tmp_path / "a", images=IMAGES, progress=False)
    straight.train(steps=6)

    first = Trainer(config(), run_dir=tmp_path / "b", images=IMAGES, progress=False)
    first.train(steps=3)  # saves a checkpoint at the end
    torch.manual_seed(999)  # disturb global RNG: the checkpoint must restore it
    resumed = Trainer(config(), run_dir=tmp_path / "b", images=IMAGES, progress=False)
    assert "resumed" in resumed.resume()
    resumed.train(steps=3)

    assert resumed.step == straight.step == 6
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert resumed.ema.updates == straight.ema.updates == 6
    for k, a in straight.ema.state_dict().items():
        assert torch.equal(a, resumed.ema.state_dict()[k]), k


def test_weight_average_is_what_gets_exported(tmp_path):
    trainer = Trainer(tiny_config("lte", ema=0.5), run_dir=tmp_path / "run", images=IMAGES, progress=False)
    shadow = {k: v.clone() for k, v in trainer.ema.state_dict().items()}
    trainer.train(steps=3)
    # by hand: decay min(0.5, (1 + n) / (10 + n)) = 0.1, 0.18.., 0.25
    raw = trainer.model.state_dict()
    assert trainer.ema.updates == 3
    key = "imnet.layers.0.weight" if "imnet.layers.0.weight" in raw else next(iter(shadow))
    assert not torch.equal(trainer.ema.state_dict()[key], raw[key])
    own = {k: v.clone() for k, v in raw.items()}
    path = trainer.export(tmp_path / "avg.safetensors")
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in own.items())  # swapped back
    exported = hiif.load_model(path).state_dict()
    for k, v in trainer.ema.state_dict().items():  # the average, rounded to fp16 by the file
        assert torch.equal(exported[k], v.half().float()), k
    assert not torch.equal(exported[key], raw[key].half().float())
    assert hiif.load_model(path).metadata["ema"] == "0.5 over 3 steps"
    with pytest.raises(ValueError, match="ema decay"):
        Trainer(tiny_config("lte", ema=1.5), run_dir=tmp_path / "bad", images=IMAGES, progress=False)


def test_training_reduces_loss_and_exports(tmp_path):
    trainer = Trainer(tiny_config("hiif"), run_dir=tmp_path / "run", images=IMAGES, progress=False)
    assert trainer.train(steps=0)["step"] == 0  # zero steps train nothing (not the whole schedule)
    before = trainer.train(steps=1)["loss"]
    after = trainer.train(steps=40)["loss"]
    assert after < before
    path = trainer.export(tmp_path / "tiny.safetensors")
    model = hiif.load_model(path)
    assert model.metadata["steps"] == "41" and model.metadata["name"] == "tiny-hiif"
    out = hiif.upscale(IMAGES[0][:20, :24], 2.5, model)
    assert out.size == (60, 50)


def test_cli_trains_to_a_step_total_and_exports_both_weight_kinds(tmp_path, monkeypatch, capsys):
    import yaml
    from PIL import Image

    import hiif.train
    from hiif.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for i, image in enumerate(IMAGES):
        Image.fromarray(image).save(photos / f"{i}.png")
    raw = tiny_config("lte", ema=0.9).raw
    raw["data"]["train_dir"] = str(photos)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(hiif.train, "WEIGHTS_DIR", tmp_path / "weights")
    run = ["--config", str(config), "--run-dir", str(tmp_path / "run")]

    assert main(["train", *run, "--resume", "--until", "4", "--export"]) == 0
    assert hiif.load_model(tmp_path / "weights" / "tiny-lte.safetensors").metadata["steps"] == "4"
    assert main(["train", *run, "--resume", "--until", "3"]) == 0  # already past: nothing to do
    assert "already at step 4" in capsys.readouterr().err
    # ... but --export still exports (a round's job that fell behind, or a stopped run)
    behind = tmp_path / "behind.safetensors"
    assert main(["train", *run, "--resume", "--until", "3", "--export", str(behind)]) == 0
    assert hiif.load_model(behind).metadata["steps"] == "4"
    with pytest.raises(SystemExit):  # two budgets at once: a usage error
        main(["train", *run, "--steps", "1", "--until", "9"])
    assert main(["train", *run, "--resume", "--until", "6"]) == 0
    assert main(["export", *run, "--output", str(tmp_path / "avg.safetensors")]) == 0
    assert main(["export", *run, "--last-step", "--output", str(tmp_path / "last.safetensors")]) == 0
    average, last = (hiif.load_model(tmp_path / f"{n}.safetensors") for n in ("avg", "last"))
    assert average.metadata["steps"] == last.metadata["steps"] == "6"
    assert "ema" in average.metadata and "ema" not in last.metadata
    differs = [not torch.equal(a, b) for a, b in zip(average.state_dict().values(), last.state_dict().values())]
    assert any(differs)
    # --export PATH: the weights where the caller says, in the training process (device runs)
    assert main(["train", *run, "--resume", "--until", "7", "--export", str(tmp_path / "to.safetensors")]) == 0
    assert hiif.load_model(tmp_path / "to.safetensors").metadata["steps"] == "7"


def test_resume_prefers_weights_trained_further_than_the_checkpoint(tmp_path, monkeypatch):
    """Weights trained on another machine (a lent GPU) and committed must not be overridden by an
    older local checkpoint."""
    import hiif.train

    monkeypatch.setattr(hiif.train, "WEIGHTS_DIR", tmp_path / "weights")
    config = lambda: tiny_config("lte", ema=0.9)  # noqa: E731
    local = Trainer(config(), run_dir=tmp_path / "local", images=IMAGES, progress=False)
    local.train(steps=2)
    elsewhere = Trainer(config(), run_dir=tmp_path / "elsewhere", images=IMAGES, progress=False)
    elsewhere.train(steps=5)
    elsewhere.export()  # weights/tiny-lte.safetensors at step 5

    resumed = Trainer(config(), run_dir=tmp_path / "local", images=IMAGES, progress=False)
    message = resumed.resume()
    assert "behind the weights" in message and resumed.step == 5 and resumed.warm_restart == 5
    local.train(steps=5)  # now the checkpoint (step 7) is ahead again
    again = Trainer(config(), run_dir=tmp_path / "local", images=IMAGES, progress=False)
    assert "resumed" in again.resume() and again.step == 7


def test_a_cycle_from_weights_draws_patches_the_weights_have_not_seen(tmp_path, monkeypatch):
    """A further cycle starts from the weights with a fresh sampler: seeded like the first run, it
    would replay that run's patches one for one (the first 1,500 steps of a 1,500-step model)."""
    import hiif.train

    monkeypatch.setattr(hiif.train, "WEIGHTS_DIR", tmp_path / "weights")
    first = Trainer(tiny_config("lte"), run_dir=tmp_path / "first", images=IMAGES, progress=False)
    seen = first.sampler.sample(2)["gt"]  # what the first run trained on first
    first.train(steps=3)
    first.export()
    cycles = [Trainer(tiny_config("lte"), run_dir=tmp_path / f"cycle{i}", images=IMAGES, progress=False)
              for i in range(2)]
    for cycle in cycles:
        assert "started from" in cycle.resume() and cycle.step == 3
    drawn = [cycle.sampler.sample(2)["gt"] for cycle in cycles]
    assert not torch.equal(drawn[0], seen)
    assert torch.equal(drawn[0], drawn[1])  # still seeded: a rerun of the cycle is the same run


def test_a_resume_inside_a_warm_up_goes_on_with_its_ramp(tmp_path, monkeypatch):
    import hiif.train

    monkeypatch.setattr(hiif.train, "WEIGHTS_DIR", tmp_path / "weights")

    def config():
        c = tiny_config("lte")
        c.optim["warmup"] = 10
        return c
    first = Trainer(config(), run_dir=tmp_path / "first", images=IMAGES, progress=False)
    first.train(steps=12)
    first.export()  # the committed weights, step 12
    fresh = Trainer(config(), run_dir=tmp_path / "run", images=IMAGES, progress=False)
    fresh.resume()  # a fresh optimizer at step 12: a new warm-up of 10 steps
    fresh.train(steps=3)  # checkpoint at step 15, inside that warm-up
    resumed = Trainer(config(), run_dir=tmp_path / "run", images=IMAGES, progress=False)
    assert "resumed" in resumed.resume() and resumed.warm_restart == 12
    resumed.train(steps=1)
    ramp = learning_rate(15, resumed.cfg.optim) * (15 - 12 + 1) / 10
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(ramp)


def test_a_run_of_another_recipe_never_starts_from_the_committed_weights(tmp_path, monkeypatch):
    """configs/gpu/ share their names with the CPU-trained weights: with ``resume_from_weights:
    false`` --resume continues the run's own checkpoint only, else starts as the config says."""
    import hiif.train

    monkeypatch.setattr(hiif.train, "WEIGHTS_DIR", tmp_path / "weights")
    committed = Trainer(tiny_config("lte", ema=0.9), run_dir=tmp_path / "cpu", images=IMAGES, progress=False)
    committed.train(steps=5)
    committed.export()
    other = lambda: tiny_config("lte", ema=0.9, resume_from_weights=False)  # noqa: E731
    fresh = Trainer(other(), run_dir=tmp_path / "gpu", images=IMAGES, progress=False)
    assert fresh.resume().startswith("no checkpoint or weights") and fresh.step == 0
    fresh.train(steps=2)
    again = Trainer(other(), run_dir=tmp_path / "gpu", images=IMAGES, progress=False)
    assert "resumed" in again.resume() and again.step == 2


def test_the_export_names_the_devices_it_trained_on_not_the_exporting_one(tmp_path, monkeypatch):
    import hiif.train

    monkeypatch.setattr(hiif.train, "WEIGHTS_DIR", tmp_path / "weights")
    trainer = Trainer(tiny_config("lte"), run_dir=tmp_path / "run", images=IMAGES, progress=False)
    trainer.train(steps=1)
    trainer.hardware.append("NVIDIA H100 80GB HBM3")  # as if a later session trained on, on a GPU
    trainer.save_checkpoint()
    exporter = Trainer(tiny_config("lte"), run_dir=tmp_path / "run", images=IMAGES, progress=False)
    exporter.load_checkpoint()
    assert hiif.load_model(exporter.export()).metadata["device"] == "cpu + NVIDIA H100 80GB HBM3"
    resumed = Trainer(tiny_config("lte"), run_dir=tmp_path / "elsewhere", images=IMAGES, progress=False)
    resumed.resume()  # from those weights: the devices carry on, none twice
    resumed.train(steps=1)
    assert resumed.hardware == ["cpu", "NVIDIA H100 80GB HBM3"]


def test_a_config_overrides_its_base_key_by_key(tmp_path):
    (tmp_path / "gpu").mkdir()
    (tmp_path / "cpu.yaml").write_text(
        "name: m\nmodel: {name: lte, args: {hidden_dim: 8}}\ndata: {patch: 48, queries: 2304}\n"
        "optim: {lr: 0.0004, batch: 4, steps: 1500}\ninit: [{from: a, parts: encoder}, {from: b, parts: decoder}]\n")
    (tmp_path / "gpu" / "m.yaml").write_text(
        "base: ../cpu.yaml\noptim: {batch: 16, steps: 5000}\ninit: {from: c, parts: decoder}\n")
    config = Config.load(tmp_path / "gpu" / "m.yaml")
    assert config.name == "m" and config.model["args"] == {"hidden_dim": 8}
    assert config.optim == {"lr": 0.0004, "batch": 16, "steps": 5000}  # mappings merged
    assert config.raw["init"] == {"from": "c", "parts": "decoder"}  # anything else replaced
    assert "base" not in config.raw
    (tmp_path / "cpu.yaml").write_text("base: gpu/m.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        Config.load(tmp_path / "gpu" / "m.yaml")


def test_a_time_budget_becomes_a_step_total_that_ends_annealed(tmp_path):
    # a calibration log: the first 10 steps slow (set-up), then 0.4 s a step
    log = tmp_path / "log.tsv"
    rows = ["step\tloss\ttrain_psnr\tlr\tseconds"] + [
        f"{s}\t0.1\t20\t1e-4\t{12.0 + 0.4 * (s - 10):.1f}" for s in (10, 20, 30, 40, 50)]
    log.write_text("\n".join(rows) + "\n")
    assert seconds_per_step(log, 40) == pytest.approx(0.4)  # steps 20..40, past the set-up
    with pytest.raises(ValueError, match="no logged step"):
        seconds_per_step(log, 5)
    with pytest.raises(ValueError, match="calibrate longer"):  # one row: set-up not separable
        seconds_per_step(log, 15)
    assert fitted_step_total(0.4, 40, 290, cap=5000) == 760   # 40 + 725 steps, to a multiple of 10
    assert fitted_step_total(0.4, 40, 1e6, cap=5000) == 5000  # never beyond the recipe's total
    assert fitted_step_total(0.4, 40, -5, cap=5000) == 40     # no time left: nothing more

    (tmp_path / "gpu.yaml").write_text(
        "name: m\nmodel: {name: lte, args: {hidden_dim: 8}}\ndata: {patch: 48}\n"
        "optim: {lr: 0.0004, batch: 16, steps: 5000, warmup: 300, horizon: 30000, anneal_from: 8000,"
        " restart_at: 14000, restart_lr: 0.0001, min_lr: 1.0e-05}\n")
    fitted = Config.load(write_fitted_config(tmp_path / "gpu.yaml", 760, tmp_path / "run" / "m.yaml"))
    assert fitted.name == "m" and fitted.optim["batch"] == 16 and fitted.optim["warmup"] == 152
    assert learning_rate(400, fitted.optim) == pytest.approx(learning_rate(400, {
        "lr": 0.0004, "steps": 760, "warmup": 152, "min_lr": 1e-5}))  # one plain cosine
    assert learning_rate(759, fitted.optim) == pytest.approx(1e-5, rel=1e-2)  # annealed at the end

    # continuing weights trained to step 1250: calibrated over the steps logged after it
    log.write_text("\n".join(rows[:1] + [f"{s}\t0.1\t20\t1e-4\t{500 + 0.3 * (s - 1250):.1f}"
                                          for s in (1260, 1270, 1280, 1290)]) + "\n")
    assert seconds_per_step(log, 1290, since=1250) == pytest.approx(0.3)
    go_on = Config.load(write_fitted_config(tmp_path / "gpu.yaml", 2250, tmp_path / "run" / "m.yaml", start=1250))
    assert go_on.raw["resume_from_weights"] is True  # it starts from the weights, not from scratch
    assert go_on.optim["warmup"] == 200  # a fifth of the 1,000-step cycle (the fresh optimizer's ramp)
    assert learning_rate(1250, go_on.optim) == pytest.approx(0.0002)  # half the base rate ...
    assert learning_rate(2249, go_on.optim) == pytest.approx(1e-5, rel=1e-2)  # ... down to min_lr


def test_channels_last_training_matches_the_default_layout(tmp_path):
    default = Trainer(tiny_config("lte"), run_dir=tmp_path / "a", images=IMAGES, progress=False)
    nhwc = Trainer(tiny_config("lte", channels_last=True), run_dir=tmp_path / "b", images=IMAGES,
                   progress=False)
    conv = nhwc.model.encoder.head[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    default.train(steps=3)
    nhwc.train(steps=3)
    for (k, a), (_, b) in zip(default.model.state_dict().items(), nhwc.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=k)  # same maths, other summation order
    exported = hiif.load_model(nhwc.export(tmp_path / "nhwc.safetensors"))
    assert exported.encoder.head[0].weight.is_contiguous()


def test_warm_start_copies_the_decoder_of_another_encoders_model(tmp_path):
    donor = Trainer(tiny_config("lte"), run_dir=tmp_path / "donor", images=IMAGES, progress=False)
    donor.train(steps=2)
    path = donor.export(tmp_path / "donor.safetensors")
    config = tiny_config("lte", ema=0.9, init={"from": str(path), "parts": "decoder"})
    config.model["args"]["encoder_spec"]["args"]["n_resblocks"] = 2  # another encoder
    trainer = Trainer(config, run_dir=tmp_path / "new", images=IMAGES, progress=False)
    assert not trainer.started  # nothing loaded before resume() has looked for a checkpoint
    message = trainer.resume()  # nothing to resume: the warm start is applied
    assert "decoder from donor.safetensors" in message and message.endswith(trainer.start())
    theirs, own = hiif.load_model(path).state_dict(), trainer.model.state_dict()
    decoder = [k for k in own if not k.startswith("encoder.")]
    assert decoder and all(torch.equal(own[k], theirs[k].float()) for k in decoder)
    assert not torch.equal(own["encoder.head.0.weight"], theirs["encoder.head.0.weight"].float())
    assert all(torch.equal(trainer.ema.state_dict()[k], own[k]) for k in decoder)  # average starts there
    recipe = json.loads(hiif.load_model(trainer.export(tmp_path / "new.safetensors")).metadata["recipe"])
    assert recipe["init"] == {"from": str(path), "parts": "decoder"}

    # the other way round: a trained encoder shared with another method
    hiif_run = Trainer(tiny_config("hiif", init={"from": str(path), "parts": "encoder"}),
                       run_dir=tmp_path / "x", images=IMAGES, progress=False)
    hiif_run.train(steps=0)  # training starts from the configured starting point
    own = hiif_run.model.state_dict()
    encoder = [k for k in own if k.startswith("encoder.")]
    assert all(torch.equal(own[k], theirs[k].float()) for k in encoder)
    # both at once, in order: the encoder of one model, the decoder of the same method's other model
    hiif_donor = hiif_run.export(tmp_path / "hiif.safetensors")
    both = [{"from": str(path), "parts": "encoder"}, {"from": str(hiif_donor), "parts": "decoder"}]
    combined = Trainer(tiny_config("hiif", init=both), run_dir=tmp_path / "w", images=IMAGES, progress=False)
    combined.start()
    assert "encoder from donor.safetensors" in combined.start_note
    assert "decoder from hiif.safetensors" in combined.start_note
    hiif_theirs = hiif.load_model(hiif_donor).state_dict()
    for key, value in combined.model.state_dict().items():
        source = theirs if key.startswith("encoder.") else hiif_theirs
        assert torch.equal(value, source[key].float()), key
    recipe = json.loads(hiif.load_model(combined.export(tmp_path / "w.safetensors")).metadata["recipe"])
    assert describe_init(recipe["init"]) == (f"encoder from {path}, decoder from {hiif_donor}")
    # the model card states where a model started
    card_file = str(tmp_path / "w.safetensors")
    result = {"dataset": "Set5", "protocol": "benchmark", "images": 5, "scales": [4],
              "psnr": {"bicubic": {"4": 28.43}, card_file: {"4": 30.5}}}
    row = next(line for line in model_card([result]).splitlines() if line.startswith(f"| {card_file} |"))
    # with what the donors' own training cost (a shared encoder's compute is part of the model's)
    assert row.endswith(f"fp32, encoder from {path} (tiny-lte: 2 steps, 0.00 h), "
                        f"decoder from {hiif_donor} (tiny-hiif: 0 steps, 0.00 h) |")
    donors = json.loads(hiif.load_model(card_file).metadata["donors"])
    assert [(d["name"], d["parts"], d["steps"]) for d in donors] == [("tiny-lte", "encoder", 2),
                                                                     ("tiny-hiif", "decoder", 0)]
    assert "| 30.50 |" in model_card([result]) and "+2.07" in model_card([result])
    with pytest.raises(ValueError, match="need `from`"):
        Trainer(tiny_config("hiif", init=[{"parts": "encoder"}]), run_dir=tmp_path / "v", images=IMAGES,
                progress=False)
    with pytest.raises(ValueError, match="decoder, encoder or all"):
        Trainer(tiny_config("hiif", init={"from": str(path), "parts": "head"}), run_dir=tmp_path / "y",
                images=IMAGES, progress=False)
    with pytest.raises(ValueError, match="holds a lte model"):
        Trainer(tiny_config("hiif", init={"from": str(path)}), run_dir=tmp_path / "z",
                images=IMAGES, progress=False).start()
    # once a run has its own state, its donors are not needed any more
    combined.save_checkpoint()
    hiif_donor.unlink()
    again = Trainer(tiny_config("hiif", init=both), run_dir=tmp_path / "w", images=IMAGES, progress=False)
    assert "resumed" in again.resume() and again.start() == f"checkpoint at step {combined.step}"
    assert again.donors == combined.donors  # the record of the donors survives them
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(),
                                                 combined.model.state_dict().values()))


def test_a_frozen_encoder_is_not_trained_and_the_card_says_so(tmp_path):
    donor = Trainer(tiny_config("lte"), run_dir=tmp_path / "donor", images=IMAGES, progress=False)
    donor.train(steps=2)
    path = donor.export(tmp_path / "donor.safetensors")
    config = tiny_config("hiif", ema=0.9, freeze="encoder", init={"from": str(path), "parts": "encoder"})
    trainer = Trainer(config, run_dir=tmp_path / "run", images=IMAGES, progress=False)
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    for name, param in trainer.model.named_parameters():
        assert (id(param) in in_optimizer) == (not name.startswith("encoder.")), name
    trainer.start()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train(steps=3)
    assert trainer.model.training and not trainer.model.encoder.training
    after = trainer.model.state_dict()
    theirs = hiif.load_model(path).state_dict()
    for key, value in after.items():
        if key.startswith("encoder."):  # the donor's encoder, untouched by three steps
            assert torch.equal(value, theirs[key].float()) and torch.equal(value, before[key]), key
    assert any(not torch.equal(after[k], before[k]) for k in after if not k.startswith("encoder."))
    exported = trainer.export(tmp_path / "frozen.safetensors")
    assert not trainer.model.encoder.training  # export puts the frozen encoder back in eval mode
    assert json.loads(hiif.load_model(exported).metadata["recipe"])["freeze"] == "encoder"
    card_file = str(exported)
    result = {"dataset": "Set5", "protocol": "benchmark", "images": 5, "scales": [4],
              "psnr": {"bicubic": {"4": 28.43}, card_file: {"4": 30.5}}}
    row = next(line for line in model_card([result]).splitlines() if line.startswith(f"| {card_file} |"))
    assert row.endswith(f"encoder from {path} (tiny-lte: 2 steps, 0.00 h), encoder frozen |")
    # resumes keep the encoder frozen
    again = Trainer(config, run_dir=tmp_path / "run", images=IMAGES, progress=False)
    assert "resumed" in again.resume()
    again.train(steps=2)
    assert all(torch.equal(v, theirs[k].float()) for k, v in again.model.state_dict().items()
               if k.startswith("encoder."))
    with pytest.raises(ValueError, match="freeze may only be encoder"):
        Trainer(tiny_config("hiif", freeze="decoder"), run_dir=tmp_path / "bad", images=IMAGES,
                progress=False)


def test_time_spent_stopped_is_not_booked_as_training_time(tmp_path):
    import os
    import signal
    import time

    trainer = Trainer(tiny_config("lte"), run_dir=tmp_path / "run", images=IMAGES, progress=False)
    trainer.train(steps=2)
    real_step, calls = trainer._step, []

    def step_that_gets_stopped(*args):
        result = real_step(*args)
        calls.append(1)
        if len(calls) == 2:  # as if `kill -STOP` for 1.5 s, then `kill -CONT`
            time.sleep(1.5)
            os.kill(os.getpid(), signal.SIGCONT)
            time.sleep(0.05)  # let the handler run
        return result

    trainer._step = step_that_gets_stopped
    before, t0 = trainer.elapsed, time.time()
    trainer.train(steps=4)
    wall = time.time() - t0
    assert wall > 1.5 and trainer.step == 6
    # the 1.5 s stopped are not booked (whatever a step costs on a loaded machine)
    assert trainer.elapsed - before < wall - 1.2


def test_bf16_is_trained_in_float32_on_a_cpu_without_native_bf16(tmp_path, monkeypatch):
    """An emulated bf16 step costs many float32 ones (14x measured on an AVX2 CPU) for no PSNR: the
    run trains in float32 there, and the exported recipe says what it really used."""
    import hiif.engine

    monkeypatch.setattr(hiif.engine, "native_cpu_bf16", lambda: False)
    trainer = Trainer(tiny_config("lte", precision="bf16"), run_dir=tmp_path / "a", images=IMAGES, progress=False)
    assert trainer.precision == "fp32"
    with trainer.autocast():
        assert not torch.is_autocast_enabled("cpu")
    trainer.train(steps=1)
    recipe = json.loads(hiif.load_model(trainer.export(tmp_path / "m.safetensors")).metadata["recipe"])
    assert recipe["precision"] == "fp32"

    monkeypatch.setattr(hiif.engine, "native_cpu_bf16", lambda: True)
    with Trainer(tiny_config("lte", precision="bf16"), run_dir=tmp_path / "b", images=IMAGES,
                 progress=False).autocast():
        assert torch.is_autocast_enabled("cpu")


def test_a_further_cycle_keeps_the_schedules_it_continues(tmp_path, monkeypatch):
    """Weights trained by one schedule, then a further cycle of another (scripts/train_further.sh):
    the exported weights keep the earlier schedule, and the card describes both, in order."""
    import hiif.train

    monkeypatch.setattr(hiif.train, "WEIGHTS_DIR", tmp_path / "weights")
    first = Trainer(tiny_config("lte", ema=0.9), run_dir=tmp_path / "first", images=IMAGES, progress=False)
    first.train(steps=4)
    first.export()  # the committed weights: step 4 of "Adam 0.001, cosine to 50"
    base = tmp_path / "tiny-lte.yaml"
    base.write_text(json.dumps(first.cfg.raw))  # YAML reads JSON
    further = Config.load(write_fitted_config(base, 10, tmp_path / "further" / "tiny-lte.yaml", start=4,
                                              restart_lr=5e-4))
    assert further.optim["restart_lr"] == 5e-4 and further.optim["restart_at"] == 4
    run = Trainer(further, run_dir=tmp_path / "run", images=IMAGES, progress=False)
    run.resume()
    assert run.step == 4 and run.earlier_cycles == [first.cfg.optim]
    run.train(steps=3)
    resumed = Trainer(further, run_dir=tmp_path / "run", images=IMAGES, progress=False)
    resumed.resume()  # from its checkpoint: the history survives it
    assert resumed.earlier_cycles == [first.cfg.optim]
    resumed.train()
    path = resumed.export(tmp_path / "weights" / "tiny-lte.safetensors")
    meta = hiif.load_model(path).metadata
    assert json.loads(meta["earlier_cycles"]) == [first.cfg.optim] and meta["steps"] == "10"
    described = "Adam 0.001, cosine to 50; further cycle at 4 from 0.0005 to 10"
    assert describe_schedule(further.optim, [first.cfg.optim]) == described
    result = {"dataset": "Set5", "protocol": "benchmark", "images": 5, "scales": [2],
              "psnr": {"bicubic": {"2": 30.0}, str(path): {"2": 31.0}}}
    assert described in model_card([result])
    # a run continued from weights of its own recipe (a lost checkpoint) adds no earlier cycle
    same = Trainer(tiny_config("lte", ema=0.9), run_dir=tmp_path / "same", images=IMAGES, progress=False)
    monkeypatch.setattr(hiif.train, "WEIGHTS_DIR", tmp_path / "w2")
    first.export(tmp_path / "w2" / "tiny-lte.safetensors")
    same.resume()
    assert same.step == 4 and same.earlier_cycles == []


_MMAP_PROBE = """
import ctypes, sys
import torch
from hiif.train import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "kept" else None
class Mallinfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena ordblks smblks hblks hblkhd usmblks fsmblks "
                                               "uordblks fordblks keepcost").split()]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
big = torch.empty(64 * 2**20 // 4)  # 64 MB, above glibc's largest mmap threshold
print(applied, libc.mallinfo2().hblkhd >= 64 * 2**20)
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc >= 2.33")
def test_training_processes_keep_freed_memory_in_the_heap():
    """glibc mmaps every allocation of tens of MB afresh and unmaps it when freed, so each step pays
    page faults again (an RDN step: 7.3 vs 5.8 s): after keep_freed_memory() a 64 MB tensor
    comes from the heap, without it from its own mmap."""
    import subprocess
    import sys

    def probe(mode: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", _MMAP_PROBE, mode], capture_output=True, text=True,
                              timeout=120, cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert probe("default") == ["None", "True"]
    assert probe("kept") == ["True", "False"]
