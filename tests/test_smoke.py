import io

from PIL import Image


def test_create_run_and_read(client, auth, run_jobs):
    r = client.post("/api/jobs", json={"prompt": "A beautiful sunset over mountains",
                                       "platforms": ["instagram-post", "twitter-post"]}, headers=auth)
    assert r.status_code == 201, r.json
    job_id = r.json["jobId"]
    run_jobs()
    r = client.get(f"/api/jobs/{job_id}", headers=auth)
    assert r.status_code == 200
    body = r.json
    assert body["status"] == "completed", body
    for image in body["result"]["images"]:
        path = image["url"].replace("http://testserver", "")
        data = client.get(path).data
        assert Image.open(io.BytesIO(data)).size == (image["width"], image["height"])
