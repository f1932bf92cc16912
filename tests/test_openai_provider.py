"""OpenAIProvider through the real ``openai`` client against a local Images API."""

from __future__ import annotations

import base64
import io
import time

import pytest
from PIL import Image

from snapasset.errors import (
    ContentPolicyViolation, ErrorCode, InvalidImage, JobTimedOut, ProviderError, ProviderRateLimited,
)
from snapasset.platforms import PLATFORMS
from snapasset.providers.base import GenerationRequest
from snapasset.providers.openai import OpenAIProvider
from tests.stubs.openai_images import (
    OpenAIImagesStub, error, garbage, moderation_blocked, png_bytes, rate_limited, raw_stream, server_error, slow,
    stream, success,
)

API_KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture
def openai_stub():
    stub = OpenAIImagesStub.start()
    yield stub
    stub.stop()


def make_provider(stub, **kwargs) -> OpenAIProvider:
    return OpenAIProvider(api_key=API_KEY, base_url=stub.base_url, **kwargs)


def platforms(*ids):
    return [PLATFORMS[i] for i in ids]


def request_for(provider, *ids, quality="auto", **kwargs) -> GenerationRequest:
    width, height = provider.choose_size(platforms(*ids))
    return GenerationRequest(prompt="A lighthouse at dawn", width=width, height=height, quality=quality, **kwargs)


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def assert_no_secret(exc: Exception):
    assert API_KEY not in str(exc)
    assert API_KEY not in getattr(exc, "message", "")


# -- construction and size choice ------------------------------------------------------------

def test_construction_is_offline_and_rejects_unknown_models(openai_stub):
    OpenAIProvider(api_key=API_KEY, base_url="http://127.0.0.1:9/v1")   # nothing listens there: no I/O yet
    with pytest.raises(ValueError, match="unknown OpenAI image model 'gpt-image-9'"):
        OpenAIProvider(api_key=API_KEY, model="gpt-image-9")
    for retired in ("dall-e-3", "gpt-image-1", "gpt-image-1-2025-04-15"):
        with pytest.raises(ValueError, match="retired|shut down"):
            OpenAIProvider(api_key=API_KEY, model=retired)
    with pytest.raises(ValueError, match="partial_images"):
        OpenAIProvider(api_key=API_KEY, partial_images=5)
    assert API_KEY not in repr(make_provider(openai_stub))
    assert openai_stub.requests == []


@pytest.mark.parametrize("model", ["gpt-image-1-mini", "gpt-image-1.5"])
def test_fixed_size_models_pick_the_standard_size_that_crops_least(model):
    provider = OpenAIProvider(api_key=API_KEY, model=model)
    assert provider.choose_size(platforms("twitter-post", "facebook-post")) == (1536, 1024)
    assert provider.choose_size(platforms("instagram-story", "pinterest-pin")) == (1024, 1536)
    assert provider.choose_size(platforms("instagram-post")) == (1024, 1024)


@pytest.mark.parametrize("ids", [("twitter-post", "facebook-post"), ("instagram-story",), ("twitter-header",),
                                 ("instagram-post",), tuple(PLATFORMS)])
def test_gpt_image_2_asks_for_the_platforms_aspect_within_its_limits(ids):
    provider = OpenAIProvider(api_key=API_KEY, model="gpt-image-2")
    width, height = provider.choose_size(platforms(*ids))
    assert width % 16 == 0 and height % 16 == 0
    assert 1 / 3 <= width / height <= 3
    assert 655_360 <= width * height <= 2560 * 1440 and max(width, height) <= 3840
    if len(ids) == 1:   # one platform: its own aspect, within rounding to 16 px
        assert abs(width / height - PLATFORMS[ids[0]].aspect) < 0.03


def test_gpt_image_2_uses_16_9_for_landscape_posts():
    provider = OpenAIProvider(api_key=API_KEY, model="gpt-image-2")
    assert provider.choose_size(platforms("twitter-post", "facebook-post")) == (1536, 864)


# -- success ---------------------------------------------------------------------------------

