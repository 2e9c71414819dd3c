"""Bad and unusual inputs through hiif.upscale and the CLI: a correct result or a clear message."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import hiif
from badinputs import EXPECTED_SIZE_X2, SCALES, build_corpus
from hiif.imageio import ImageError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("bad"))


def test_corpus_is_large_enough(corpus):
    assert len(corpus) + len(SCALES) >= 20


def test_library_on_every_input(corpus):
    for name, (path, expect) in corpus.items():
        if expect == "error":
            with pytest.raises(ImageError) as info:
                hiif.upscale(path, 2, "bicubic")
            message = str(info.value)
            assert "\n" not in message and len(message) < 300, name
        else:
            out = hiif.upscale(path, 2, "bicubic")
            assert out.mode in ("RGB", "RGBA"), name
            if name in EXPECTED_SIZE_X2:
                assert out.size == EXPECTED_SIZE_X2[name], name


def test_alpha_and_modes(corpus):
    out = hiif.upscale(corpus["rgba_alpha"][0], 2, "bicubic")
    assert out.mode == "RGBA" and np.asarray(out)[..., 3].std() > 10
    assert hiif.upscale(corpus["palette_transparency"][0], 2, "bicubic").mode == "RGBA"
    for name in ("rgb_colour_key", "grey_colour_key"):  # PNG tRNS on RGB / L: transparent top rows
        alpha = np.asarray(hiif.upscale(corpus[name][0], 2, "bicubic"))[..., 3]
        assert alpha[:6].max() == 0 and alpha[10:].min() == 255, name
    grey16 = np.asarray(hiif.upscale(corpus["greyscale_16bit"][0], 1, "bicubic"))
    src = np.asarray(Image.open(corpus["greyscale_16bit"][0])).astype(float) / 257
    assert np.abs(grey16[..., 0] - src).max() <= 1.0  # 16-bit scaled, not clipped


@pytest.mark.parametrize("record", ["hiif-edsr-baseline", "liif-edsr-baseline", "lte-swinir"])
def test_models_handle_tiny_and_strip_inputs(record, formula_models, corpus):
    model = formula_models(record)
    assert hiif.upscale(corpus["one_pixel"][0], 30, model).size == (30, 30)
    assert hiif.upscale(corpus["wide_strip"][0], 1.5, model).size == (2250, 3)


@pytest.mark.parametrize("name", sorted(SCALES))
def test_scales_everywhere(name, corpus):
    scale, expect = SCALES[name]
    if expect == "error":
        with pytest.raises(ValueError, match="scale"):
            hiif.upscale(corpus["one_pixel"][0], scale, "bicubic")
    else:
        hiif.upscale(corpus["one_pixel"][0], scale, "bicubic")


def test_array_inputs():
    for bad in [np.zeros((0, 5, 3), np.uint8), np.zeros((2, 2, 2, 3), np.uint8), np.zeros((4, 4, 3), np.int64),
                np.full((3, 3, 3), np.nan, np.float32)]:
        with pytest.raises(ImageError):
            hiif.upscale(bad, 2, "bicubic")
    assert hiif.upscale(np.zeros((3, 4), np.uint8), 2, "bicubic").size == (8, 6)
    assert hiif.upscale(np.ones((3, 4, 3), np.float32) * 0.5, 2, "bicubic").size == (8, 6)


def test_pil_inputs():
    for empty in [Image.new("RGB", (0, 0)), Image.new("RGB", (0, 5)), Image.new("L", (5, 0))]:
        with pytest.raises(ImageError, match="empty"):
            hiif.upscale(empty, 2, "bicubic")
    with pytest.raises(ImageError, match="empty"):
        hiif.upscale(Image.new("RGB", (0, 0)), width=10, model="bicubic")
    # premultiplied-alpha modes, which Pillow converts only to LA / RGBA
    assert hiif.upscale(Image.new("La", (3, 2), (90, 128)), 2, "bicubic").size == (6, 4)
    assert hiif.upscale(Image.new("RGBa", (3, 2), (9, 8, 7, 128)), 2, "bicubic").mode == "RGBA"


def test_model_argument_is_checked():
    for bad in (None, 3, 2.5):
        with pytest.raises(ValueError, match="model must be"):
            hiif.upscale(np.zeros((4, 4, 3), np.uint8), 2, model=bad)
    assert hiif.upscale(np.zeros((4, 4, 3), np.uint8), np.array(2.0), "bicubic").size == (8, 8)


def test_output_limit_is_a_clear_error():
    with pytest.raises(ValueError, match="exceeds the limit"):
        hiif.upscale(np.zeros((1200, 1200, 3), np.uint8), 30, "bicubic")


def test_cli_on_every_input(corpus, tmp_path):
    """One subprocess walks the corpus (a process per file would dominate the suite's time)."""
    script = (
        "import sys, io, contextlib\n"
        "from hiif.cli import main\n"
        "for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        code = main(['upscale', src, dst, '--scale', '2', '--model', 'bicubic', '--quiet'])\n"
        "    print(repr((src, code, err.getvalue())))\n"
    )
    args = []
    for name, (path, _) in corpus.items():
        args += [str(path), str(tmp_path / f"{name}.png")]
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    results = {eval(line)[0]: eval(line)[1:] for line in r.stdout.splitlines()}
    for name, (path, expect) in corpus.items():
        code, err = results[str(path)]
        if expect == "error":
            assert code == 2, name
            assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), (name, err)
            assert "Traceback" not in err
        else:
            assert code == 0, (name, err)
            assert (tmp_path / f"{name}.png").is_file()
