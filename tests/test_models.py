"""Models as views of the catalogue: names, arguments, schema checks, prices, output parsing."""

from __future__ import annotations

import pytest

from i2vkit.errors import FalError, InputError, ModelError
from i2vkit.models import (
    ModelSpec,
    get_model,
    is_valid_endpoint_id,
    known_names,
    list_models,
    safe_model_slug,
)

URL = "https://v3.fal.media/files/abc/img.png"

# What each name means: family names follow fal (the newest active, non-preview, general
# version: issue 24), the names users typed before stay on the endpoint they meant.
NAMES = {
    "wan": "fal-ai/wan/v2.7/image-to-video",
    "wan-2.1": "fal-ai/wan-i2v",
    "wan-2.2": "fal-ai/wan/v2.2-a14b/image-to-video",
    "kling": "fal-ai/kling-video/v3/standard/image-to-video",
    "kling-2.1": "fal-ai/kling-video/v2.1/standard/image-to-video",
    "kling-1.6": "fal-ai/kling-video/v1.6/standard/image-to-video",
    "kling-2.5-turbo": "fal-ai/kling-video/v2.5-turbo/standard/image-to-video",
    "hailuo": "minimax/h3/image-to-video",
    "hailuo-02": "fal-ai/minimax/hailuo-02/standard/image-to-video",
    "ltx": "fal-ai/ltx-2.3/image-to-video",
    "veo": "fal-ai/veo3.1/image-to-video",
    "veo-3.1-fast": "fal-ai/veo3.1/fast/image-to-video",
    "veo3": "fal-ai/veo3/image-to-video",
    "luma": "luma/agent/ray/v3.2/image-to-video",
    "ray-2": "fal-ai/luma-dream-machine/ray-2/image-to-video",
}


@pytest.mark.parametrize(("name", "endpoint"), NAMES.items())
def test_names(name: str, endpoint: str) -> None:
    assert get_model(name).endpoint_id == endpoint
    assert get_model(name.upper()).endpoint_id == endpoint


@pytest.mark.parametrize("spec", list_models(), ids=lambda s: s.name)
def test_every_model_builds_arguments_into_its_own_image_field(spec: ModelSpec) -> None:
    options = {}
    required = set(spec.input_schema["required"]) - {spec.prompt_field, spec.image_field}
    for name in required:  # end frames (first-last-frame), an audio track, LoRA weights
        options[name] = (
            [{"path": URL}] if spec.input_schema["properties"][name]["type"] == "array" else URL
        )
    args = spec.build_arguments(URL, "a cat walks", options)
    assert args[spec.image_field] == URL and args[spec.prompt_field] == "a cat walks"
    cost = spec.estimate_cost(options)
    assert cost is None or 0 < cost < 20
    if spec.price_rule["verified"] == "unknown":
        assert cost is None and spec.pricing is None
    assert spec.video_url({"video": {"url": "https://x/v.mp4"}}) == "https://x/v.mp4"


def test_names_unique_and_family_aliases() -> None:
    names = [m.name for m in list_models()]
    assert len(names) == len(set(names)) and len(names) >= 40
    assert {"hailuo", "minimax", "grok", "kling-2.5-turbo"} <= set(known_names())


def test_options_coerced_to_the_schema_types() -> None:
    args = get_model("kling-2.1").build_arguments(URL, "p", {"duration": 10, "cfg_scale": "0.7"})
    assert args["duration"] == "10" and args["cfg_scale"] == 0.7
    veo = get_model("veo")
    assert veo.build_arguments(URL, "p", {"generate_audio": "false"})["generate_audio"] is False
    assert veo.build_arguments(URL, "p", {"duration": 6})["duration"] == "6s"
    assert get_model("wan-2.7").build_arguments(URL, "p", {"duration": "10"})["duration"] == 10
    assert (
        get_model("hailuo-02").build_arguments(URL, "p", {"resolution": "512p"})["resolution"]
        == "512P"
    )


def test_every_problem_in_one_error() -> None:
    with pytest.raises(ModelError) as err:
        get_model("veo").validate_options(
            {"durration": "8s", "resolution": "8k", "generate_audio": "maybe", "seed": "x"}
        )
    msg = str(err.value)
    for said in ("'durration'", "'duration'", "resolution='8k'", "true or false", "whole"):
        assert said in msg
    assert "i2vkit models veo" in msg
    assert isinstance(err.value, InputError)


def test_fields_i2vkit_fills_are_refused_as_options() -> None:
    with pytest.raises(ModelError, match="filled in by i2vkit"):
        get_model("kling").validate_options({"start_image_url": URL})
    with pytest.raises(ModelError, match="last_frame_url is required"):
        get_model("veo-3.1-fast-flf").validate_options({})


def test_end_image_alias_and_url() -> None:
    ray = get_model("kling-2.5-turbo-pro")  # its end frame is tail_image_url
    args = ray.build_arguments(URL, "p", {"end_image_url": "/tmp/x.png"}, end_image_url=URL)
    assert args["tail_image_url"] == URL and "end_image_url" not in args
    with pytest.raises(ModelError, match="was not uploaded"):
        ray.build_arguments(URL, "p", {"end_image_url": "/tmp/x.png"})
    with pytest.raises(ModelError, match="takes no end image"):
        get_model("wan-2.1").build_arguments(URL, "p", end_image_url=URL)


