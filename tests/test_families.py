"""The per-family seam (invoke_core.families): every registered family answers the engine's questions
through the one interface, and the API publishes what each family can do."""

from __future__ import annotations

import diffusers
import pytest
import torch

from invoke_core import families
from invoke_core.errors import UnsupportedError
from invoke_core.families.base import FEATURES, TASKS
from invoke_core.schedulers import check_scheduler_name
from invoke_core.types import Mode
from server.app import create_app, shutdown


@pytest.mark.parametrize("name", families.NAMES)
def test_a_family_runs_every_task_on_a_real_pipeline_and_names_real_control_ones(name):
    family = families.get(name)
    for task in TASKS:
        assert issubclass(getattr(diffusers, family.pipeline_class(task, False)), diffusers.DiffusionPipeline), (name, task)
    controlled = [task for (task, control) in family.pipelines if control]
    assert bool(controlled) == ("controlnet" in family.features), "ControlNet pipelines exactly when it has the feature"
    for task in controlled:
        assert issubclass(getattr(diffusers, family.pipeline_class(task, True)), diffusers.DiffusionPipeline), (name, task)
    assert hasattr(diffusers, family.controlnet_class)


@pytest.mark.parametrize("name", families.NAMES)
def test_a_familys_defaults_fit_its_own_rules(name):
    family = families.get(name)
    d = family.defaults
    assert check_scheduler_name(d.scheduler) == d.scheduler
    assert d.width % family.size_multiple == 0 and d.height % family.size_multiple == 0
    assert d.steps >= 1 and d.cfg_scale >= 0
    assert family.features <= set(FEATURES), family.features - set(FEATURES)
    assert family.describe()["features"] == sorted(family.features)


@pytest.mark.parametrize("name", families.NAMES)
def test_a_familys_preview_is_the_latent_grid_in_rgb(name):
    # each family's latent layout at 80 x 48: (B, C, 6, 10), or packed 2x2 patches (B, 3 x 5, 64)
    packed, sixteen = {"flux", "chroma", "qwen-image"}, {"sd-3", "hidream", "z-image"}
    shape = (1, 15, 64) if name in packed else (1, 15, 128) if name in ("flux2", "flux2-dev") else (1, 16 if name in sixteen else 4, 6, 10)
    latents = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    image = families.get(name).preview(latents, (80, 48))
    assert image.size == (10, 6) and image.mode == "RGB"


def test_an_unknown_family_is_a_clear_error():
    with pytest.raises(UnsupportedError, match="not supported; supported: sd-1, sdxl, sd-3, flux, flux2, flux2-dev, chroma, hidream, z-image, qwen-image"):
        families.get("flux-9")


def test_the_engine_builds_each_tasks_pipeline_through_the_family(engine):
    record = engine.resolve_model("demo")
    base = engine.cache.get(record, engine.device).model
    for mode, cls in (
        (Mode.TXT2IMG, "StableDiffusionPipeline"),
        (Mode.IMG2IMG, "StableDiffusionImg2ImgPipeline"),
        (Mode.INPAINT, "StableDiffusionInpaintPipeline"),
        (Mode.OUTPAINT, "StableDiffusionInpaintPipeline"),
    ):
        pipe, _task = engine.pipeline_for(base, record, mode)
        assert type(pipe).__name__ == cls
        assert pipe.unet is base.unet, "the task's pipeline shares the loaded modules"


def test_the_api_publishes_every_family(tmp_path):
    app = create_app({"root": str(tmp_path), "device": "cpu", "start_worker": False})
    try:
        published = app.test_client().get("/api/v1/config").json["families"]
    finally:
        shutdown(app)
    assert set(published) == set(families.NAMES)
    for name, described in published.items():
        assert described == families.get(name).describe()



def _readme_family_rows() -> dict[str, list[str]]:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text.split("<!-- families:start -->", 1)[1].split("<!-- families:end -->", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.strip().splitlines()]
    header, body = rows[0], rows[2:]
    assert header[:2] == ["family", "demo"], header
    return {row[0].split("`")[1]: row for row in body}


def test_the_readme_family_table_says_what_each_family_declares():
    """The README's capabilities table, row by row, against the families' own declarations (the table
    test runs them)."""
    from invoke_core.model_records import DEMO_MODELS

    rows = _readme_family_rows()
    assert list(rows) == list(families.NAMES), "one row per family, in the families' order"
    demos = {spec[0]: spec[4] for spec in DEMO_MODELS}

    def task(family, name: str) -> str:
        if family.task_for(name) != name:
            return f"{family.task_for(name)}, whole box"
        if (name, False) in family.pipelines:
            return "yes"
        return "flow path" if name in family.flow_tasks else "-"

    for name, row in rows.items():
        family = families.get(name)
        assert family.label in row[0], row[0]
        for demo in [d.strip("` ") for d in row[1].split(",") if d.strip() != "-"]:
            assert demos.get(demo) == name, (name, demo)
        expected = [task(family, "txt2img"), task(family, "img2img"), task(family, "inpaint")]
        expected.append("yes" if any(kind == "edit" for kind, _ in family.kind_pipelines) else "-")
        expected += ["yes" if f in family.features else "-" for f in
                     ("negative_prompt", "weighted_prompts", "regions", "controlnet", "lora", "inpaint_model", "true_cfg", "reference")]
        assert row[2:] == expected, (name, row[2:], expected)
