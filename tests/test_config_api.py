"""GET /api/v1/config publishes the core's own limits, defaults and option lists, and every published
bound is the one a job enforces: max + 1 (and anything below min) of each number field is a 422."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

import pytest

from invoke_core import limits
from invoke_core.compile import MAX_GENERATION_SIDE
from invoke_core.preprocess import PREPROCESSORS
from invoke_core.schedulers import SCHEDULER_LABELS, SCHEDULER_NAMES
from invoke_core.types import CONTROL_MODE_LABELS, INFILL_LABELS, ControlSettings, GenerationParams, RegionPrompt
from server.app import create_app, shutdown

API = "/api/v1"
FAKE_IMAGE = "0" * 32  # a well-formed asset id: the schema refuses before any asset is looked up


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = create_app({"root": str(tmp_path_factory.mktemp("config-root")), "device": "cpu", "start_worker": False})
    yield app
    shutdown(app)


@pytest.fixture(scope="module")
def config(app) -> dict[str, Any]:
    response = app.test_client().get(f"{API}/config")
    assert response.status_code == 200
    return response.json


def base_document() -> dict[str, Any]:
    return {"bbox": {"x": 0, "y": 0, "width": 64, "height": 64}, "layers": [], "params": {"prompt": "p", "steps": 2}}


def _param(key: str) -> Callable[[dict, Any], None]:
    def put(doc: dict, value: Any) -> None:
        doc["params"][key] = value

    return put


def _bbox(key: str) -> Callable[[dict, Any], None]:
    def put(doc: dict, value: Any) -> None:
        doc["bbox"][key] = value

    return put


def _region(doc: dict, value: Any) -> None:
    doc["layers"].append(
        {"id": "r", "kind": "regional_guidance", "image_id": FAKE_IMAGE, "region": {"prompt": "x", "strength": value}}
    )


def _control(key: str) -> Callable[[dict, Any], None]:
    def put(doc: dict, value: Any) -> None:
        doc["layers"].append({"id": "c", "kind": "control", "image_id": FAKE_IMAGE, "control": {"model": "m", key: value}})

    return put


def _reference(key: str) -> Callable[[dict, Any], None]:
    def put(doc: dict, value: Any) -> None:
        doc["layers"].append({"id": "f", "kind": "reference", "image_id": FAKE_IMAGE, "reference": {key: value}})

    return put


def _opacity(doc: dict, value: Any) -> None:
    doc["layers"].append({"id": "l", "kind": "raster", "image_id": FAKE_IMAGE, "opacity": value})


def _upscale(doc: dict, value: Any) -> None:
    doc["params"]["upscale"] = {"scale": 2, "refine_strength": value}


def _hires(key: str) -> Callable[[dict, Any], None]:
    def put(doc: dict, value: Any) -> None:
        doc["params"]["hires_fix"] = {key: value}

    return put


def _lora(doc: dict, value: Any) -> None:
    doc["params"]["loras"] = [{"model": "some-lora", "weight": value}]


# every published number field: where it goes in a job document, and the core range it must equal
FIELDS: dict[str, tuple[Callable[[dict, Any], None], limits.Range]] = {
    "steps": (_param("steps"), limits.STEPS),
    "cfg_scale": (_param("cfg_scale"), limits.CFG_SCALE),
    "true_cfg_scale": (_param("true_cfg_scale"), limits.TRUE_CFG_SCALE),
    "seed": (_param("seed"), limits.SEED),
    "batch_size": (_param("batch_size"), limits.BATCH_SIZE),
    "strength": (_param("strength"), limits.STRENGTH),
    "mask_blur": (_param("mask_blur"), limits.MASK_BLUR),
    "scale": (_param("scale"), limits.SCALE),
    "bbox_width": (_bbox("width"), limits.BBOX_SIDE),
    "bbox_height": (_bbox("height"), limits.BBOX_SIDE),
    "lora_weight": (_lora, limits.LORA_WEIGHT),
    "region_strength": (_region, limits.REGION_STRENGTH),
    "control_weight": (_control("weight"), limits.CONTROL_WEIGHT),
    "control_begin": (_control("begin"), limits.CONTROL_BEGIN),
    "control_end": (_control("end"), limits.CONTROL_END),
    "reference_weight": (_reference("weight"), limits.REFERENCE_WEIGHT),
    "reference_begin": (_reference("begin"), limits.REFERENCE_BEGIN),
    "reference_end": (_reference("end"), limits.REFERENCE_END),
    "opacity": (_opacity, limits.OPACITY),
    "upscale_refine_strength": (_upscale, limits.REFINE_STRENGTH),
    "hires_scale": (_hires("scale"), limits.HIRES_SCALE),
    "hires_strength": (_hires("strength"), limits.HIRES_STRENGTH),
}
# fields a job can carry at their max with nothing else installed or uploaded (no LoRA, no layer)
PLAIN = ["steps", "cfg_scale", "seed", "batch_size", "strength", "mask_blur", "scale", "bbox_width", "bbox_height"]


def post_job(app, doc: dict) -> Any:
    return app.test_client().post(f"{API}/canvas/jobs", json={"document": doc})


def test_every_published_number_field_is_in_the_table(config):
    assert set(config["numbers"]) == set(FIELDS)


def test_numbers_equal_the_core_ranges(config):
    for name, (_, allowed) in FIELDS.items():
        published = config["numbers"][name]
        assert (published["min"], published["max"], published["exclusive_min"], published["step"]) == (
            allowed.low,
            allowed.high,
            allowed.low_open,
            allowed.step,
        ), name
    assert config["numbers"]["bbox_width"]["max"] == MAX_GENERATION_SIDE == config["max_generation_side"]
    assert config["numbers"]["bbox_width"]["step"] == limits.BBOX_MULTIPLE == config["bbox_multiple"] == 8
    integers = {name for name, n in config["numbers"].items() if n["integer"]}
    assert integers == {"steps", "seed", "batch_size", "mask_blur", "bbox_width", "bbox_height"}


def test_defaults_equal_the_core_dataclasses(config):
    numbers = config["numbers"]
    params = GenerationParams(prompt="")
    for name in ("steps", "cfg_scale", "batch_size", "strength", "mask_blur", "scale"):
        assert numbers[name]["default"] == getattr(params, name), name
    assert numbers["seed"]["default"] is None  # a job without a seed gets a random one
    assert numbers["region_strength"]["default"] == RegionPrompt("x").strength
    control = ControlSettings(model="m")
    for name in ("weight", "begin", "end"):
        assert numbers[f"control_{name}"]["default"] == getattr(control, name)
    assert numbers["lora_weight"]["default"] == 1.0
    assert numbers["bbox_width"]["default"] == numbers["bbox_height"]["default"] == limits.DEFAULT_BBOX_SIDE
    defaults = config["defaults"]["params"]
    for f in dataclasses.fields(GenerationParams):
        if f.name in ("prompt", "seed", "loras"):
            continue
        expected = getattr(params, f.name)
        expected = getattr(expected, "value", expected)
        assert defaults[f.name] == (list(expected) if isinstance(expected, tuple) else expected), f.name
    assert config["defaults"]["control"]["mode"] == control.mode.value
    assert config["defaults"]["control"]["preprocessor"] == control.preprocessor


def test_options_and_scalars_equal_the_core_definitions(config):
    assert [(s["name"], s["label"]) for s in config["schedulers"]] == list(SCHEDULER_LABELS.items())
    assert [s["name"] for s in config["schedulers"]] == list(SCHEDULER_NAMES)
    assert [(p["name"], p["label"], p["options"]) for p in config["preprocessors"]] == [
        (name, p.label, p.defaults) for name, p in PREPROCESSORS.items()
    ]
    assert [(m["name"], m["label"]) for m in config["infill_methods"]] == [(m.value, l) for m, l in INFILL_LABELS.items()]
    assert [(m["name"], m["label"]) for m in config["control_modes"]] == [
        (m.value, l) for m, l in CONTROL_MODE_LABELS.items()
    ]
    assert config["prompt_max_chars"] == limits.PROMPT_MAX_CHARS
    assert config["max_loras"] == limits.MAX_LORAS
    assert config["max_layers"] == limits.MAX_LAYERS
    assert config["scale_choices"] == list(limits.SCALE_CHOICES)
    assert all(limits.SCALE.holds(s) for s in limits.SCALE_CHOICES)
    assert config["upscale_scales"] == list(limits.UPSCALE_SCALES)
    assert config["hires_scale_choices"] == list(limits.HIRES_SCALE_CHOICES)
    assert all(limits.HIRES_SCALE.holds(s) for s in limits.HIRES_SCALE_CHOICES)
    assert config["defaults"]["hires_fix"]["strength"] == config["numbers"]["hires_strength"]["default"]


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_a_value_outside_each_published_range_is_refused(app, config, name):
    put, _ = FIELDS[name]
    published = config["numbers"][name]
    below = published["min"] if published["exclusive_min"] else published["min"] - 1
    for value in (published["max"] + 1, below):
        doc = base_document()
        put(doc, value)
        response = post_job(app, doc)
        assert response.status_code == 422, (name, value, response.json)
        where = response.json["message"].split(":")[0]
        assert where.split(".")[-1] in name, (name, response.json["message"])


@pytest.mark.parametrize("name", PLAIN)
def test_the_published_max_of_each_plain_field_is_accepted(app, config, name):
    put, _ = FIELDS[name]
    doc = base_document()
    put(doc, config["numbers"][name]["max"])
    if name == "batch_size":
        doc["params"]["batch_size"] = 2  # the max would queue 64 items: the bound is checked above
    response = post_job(app, doc)
    assert response.status_code == 201, (name, response.json)


def test_a_bbox_side_over_the_generation_limit_names_the_field_and_the_limit(app):
    doc = base_document()
    doc["bbox"]["width"] = 8192
    response = post_job(app, doc)
    assert response.status_code == 422
    message = response.json["message"]
    assert "bbox.width" in message and str(MAX_GENERATION_SIDE) in message, message


def test_every_published_scheduler_is_accepted_by_a_job(app, config):
    for scheduler in config["schedulers"]:
        doc = base_document()
        doc["params"]["scheduler"] = scheduler["name"]
        response = post_job(app, doc)
        assert response.status_code == 201, (scheduler, response.json)
    doc = copy.deepcopy(base_document())
    doc["params"]["scheduler"] = "no_such_scheduler"
    assert post_job(app, doc).status_code == 422


def test_every_published_infill_method_and_control_mode_is_in_the_schema(app, config):
    document = app.test_client().get(f"{API}/openapi.json").json
    schemas = document["components"]["schemas"]
    assert schemas["ParamsIn"]["properties"]["infill"]["enum"] == [m["name"] for m in config["infill_methods"]]
    assert schemas["ControlIn"]["properties"]["mode"]["enum"] == [m["name"] for m in config["control_modes"]]


def test_openapi_documents_the_route(app):
    document = app.test_client().get(f"{API}/openapi.json").json
    operation = document["paths"][f"{API}/config"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ConfigOut"
    }
    assert "numbers" in document["components"]["schemas"]["ConfigOut"]["properties"]