def test_success_decodes_the_image_and_records_usage_and_size(openai_stub):
    openai_stub.script([success(revised_prompt="A red lighthouse at dawn")])
    provider = make_provider(openai_stub, model="gpt-image-1.5")
    result = provider.generate(request_for(provider, "twitter-post", "facebook-post", quality="high"))

    assert image_size(result.data) == (1536, 1024)
    assert result.provider == "openai" and result.model == "gpt-image-1.5"
    assert result.revised_prompt == "A red lighthouse at dawn"
    assert result.usage["total_tokens"] == 4210 and result.usage["input_tokens_details"]["text_tokens"] == 50
    [sent] = openai_stub.generations
    assert sent.json["model"] == "gpt-image-1.5"
    assert sent.json["size"] == "1536x1024"
    assert sent.json["quality"] == "high"
    assert sent.json["n"] == 1
    assert "response_format" not in sent.json and "style" not in sent.json and "stream" not in sent.json
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


def test_the_answer_is_read_only_once_the_worker_lets_it_in(openai_stub):
    """A worker with a memory budget binds a receive gate; the answer's body (headers already in)
    is read inside it, announced as three times its Content-Length (body, parsed JSON, picture);
    once read, only the decoded picture stays counted."""
    import contextlib
    import contextvars
    import threading

    from snapasset.providers.base import receive_gate

    openai_stub.script([success()])
    provider = make_provider(openai_stub, model="gpt-image-1.5")
    announced, kept, let_in = [], [], threading.Event()

    @contextlib.contextmanager
    def gate(at_most):
        announced.append(at_most)
        assert let_in.wait(10)
        yield lambda keep=0: kept.append(keep)

    results = []
    with receive_gate(gate):
        bound = contextvars.copy_context()   # as the worker runs a model call in its own thread
    caller = threading.Thread(target=bound.run, daemon=True,
                              args=(lambda: results.append(provider.generate(request_for(provider, "twitter-post"))),))
    caller.start()
    deadline = time.monotonic() + 10
    while not announced and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(announced) == 1 and not results     # the answer came, and waits to be read
    let_in.set()
    caller.join(10)
    [result] = results
    encoded = len(base64.b64encode(result.data))
    assert 3 * encoded <= announced[0] <= 3 * (encoded + 4096)
    assert kept == [len(result.data)]              # the body and its text are gone; the picture is held


@pytest.mark.parametrize("quality", ["low", "medium", "high", "auto"])
def test_quality_is_passed_through(openai_stub, quality):
    provider = make_provider(openai_stub)
    provider.generate(request_for(provider, "instagram-post", quality=quality))
    assert openai_stub.generations[-1].json["quality"] == quality


def test_gpt_image_2_request_carries_the_custom_size(openai_stub):
    provider = make_provider(openai_stub, model="gpt-image-2")
    result = provider.generate(request_for(provider, "twitter-post", "facebook-post", output_format="webp"))
    sent = openai_stub.generations[-1].json
    assert sent["size"] == "1536x864" and sent["model"] == "gpt-image-2" and sent["output_format"] == "webp"
    assert image_size(result.data) == (1536, 864)


def test_fixed_size_model_refuses_a_size_it_cannot_draw(openai_stub):
    provider = make_provider(openai_stub, model="gpt-image-1.5")
    with pytest.raises(ValueError, match="1536x1024"):
        provider.generate(GenerationRequest(prompt="x", width=1536, height=864))
    assert openai_stub.requests == []


def test_usage_is_none_when_the_response_has_none(openai_stub):
    openai_stub.script([success(usage=None)])
    provider = make_provider(openai_stub)
    assert provider.generate(request_for(provider, "instagram-post")).usage is None


# -- streaming -------------------------------------------------------------------------------

def test_streaming_hands_each_partial_image_to_on_partial(openai_stub):
    openai_stub.script([stream(partials=3)])
    provider = make_provider(openai_stub, model="gpt-image-1.5", partial_images=3)
    partials: list[bytes] = []
    result = provider.generate(request_for(provider, "twitter-post"), on_partial=partials.append)

    assert len(partials) == 3
    for data in partials:
        assert image_size(data) == (384, 256)
    assert image_size(result.data) == (1536, 1024)
    assert result.usage["total_tokens"] == 4210
    [sent] = openai_stub.generations
    assert sent.json["stream"] is True and sent.json["partial_images"] == 3


