"""The official openai Python SDK against a running reel studio, unmodified: create a video with
the demo model, poll it to completion, download the three variants, list, remix and delete; start a
video from an image (input_reference) and extend it (videos.extend), checking the files with ffprobe.

    python scripts/tests/openai_sdk.py BASE_URL API_KEY [MODEL]

MODEL is a served model that starts from given frames (image-to-video, extensions); by default the
default model. ffprobe and ffmpeg judge the videos.

Exits non-zero (with the reason) when anything differs from what the SDK expects.
Run by crates/reel-cli/tests/studio.rs; needs `pip install openai==3.57.0`.
"""

import base64
import json
import struct
import subprocess
import sys
import tempfile
import warnings
import zlib

import openai
from openai import OpenAI

warnings.filterwarnings("ignore", category=DeprecationWarning)


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


# The reference image: a green square in the lower left of a dark frame. The prompts ask for a red
# disc, so a video that did not start from the image would not show it.
SQUARE = (4, 40, 24, 60)  # x0, y0, x1, y1


def reference_png(size=64):
    """The reference image as a PNG, written with the standard library only."""
    x0, y0, x1, y1 = SQUARE
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter type: none
        for x in range(size):
            row += bytes((30, 220, 60) if x0 <= x < x1 and y0 <= y < y1 else (10, 12, 30))
        rows.append(bytes(row))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")


