"""snapasset.providers.local: the offline provider a developer sees without an OpenAI key."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

from snapasset import framing
from snapasset.platforms import PLATFORMS
from snapasset.providers.base import GeneratedImage, GenerationRequest
from snapasset.providers.local import LocalProvider
from snapasset.providers.local_subjects import SUBJECTS

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


# --------------------------------------------------------------------------- the prompt's subject

@pytest.mark.parametrize("prompt, subject", [
    ("A cat sleeping on a sofa", "cat"),
    ("A cup of coffee on a wooden table", "coffee"),
    ("Summer sale: 50% off running shoes", "sneaker"),
    ("A rocket launching over the mountains", "rocket"),
    ("Fresh pizza for the opening of our pizzeria", "pizza"),
    ("A golden retriever puppy playing in the park", "dog"),
    ("Portrait of a smiling woman", "person"),
    ("Noise-cancelling headphones on a desk", "headphones"),
    ("A beautiful sunset over mountains", "landscape: mountains at sunset"),
    ("Quarterly results for our investors", "abstract"),
])
def test_the_picture_is_the_subject_the_prompt_names(prompt, subject):
    assert generate(prompt).subject == subject


def test_at_least_forty_subjects_across_animals_food_people_places_objects_and_products():
    assert len(SUBJECTS) >= 40
    assert {s.category for s in SUBJECTS.values()} == {"animal", "food", "person", "place", "object", "product"}
    for name, subject in SUBJECTS.items():   # each is drawn for its own word, and looks like something
        result = generate(f"A {subject.words[0]} for our campaign", 512, 512)
        assert result.subject == name
        assert ImageStat.Stat(pixels(result.data).convert("L")).stddev[0] > 20


@pytest.mark.parametrize("prompt, where", [
    ("A red car on the left", lambda fx, fy: fx < 0.42),
    ("A cactus on the right, in the desert", lambda fx, fy: fx > 0.58),
    ("A cat in the top left corner", lambda fx, fy: fx < 0.42 and fy < 0.45),
    ("A birthday cake in the corner", lambda fx, fy: fx > 0.58 and fy > 0.55),
    ("A lighthouse at night", lambda fx, fy: 0.35 < fx < 0.65),
])
def test_the_subject_goes_where_the_words_put_it(prompt, where):
    fx, fy = framing.analyse(pixels(generate(prompt, 1536, 1024).data).convert("RGB")).focus
    assert where(fx, fy), (fx, fy)


def test_the_picture_is_drawn_at_the_size_asked_not_enlarged():
    """Detail down to the pixel: a picture drawn at half size and enlarged has next to none
    left once halved and enlarged again; one drawn at full size loses much more."""
    def finest_detail(img: Image.Image) -> float:
        round_trip = img.reduce(2).resize(img.size, Image.Resampling.BICUBIC)
        return ImageStat.Stat(ImageChops.difference(img, round_trip)).mean[0]

    large = pixels(generate("A red bicycle in the city", 1536, 1024).data).convert("L")
    small = pixels(generate("A red bicycle in the city", 768, 512).data).convert("L")
    enlarged = small.resize(large.size, Image.Resampling.BICUBIC)
    assert finest_detail(large) > 2 * finest_detail(enlarged)


# -- seed, variants, transparency, a reference picture ---------------------------------------

def test_the_same_seed_draws_the_same_bytes_and_another_seed_another_picture():
    first, again, other = generate(seed=42), generate(seed=42), generate(seed=43)
    assert first.data == again.data and first.seed == 42
    assert other.data != first.data
    assert ImageChops.difference(pixels(first.data).convert("RGB"), pixels(other.data).convert("RGB")).getbbox()


def test_without_a_seed_the_result_names_one_that_draws_the_picture_again():
    unseeded = generate()
    assert unseeded.seed is not None and generate(seed=unseeded.seed).data == unseeded.data


def test_variants_are_distinct_pictures_each_reproducible_by_its_seed():
    result = generate(seed=7, n=3)
    assert len(result.pictures) == 3 and len(set(result.pictures)) == 3
    assert result.pictures[2] == generate(seed=9).data


def test_a_transparent_background_is_see_through_at_the_top_and_opaque_below():
    image = pixels(generate(background="transparent", output_format="jpeg").data)
    assert image.mode == "RGBA" and image.format == "PNG"
    alpha = image.getchannel("A")
    assert alpha.getpixel((image.width // 2, 5)) == 0
    assert alpha.getpixel((image.width // 2, image.height - 5)) == 255


def test_the_first_reference_picture_is_visibly_placed_in_the_scene():
    reference = Image.new("RGB", (400, 300), (255, 0, 255))     # a magenta no landscape draws
    buffer = io.BytesIO()
    reference.save(buffer, "PNG")
    image = pixels(generate(seed=1, input_images=(buffer.getvalue(),)).data).convert("RGB")
    centre = image.getpixel((image.width // 2, round(image.height * 0.52)))
    assert centre == (255, 0, 255)
    magenta = dict((colour, count) for count, colour in image.getcolors(image.width * image.height))[(255, 0, 255)]
    assert magenta > 0.1 * image.width * image.height          # a sizeable part of the frame, not a speck