def test_streamed_events_are_read_within_the_workers_picture_budget(openai_stub):
    """A streamed answer's events (partial images, then the picture) are each read within the
    worker's picture budget, as a whole answer is: with room for one picture, four streams
    arriving together are read one event at a time. A partial image's room is given back once it
    is shown; the picture keeps room for its decoded bytes until the job hands it on (settles).
    Nothing is held between events, while the model draws (else the second event here would
    wait for ever)."""
    import contextlib
    import contextvars
    import threading

    from snapasset.providers.base import largest_answer_bytes, receive_gate
    from workers.memory import MemoryBudget
    from workers.rendering import Arrivals

    streams = 4
    openai_stub.script([stream(partials=2, pause=0.1) for _ in range(streams)])   # drawn between events
    provider = make_provider(openai_stub, model="gpt-image-1.5", partial_images=2)
    request = request_for(provider, "twitter-post")                  # 1536x1024
    one = largest_answer_bytes(1536 * 1024)
    budget = MemoryBudget(one)
    lock, entered, inside, most = threading.Lock(), [], [0], [0]
    results, errors = [], []

    def job() -> None:
        arrivals, kept = Arrivals(budget), []

        @contextlib.contextmanager
        def gate(at_most):
            with arrivals.receiving(at_most) as give_back:
                with lock:
                    entered.append(at_most)
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                try:
                    yield lambda keep=0: (kept.append(keep), give_back(keep))
                finally:
                    with lock:
                        inside[0] -= 1

        partials = []
        try:
            with receive_gate(gate):
                result = provider.generate(request, on_partial=partials.append)
            results.append((result, partials, kept))
        except Exception as exc:   # reported below, with the others' outcome
            errors.append(exc)
        finally:
            arrivals.close()                                          # the job hands its picture on

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(job,), daemon=True)
               for _ in range(streams)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not errors and len(results) == streams, (errors, len(results))
    for result, partials, kept in results:
        assert image_size(result.data) == (1536, 1024) and len(partials) == 2
        assert kept == [0, 0, len(result.data)]                       # partials given back; the picture held
    assert entered == [one] * (streams * 3)                          # every event, partials included
    assert most[0] == 1                                               # one at a time: the budget's room
    assert budget.held == 0


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress (random pixels): as large as a photo's."""
    import os

    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def test_nothing_of_a_shown_partial_image_is_held_while_the_model_draws_the_next(openai_stub):
    """Each event is a whole picture as base64 text; a worker keeps 64 streams open while their
    models draw. Once a partial image is shown, nothing of it (its text, parsed or not, or its
    bytes) may stay in memory until the next event comes: 64 streams held a GB that way when
    the SDK's Stream read them. Measured with tracemalloc: every block of 256 KB or more alive
    mid-pause, apart from the stub server's own."""
    import threading
    import tracemalloc

    partial = base64.b64encode(noise_png(512, 512)).decode()      # ~1 MB of text
    openai_stub.script([stream(partials=2, partial_b64=partial, pause=1.0)])
    provider = make_provider(openai_stub, model="gpt-image-1.5", partial_images=2)
    shown, results = threading.Event(), []

    def on_partial(data: bytes) -> None:
        shown.set()                                                 # the test keeps nothing of it

    tracemalloc.start(40)
    try:
        caller = threading.Thread(daemon=True, target=lambda: results.append(
            provider.generate(request_for(provider, "twitter-post"), on_partial=on_partial)))
        caller.start()
        assert shown.wait(10)
        time.sleep(0.4)                                             # the partial is done with; the next is 0.6 s off
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, "*/tests/stubs/*", all_frames=True)])
        caller.join(10)
    finally:
        tracemalloc.stop()
    large = [trace for trace in snapshot.traces if trace.size >= 256 * 1024]
    assert large == [], "\n\n".join("\n".join(trace.traceback.format()[-6:]) for trace in large)
    assert len(results) == 1                                        # and the picture still came


