"""Reference pictures (options.inputImages): what create takes, and the worker's guarded fetch."""

from __future__ import annotations

import base64
import io
import socket

import pytest
from PIL import Image

from snapasset.errors import InvalidImage, ProviderError
from snapasset.imaging import MAX_PIXELS
from snapasset.references import DATA_URL_MAX_BYTES, ReferenceError, fetch_reference, read_data_url


def png(size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_data_url_gives_its_picture():
    data = png()
    assert read_data_url("data:image/png;base64," + base64.b64encode(data).decode()) == data


@pytest.mark.parametrize("text, problem", [
    ("data:image/png;base64,%%%", "https://"),
    ("data:image/png;base64,bm90IGFuIGltYWdl", "not a picture"),
    ("data:image/png;base64," + "A" * ((DATA_URL_MAX_BYTES * 4) // 3 + 100), "larger than 10 MB"),
])
def test_data_urls_that_are_not_taken(text, problem):
    with pytest.raises(ReferenceError, match=problem):
        read_data_url(text)


def test_a_picture_over_40_megapixels_is_refused_from_its_header_alone():
    side = int(MAX_PIXELS ** 0.5) + 10
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG")     # 1-bit: a few kB for 40+ MP
    with pytest.raises(ReferenceError, match="megapixels"):
        read_data_url("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())


def test_the_worker_never_fetches_from_a_private_address(monkeypatch):
    with pytest.raises(InvalidImage, match="loopback"):
        fetch_reference("https://127.0.0.1/product.png", allow_private=False)
    # a name that resolves to a private address when the worker connects (DNS rebinding)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("10.1.2.3", *a, **k)
                        if host == "cdn.rebinding.test" else real(host, *a, **k))
    with pytest.raises(InvalidImage, match="private"):
        fetch_reference("https://cdn.rebinding.test/product.png", allow_private=False)


def test_a_host_that_does_not_resolve_is_retried_later():
    with pytest.raises(ProviderError):
        fetch_reference("https://pictures.snapasset.invalid/product.png", allow_private=False)
