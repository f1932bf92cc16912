/* The SnapAsset page: create a job, follow it over Server-Sent Events, show the images. */
(function () {
  "use strict";

  var TOKEN_KEY = "snapasset.token";
  var STAGES = { starting: "Starting", generating: "Generating", downloading: "Downloading",
                 saving: "Saving", processing: "Processing" };

  var form = document.getElementById("generate");
  var tokenInput = document.getElementById("token");
  var promptInput = document.getElementById("prompt");
  var platformList = document.getElementById("platform-list");
  var platformHelp = document.getElementById("platforms-help");
  var formatSelect = document.getElementById("format");
  var fitSelect = document.getElementById("fit");
  var submitButton = document.getElementById("submit");
  var cancelButton = document.getElementById("cancel");
  var formError = document.getElementById("form-error");
  var progressBar = document.getElementById("progress");
  var stageText = document.getElementById("stage");
  var jobError = document.getElementById("job-error");
  var previewBox = document.getElementById("preview-box");
  var previewImage = document.getElementById("preview");
  var imageList = document.getElementById("images");

  var current = null;   // {jobId, source}

  tokenInput.value = localStorage.getItem(TOKEN_KEY) || "";
  tokenInput.addEventListener("change", function () {
    localStorage.setItem(TOKEN_KEY, tokenInput.value.trim());
  });

  function show(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  function authHeaders() {
    return { "Authorization": "Bearer " + tokenInput.value.trim() };
  }

  /* The API's error JSON (SPEC §4) as one line. */
  function describeError(body, status) {
    if (body && body.code) {
      var details = body.details ? " (" + Object.keys(body.details).map(function (name) {
        return name + " " + body.details[name];
      }).join("; ") + ")" : "";
      return body.code + ": " + body.message + details;
    }
    return "HTTP " + status;
  }

  function loadPlatforms() {
    fetch("/api/platforms").then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }).then(function (body) {
      body.platforms.forEach(function (platform) {
        var label = document.createElement("label");
        var box = document.createElement("input");
        box.type = "checkbox";
        box.name = "platforms";
        box.value = platform.id;
        box.id = "platform-" + platform.id;
        var name = document.createElement("span");
        name.textContent = platform.name;
        var dims = document.createElement("span");
        dims.className = "dims";
        dims.textContent = platform.width + "×" + platform.height;
        label.append(box, name, dims);
        platformList.append(label);
      });
      platformHelp.textContent = "Pick one or more.";
    }).catch(function (error) {
      platformHelp.textContent = "Could not load the platforms: " + error.message;
    });
  }

  function selectedPlatforms() {
    return Array.prototype.map.call(platformList.querySelectorAll("input:checked"), function (box) {
      return box.value;
    });
  }

  function setProgress(value, text) {
    if (typeof value === "number") {
      progressBar.value = Math.max(progressBar.value, value);   // never backwards on screen
      progressBar.textContent = progressBar.value + "%";
    }
    if (text) stageText.textContent = text;
  }

  function formatSize(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.round(bytes / 1024) + " kB";
  }

  function addImage(image) {
    if (imageList.querySelector('[data-platform="' + image.platformId + '"]')) return;   // seen it
    var item = document.createElement("li");
    item.dataset.platform = image.platformId;
    var figure = document.createElement("figure");
    var link = document.createElement("a");
    link.href = image.url;
    link.target = "_blank";
    link.rel = "noopener";
    var img = document.createElement("img");
    img.width = image.width;
    img.height = image.height;
    img.alt = image.platform + " image, " + image.width + " by " + image.height + " pixels";
    if (image.blurhash && window.Blurhash) {
      var placeholder = window.Blurhash.toDataURL(image.blurhash, 32, Math.max(1, Math.round(32 * image.height / image.width)));
      if (placeholder) img.style.backgroundImage = "url(" + placeholder + ")";
    }
    img.src = new URL(image.url, location.href).href;
    link.append(img);
    var caption = document.createElement("figcaption");
    var title = document.createElement("strong");
    title.textContent = image.platform;
    caption.append(title, " — " + image.width + "×" + image.height + " · " +
                   (image.format || "").toUpperCase() + " · " + formatSize(image.size || 0));
    figure.append(link, caption);
    item.append(figure);
    imageList.append(item);
  }

  function finish(text, isError) {
    if (current && current.source) current.source.close();
    current = null;
    submitButton.disabled = false;
    cancelButton.disabled = true;
    previewBox.hidden = true;
    if (isError) show(jobError, text); else stageText.textContent = text;
  }

  function onEvent(message) {
    var data;
    try { data = JSON.parse(message.data); } catch (error) { return; }
    switch (data.type) {
      case "connected":
        setProgress(data.progress, "Job " + data.jobId + " is " + data.status + ".");
        break;
      case "progress":
        show(jobError, "");
        setProgress(data.progress, data.message || (STAGES[data.stage] || data.stage) + "…");
        if (data.preview) {
          previewImage.src = data.preview;
          previewBox.hidden = false;
        }
        break;
      case "image":
        previewBox.hidden = true;
        setProgress(data.progress, "Ready: " + data.image.platform);
        addImage(data.image);
        break;
      case "failed":
        var error = data.error || {};
        if (data.willRetry) {
          show(jobError, (error.code || "FAILED") + ": " + (error.message || "") + " — retrying" +
               (data.retryIn ? " in " + data.retryIn + " s" : "") + "…");
        } else {
          finish((error.code || "FAILED") + ": " + (error.message || "The job failed"), true);
        }
        break;
      case "cancelled":
        finish("Cancelled.");
        break;
      case "done":
        ((data.result && data.result.images) || []).forEach(addImage);
        setProgress(100);
        var count = imageList.children.length;
        finish("Done: " + count + " image" + (count === 1 ? "" : "s") + ".");
        break;
    }
  }

  function follow(jobId, streamUrl) {
    var source = new EventSource(streamUrl);
    current = { jobId: jobId, source: source };
    source.onmessage = onEvent;
    source.onerror = function () {
      // EventSource reconnects by itself (with Last-Event-ID); CLOSED means it gave up.
      if (source.readyState === EventSource.CLOSED && current && current.source === source) {
        finish("Lost the connection to the live updates; reload to look again.", true);
      }
    };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    show(formError, "");
    var platforms = selectedPlatforms();
    var token = tokenInput.value.trim();
    var prompt = promptInput.value.trim();
    if (!token) return show(formError, "Paste an access token first.");
    if (prompt.length < 10) return show(formError, "The prompt needs at least 10 characters.");
    if (!platforms.length) return show(formError, "Pick at least one platform.");
    localStorage.setItem(TOKEN_KEY, token);

    if (current && current.source) current.source.close();
    imageList.replaceChildren();
    show(jobError, "");
    progressBar.value = 0;
    progressBar.textContent = "0%";
    stageText.textContent = "Creating the job…";
    submitButton.disabled = true;

    fetch("/api/jobs", {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
      body: JSON.stringify({ prompt: prompt, platforms: platforms, options: { format: formatSelect.value, fit: fitSelect.value } })
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (!response.ok) throw new Error(describeError(body, response.status));
        return body;
      });
    }).then(function (body) {
      stageText.textContent = "Queued (about " + body.estimatedTime + ").";
      cancelButton.disabled = false;
      follow(body.jobId, body.streamUrl);
    }).catch(function (error) {
      submitButton.disabled = false;
      stageText.textContent = "No job running.";
      show(formError, error.message);
    });
  });

  cancelButton.addEventListener("click", function () {
    if (!current) return;
    cancelButton.disabled = true;
    fetch("/api/jobs/" + encodeURIComponent(current.jobId) + "/cancel", {
      method: "DELETE", headers: authHeaders()
    }).then(function (response) {
      if (response.ok) return;   // the stream's `cancelled` event ends the job on screen
      return response.json().catch(function () { return null; }).then(function (body) {
        cancelButton.disabled = !current;
        show(jobError, describeError(body, response.status));
      });
    });
  });

  loadPlatforms();
})();
