"""The worker's render pool: one decode per job shared by its platforms, pictures held within a
memory budget (waiting on disk beyond it), nothing left behind. Real render processes."""

import base64
import io
import os
import pickle
import signal
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from snapasset import imaging
from snapasset.platforms import PLATFORMS as ALL_PLATFORMS, get_platform
from tests.conftest import wait_for
from workers.memory import MemoryBudget
from workers.rendering import InlineRenderer, RenderPool, decoded_bytes_of

PLATFORMS = [get_platform(p) for p in ("instagram-post", "instagram-story", "twitter-post")]
SHARED_MEMORY = Path("/dev/shm")


def picture(seed: int, size=(900, 600)) -> bytes:
    """A photo-like PNG: grain over a subject, different for every seed."""
    grain = Image.merge("RGB", [Image.effect_noise(size, 30 + seed) for _ in range(3)])
    ImageDraw.Draw(grain).ellipse((100 + 40 * seed, 150, 400 + 40 * seed, 450), fill=(200, 60, 40))
    buffer = io.BytesIO()
    grain.save(buffer, "PNG")
    return buffer.getvalue()


def shared_blocks() -> set[str]:
    """Python's shared memory blocks (psm_*) on this machine."""
    return {p.name for p in SHARED_MEMORY.glob("psm_*")}


@pytest.fixture(scope="module")
def pool():
    renderer = RenderPool(2)
    yield renderer
    renderer.close()


def render(renderer, data: bytes, platforms=PLATFORMS) -> list:
    with renderer.render_each(data, imaging.probe(data), platforms, "jpeg") as images:
        return list(images)


def test_the_pool_renders_what_the_job_thread_would(pool):
    data = picture(1)
    before = shared_blocks()
    shipped = render(pool, data)
    inline = render(InlineRenderer(), data)
    assert [(r.platform_id, r.width, r.height) for r in shipped] == \
        [(p.id, p.width, p.height) for p in PLATFORMS]
    assert [r.data for r in shipped] == [r.data for r in inline]          # same pixels, same bytes
    assert [r.blurhash for r in shipped] == [r.blurhash for r in inline]
    assert pool.budget.held == 0
    assert shared_blocks() <= before                                      # the decoded pixels are gone


def test_one_render_process_renders_the_whole_job_without_sharing_its_pixels():
    data = picture(3)
    before = shared_blocks()
    renderer = RenderPool(1)
    try:
        with renderer.render_each(data, imaging.probe(data), PLATFORMS, "jpeg") as images:
            first = next(images)
            # nothing to share with another process: no block holds the decoded pixels (the
            # encoded picture's stays until the job's last render, which may decode it again)
            assert all((SHARED_MEMORY / name).stat().st_size <= len(data) for name in shared_blocks() - before)
            shipped = [first, *images]
    finally:
        renderer.close()
    assert [r.data for r in shipped] == [r.data for r in render(InlineRenderer(), data)]
    assert shared_blocks() <= before and renderer.budget.held == 0


def test_one_idle_render_process_hands_each_image_over_as_soon_as_it_is_rendered():
    """With one render process and nothing else queued, a job's platforms are tasks of their own
    rendered from the picture the first task decoded and kept, so the job uploads and reports
    each image while the next renders (one task for the whole job held them all to the end)."""
    data = picture(8, size=(1536, 1024))
    platforms = list(ALL_PLATFORMS.values())
    renderer = RenderPool(1)
    queued, submit_all = [], renderer.submit_all

    def spy(tasks):
        pool, futures = submit_all(tasks)
        queued.append(futures)
        return pool, futures

    renderer.submit_all = spy
    try:
        with renderer.render_each(data, imaging.probe(data), platforms, "jpeg") as images:
            first = next(images)
            assert len(queued) == 1 and len(queued[0]) == len(platforms)     # one task a platform, queued together
            assert not queued[0][-1].done()                                   # the last is still to render
            shipped = [first, *images]
    finally:
        renderer.close()
    assert [r.data for r in shipped] == [r.data for r in render(InlineRenderer(), data, platforms)]
    assert renderer.budget.held == 0


