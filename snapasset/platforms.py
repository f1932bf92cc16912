"""The social platforms SnapAsset renders for (SPEC §5)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["Platform", "PLATFORMS", "get_platform", "describe_unknown", "custom_platform", "job_platforms",
           "CUSTOM_MAX_BYTES"]

MB = 1024 * 1024
CUSTOM_MAX_BYTES = 8 * MB     # a custom platform's cap when it names none


@dataclass(frozen=True)
class Platform:
    id: str
    name: str
    width: int
    height: int
    max_bytes: int
    # Shares of the frame's height the platform's own controls cover (SPEC §5, safe zones):
    # the subject is framed out of them where the picture allows.
    safe_top: float = 0.0
    safe_bottom: float = 0.0

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "width": self.width,
                "height": self.height, "maxBytes": self.max_bytes}


PLATFORMS: dict[str, Platform] = {p.id: p for p in (
    Platform("instagram-post", "Instagram Post", 1080, 1080, 8 * MB),
    Platform("instagram-portrait", "Instagram Portrait", 1080, 1350, 8 * MB),
    Platform("instagram-story", "Instagram Story", 1080, 1920, 8 * MB, safe_top=0.14, safe_bottom=0.20),
    Platform("twitter-post", "Twitter Post", 1200, 675, 5 * MB),
    Platform("twitter-header", "Twitter Header", 1500, 500, 5 * MB),
    Platform("facebook-post", "Facebook Post", 1200, 630, 8 * MB),
    Platform("facebook-cover", "Facebook Cover", 820, 312, 8 * MB),
    Platform("linkedin-post", "LinkedIn Post", 1200, 627, 5 * MB),
    Platform("pinterest-pin", "Pinterest Pin", 1000, 1500, 20 * MB),
    Platform("youtube-thumbnail", "YouTube Thumbnail", 1280, 720, 2 * MB),
    Platform("og-image", "Open Graph Image", 1200, 630, 8 * MB),
)}


def get_platform(platform_id: str) -> Platform:
    """Return the platform with this id; KeyError when unknown."""
    return PLATFORMS[platform_id]


def describe_unknown(unknown: list[str]) -> str:
    """What to tell someone who named platforms that do not exist: each one with the closest
    known id when there is one (a typo), then every valid id."""
    named = []
    for platform_id in unknown:
        close = difflib.get_close_matches(platform_id, PLATFORMS, n=1, cutoff=0.6)
        named.append(f"'{platform_id}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return (f"unknown platform{'s' if len(unknown) > 1 else ''} {', '.join(named)}; "
            f"valid ids: {', '.join(PLATFORMS)}")


def custom_platform(spec: dict) -> Platform:
    """A job's own output size (options.customPlatforms entry, already validated): named by its id."""
    return Platform(spec["id"], spec.get("name", spec["id"]), spec["width"], spec["height"],
                    spec.get("maxBytes") or CUSTOM_MAX_BYTES)


def job_platforms(data: dict) -> list[Platform]:
    """Every output of a job's data: its built-in platforms, then its custom ones."""
    customs = (data.get("options") or {}).get("customPlatforms") or []
    return [get_platform(p) for p in data["platforms"]] + [custom_platform(c) for c in customs]