@pytest.mark.parametrize(
    ("model", "options", "expected"),
    [
        ("wan-2.1", None, 0.40),  # per video at 720p
        ("wan-2.1", {"resolution": "480p"}, 0.20),
        ("wan-2.1", {"num_frames": 100}, 0.50),  # more than 81 frames: x1.25
        ("wan", None, 0.75),  # Wan 2.7: 5 s at its default 1080p x $0.15
        ("kling-2.1", {"duration": "10"}, 0.56),  # $0.056 per second
        ("veo-3.1-fast", None, 1.20),  # 8 s x $0.15 (audio on)
        ("veo-3.1-fast", {"generate_audio": False, "duration": "4s"}, 0.40),
        ("veo-3.1-fast", {"resolution": "4k"}, 2.80),
        ("ltx-0.9.8-13b-distilled", {"num_frames": 240, "frame_rate": 48}, 0.2),  # 24 fps basis
        ("seedance-2.0", {"duration": "5"}, 1.512),  # 1280x720x5x24/1024 tokens x $14/M
        ("pixverse-5.6", {"duration": "8", "resolution": "1080p"}, 1.50),
        ("vidu-q2-pro", {"duration": 4}, 0.30),  # $0.10 + 4 x $0.05
    ],
)
def test_cost_estimates(model: str, options: dict | None, expected: float) -> None:
    assert get_model(model).estimate_cost(options) == pytest.approx(expected)


def test_unknown_price_is_none_never_zero() -> None:
    assert get_model("sora-2").estimate_cost() is None
    assert get_model("wan-2.6-flash").estimate_cost() is None  # no price fal publishes


def test_status_warns_or_refuses() -> None:
    assert "veo3.1" in get_model("fal-ai/veo3/fast/image-to-video").status_note()
    assert get_model("veo").status_note() is None
    with pytest.raises(ModelError, match="shut down"):
        get_model("fal-ai/sora-2/image-to-video/pro").status_note()


def test_full_endpoint_id_is_generic() -> None:
    spec = get_model("fal-ai/some-new/model/image-to-video")
    assert spec.generic
    assert spec.endpoint_id == "fal-ai/some-new/model/image-to-video"
    args = spec.build_arguments(URL, "p", {"anything": {"nested": [1, 2]}, "fps": 30})
    assert args == {"prompt": "p", "image_url": URL, "anything": {"nested": [1, 2]}, "fps": 30}
    assert spec.estimate_cost({"fps": 30}) is None
    assert get_model("bytedance/seedance/v1/image-to-video").generic
    with pytest.raises(ModelError, match="JSON"):
        spec.build_arguments(URL, "p", {"x": object()})


@pytest.mark.parametrize(
    "bad",
    [
        "../../x",
        "fal-ai/../../etc/passwd",
        "/fal-ai/wan-i2v",
        "fal-ai/wan-i2v/",
        "fal-ai//wan",
        "fal-ai/wan i2v",
        "fal-ai\\wan-i2v",
        "fal-ai/.hidden",
        "fal-ai/a..b",
        "fal-ai/" + "x" * 300,
    ],
)
def test_unsafe_endpoint_ids_rejected(bad: str) -> None:
    assert not is_valid_endpoint_id(bad)
    with pytest.raises(ModelError, match="not a valid fal endpoint id"):
        get_model(bad)


def test_url_instead_of_endpoint() -> None:
    with pytest.raises(ModelError, match="'fal-ai/wan-i2v'") as err:
        get_model("https://fal.ai/models/fal-ai/wan-i2v/api")
    assert "web address" in str(err.value)


def test_unknown_short_name_lists_known() -> None:
    with pytest.raises(ModelError) as err:
        get_model("klingg")
    msg = str(err.value)
    assert "Unknown model 'klingg'" in msg and "Did you mean 'kling'" in msg
    for family in ("kling", "veo", "wan", "seedance"):
        assert family in msg
    with pytest.raises(ModelError, match="No model given"):
        get_model("  ")


def test_video_url_extraction() -> None:
    spec = get_model("kling")
    assert spec.video_url({"video": {"url": "https://cdn/v.mp4", "content_type": "video/mp4"}}) == (
        "https://cdn/v.mp4"
    )
    # tolerated alternative shapes
    assert spec.video_url({"video": "https://cdn/a.mp4"}) == "https://cdn/a.mp4"
    assert spec.video_url({"videos": [{"url": "https://cdn/b.mp4"}]}) == "https://cdn/b.mp4"
    with pytest.raises(FalError, match="no video URL at 'video.url'") as err:
        spec.video_url({"images": [], "seed": 1})
    assert "images, seed" in str(err.value)
    assert err.value.error_type == "missing_video"
    with pytest.raises(FalError, match="no video URL"):
        spec.video_url({"video": {"url": None}})
    with pytest.raises(FalError, match="no video URL"):
        spec.video_url({"video": {"url": 12}})
    with pytest.raises(FalError, match="not a JSON object"):
        spec.video_url(["https://cdn/v.mp4"])


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("kling", "kling"),
        ("fal-ai/wan-i2v", "fal-ai-wan-i2v"),
        ("fal-ai/wan/v2.2-a14b/image-to-video", "fal-ai-wan-v2.2-a14b-image-to-video"),
        ("../../x", "x"),
        ("..", "model"),
        ("a b\\c/..d", "a-b-c-.d"),
        ("", "model"),
    ],
)
def test_safe_model_slug(name: str, slug: str) -> None:
    out = safe_model_slug(name)
    assert out == slug
    assert "/" not in out and "\\" not in out and ".." not in out and not out.startswith(".")
