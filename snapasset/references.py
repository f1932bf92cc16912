"""Reference pictures of a job (`options.inputImages`, SPEC §6): data URLs read at create, https
URLs fetched by the worker behind the same address guard as webhooks (snapasset.webhooks).

Limits: a data URL carries at most ``DATA_URL_MAX_BYTES`` of picture, a fetched one at most
``FETCH_MAX_BYTES`` (the download stops there), and either at most ``imaging.MAX_PIXELS``.
Only image formats Pillow opens for us (imaging.decode's list) are taken.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from urllib.parse import urlsplit

import requests
from PIL import Image

from snapasset.errors import InvalidImage, ProviderError
from snapasset.webhooks import WebhookDeliveryError, WebhookTargetRefused, check_target, guarded_session

__all__ = ["MAX_REFERENCES", "DATA_URL_MAX_BYTES", "FETCH_MAX_BYTES", "read_data_url", "check_picture", "content_type",
           "check_reference_url", "fetch_reference", "ReferenceError"]

MAX_REFERENCES = 4
DATA_URL_MAX_BYTES = 10 * 1000 * 1000
FETCH_MAX_BYTES = 20 * 1000 * 1000
FETCH_TIMEOUT = 20.0
_DATA_URL = re.compile(r"^data:(?P<type>image/[a-z0-9.+-]+);base64,(?P<data>[A-Za-z0-9+/=\s]*)$", re.IGNORECASE)
_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp",
               "TIFF": "tiff", "AVIF": "avif"}


class ReferenceError(ValueError):
    """A reference picture we do not take; the message says why, for the client."""


def check_picture(data: bytes) -> str:
    """The file extension of an image we can work from; ReferenceError otherwise. Reads the
    header only: the pixels are decoded (once more checked) where the picture is used."""
    # imported here: imaging reads the request's option lists from schema, which reads this module
    from snapasset.imaging import MAX_PIXELS, allowed_input_formats

    try:
        with Image.open(io.BytesIO(data), formats=allowed_input_formats()) as image:
            width, height = image.size
            fmt = image.format
    except Exception:   # Pillow raises many types for bytes that are not an image it opens
        raise ReferenceError("is not a picture in a format we read (PNG, JPEG, WebP, AVIF, GIF, BMP, TIFF)") from None
    if width * height > MAX_PIXELS:
        raise ReferenceError(f"has {width}×{height} pixels; at most {MAX_PIXELS // 1_000_000} megapixels")
    return _EXTENSIONS.get(fmt, "png")


def content_type(extension: str) -> str:
    """The MIME type of a picture check_picture named by its extension."""
    return "image/jpeg" if extension == "jpg" else f"image/{extension}"


def read_data_url(text: str) -> bytes:
    """The picture of a `data:image/...;base64,` URL; ReferenceError when it is not one we take."""
    match = _DATA_URL.match(text)
    if not match:
        raise ReferenceError("must be an https:// URL or a data:image/...;base64, URL")
    if len(match["data"]) > (DATA_URL_MAX_BYTES * 4) // 3 + 8:
        raise ReferenceError(f"is larger than {DATA_URL_MAX_BYTES // 1_000_000} MB")
    try:
        data = base64.b64decode("".join(match["data"].split()), validate=True)
    except (binascii.Error, ValueError):
        raise ReferenceError("is not valid base64") from None
    if len(data) > DATA_URL_MAX_BYTES:
        raise ReferenceError(f"is larger than {DATA_URL_MAX_BYTES // 1_000_000} MB")
    check_picture(data)
    return data


def check_reference_url(url: str, allow_private: bool) -> None:
    """At create: an https URL whose host is not literally a refused address (the worker checks
    the address it connects to again). ReferenceError otherwise."""
    if urlsplit(url).scheme != "https":
        raise ReferenceError("must be an https:// URL or a data:image/...;base64, URL")
    try:
        check_target(url, allow_private, resolve=False)
    except WebhookDeliveryError as exc:
        raise ReferenceError(str(exc).replace("webhook ", "")) from None


def fetch_reference(url: str, *, allow_private: bool) -> bytes:
    """Download a reference picture in the worker: guarded addresses, no redirects, at most
    FETCH_MAX_BYTES. InvalidImage (not retried) for what will not change, ProviderError-like
    network trouble is retried by the job."""

    host = urlsplit(url).hostname
    try:
        check_reference_url(url, allow_private)
        with guarded_session(allow_private) as session, \
                session.get(url, stream=True, timeout=FETCH_TIMEOUT, allow_redirects=False) as response:
            if response.status_code != 200:
                raise ReferenceError(f"answered {response.status_code}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > FETCH_MAX_BYTES:
                raise ReferenceError(f"is larger than {FETCH_MAX_BYTES // 1_000_000} MB")
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > FETCH_MAX_BYTES:
                    raise ReferenceError(f"is larger than {FETCH_MAX_BYTES // 1_000_000} MB")
        check_picture(bytes(body))
        return bytes(body)
    except ReferenceError as exc:
        raise InvalidImage(f"The reference picture at {host} {exc}") from None
    except WebhookDeliveryError as exc:   # the guard refused the address it resolved to, or DNS failed
        raise (InvalidImage if isinstance(exc, WebhookTargetRefused) else ProviderError)(
            f"The reference picture at {host} could not be fetched: {exc}".replace("webhook ", "")) from None
    except requests.RequestException as exc:
        raise ProviderError(f"The reference picture at {host} could not be fetched ({type(exc).__name__})") from None
