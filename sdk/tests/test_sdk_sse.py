"""The event-stream decoder against the WHATWG parsing rules."""

from __future__ import annotations

import pytest

from snapasset_sdk.sse import ServerSentEvent, SSEDecoder


def decode(*chunks: bytes | str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


STREAM = (b": ping\r\n"
          b"retry: 3000\r\n"
          b"id: 1-0\r\n"
          b"data: {\"type\": \"connected\"}\r\n"
          b"\r\n"
          b"id: 2-0\r\n"
          b"data: first line\r\n"
          b"data: second line\r\n"
          b"\r\n")
EXPECTED = [ServerSentEvent(data='{"type": "connected"}', id="1-0", retry=3000),
            ServerSentEvent(data="first line\nsecond line", id="2-0", retry=3000)]


def test_a_whole_stream_in_one_chunk():
    assert decode(STREAM) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_any_split_into_two_network_reads_gives_the_same_events(cut):
    # Cuts fall mid-field, mid-value and between the CR and LF of a CRLF.
    assert decode(STREAM[:cut], STREAM[cut:]) == EXPECTED


def test_one_byte_at_a_time():
    assert decode(*(STREAM[i:i + 1] for i in range(len(STREAM)))) == EXPECTED


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_every_line_ending(newline):
    text = newline.join(["id: 7", "data: a", "data: b", "", "data: c", "", ""])
    assert decode(text) == [ServerSentEvent(data="a\nb", id="7"), ServerSentEvent(data="c", id="7")]


def test_cr_at_the_end_of_a_chunk_then_lf_is_one_line_ending():
    assert decode("data: x\r", "\n\r", "\n") == [ServerSentEvent(data="x")]


def test_cr_at_the_end_of_a_chunk_then_more_text_is_still_a_line_ending():
    assert decode("data: x\r", "\rdata: y\r\r") == [ServerSentEvent(data="x"),
                                                    ServerSentEvent(data="y")]


def test_multibyte_character_split_across_reads():
    raw = "data: café ☀\n\n".encode()
    cut = raw.index("☀".encode()) + 1
    assert decode(raw[:cut], raw[cut:]) == [ServerSentEvent(data="café ☀")]


def test_comments_and_unknown_fields_are_ignored():
    assert decode(": ping\n:\nfoo: bar\ndata: x\n\n: ping\n\n") == [ServerSentEvent(data="x")]


def test_only_one_leading_space_is_removed_from_a_value():
    assert decode("data:  two\ndata:none\n\n") == [ServerSentEvent(data=" two\nnone")]


def test_a_field_without_colon_has_an_empty_value():
    assert decode("data\ndata\n\n") == [ServerSentEvent(data="\n")]


def test_id_persists_until_changed_and_can_be_cleared():
    events = decode("id: 5\ndata: a\n\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["5", "5", ""]


def test_an_id_containing_nul_is_ignored():
    assert decode("id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n")[1].id == "1"


def test_retry_must_be_digits_only():
    decoder = SSEDecoder()
    decoder.feed("retry: 2500\n\n")
    decoder.feed("retry: soon\nretry: 1.5\n\n")
    assert decoder.retry == 2500


def test_a_blank_line_without_data_dispatches_nothing():
    assert decode("\n\nid: 3\n\n\n") == []


def test_event_name_is_kept():
    assert decode("event: update\ndata: x\n\n") == [ServerSentEvent(data="x", event="update")]


def test_event_without_trailing_blank_line_is_not_dispatched():
    assert decode("data: complete\n\ndata: cut off\n") == [ServerSentEvent(data="complete")]


def test_leading_bom_is_dropped_only_at_the_start():
    assert decode(b"\xef\xbb", b"\xbfdata: x\n\n") == [ServerSentEvent(data="x")]
    # Later on a BOM is an ordinary character, so this line names an unknown field.
    assert decode("data: a\n\n\ufeffdata: b\n\n") == [ServerSentEvent(data="a")]