def _events(*events: dict) -> bytes:
    import json

    return b"".join(f"event: {event.get('type')}\ndata: {json.dumps(event)}\n\n".encode() for event in events)


def test_streamed_events_are_read_whatever_their_framing(openai_stub):
    """Server-sent events as the format allows them, not only as OpenAI sends them today: CRLF
    or CR line ends (a CRLF split between two reads), comments, id and retry fields, an event's
    JSON over several data lines, a [DONE] marker after the picture."""
    picture = png_bytes(1536, 1024, (10, 200, 30))
    preview = png_bytes(384, 256, (90, 90, 90))
    partial = {"type": "image_generation.partial_image", "partial_image_index": 0,
               "b64_json": base64.b64encode(preview).decode()}
    completed = {"type": "image_generation.completed", "b64_json": base64.b64encode(picture).decode(),
                 "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12, "input_tokens_details": None}}
    import json

    text = json.dumps(completed)
    split = text.index('"b64_json"')
    body = (b": keep-alive\r\n\r\n"
            + _events(partial).replace(b"\n", b"\r\n")
            + b"id: 7\rretry: 100\revent: image_generation.completed\r"
            + f"data: {text[:split]}\rdata:{text[split:]}\r\r".encode()
            + b"data: [DONE]\n\n")
    cr_lf = body.index(b"\r\n", body.index(b"partial_image_index")) + 1       # between the CR and the LF
    chunks = [body[:cr_lf], body[cr_lf:cr_lf + 5000], body[cr_lf + 5000:]]
    openai_stub.script([raw_stream(chunks, pause=0.05)])
    provider = make_provider(openai_stub, model="gpt-image-1.5")
    partials: list[bytes] = []
    result = provider.generate(request_for(provider, "twitter-post"), on_partial=partials.append)

    assert partials == [preview]
    assert result.data == picture
    assert result.usage == {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}


def test_the_event_reader_gives_the_same_events_however_the_body_is_split():
    """The reader's framing against every way the network may cut a body: at each byte (a CRLF
    split between its CR and LF included), one byte at a time, and with empty reads between."""
    from snapasset.providers.openai import _StreamedEvents

    first = {"type": "image_generation.partial_image", "b64_json": "QUJD", "partial_image_index": 0}
    second = {"type": "image_generation.completed", "b64_json": "REVG", "usage": {"total_tokens": 3}}
    import json

    body = (b": hello\r\n\r\n" + f"event: x\r\ndata: {json.dumps(first)}\r\n\r\n".encode()
            + f"id: 1\rdata: {json.dumps(second)[:39]}\r\ndata: {json.dumps(second)[39:]}\r\r".encode())

    def read(chunks):
        return list(_StreamedEvents(None, 0, longest=1 << 20)._events(iter(chunks)))

    assert read([body]) == [first, second]
    for cut in range(1, len(body)):
        assert read([body[:cut], b"", body[cut:]]) == [first, second], cut
    assert read([body[i:i + 1] for i in range(len(body))]) == [first, second]


@pytest.mark.parametrize("event, failure, words", [
    ({"error": {"message": "Your request was rejected by the safety system.", "code": "moderation_blocked"}},
     ContentPolicyViolation, "safety system"),
    ({"type": "error", "code": "rate_limit_exceeded", "message": "Too many images at once."},
     ProviderRateLimited, "rate limited"),
    ({"type": "error", "code": "server_error", "message": "The model fell over."},
     ProviderError, "failed while drawing: The model fell over."),
], ids=["error-object", "rate-limited-event", "server-error-event"])
def test_an_error_event_inside_a_stream_is_a_coded_failure(openai_stub, event, failure, words):
    """An error the model sends mid-stream (after a partial image) fails the job with its cause,
    in either shape OpenAI's streams use: an `error` object, or an event of type `error`."""
    openai_stub.script([stream(partials=1, final=event)])
    provider = make_provider(openai_stub)
    partials: list[bytes] = []
    with pytest.raises(failure) as caught:
        provider.generate(request_for(provider, "instagram-post"), on_partial=partials.append)
    assert len(partials) == 1
    assert words in caught.value.message
    assert caught.value.retryable is (failure is not ContentPolicyViolation)
    assert len(openai_stub.generations) == 1


def test_a_stream_that_ends_before_its_picture_is_a_retryable_provider_error(openai_stub):
    openai_stub.script([stream(partials=2, cut=True)])
    provider = make_provider(openai_stub)
    with pytest.raises(ProviderError) as caught:
        provider.generate(request_for(provider, "instagram-post"), on_partial=lambda data: None)
    assert caught.value.retryable is True and caught.value.code == ErrorCode.PROVIDER_ERROR
    assert "ended before the image was completed" in caught.value.message


def test_a_streamed_event_larger_than_any_picture_of_its_size_is_refused_while_it_is_read(openai_stub):
    """A model (or something between) that sends more than a picture of the size asked for can
    be (uncompressed, as base64) is cut off there: the worker's room for the read is sized for
    that picture, and an unending line would take the process's memory."""
    chunk = b"A" * (1 << 20)
    body = [b"event: image_generation.completed\ndata: {\"type\": \"image_generation.completed\", \"b64_json\": \""]
    body += [chunk] * 12 + [b'"}\n\n']                              # 12 MB: 1536x1024 RGBA is 8.4 MB as base64
    openai_stub.script([raw_stream(body)])
    provider = make_provider(openai_stub, model="gpt-image-1.5")
    with pytest.raises(InvalidImage) as caught:
        provider.generate(request_for(provider, "twitter-post"), on_partial=lambda data: None)
    assert "larger than a picture of the size asked for" in caught.value.message
    assert caught.value.retryable is False


def test_a_stream_that_stalls_between_events_times_out(openai_stub):
    """The read timeout holds between events too: a model that stops sending is a timeout."""
    openai_stub.script([stream(partials=2, pause=3.0)])
    provider = make_provider(openai_stub, timeout=0.5)
    partials: list[bytes] = []
    with pytest.raises(JobTimedOut) as caught:
        provider.generate(request_for(provider, "instagram-post"), on_partial=partials.append)
    assert len(partials) == 1 and caught.value.retryable is True    # the first came; the second never did


def test_a_streamed_event_that_is_not_json_is_a_retryable_provider_error(openai_stub):
    openai_stub.script([raw_stream([b"event: image_generation.completed\ndata: {\"type\": \"image_gen\n\n"])])
    provider = make_provider(openai_stub)
    with pytest.raises(ProviderError) as caught:
        provider.generate(request_for(provider, "instagram-post"), on_partial=lambda data: None)
    assert caught.value.retryable is True
    assert "not a JSON object" in caught.value.message


def test_no_streaming_without_a_callback(openai_stub):
    provider = make_provider(openai_stub)
    provider.generate(request_for(provider, "instagram-post"))
    assert "stream" not in openai_stub.generations[-1].json


def test_an_exception_from_on_partial_propagates(openai_stub):
    class Cancelled(Exception):
        pass

    def cancel(_data):
        raise Cancelled()

    openai_stub.script([stream(partials=2)])
    provider = make_provider(openai_stub)
    with pytest.raises(Cancelled):
        provider.generate(request_for(provider, "instagram-post"), on_partial=cancel)


# -- failures: exactly one request each, coded, no secret --------------------------------------

def test_moderation_refusal_is_a_content_policy_violation(openai_stub):
    openai_stub.script([moderation_blocked()])
    provider = make_provider(openai_stub)
    with pytest.raises(ContentPolicyViolation) as caught:
        provider.generate(request_for(provider, "instagram-post"))
    assert caught.value.code == ErrorCode.CONTENT_POLICY_VIOLATION
    assert caught.value.retryable is False
    assert "safety system" in caught.value.message
    assert len(openai_stub.generations) == 1
    assert_no_secret(caught.value)


def test_moderation_refusal_inside_a_stream(openai_stub):
    openai_stub.script([moderation_blocked()])
    provider = make_provider(openai_stub)
    with pytest.raises(ContentPolicyViolation):
        provider.generate(request_for(provider, "instagram-post"), on_partial=lambda data: None)
    assert len(openai_stub.generations) == 1


def test_rate_limit_carries_retry_after_and_is_not_retried_by_the_client(openai_stub):
    openai_stub.script([rate_limited(retry_after=7)])
    provider = make_provider(openai_stub)
    with pytest.raises(ProviderRateLimited) as caught:
        provider.generate(request_for(provider, "instagram-post"))
    assert caught.value.retryable is True
    assert caught.value.retry_after == 7
    assert caught.value.code == ErrorCode.PROVIDER_RATE_LIMITED
    assert len(openai_stub.generations) == 1
    assert_no_secret(caught.value)


def test_quota_exhausted_is_not_retryable(openai_stub):
    openai_stub.script([error(429, "You exceeded your current quota.", code="insufficient_quota",
                              type="insufficient_quota")])
    provider = make_provider(openai_stub)
    with pytest.raises(ProviderError) as caught:
        provider.generate(request_for(provider, "instagram-post"))
    assert not isinstance(caught.value, ProviderRateLimited)
    assert caught.value.retryable is False


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable_provider_errors(openai_stub, status):
    openai_stub.script([server_error(status)])
    provider = make_provider(openai_stub)
    with pytest.raises(ProviderError) as caught:
        provider.generate(request_for(provider, "instagram-post"))
    assert caught.value.retryable is True and caught.value.code == ErrorCode.PROVIDER_ERROR
    assert str(status) in caught.value.message
    assert len(openai_stub.generations) == 1


def test_a_rejected_key_is_not_retryable_and_not_echoed(openai_stub):
    openai_stub.script([error(401, f"Incorrect API key provided: {API_KEY}.", code="invalid_api_key")])
    provider = make_provider(openai_stub)
    with pytest.raises(ProviderError) as caught:
        provider.generate(request_for(provider, "instagram-post"))
    assert caught.value.retryable is False
    assert "401" in caught.value.message
    assert_no_secret(caught.value)
    assert "sk-" not in str(caught.value)


@pytest.mark.parametrize("status", [400, 403, 404])
def test_other_client_errors_are_not_retryable(openai_stub, status):
    openai_stub.script([error(status, f"Something about the request with key {API_KEY}", code="bad")])
    provider = make_provider(openai_stub)
    with pytest.raises(ProviderError) as caught:
        provider.generate(request_for(provider, "instagram-post"))
    assert type(caught.value) is ProviderError and caught.value.retryable is False
    assert_no_secret(caught.value)


def test_garbage_image_bytes_are_an_invalid_image(openai_stub):
    openai_stub.script([garbage()])
    provider = make_provider(openai_stub)
    with pytest.raises(InvalidImage) as caught:
        provider.generate(request_for(provider, "instagram-post"))
    assert caught.value.code == ErrorCode.INVALID_IMAGE


def test_undecodable_base64_is_an_invalid_image(openai_stub):
    openai_stub.script([success(image_b64="%%% not base64 %%%")])
    provider = make_provider(openai_stub)
    with pytest.raises(InvalidImage):
        provider.generate(request_for(provider, "instagram-post"))


def test_a_slow_server_is_a_timeout_within_the_bound(openai_stub):
    openai_stub.script([slow(5.0)])
    provider = make_provider(openai_stub, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(JobTimedOut) as caught:
        provider.generate(request_for(provider, "instagram-post"))
    assert time.monotonic() - started < 3.0
    assert caught.value.retryable is True and caught.value.code == ErrorCode.TIMEOUT
    assert len(openai_stub.generations) == 1
    assert_no_secret(caught.value)


def test_an_unreachable_server_is_a_retryable_provider_error():
    provider = OpenAIProvider(api_key=API_KEY, base_url="http://127.0.0.1:9/v1", timeout=2)
    with pytest.raises(ProviderError) as caught:
        provider.generate(GenerationRequest(prompt="x", width=1024, height=1024))
    assert caught.value.retryable is True
    assert_no_secret(caught.value)


def test_the_stubbed_image_is_a_real_png(openai_stub):
    provider = make_provider(openai_stub)
    data = provider.generate(request_for(provider, "instagram-post")).data
    assert data.startswith(b"\x89PNG")
    assert base64.b64encode(data)  # round-trips


# -- fit=extend: painting the rest of the frame through the image-edit endpoint ------------------

def test_extend_sends_the_picture_and_its_mask_to_the_edit_endpoint(openai_stub):
    from snapasset import framing, imaging
    from tests.stubs.openai_images import EDIT_PAINT, form_fields

    provider = make_provider(openai_stub, model="gpt-image-2")
    picture = Image.new("RGB", (1024, 1024), (40, 120, 200))
    story = PLATFORMS["instagram-story"]
    size = provider.choose_size([story])
    canvas = imaging.extension_canvas(picture, framing.analyse(picture), story, size)
    result = provider.extend(GenerationRequest("A lighthouse at dawn", *size), canvas, canvas)

    assert len(openai_stub.edits) == 1 and not openai_stub.generations
    fields = form_fields(openai_stub.edits[0])
    assert fields["model"] == b"gpt-image-2" and fields["size"] == f"{size[0]}x{size[1]}".encode()
    mask = Image.open(io.BytesIO(fields["mask"]))
    assert mask.mode == "RGBA" and mask.size == size
    assert mask.getpixel((size[0] // 2, 5))[3] == 0                   # above the picture: to paint
    assert mask.getpixel((size[0] // 2, size[1] // 2))[3] == 255      # the picture: kept
    painted = Image.open(io.BytesIO(result.data)).convert("RGB")
    assert painted.size == size and result.provider == "openai"
    assert painted.getpixel((size[0] // 2, 5)) == EDIT_PAINT
    assert painted.getpixel((size[0] // 2, size[1] // 2)) == (40, 120, 200)


def test_extend_failures_are_coded_like_generation_failures(openai_stub):
    openai_stub.script([moderation_blocked()])
    provider = make_provider(openai_stub, model="gpt-image-2")
    png = io.BytesIO()
    Image.new("RGBA", (1024, 1024)).save(png, "PNG")
    with pytest.raises(ContentPolicyViolation):
        provider.extend(GenerationRequest("A lighthouse at dawn", 1024, 1024), png.getvalue(), png.getvalue())


# -- model choice, variants, background, edits ---------------------------------------------

def test_the_chosen_model_n_background_and_a_hashed_user_are_sent(openai_stub):
    from snapasset.providers.base import safety_identifier

    provider = make_provider(openai_stub).with_model("gpt-image-2.5-flare")
    result = provider.generate(request_for(provider, "instagram-post", quality="max", n=3, background="transparent",
                                           safety_identifier=safety_identifier("alice@example.com")))
    sent = openai_stub.generations[-1].json
    assert (sent["model"], sent["n"], sent["background"], sent["quality"]) == ("gpt-image-2.5-flare", 3, "transparent", "max")
    assert len(sent["safety_identifier"]) == 64 and "alice" not in sent["safety_identifier"]
    assert result.model == "gpt-image-2.5-flare" and result.seed is None
    assert len(result.pictures) == 3 and len(set(result.pictures)) == 3


def test_a_model_without_the_top_quality_tiers_refuses_them(openai_stub):
    provider = make_provider(openai_stub, model="gpt-image-2")
    with pytest.raises(ValueError, match="quality"):
        provider.generate(request_for(provider, "instagram-post", quality="xhigh"))
    assert openai_stub.requests == []


def test_reference_pictures_go_to_the_edit_endpoint(openai_stub):
    from tests.stubs.openai_images import form_fields, png_bytes

    reference = png_bytes(300, 200, (10, 200, 30))
    provider = make_provider(openai_stub)
    result = provider.generate(request_for(provider, "twitter-post", input_images=(reference,), n=2),
                               on_partial=lambda data: None)
    assert openai_stub.generations == []
    [sent] = openai_stub.edits
    form = form_fields(sent)
    assert form["image[]"] == reference
    assert form["model"] == b"gpt-image-2" and form["n"] == b"2" and form["size"] == b"1536x864"
    assert len(result.pictures) == 2 and image_size(result.data) == (1536, 864)
