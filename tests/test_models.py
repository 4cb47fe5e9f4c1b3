"""The model registry: names, arguments, option checks, prices, output parsing."""

from __future__ import annotations

import pytest

from i2vkit.errors import FalError, InputError, ModelError
from i2vkit.models import (
    PRICES_READ_ON,
    ModelSpec,
    get_model,
    is_valid_endpoint_id,
    known_names,
    list_models,
    safe_model_slug,
)

URL = "https://v3.fal.media/files/abc/img.png"

REQUIRED = {
    "wan": "fal-ai/wan-i2v",
    "wan-2.2": "fal-ai/wan/v2.2-a14b/image-to-video",
    "kling": "fal-ai/kling-video/v2.1/standard/image-to-video",
    "kling-1.6": "fal-ai/kling-video/v1.6/standard/image-to-video",
    "minimax": "fal-ai/minimax/hailuo-02/standard/image-to-video",
    "hailuo": "fal-ai/minimax/hailuo-02/standard/image-to-video",
    "ltx": "fal-ai/ltxv-13b-098-distilled/image-to-video",
    "veo": "fal-ai/veo3/fast/image-to-video",
    "pixverse": "fal-ai/pixverse/v4.5/image-to-video",
    "luma": "fal-ai/luma-dream-machine/ray-2/image-to-video",
}


@pytest.mark.parametrize(("name", "endpoint"), REQUIRED.items())
def test_required_names(name: str, endpoint: str) -> None:
    assert get_model(name).endpoint_id == endpoint
    assert get_model(name.upper()).endpoint_id == endpoint


@pytest.mark.parametrize("spec", list_models(), ids=lambda s: s.name)
def test_every_model_builds_arguments_and_has_a_price(spec: ModelSpec) -> None:
    args = spec.build_arguments(URL, "a cat walks")
    assert args[spec.image_field] == URL
    assert args[spec.prompt_field] == "a cat walks"
    for key, value in spec.defaults.items():
        assert args[key] == value
        assert key in (spec.allowed_options or {})
    assert spec.pricing is not None
    assert spec.pricing.read_on == PRICES_READ_ON
    assert spec.pricing.source
    cost = spec.estimate_cost()
    assert cost is not None and 0 < cost < 10
    assert spec.video_url({"video": {"url": "https://x/v.mp4"}}) == "https://x/v.mp4"
    assert get_model(spec.endpoint_id) is spec


def test_list_models_names_unique() -> None:
    names = [m.name for m in list_models()]
    assert len(names) == len(set(names))
    assert "hailuo" in known_names() and "hailuo" not in names


def test_options_merge_and_coerce() -> None:
    kling = get_model("kling")
    args = kling.build_arguments(
        URL, "p", {"duration": 10, "cfg_scale": "0.7", "negative_prompt": "blur"}
    )
    assert args["duration"] == "10"
    assert args["cfg_scale"] == 0.7
    assert args["negative_prompt"] == "blur"
    assert (
        get_model("veo").build_arguments(URL, "p", {"duration": "6", "generate_audio": "false"})[
            "generate_audio"
        ]
        is False
    )
    assert get_model("veo").build_arguments(URL, "p", {"duration": 6})["duration"] == "6s"
    assert (
        get_model("hailuo").build_arguments(URL, "p", {"resolution": "512p"})["resolution"]
        == "512P"
    )
    assert get_model("wan").build_arguments(URL, "p", {"seed": "42"})["seed"] == 42
    # None removes a default so fal's own default applies
    assert "duration" not in kling.build_arguments(URL, "p", {"duration": None})


def test_unknown_option_lists_accepted() -> None:
    with pytest.raises(ModelError) as err:
        get_model("kling").build_arguments(URL, "p", {"durration": "5"})
    msg = str(err.value)
    assert "'durration'" in msg and "Did you mean 'duration'" in msg
    assert "cfg_scale" in msg and "negative_prompt" in msg


@pytest.mark.parametrize(
    ("model", "options", "fragment"),
    [
        ("kling", {"duration": "7"}, '"5", "10"'),
        ("kling", {"cfg_scale": 3}, "from 0 to 1"),
        ("wan", {"resolution": "4k"}, '"480p", "720p"'),
        ("wan", {"seed": "abc"}, "whole number"),
        ("wan", {"seed": True}, "whole number"),
        ("veo", {"generate_audio": "maybe"}, "true or false"),
        ("wan", {"negative_prompt": 5}, "text"),
    ],
)
def test_bad_option_values(model: str, options: dict, fragment: str) -> None:
    with pytest.raises(ModelError) as err:
        get_model(model).build_arguments(URL, "p", options)
    msg = str(err.value)
    assert list(options)[0] in msg and model in msg and fragment in msg


def test_forbidden_combination() -> None:
    with pytest.raises(ModelError, match="1080p videos are 5 seconds only"):
        get_model("pixverse").build_arguments(URL, "p", {"resolution": "1080p", "duration": "8"})


def test_reserved_fields_and_bad_inputs() -> None:
    wan = get_model("wan")
    with pytest.raises(ModelError, match="filled in by i2vkit"):
        wan.build_arguments(URL, "p", {"image_url": "x"})
    with pytest.raises(ModelError, match="non-empty prompt"):
        wan.build_arguments(URL, "   ")
    with pytest.raises(ModelError, match="image URL"):
        wan.build_arguments("", "p")
    with pytest.raises(ModelError, match="longer than the 2500"):
        wan.build_arguments(URL, "x" * 2501)
    with pytest.raises(ModelError, match="mapping"):
        wan.build_arguments(URL, "p", ["duration"])  # type: ignore[arg-type]


def test_model_error_is_input_error() -> None:
    with pytest.raises(InputError):
        get_model("nope")


@pytest.mark.parametrize(
    ("model", "options", "expected"),
    [
        ("kling", None, 0.28),
        ("kling", {"duration": "10"}, 0.56),
        ("kling-1.6", None, 0.225),
        ("wan", None, 0.40),
        ("wan", {"resolution": "480p"}, 0.20),
        ("wan", {"resolution": "480p", "num_frames": 100}, 0.25),
        ("wan-2.2", None, 0.405),  # 81 frames / 16 fps x $0.08
        ("wan-2.2", {"resolution": "480p", "num_frames": 161}, round(161 / 16 * 0.04, 4)),
        ("minimax", None, 0.27),
        ("hailuo", {"resolution": "512P", "duration": "10"}, 0.17),
        ("ltx", None, round(121 / 24 * 0.02, 4)),
        ("ltx", {"enable_detail_pass": True}, round(121 / 24 * 0.02 * 2, 4)),
        ("veo", None, 1.20),
        ("veo", {"generate_audio": False, "duration": "4s"}, 0.40),
        ("veo3", None, 3.20),
        ("pixverse", None, 0.20),
        ("pixverse", {"resolution": "1080p"}, 0.40),
        ("pixverse", {"resolution": "540p", "duration": "8"}, 0.30),
        ("luma", None, 0.50),
        ("luma", {"resolution": "1080p", "duration": "9s"}, 4.0),
    ],
)
def test_cost_estimates(model: str, options: dict | None, expected: float) -> None:
    assert get_model(model).estimate_cost(options) == pytest.approx(expected)


def test_estimate_rejects_bad_options() -> None:
    with pytest.raises(ModelError):
        get_model("kling").estimate_cost({"duration": "99"})


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
    for name in REQUIRED:
        assert name in msg
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
