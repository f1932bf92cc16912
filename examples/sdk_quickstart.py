"""SnapAsset from Python: queue a job, watch it live, print the image URLs."""
import os

from snapasset_sdk import SnapAssetClient

client = SnapAssetClient(os.environ["SNAPASSET_URL"], token=os.environ["SNAPASSET_TOKEN"])
job = client.create_job("A beautiful sunset over mountains", platforms=["instagram-post", "twitter-post"])
for event in client.stream_job(job.job_id):      # typed events, reconnects by itself
    print(event.type, event.progress)
result = client.wait(job.job_id)                 # raises JobFailedError if the job failed
for image in result.images:
    print(image.url)