def test_a_stopped_job_of_one_render_process_gives_back_its_place():
    before = shared_blocks()
    data = picture(9)
    renderer = RenderPool(1)
    try:
        with renderer.render_each(data, imaging.probe(data), PLATFORMS, "jpeg") as images:
            next(images)
        wait_for(lambda: renderer.budget.held == 0 and shared_blocks() <= before, timeout=30)
        assert len(render(renderer, picture(10))) == len(PLATFORMS)           # and the next job renders
    finally:
        renderer.close()


def test_the_picture_reaches_the_render_process_through_shared_memory_not_the_pools_pipe():
    """A task carries the name of a shared memory block holding the encoded picture, not its
    bytes: pickled down the pool's pipe, 3 MB kept a render process waiting ~7 ms a task on
    this process's feeder thread. The block is gone once the picture is decoded."""
    data = picture(5, size=(1200, 800))
    before = shared_blocks()
    renderer = RenderPool(1)
    sent, submit_all = [], renderer.submit_all

    def spy(tasks):
        sent.extend(len(pickle.dumps(args)) for _fn, args in tasks)
        return submit_all(tasks)

    renderer.submit_all = spy
    try:
        with renderer.render_each(data, imaging.probe(data), PLATFORMS, "jpeg") as images:
            shipped = list(images)
            assert shared_blocks() <= before                 # decoded: its encoded bytes are freed
    finally:
        renderer.close()
    assert len(data) > 1_000_000 and sent and max(sent) < 10_000
    assert [r.data for r in shipped] == [r.data for r in render(InlineRenderer(), data)]
    assert renderer.budget.held == 0


def test_the_encoded_picture_goes_into_shared_memory_whole_either_way():
    """Written to the block's file (POSIX) or, where a block has none, copied into its mapping."""
    from multiprocessing.shared_memory import SharedMemory

    from workers.rendering import _read, _write

    data = os.urandom(3_000_001)
    block = SharedMemory(create=True, size=len(data))
    try:
        _write(block, data)
        assert _read(block.name, len(data)) == data

        class Mapped:                       # a block with no file of its own
            def __init__(self):
                self.buf = block.buf

        mapped = Mapped()
        _write(mapped, data[::-1])
        del mapped
        assert _read(block.name, len(data)) == data[::-1]
    finally:
        block.close()
        block.unlink()


