"""A contact sheet of what the offline provider draws: prompts × platforms, one PNG.

    python bench/contact_sheet.py [--out /tmp/contact-sheet.png] [--fit cover] [prompt ...]

Each prompt is drawn once per shape family, exactly as a job does (snapasset.framing.plan_sources
with the provider's sizes), and rendered for instagram-post, instagram-story, twitter-post and
facebook-post by the project's render path. Each row is captioned with the prompt and what the
provider reports it drew; open the PNG and look.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snapasset import framing, imaging  # noqa: E402
from snapasset.platforms import PLATFORMS  # noqa: E402
from snapasset.providers.base import GenerationRequest  # noqa: E402
from snapasset.providers.local import LocalProvider  # noqa: E402
from snapasset.schema import FITS  # noqa: E402

PLATFORM_IDS = ["instagram-post", "instagram-story", "twitter-post", "facebook-post"]
PROMPTS = [
    "A cat sleeping on a sofa",
    "A cup of coffee on a wooden table",
    "Summer sale: 50% off running shoes",
    "A rocket launching over mountains at night",
    "A red bicycle on the left of a city street",
    "A lighthouse on the ocean coast at sunset",
    "Fresh pizza for our new pizzeria, in the corner",
    "Bold purple and orange for our brand relaunch",
]
CELL_HEIGHT = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/contact-sheet.png"))
    parser.add_argument("--fit", default="cover", choices=FITS)
    parser.add_argument("prompts", nargs="*")
    args = parser.parse_args()
    prompts = args.prompts or PROMPTS
    provider = LocalProvider(partial_images=0)
    platforms = [PLATFORMS[p] for p in PLATFORM_IDS]
    widths = [round(CELL_HEIGHT * p.width / p.height) for p in platforms]
    caption_h, gap = 28, 8
    sheet = Image.new("RGB", (sum(widths) + gap * (len(widths) + 1),
                              len(prompts) * (CELL_HEIGHT + caption_h + gap) + gap), (245, 245, 245))
    d = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=16)
    y = gap
    for prompt in prompts:
        plans = framing.plan_sources(platforms, provider.choose_size, max_sources=3)
        cells, drawn = {}, set()
        for plan in plans:
            result = provider.generate(GenerationRequest(prompt, *plan.size))
            drawn.add(result.subject)
            source = imaging.decode(result.data)
            analysis = framing.analyse(source)
            for platform in plan.platforms:
                rendered = imaging.render(source, platform, "jpeg", analysis=analysis, fit=args.fit)
                cells[platform.id] = Image.open(io.BytesIO(rendered.data))
        d.text((gap, y), f"{prompt}  ->  drew: {', '.join(sorted(drawn))}", font=font, fill=(20, 20, 20))
        x = gap
        for platform, width in zip(platforms, widths):
            sheet.paste(cells[platform.id].resize((width, CELL_HEIGHT), Image.Resampling.LANCZOS),
                        (x, y + caption_h))
            x += width + gap
        y += CELL_HEIGHT + caption_h + gap
    sheet.save(args.out)
    print(f"wrote {args.out} ({sheet.width}×{sheet.height})")


if __name__ == "__main__":
    main()