def probe(mp4):
    """(frames, frames per second, duration) of an MP4's video stream, by ffprobe."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(mp4)
        f.flush()
        out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
                              "stream=nb_read_frames,r_frame_rate,duration", "-of", "json", f.name],
                             check=True, capture_output=True, text=True).stdout
    stream = json.loads(out)["streams"][0]
    num, den = stream["r_frame_rate"].split("/")
    return int(stream["nb_read_frames"]), float(num) / float(den), float(stream["duration"])


def first_frame(mp4, size=64):
    """The first frame of an MP4 as RGB bytes, by ffmpeg."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(mp4)
        f.flush()
        out = subprocess.run(["ffmpeg", "-v", "error", "-i", f.name, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             check=True, capture_output=True).stdout
    check(len(out) == size * size * 3, f"the first frame has {len(out)} bytes, not {size}x{size} RGB")
    return out


def mean_colour(frame, x0, y0, x1, y1, size=64):
    """Mean RGB of a frame's pixels in [x0, x1) x [y0, y1)."""
    pixels = [frame[(y * size + x) * 3:(y * size + x) * 3 + 3] for y in range(y0, y1) for x in range(x0, x1)]
    return tuple(sum(p[c] for p in pixels) / len(pixels) for c in range(3))


def expect_error(kind, call, needle=None, param=None):
    try:
        call()
    except kind as e:
        check(needle is None or needle in str(e), f"{kind.__name__} lacks '{needle}': {e}")
        check(param is None or (e.body and e.body.get("param") == param), f"{kind.__name__} does not name {param}: {e.body}")
        return
    except openai.APIStatusError as e:
        check(False, f"expected {kind.__name__}, got {type(e).__name__} ({e.status_code}): {e}")
    check(False, f"expected {kind.__name__}, the call succeeded")


def sdk_or_json(sdk_call, json_call):
    """The SDK's own call; where SDK 3.57.0 cannot encode a reference object (`video={"id": ...}`,
    `input_reference={"image_url": ...}`: its multipart encoder takes those fields for files and raises
    before sending), the same request as JSON through the SDK's client, which reel accepts too."""
    try:
        return sdk_call()
    except RuntimeError as e:
        if "Expected entry at `" not in str(e):
            raise
        return json_call()


def extend_by_id(client, video_id, prompt, seconds):
    body = {"video": {"id": video_id}, "prompt": prompt, "seconds": seconds}
    return sdk_or_json(lambda: client.videos.extend(**body),
                       lambda: client.post("/videos/extensions", cast_to=openai.types.Video, body=body))


def image_to_video_and_extensions(client, deleted_id, model):
    png = reference_png()
    # Few steps: these check what the studio does with images and sources, not the pictures' quality.
    started = client.videos.create(prompt="a red disc drifts to the right over a dark background", model=model,
                                   input_reference=("square.png", png, "image/png"), extra_body={"seed": 5, "steps": 8})
    started = client.videos.poll(started.id, poll_interval_ms=200)
    check(started.status == "completed", f"image-to-video ended as {started.status}: {started.error}")
    source = client.videos.download_content(started.id).read()
    frame = first_frame(source)
    # The video starts from the image: its green square (inside its edges), and dark elsewhere.
    x0, y0, x1, y1 = SQUARE
    r, g, b = mean_colour(frame, x0 + 3, y0 + 3, x1 - 3, y1 - 3)
    check(g > 150 and r < 100 and b < 110, f"the first frame shows {(r, g, b)} where the image has its green square")
    r, g, b = mean_colour(frame, 34, 4, 60, 30)
    check(max(r, g, b) < 80, f"the first frame shows {(r, g, b)} where the image is dark")
    source_frames, fps, _ = probe(source)

    # The image as an ImageInputReferenceParam ({"image_url": ...} or {"file_id": ...}): a data URL is
    # taken, remote URLs and file ids are not.
    url = "data:image/png;base64," + base64.b64encode(png).decode()

    def create_json(reference):
        body = {"prompt": "a red disc", "model": model, "input_reference": reference}
        return sdk_or_json(lambda: client.videos.create(**body), lambda: client.post("/videos", cast_to=openai.types.Video, body=body))

    by_url = create_json({"image_url": url})
    check(by_url.status in ("queued", "in_progress"), f"a data URL reference was not queued: {by_url.status}")
    client.videos.delete(by_url.id)
    expect_error(openai.BadRequestError, lambda: create_json({"image_url": "https://example.com/a.png"}),
                 "does not fetch remote URLs", "input_reference")
    expect_error(openai.BadRequestError, lambda: create_json({"file_id": "file-123"}), "Files API", "input_reference")
    expect_error(openai.BadRequestError, lambda: client.videos.create(prompt="x", model=model, input_reference=("a.png", b"not an image", "image/png")),
                 "not a readable image", "input_reference")

    # Extending: the source's frames, then 4 s more; `seconds` is the stitched total.
    extension = extend_by_id(client, started.id, "the red disc keeps drifting to the right", "4")
    check(extension.status in ("queued", "in_progress") and extension.id != started.id, f"bad extension {extension}")
    check(getattr(extension, "extended_from_video_id", None) == started.id, "the extension does not name its source")
    extended = client.videos.poll(extension.id, poll_interval_ms=200)
    check(extended.status == "completed", f"the extension ended as {extended.status}: {extended.error}")
    check(float(extended.seconds) == float(started.seconds) + 4, f"extension seconds {extended.seconds}, source {started.seconds}")
    check(extended.size == started.size and extended.model == started.model, f"extension {extended.size} {extended.model}")
    mp4 = client.videos.download_content(extended.id).read()
    frames, extended_fps, duration = probe(mp4)
    check(extended_fps == fps, f"the extension plays at {extended_fps} fps, the source at {fps}")
    check(frames == source_frames + round(4 * fps), f"the extension has {frames} frames; the source {source_frames} and 4 s more make {source_frames + round(4 * fps)}")
    check(abs(duration - frames / fps) < 0.01, f"the extension lasts {duration} s for {frames} frames")
    # The source's frames come first, unchanged but for re-encoding.
    head = first_frame(mp4)
    difference = sum(abs(a - b) for a, b in zip(head, frame)) / len(frame)
    check(difference < 8, f"the extension's first frame differs from the source's by {difference:.1f} on average")
    thumb = client.videos.download_content(extended.id, variant="thumbnail").read()
    check(thumb[:4] == b"RIFF" and thumb[8:12] == b"WEBP", "the extension's thumbnail is not a WebP image")
    sheet = client.videos.download_content(extended.id, variant="spritesheet").read()
    check(sheet[:2] == b"\xff\xd8", "the extension's spritesheet is not a JPEG image")

    # An uploaded MP4 is extended the same way.
    uploaded = client.videos.extend(video=("clip.mp4", source, "video/mp4"), prompt="the disc turns blue", seconds="4",
                                    extra_body={"model": model, "steps": 8})
    uploaded = client.videos.poll(uploaded.id, poll_interval_ms=200)
    check(uploaded.status == "completed", f"the extension of an upload ended as {uploaded.status}: {uploaded.error}")
    frames, _, _ = probe(client.videos.download_content(uploaded.id).read())
    check(frames == source_frames + round(4 * fps), f"the extended upload has {frames} frames")

    # Longer than four of the model's generations (the SDK's 12 s): made window by window.
    long = client.videos.create_and_poll(prompt="a blue square moves down", model=model, seconds="12",
                                         extra_body={"steps": 4}, poll_interval_ms=200)
    check(long.status == "completed" and long.seconds == "12", f"a 12 s video ended as {long.status} {long.seconds}: {long.error}")
    frames, _, _ = probe(client.videos.download_content(long.id).read())
    check(frames == round(12 * fps) + 1, f"the 12 s video has {frames} frames, not {round(12 * fps) + 1}")

    # What cannot be extended: unknown and deleted videos, unfinished ones, lengths the SDK does not list.
    expect_error(openai.NotFoundError, lambda: extend_by_id(client, "video_unknown", "more", "4"))
    expect_error(openai.NotFoundError, lambda: extend_by_id(client, deleted_id, "more", "4"))
    expect_error(openai.BadRequestError, lambda: extend_by_id(client, started.id, "more", "5"),
                 "4, 8, 12, 16, 20", "seconds")
    busy = client.videos.create(prompt="a slow one", model=model, extra_body={"steps": 60})
    expect_error(openai.ConflictError, lambda: extend_by_id(client, busy.id, "more", "4"),
                 "only completed videos can be extended")
    client.videos.delete(busy.id)


def main():
    base_url, key = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0)

    video = client.videos.create(prompt="a small red circle drifts to the right over a dark blue background",
                                 model="sora-2", extra_body={"seed": 11})
    check(video.status in ("queued", "in_progress"), f"new video status {video.status}")
    check(video.object == "video" and video.id.startswith("video_"), f"bad video object {video}")

    done = client.videos.poll(video.id, poll_interval_ms=200)
    check(done.status == "completed", f"video ended as {done.status}: {done.error}")
    check(done.progress == 100 and done.completed_at and done.expires_at, f"completed video fields {done}")

    mp4 = client.videos.download_content(done.id).read()
    check(mp4[4:8] == b"ftyp", "the video variant is not an MP4")
    thumb = client.videos.download_content(done.id, variant="thumbnail").read()
    check(thumb[:4] == b"RIFF" and thumb[8:12] == b"WEBP", "the thumbnail is not a WebP image")
    sheet = client.videos.download_content(done.id, variant="spritesheet").read()
    check(sheet[:2] == b"\xff\xd8", "the spritesheet is not a JPEG image")

    second = client.videos.create_and_poll(prompt="a large green square rises over a black backdrop", poll_interval_ms=200)
    check(second.status == "completed", f"create_and_poll ended as {second.status}")

    page = client.videos.list(limit=1)
    check(len(page.data) == 1 and page.data[0].id == second.id, "list(limit=1) does not start with the newest video")
    everything = [v.id for v in client.videos.list(limit=1)]  # the SDK follows the cursor
    check(set(everything) >= {video.id, second.id}, f"cursor pagination lost videos: {everything}")

    remix = client.videos.remix(done.id, prompt="a small blue circle drifts to the right over a dark blue background")
    check(remix.remixed_from_video_id == done.id, "remix does not name its source")
    remixed = client.videos.poll(remix.id, poll_interval_ms=200)
    check(remixed.status == "completed" and remixed.size == done.size and remixed.seconds == done.seconds,
          f"remix ended as {remixed.status} {remixed.size} {remixed.seconds}")

    deleted = client.videos.delete(done.id)
    check(deleted.deleted and deleted.id == done.id, "delete did not confirm")
    try:
        client.videos.retrieve(done.id)
        check(False, "a deleted video can still be retrieved")
    except openai.NotFoundError:
        pass

    clip = ("clip.mp4", mp4, "video/mp4")
    try:
        client.videos.edit(video=clip, prompt="bluer")
        check(False, "an unsupported call succeeded")
    except openai.BadRequestError as e:
        check("not supported" in str(e), f"unsupported call error: {e}")

    image_to_video_and_extensions(client, done.id, sys.argv[3] if len(sys.argv) > 3 else "sora-2")

    try:
        client.videos.create(prompt="x", size="999x999")
        check(False, "an impossible size was accepted")
    except openai.BadRequestError as e:
        check(e.body and e.body.get("param") == "size", f"size error does not name the parameter: {e.body}")

    try:
        OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0).videos.list()
        check(False, "a wrong key was accepted")
    except openai.AuthenticationError:
        pass
    print("openai SDK", openai.__version__, "ok")


if __name__ == "__main__":
    main()
