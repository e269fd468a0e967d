"""The official openai Python SDK against a running reel studio, unmodified: create a video with
the demo model, poll it to completion, download the three variants, list, remix and delete.

    python scripts/tests/openai_sdk.py BASE_URL API_KEY

Exits non-zero (with the reason) when anything differs from what the SDK expects.
Run by crates/reel-cli/tests/studio.rs; needs `pip install openai==3.57.0`.
"""

import sys
import warnings

import openai
from openai import OpenAI

warnings.filterwarnings("ignore", category=DeprecationWarning)


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAILED: {message}")


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
    for call in (lambda: client.videos.extend(video=clip, prompt="more", seconds="4"),
                 lambda: client.videos.edit(video=clip, prompt="bluer")):
        try:
            call()
            check(False, "an unsupported call succeeded")
        except openai.BadRequestError as e:
            check("not supported" in str(e), f"unsupported call error: {e}")

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
