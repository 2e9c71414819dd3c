"""HIIF demo: arbitrary-scale super-resolution against bicubic, LIIF and LTE (Gradio UI only).

    python app.py            # http://127.0.0.1:7860 ; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT apply

All logic lives in ``hiif/demo.py``; limits per device are documented there (``device_limits``).
API: ``Client(url).predict(handle_file("photo.png"), "EDSR-baseline", 3.3, api_name="/upscale")``
returns the HIIF, bicubic, LIIF and LTE images (whole outputs up to 4 MP) and a JSON summary.
"""
from __future__ import annotations

import os
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from hiif import demo  # noqa: E402

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = Path(os.environ.get("HIIF_DEMO_EXAMPLES", ROOT / "examples"))
CSS = """
#title {margin-bottom: 0}
.slider-box {min-height: 120px}
#status table {font-size: 0.85em}
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def user_errors():
    """Show DemoError (and anything unexpected) as a gr.Error; the server carries on."""
    try:
        yield
    except gr.Error:
        raise
    except demo.DemoError as exc:
        raise gr.Error(str(exc)) from None
    except Exception as exc:  # never let one request take the server down
        traceback.print_exc()
        raise gr.Error(f"Unexpected error ({type(exc).__name__}: {exc})") from None


def examples() -> list[Path]:
    if not EXAMPLES_DIR.is_dir():
        return []
    # formats a browser shows (not every one hiif reads: TIFF is not among them)
    return sorted(p for p in EXAMPLES_DIR.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))


def build(models: demo.ModelSet, outputs: demo.OutputDir) -> gr.Blocks:
    limits = models.limits
    backbones = list(demo.BACKBONES)
    default_backbone = (models.available_backbones() or backbones)[0]
    preview_choices = sorted({*demo.PREVIEW_SIDES, limits.preview_side})

    def progress_fn(progress: gr.Progress):
        return lambda fraction, desc: progress(fraction, desc=desc)

    # -- event handlers ------------------------------------------------------------------------
    def stream(job: demo.Job, progress: gr.Progress, sliders_too: bool = True):
        """Render ``job`` method by method; after bicubic and after each further method, yield
        (comparison, files, sliders, final) so the page shows results while the rest renders."""
        folder = outputs.new_job()
        paths: dict = {}
        for comparison in models.compare_iter(job, progress_fn(progress)):
            paths = demo.save_results(comparison, folder, paths)
            done = set(comparison.results)
            final = done == set(demo.ORDER)
            if "bicubic" not in done and not final:
                continue  # HIIF alone: nothing to compare yet
            sliders = []
            for m in ("bicubic", "liif", "lte"):
                if not sliders_too:
                    sliders.append(gr.skip())
                elif m in paths:
                    sliders.append(gr.update(value=(str(paths["hiif"]), str(paths[m])), visible=True))
                elif m in done:  # weights missing: hide this comparison
                    sliders.append(gr.update(value=None, visible=False))
                else:  # still rendering
                    sliders.append(gr.update(value=None, visible=True))
            yield comparison, [str(p) for p in paths.values()], sliders, final

    def render(image, backbone, scale, separate, vscale, mode, preview, centre, progress):
        job = demo.plan_job(image, backbone, scale, vscale if separate else None, mode, centre,
                            budget=int(preview) ** 2, limits=limits)
        params = dict(image=image, backbone=backbone, scale=scale, separate=separate, vscale=vscale,
                      mode=mode, centre=centre)
        head = f"**{job.backbone}** · {job.describe()}."
        for comparison, files, sliders, final in stream(job, progress):
            if not final:
                pending = [demo.LABELS[m] for m in demo.ORDER if m not in comparison.results]
                yield (*sliders, comparison.table(), files, f"{head} Rendering {' and '.join(pending)}…",
                       gr.update(visible=False), gr.skip())
                continue
            offer, offer_text = demo.full_render_offer(comparison, limits)
            notes = [head]
            missing = [r.model for r in comparison.results.values() if r.image is None]
            if missing:
                notes.append("Not shown (weights missing): " + ", ".join(missing) + ".")
            if not offer and not job.full:
                notes.append(offer_text)
            yield (*sliders, comparison.table(), files, " ".join(notes),
                   gr.update(visible=offer, value=offer_text if offer else "Render whole output"), params)

    def run(image, backbone, scale, separate, vscale, mode, preview, centre, progress=gr.Progress()):
        with user_errors():
            yield from render(image, backbone, scale, separate, vscale, mode, preview, centre, progress)

    def rerun(image, backbone, scale, separate, vscale, mode, preview, centre, last,
              progress=gr.Progress()):
        """Scale, backbone, mode or region changed after a first run: render again (decoders only
        when the image and backbone are unchanged)."""
        if last is None or image is None:
            yield tuple(gr.skip() for _ in range(8))
            return
        with user_errors():
            yield from render(image, backbone, scale, separate, vscale, mode, preview, centre, progress)

    def render_whole(last, progress=gr.Progress()):
        with user_errors():
            if not last:
                raise demo.DemoError("run a comparison first")
            job = demo.plan_job(last["image"], last["backbone"], last["scale"],
                                last["vscale"] if last["separate"] else None, last["mode"],
                                last["centre"], limits=limits)
            job = demo.whole_job(job, limits)
            (H, W) = job.out_hw
            show = job.out_pixels <= demo.SLIDER_MAX_PIXELS
            for comparison, files, sliders, final in stream(job, progress, sliders_too=show):
                note = f"**{job.backbone}** · whole {W}×{H} output" + (
                    " rendered; PNGs in the downloads." if final else ": rendering…")
                if not show:
                    note += " (The sliders keep showing the region: the whole image is over 4 MP.)"
                yield (*sliders, comparison.table(), files, note, gr.update(visible=False))

    def plan(image, backbone, scale, separate, vscale, mode, preview, centre, last):
        """Before the first run: what Run will render (sizes, region), or what is wrong."""
        if last is not None:
            return gr.skip()  # a result is shown; the re-render these controls start replaces it
        return demo.plan_text(image, backbone, scale, vscale if separate else None, mode, centre,
                              budget=int(preview) ** 2, limits=limits) or "Results appear here."

    def make_zoom(image, backbone, scale, separate, vscale, mode, centre, versus, progress=gr.Progress()):
        """The zoom animation of HIIF against ``versus`` into the chosen point, ×1 up to the scale."""
        with user_errors():
            job = demo.plan_job(image, backbone, scale, vscale if separate else None, mode, centre, limits=limits)
            path, info = demo.zoom_file(models, job, versus, outputs.new_job(), progress_fn(progress))
            size = info["frame_size"]
            note = (f"**Zoom** · {' against '.join(reversed(info['methods']))}, ×{info['scales'][0]:.2f} to "
                    f"×{info['scales'][-1]:.2f}, {info['frames']} frames of {size['width']}×{size['height']}, "
                    "played forwards and back (animated WebP).")
            return str(path), note

    def api_zoom(image, backbone, scale, versus, center_x, center_y, progress=gr.Progress()):
        """A zoom animation (animated WebP) of HIIF against ``versus`` (bicubic, liif or lte) on
        ``backbone``, into (center_x, center_y) (fractions of the input), from ×1 up to ``scale``.
        Returns the file and a JSON summary (scales, frame size)."""
        with user_errors():
            centre = (0.5 if center_y is None else center_y, 0.5 if center_x is None else center_x)
            job = demo.plan_job(image, backbone, scale, None, "Upscale", centre, limits=limits)
            path, info = demo.zoom_file(models, job, versus, outputs.new_job(), progress_fn(progress))
            return str(path), info

    def on_select(image, evt: gr.SelectData):
        with user_errors():
            if image is None:
                return None
            return demo.click_to_centre(evt.index, demo.image_size(image))

    def api(image, backbone, scale, vertical_scale, mode, center_x, center_y, progress=gr.Progress()):
        """Upscale with HIIF, bicubic, LIIF and LTE. Returns the four images (whole outputs when at
        most 4 MP, else the region around (center_x, center_y), fractions of the output) and a
        JSON summary (sizes, region, timings, PSNR/SSIM in "Ground truth" mode)."""
        with user_errors():
            centre = (0.5 if center_y is None else center_y, 0.5 if center_x is None else center_x)
            job = demo.plan_job(image, backbone, scale, vertical_scale, mode, centre,
                                budget=demo.API_MAX_PIXELS, limits=limits)
            comparison = models.compare(job, progress_fn(progress))
            paths = demo.save_results(comparison, outputs.new_job())
            return (*(str(paths[m]) if m in paths else None for m in demo.ORDER),
                    demo.api_info(comparison, models))

    def api_figure(image, backbone, scale, vertical_scale, mode, center_x, center_y, size,
                   progress=gr.Progress()):
        """The comparison as one figure for slides (PNG): the input with the region outlined, then
        bicubic, LIIF, LTE and HIIF on about size×size output pixels around (center_x, center_y),
        fractions of the output; in "Ground truth" mode also the ground truth's region, each
        captioned with its PSNR / SSIM. Returns the figure and the JSON summary of /upscale."""
        with user_errors():
            side = demo.figure_side(size)
            centre = (0.5 if center_y is None else center_y, 0.5 if center_x is None else center_x)
            job = demo.plan_job(image, backbone, scale, vertical_scale, mode, centre,
                                budget=side * side, limits=limits)
            comparison = models.compare(job, progress_fn(progress))
            paths = demo.save_results(comparison, outputs.new_job())
            if "figure" not in paths:
                raise demo.DemoError(f"{job.backbone}: no model rendered; see the status above")
            return str(paths["figure"]), demo.api_info(comparison, models)

    # -- layout ----------------------------------------------------------------------------------
    with gr.Blocks(title="HIIF: arbitrary-scale super-resolution", delete_cache=(1800, 3600)) as app:
        gr.Markdown("# HIIF — arbitrary-scale super-resolution, ×1 to ×30\n"
                    "Hierarchical implicit image function (HIIF) against bicubic, LIIF and LTE on the "
                    "same encoder. Pick an image, a backbone and a scale, then **Run**; drag the slider "
                    "handles to compare. Click the input to choose the region shown when the output "
                    "is large (or the part compared, when the input is larger than this server encodes). "
                    "The downloads hold a comparison figure for slides.", elem_id="title")
        n_ok = len(models.entries) - len(models.missing())
        with gr.Accordion(f"Device: {models.device_text()} · weights: {n_ok} of {len(models.entries)} "
                          "models installed", open=bool(models.missing())):
            gr.Markdown(models.status_markdown(), elem_id="status")
        centre = gr.State(None)
        last = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                image = gr.Image(label="Input (click to choose the region shown)", type="filepath",
                                 image_mode=None, sources=["upload", "clipboard"], height=300,
                                 elem_id="input-image")
                found = examples()
                if found:
                    gr.Examples([[str(p)] for p in found], inputs=[image], label="Examples",
                                elem_id="examples", examples_per_page=12, cache_examples=False)
            with gr.Column(scale=1, min_width=320):
                backbone = gr.Radio(backbones, value=default_backbone, label="Backbone", elem_id="backbone")
                mode = gr.Radio(list(demo.MODES), value="Upscale", label="Mode", elem_id="mode",
                                info="Upscale: the input is the low-resolution image. Ground truth: "
                                     "the input is downsampled by the scale (bicubic), restored, and "
                                     "scored (PSNR / SSIM).")
                scale = gr.Slider(1, 30, value=4, step=0.01, label="Scale (×)", elem_id="scale")
                separate = gr.Checkbox(False, label="Separate vertical scale", elem_id="separate")
                vscale = gr.Slider(1, 30, value=4, step=0.01, label="Vertical scale (×)",
                                   visible=False, elem_id="vscale")
                preview = gr.Radio(preview_choices, value=limits.preview_side, elem_id="preview",
                                   label="Preview size (px per side)",
                                   info="Larger outputs show a region of this size; whole outputs "
                                        "are rendered on request.")
                run_btn = gr.Button("Run", variant="primary", elem_id="run")
        info = gr.Markdown("Results appear here.", elem_id="info")
        with gr.Row(equal_height=True):
            sliders = [gr.ImageSlider(label=f"HIIF (left) vs {other} (right)", format="png",
                                      interactive=False, max_height=600, elem_id=f"slider-{key}",
                                      elem_classes=["slider-box"], min_width=280)
                       for key, other in (("bicubic", "bicubic"), ("liif", "LIIF"), ("lte", "LTE"))]
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                table = gr.Dataframe(headers=demo.TABLE_HEADERS, label="Methods", interactive=False,
                                     elem_id="results", wrap=True)
            with gr.Column(scale=2):
                whole_btn = gr.Button("Render whole output", visible=False, elem_id="whole")
                files = gr.File(label="Downloads (PNG; the comparison figure last)", file_count="multiple", height=160,
                                interactive=False, elem_id="downloads")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                zoom_versus = gr.Radio(["Bicubic", "LIIF", "LTE"], value="Bicubic", elem_id="zoom-versus",
                                       label="Zoom animation for slides: HIIF against",
                                       info=f"{demo.ZOOM_FRAMES_APP} frames from ×1 up to the scale, into the "
                                            "point clicked on the input, beside the input; a minute or more on a CPU.")
                zoom_btn = gr.Button("Make the zoom animation", elem_id="zoom")
            with gr.Column(scale=2):
                zoom_file = gr.File(label="Zoom (animated WebP)", interactive=False, height=100, elem_id="zoom-file")
                zoom_note = gr.Markdown(elem_id="zoom-note")

        # hidden components behind the API endpoint /upscale
        with gr.Column(visible=False):
            api_image = gr.File(label="image", type="filepath")
            api_backbone = gr.Dropdown(backbones, value=default_backbone, label="backbone")
            api_scale = gr.Number(4.0, label="scale")
            api_vscale = gr.Number(0, label="vertical_scale", info="0: same as scale")
            api_mode = gr.Dropdown(list(demo.MODES), value="Upscale", label="mode")
            api_cx = gr.Number(0.5, label="center_x")
            api_cy = gr.Number(0.5, label="center_y")
            api_outputs = [gr.Image(type="filepath", format="png", label=m) for m in demo.ORDER]
            api_json = gr.JSON(label="info")
            api_btn = gr.Button("api")
            api_size = gr.Number(256, label="size", info="region side, output pixels")
            api_figure_out = gr.Image(type="filepath", format="png", label="figure")
            api_figure_json = gr.JSON(label="info")
            api_figure_btn = gr.Button("api figure")
            api_versus = gr.Dropdown(["bicubic", "liif", "lte"], value="bicubic", label="versus")
            api_zoom_out = gr.File(label="zoom", type="filepath")
            api_zoom_json = gr.JSON(label="info")
            api_zoom_btn = gr.Button("api zoom")

        # -- events ------------------------------------------------------------------------------
        controls = [image, backbone, scale, separate, vscale, mode, preview, centre]
        results = [*sliders, table, files, info, whole_btn, last]
        render_queue = dict(concurrency_id="render", concurrency_limit=limits.concurrency)
        # keep finished sliders visible while the rest renders
        heavy = dict(render_queue, show_progress_on=[info])
        run_btn.click(run, controls, results, api_visibility="undocumented", api_name="run",
                      trigger_mode="always_last", **heavy)
        gr.on([scale.release, vscale.release, backbone.change, mode.change, preview.change],
              rerun, [*controls, last], results, api_visibility="private", trigger_mode="always_last",
              **heavy)
        separate.change(lambda on: gr.update(visible=on), separate, vscale, api_visibility="private",
                        queue=False)
        image.change(lambda: (None, None), None, [centre, last], api_visibility="private", queue=False).then(
            plan, [*controls, last], info, api_visibility="private", queue=False)
        gr.on([scale.release, vscale.release, separate.change, backbone.change, mode.change, preview.change],
              plan, [*controls, last], info, api_visibility="private", queue=False)
        selected = image.select(on_select, image, centre, api_visibility="private", queue=False)
        selected.then(rerun, [*controls, last], results, api_visibility="private", trigger_mode="always_last",
                      **heavy)
        selected.then(plan, [*controls, last], info, api_visibility="private", queue=False)
        whole_btn.click(render_whole, last, [*sliders, table, files, info, whole_btn],
                        api_visibility="private", **heavy)
        api_btn.click(api, [api_image, api_backbone, api_scale, api_vscale, api_mode, api_cx, api_cy],
                      [*api_outputs, api_json], api_name="upscale", **render_queue)
        zoom_btn.click(make_zoom, [image, backbone, scale, separate, vscale, mode, centre, zoom_versus],
                       [zoom_file, zoom_note], api_visibility="private", **dict(render_queue, show_progress_on=[zoom_note]))
        api_zoom_btn.click(api_zoom, [api_image, api_backbone, api_scale, api_versus, api_cx, api_cy],
                           [api_zoom_out, api_zoom_json], api_name="zoom", **render_queue)
        api_figure_btn.click(api_figure, [api_image, api_backbone, api_scale, api_vscale, api_mode, api_cx,
                                          api_cy, api_size], [api_figure_out, api_figure_json],
                             api_name="figure", **render_queue)
    return app


def patient_startup_check() -> None:
    """Gradio's launch() gives up (ValueError "localhost is not accessible") when its own server
    does not answer one HEAD request within 3 s, which happens on a loaded machine; retry for a
    minute instead."""
    from gradio import networking

    url_ok = networking.url_ok

    def check(url: str) -> bool:
        deadline = time.monotonic() + 60
        while not url_ok(url):
            if time.monotonic() > deadline:
                return False
            time.sleep(1)
        return True

    networking.url_ok = check


def main() -> None:
    limits = demo.device_limits()
    log(f"HIIF demo: loading models on {limits.device} …")
    models = demo.ModelSet(limits=limits, log=log)
    log(models.status_markdown())
    outputs = demo.OutputDir()
    app = build(models, outputs)
    app.queue(default_concurrency_limit=limits.concurrency, max_size=64)
    patient_startup_check()
    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])
    app.launch(show_error=True, max_file_size="50mb", ssr_mode=False, theme=theme, css=CSS,
               allowed_paths=[str(EXAMPLES_DIR)])


if __name__ == "__main__":
    main()
