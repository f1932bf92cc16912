"""snapasset.providers.local: the offline provider a developer sees without an OpenAI key."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

from snapasset.platforms import PLATFORMS
from snapasset.providers.base import GeneratedImage, GenerationRequest
from snapasset.providers.local import LocalProvider

PROMPT = "A beautiful sunset over mountains"


def generate(prompt=PROMPT, width=768, height=512, **request) -> GeneratedImage:
    return LocalProvider().generate(GenerationRequest(prompt, width, height, **request))


def pixels(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def detail(img: Image.Image) -> float:
    """Mean edge strength: how sharp a picture is."""
    return ImageStat.Stat(img.convert("L").resize((256, 171)).filter(ImageFilter.FIND_EDGES)).mean[0]


def test_same_prompt_and_size_give_identical_bytes():
    assert generate().data == generate().data


def test_result_names_the_local_provider():
    result = generate()
    assert (result.provider, result.model) == ("local", "snapasset-local-1")
    assert result.usage is None


def test_different_prompts_give_visibly_different_pictures():
    prompts = [PROMPT, "A red lighthouse on the ocean coast at night",
               "Hot air balloon festival over the desert at dawn", "A cozy cabin in the city"]
    images = [pixels(generate(p).data).convert("RGB") for p in prompts]
    for i, a in enumerate(images):
        for b in images[i + 1:]:
            mean_difference = sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3
            assert mean_difference > 15


def test_the_picture_is_not_a_flat_colour():
    img = pixels(generate().data)
    assert ImageStat.Stat(img.convert("L")).stddev[0] > 25
    assert len(img.convert("RGB").getcolors(1 << 20)) > 200


def test_prompt_words_steer_the_picture():
    night = pixels(generate("A quiet harbour at night under the stars").data)
    day = pixels(generate("A quiet harbour on a sunny day").data)
    assert ImageStat.Stat(night.convert("L")).mean[0] + 40 < ImageStat.Stat(day.convert("L")).mean[0]


@pytest.mark.parametrize("size", [(1536, 1024), (1024, 1536), (1024, 1024), (1536, 512), (333, 777)])
def test_draws_at_the_size_asked(size):
    img = pixels(generate(width=size[0], height=size[1]).data)
    assert img.size == size
    assert img.format == "PNG"


def test_output_format_is_honoured():
    assert pixels(generate(output_format="jpeg").data).format == "JPEG"
    assert pixels(generate(output_format="png").data).format == "PNG"


def test_partial_images_arrive_before_the_result_and_get_sharper():
    events = []
    provider = LocalProvider(partial_images=3)
    result = provider.generate(GenerationRequest(PROMPT, 1536, 1024),
                               on_partial=lambda data: events.append(data))
    events.append(result)
    assert len(events) == 4 and events[-1] is result
    partials = [pixels(data) for data in events[:3]]
    assert all(img.width > 0 and img.size[0] / img.size[1] == pytest.approx(1.5, rel=0.01)
               for img in partials)
    sharpness = [detail(img) for img in partials] + [detail(pixels(result.data))]
    assert sharpness == sorted(sharpness) and sharpness[0] < sharpness[-1]


def test_no_partials_without_a_callback_or_when_zero_are_asked():
    calls = []
    LocalProvider(partial_images=0).generate(GenerationRequest(PROMPT, 512, 512), on_partial=calls.append)
    assert calls == []
    assert LocalProvider().generate(GenerationRequest(PROMPT, 512, 512)).data


def test_latency_is_simulated():
    started = time.perf_counter()
    LocalProvider(latency=0.3).generate(GenerationRequest(PROMPT, 512, 512), on_partial=lambda _: None)
    assert time.perf_counter() - started >= 0.3


def test_drawing_is_quick():
    provider = LocalProvider()
    provider.generate(GenerationRequest(PROMPT, 1536, 1024))  # warm up font and plugins
    started = time.perf_counter()
    provider.generate(GenerationRequest("Something else entirely, for a fresh picture", 1536, 1024))
    assert time.perf_counter() - started < 0.5  # ~60 ms measured; generous for slow CI


def test_choose_size_fits_the_platforms():
    provider = LocalProvider()
    w, h = provider.choose_size([PLATFORMS["instagram-story"]])
    assert h > w and h == 1536 and w % 16 == 0 and h % 16 == 0
    w, h = provider.choose_size([PLATFORMS["twitter-header"]])
    assert (w, h) == (1536, 512)
    assert provider.choose_size([PLATFORMS["instagram-post"]]) == (1536, 1536)