def test_a_picture_that_fails_to_decode_in_the_render_process_leaves_nothing_behind(pool):
    data = picture(6)
    truncated = data[:len(data) // 2]                 # its header is whole: probe lets it through
    before = shared_blocks()
    with pytest.raises(imaging.InvalidImage):
        render(pool, truncated)
    wait_for(lambda: pool.budget.held == 0 and shared_blocks() <= before, timeout=30)


def test_a_render_process_killed_mid_job_is_replaced_and_the_job_still_renders(caplog):
    """The encoded picture stays in shared memory until it is decoded: a new render process
    decodes it again (the OOM killer, say, took the first)."""
    data = picture(7, size=(1800, 1200))
    before = shared_blocks()
    renderer = RenderPool(1)
    try:
        with renderer.render_each(data, imaging.probe(data), PLATFORMS, "jpeg") as images:
            for pid in list(renderer._pool._processes):
                os.kill(pid, signal.SIGKILL)
            shipped = list(images)
    finally:
        renderer.close()
    assert "a render process died" in caplog.text
    assert [r.data for r in shipped] == [r.data for r in render(InlineRenderer(), data)]
    assert renderer.budget.held == 0 and shared_blocks() <= before


def test_pictures_beyond_the_budget_wait_their_turn_and_all_render():
    pictures = [picture(seed) for seed in range(4)]
    one = len(pictures[0]) + decoded_bytes_of(900 * 600)
    renderer = RenderPool(2, MemoryBudget(int(one * 1.5)))     # room for one picture at a time
    peak = []
    stop = threading.Event()

    def watch():
        while not stop.wait(0.002):
            peak.append(renderer.budget.held)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = [None] * len(pictures)

        def job(index):
            results[index] = render(renderer, pictures[index])

        threads = [threading.Thread(target=job, args=(i,)) for i in range(len(pictures))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        stop.set()
        watcher.join()
        renderer.close()
    assert all(result is not None and len(result) == len(PLATFORMS) for result in results)
    assert len({result[0].data for result in results}) == len(pictures)   # each job its own picture
    assert max(peak) <= int(one * 1.5)
    assert renderer.budget.held == 0


def test_a_stopped_job_gives_back_its_place(pool):
    """A job abandoned before its images are taken (stopped, failed) frees pixels and budget."""
    before = shared_blocks()
    data = picture(2)
    with pool.render_each(data, imaging.probe(data), PLATFORMS, "jpeg") as images:
        next(images)
    # a render still running finishes on its own, then frees what it read
    wait_for(lambda: pool.budget.held == 0 and shared_blocks() <= before, timeout=30)


def test_the_budget_grants_in_turn_and_a_lone_large_picture_still_runs():
    budget = MemoryBudget(100)
    first, second, third = budget.reserve(60), budget.reserve(60), budget.reserve(10)
    assert first.done() and not second.done()
    assert not third.done()                       # first come, first served: no overtaking
    budget.release(60)
    assert second.done() and third.done() and budget.held == 70
    budget.release(70)
    huge = budget.reserve(500)                    # larger than the budget: alone, it is granted
    assert huge.done()
    waiting = budget.reserve(1)
    budget.abandon(waiting, 1)                    # its job stopped while waiting
    budget.release(500)
    assert budget.held == 0


def test_a_picture_is_checked_by_its_header_before_decoding():
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 5000)).save(buffer, "PNG")
    with pytest.raises(imaging.InvalidImage, match="5000×5000"):
        imaging.probe(buffer.getvalue(), max_pixels=4_000_000)
    assert imaging.probe(buffer.getvalue()) == (5000, 5000)
    with pytest.raises(imaging.InvalidImage):
        imaging.preview_data_url(buffer.getvalue(), max_pixels=4_000_000)


def test_a_large_preview_comes_out_small():
    buffer = io.BytesIO()
    Image.new("RGB", (6000, 4000), (10, 120, 200)).save(buffer, "JPEG")   # 24 MP, decoded at 1/8 (draft)
    url = imaging.preview_data_url(buffer.getvalue())
    preview = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert preview.size == (imaging.PREVIEW_SIDE, imaging.PREVIEW_SIDE * 2 // 3) and preview.format == "JPEG"


def test_a_read_waiting_for_room_gives_up_when_its_job_stops_and_the_budget_stays_whole():
    """Arrivals (a job's pictures on their way in): the read waits for room where a stopped job
    stops waiting; what a job read stays counted until it settles, and all of it when it ends."""
    from workers.control import JobControl, Reason, bind_control
    from workers.rendering import Arrivals

    budget = MemoryBudget(100)
    reading, waiting = Arrivals(budget), Arrivals(budget)
    with reading.receiving(80):
        pass
    assert budget.held == 80                      # read, not yet in the renderer's hands
    control, outcome = JobControl("stopped-job"), []

    def read():
        bind_control(control)
        try:
            with waiting.receiving(80):
                outcome.append("read")
        except Exception as exc:
            outcome.append(type(exc).__name__)

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(0.3)
    assert outcome == []                          # no room: it waits
    control.interrupt(Reason.STOPPED)
    reader.join(5)
    assert outcome and outcome != ["read"]        # it gave up without reading
    reading.settle()
    assert budget.held == 0                       # and its request left nothing behind
    with waiting.receiving(80):
        pass
    waiting.close()                               # its job ended: what it read is given back
    assert budget.held == 0
