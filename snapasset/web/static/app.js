/* The SnapAsset page: compose a job, follow it live over Server-Sent Events, show and download
   its images, reopen recent jobs.

   Sections, each small: the API (requests with the pasted token, SPEC §4 errors as sentences),
   the request (read from the form: every control with data-option="<name>" is one entry of
   `options`, so a new option is markup only), the status panel (progress, stage, estimate,
   errors, next to the button), the job on screen (its stream, preview and gallery), the zip of
   all images, and the list of recent jobs. */
(function () {
  "use strict";

  var TOKEN_KEY = "snapasset.token";
  var PROMPT_MIN = 10;
  var RECENT_LIMIT = 10;
  var STAGES = { starting: "Starting", generating: "Generating", downloading: "Downloading",
                 saving: "Saving", processing: "Processing" };
  var UNFINISHED = ["waiting", "active", "delayed"];
  var EXTENSIONS = { jpeg: "jpg" };

  function $(id) { return document.getElementById(id); }

  var form = $("generate");
  var tokenInput = $("token");
  var promptInput = $("prompt");
  var platformList = $("platform-list");
  var platformHelp = $("platforms-help");
  var submitButton = $("submit");
  var cancelButton = $("cancel");
  var formError = $("form-error");
  var jobError = $("job-error");
  var progressBar = $("progress");
  var stageText = $("stage");
  var estimateText = $("estimate");
  var previewBox = $("preview-box");
  var previewImage = $("preview");
  var galleryHelp = $("gallery-help");
  var imageList = $("images");
  var downloadAllButton = $("download-all");
  var recentList = $("recent-list");
  var recentHelp = $("recent-help");
  var recentRefresh = $("recent-refresh");

  function show(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  function plural(count, word) { return count + " " + word + (count === 1 ? "" : "s"); }

  function formatSeconds(seconds) {
    return seconds < 1 ? "under a second" : seconds < 10 ? seconds.toFixed(1) + " s" : Math.round(seconds) + " s";
  }

  // -- the API ---------------------------------------------------------------------------------
  function token() { return tokenInput.value.trim(); }

  /* A SPEC §4 error as something a person can act on: the message, then what each field needs. */
  function describeError(body, status) {
    if (!body || !body.code) return "The server answered HTTP " + status + ".";
    var text = body.message;
    if (body.details) {
      text += " — " + Object.keys(body.details).map(function (name) {
        return name + ": " + body.details[name];
      }).join("; ");
    }
    if (body.code === "UNAUTHORIZED") text += " Paste a valid access token above.";
    if (body.retryAfter) text += " Try again in " + plural(body.retryAfter, "second") + ".";
    return text;
  }

  /* fetch with the token; resolves with the JSON body (null for 204), rejects with an Error
     whose message is describeError's. */
  function request(method, path, body) {
    var headers = { "Authorization": "Bearer " + token() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, { method: method, headers: headers,
                         body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (response) {
        if (response.status === 204) return null;
        return response.json().catch(function () { return null; }).then(function (data) {
          if (!response.ok) {
            var error = new Error(describeError(data, response.status));
            error.status = response.status;
            throw error;
          }
          return data;
        });
      });
  }

  // -- the request -----------------------------------------------------------------------------
  function selectedPlatforms() {
    return Array.prototype.map.call(platformList.querySelectorAll("input:checked"), function (box) {
      return box.value;
    });
  }

  function readRequest() {
    var options = {};
    Array.prototype.forEach.call(form.querySelectorAll("[data-option]"), function (control) {
      if (control.value !== "") options[control.dataset.option] = control.value;
    });
    return { prompt: promptInput.value.trim(), platforms: selectedPlatforms(), options: options };
  }

  /* The checks a person can fix before sending; the server checks everything again. */
  function problemWith(body) {
    if (!token()) return { message: "Paste an access token first.", field: tokenInput };
    if (body.prompt.length < PROMPT_MIN) {
      return { message: "The prompt needs at least " + PROMPT_MIN + " characters.", field: promptInput };
    }
    if (!body.platforms.length) {
      return { message: "Pick at least one platform.", field: platformList.querySelector("input") };
    }
    return null;
  }

  /* The form as a job asked for it (reopening a job), so that it can be run again as it was. */
  function fillForm(data) {
    promptInput.value = data.prompt || "";
    Array.prototype.forEach.call(platformList.querySelectorAll("input"), function (box) {
      box.checked = (data.platforms || []).indexOf(box.value) >= 0;
    });
    Array.prototype.forEach.call(form.querySelectorAll("[data-option]"), function (control) {
      var value = (data.options || {})[control.dataset.option];
      if (value !== undefined) control.value = value;
    });
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
        name.className = "name";
        name.textContent = platform.name;
        var dims = document.createElement("span");
        dims.className = "dims";
        dims.textContent = platform.width + "×" + platform.height;
        label.append(box, name, dims);
        platformList.append(label);
      });
      platformHelp.textContent = "Pick one or more";
    }).catch(function (error) {
      platformHelp.textContent = "Could not load them: " + error.message;
    });
  }

  // -- the status panel ------------------------------------------------------------------------
  function resetStatus(text) {
    show(formError, "");
    show(jobError, "");
    progressBar.value = 0;
    progressBar.textContent = "0%";
    stageText.textContent = text;
    show(estimateText, "");
  }

  function setProgress(value) {
    if (typeof value !== "number") return;
    progressBar.value = Math.max(progressBar.value, value);   // never backwards on screen
    progressBar.textContent = progressBar.value + "%";
  }

  /* "3.2 s so far · recent jobs took about 0.4 s": the estimate is the server's, from the run
     times of the jobs that finished last (estimatedSeconds), never a fixed guess. */
  function showTiming() {
    if (!current) return;
    var elapsed = (Date.now() - current.started) / 1000;
    var parts = [formatSeconds(elapsed) + " so far"];
    if (current.estimate != null) parts.push("recent jobs took about " + formatSeconds(current.estimate));
    else if (current.estimate === null) parts.push("no estimate yet: no job has finished");
    show(estimateText, parts.join(" · "));
  }

  // -- the job on screen -----------------------------------------------------------------------
  var current = null;   // {jobId, source, started (ms), estimate (s, null or undefined), timer}

  function clearGallery() {
    imageList.replaceChildren();
    downloadAllButton.hidden = true;
    galleryHelp.hidden = false;
    previewBox.hidden = true;
  }

  function fileName(image) {
    var format = image.format || "bin";
    return image.platformId + "-" + image.width + "x" + image.height + "." + (EXTENSIONS[format] || format);
  }

  function formatSize(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.round(bytes / 1024) + " kB";
  }

  function addImage(image) {
    var key = image.platformId + "/" + (image.variant || 0);
    if (imageList.querySelector('[data-key="' + key + '"]')) return;   // seen it
    var item = document.createElement("li");
    item.dataset.key = key;
    item.dataset.platform = image.platformId;
    item.dataset.url = new URL(image.url, location.href).href;
    item.dataset.file = fileName(image);
    var figure = document.createElement("figure");
    var img = document.createElement("img");
    img.width = image.width;
    img.height = image.height;
    img.alt = image.platform + " image, " + image.width + " by " + image.height + " pixels";
    if (image.blurhash && window.Blurhash) {
      var placeholder = window.Blurhash.toDataURL(image.blurhash, 32, Math.max(1, Math.round(32 * image.height / image.width)));
      if (placeholder) img.style.backgroundImage = "url(" + placeholder + ")";
    }
    img.src = item.dataset.url;
    var caption = document.createElement("figcaption");
    var title = document.createElement("strong");
    title.textContent = image.platform + (image.variant ? " (variant " + (image.variant + 1) + ")" : "");
    var facts = document.createElement("span");
    facts.textContent = image.width + "×" + image.height + " · " + (image.format || "").toUpperCase() +
                        " · " + formatSize(image.size || 0);
    var download = document.createElement("a");
    download.href = item.dataset.url;
    download.download = item.dataset.file;
    download.textContent = "Download";
    download.setAttribute("aria-label", "Download the " + image.platform + " image");
    caption.append(title, facts, download);
    figure.append(img, caption);
    item.append(figure);
    imageList.append(item);
    galleryHelp.hidden = true;
    downloadAllButton.hidden = false;
  }

  function stopFollowing() {
    if (!current) return;
    if (current.source) current.source.close();
    clearInterval(current.timer);
  }

  function finish(text, errorText) {
    showTiming();
    stopFollowing();
    if (current) show(estimateText, "Took " + formatSeconds((Date.now() - current.started) / 1000) + ".");
    current = null;
    submitButton.disabled = false;
    cancelButton.disabled = true;
    previewBox.hidden = true;
    stageText.textContent = text;
    if (errorText) show(jobError, errorText);
    loadRecent();
  }

  function onEvent(message) {
    var data;
    try { data = JSON.parse(message.data); } catch (error) { return; }
    switch (data.type) {
      case "connected":
        setProgress(data.progress);
        stageText.textContent = data.status === "waiting" ? "Waiting for a worker…" :
                                data.status === "delayed" ? "Waiting to retry…" : "Running…";
        break;
      case "progress":
        show(jobError, "");
        setProgress(data.progress);
        stageText.textContent = data.message || (STAGES[data.stage] || data.stage) + "…";
        if (data.preview) {
          previewImage.src = data.preview;
          previewBox.hidden = false;
        }
        break;
      case "image":
        previewBox.hidden = true;
        setProgress(data.progress);
        stageText.textContent = "Ready: " + data.image.platform;
        addImage(data.image);
        break;
      case "failed":
        var error = data.error || {};
        var reason = (error.message || "The job failed") + (error.code ? " (" + error.code + ")" : "");
        if (data.willRetry) {
          show(jobError, reason + " — retrying" + (data.retryIn ? " in " + data.retryIn + " s" : "") + "…");
        } else {
          finish("Failed.", reason);
        }
        break;
      case "cancelled":
        finish("Cancelled.");
        break;
      case "done":
        ((data.result && data.result.images) || []).forEach(addImage);
        setProgress(100);
        finish("Done: " + plural(imageList.children.length, "image") + ".");
        break;
    }
  }

  /* Follow a job's events; `started` is when it was created (ms), `estimate` the server's. */
  function follow(jobId, streamUrl, started, estimate) {
    stopFollowing();
    imageList.dataset.jobId = jobId;
    var source = new EventSource(streamUrl);
    current = { jobId: jobId, source: source, started: started, estimate: estimate,
                timer: setInterval(showTiming, 500) };
    submitButton.disabled = true;
    cancelButton.disabled = false;
    showTiming();
    source.onmessage = onEvent;
    source.onerror = function () {
      // EventSource reconnects by itself (with Last-Event-ID); CLOSED means it gave up.
      if (source.readyState === EventSource.CLOSED && current && current.source === source) {
        finish("Lost the live updates.", "The connection to the live updates closed; reopen the job below.");
      }
    };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = readRequest();
    var problem = problemWith(body);
    if (problem) {
      show(formError, problem.message);
      if (problem.field) problem.field.focus();
      return;
    }
    localStorage.setItem(TOKEN_KEY, token());
    stopFollowing();
    current = null;
    clearGallery();
    resetStatus("Creating the job…");
    submitButton.disabled = true;
    var sent = Date.now();
    window.SnapAssetOptions.collect().then(function (more) {   // variants and a reference picture
      Object.assign(body.options, more);
      return request("POST", "/api/jobs", body);
    }).then(function (created) {
      stageText.textContent = "Queued.";
      follow(created.jobId, created.streamUrl, sent, created.estimatedSeconds);
      loadRecent(created.jobId);
    }).catch(function (error) {
      submitButton.disabled = false;
      stageText.textContent = "No job running.";
      show(formError, error.message);
    });
  });

  cancelButton.addEventListener("click", function () {
    if (!current) return;
    cancelButton.disabled = true;
    // the stream's `cancelled` event ends the job on screen
    request("DELETE", "/api/jobs/" + encodeURIComponent(current.jobId) + "/cancel").catch(function (error) {
      cancelButton.disabled = !current;
      show(jobError, error.message);
    });
  });

  // -- download all ----------------------------------------------------------------------------
  /* One .zip made here in the browser (fflate, stored without recompression: the images are
     compressed already) from the images on screen, fetched from where they are served. */
  downloadAllButton.addEventListener("click", function () {
    var items = Array.prototype.slice.call(imageList.children);
    var jobId = imageList.dataset.jobId || "snapasset-images";
    downloadAllButton.disabled = true;
    show(jobError, "");
    Promise.all(items.map(function (item) {
      return fetch(item.dataset.url).then(function (response) {
        if (!response.ok) throw new Error("could not fetch " + item.dataset.file + " (HTTP " + response.status + ")");
        return response.arrayBuffer();
      }).then(function (buffer) { return [item.dataset.file, new Uint8Array(buffer)]; });
    })).then(function (files) {
      var entries = {};
      files.forEach(function (file) { entries[file[0]] = [file[1], { level: 0 }]; });
      var blob = new Blob([window.fflate.zipSync(entries)], { type: "application/zip" });
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = jobId + ".zip";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
    }).catch(function (error) {
      show(jobError, "The zip failed: " + error.message);
    }).then(function () {
      downloadAllButton.disabled = false;
    });
  });

  // -- recent jobs -----------------------------------------------------------------------------
  function loadRecent(selectedId) {
    if (!token()) {
      recentList.replaceChildren();
      recentHelp.textContent = "Paste a token to see your jobs.";
      recentHelp.hidden = false;
      return;
    }
    request("GET", "/api/jobs?limit=" + RECENT_LIMIT).then(function (body) {
      recentList.replaceChildren.apply(recentList, body.jobs.map(function (job) {
        var item = document.createElement("li");
        var button = document.createElement("button");
        button.type = "button";
        button.dataset.jobId = job.jobId;
        var when = document.createElement("span");
        when.className = "when";
        when.textContent = new Date(job.createdAt).toLocaleString();
        var status = document.createElement("span");
        status.className = "badge " + job.status;
        status.textContent = job.status + (UNFINISHED.indexOf(job.status) >= 0 ? " " + job.progress + "%" : "");
        var verb = document.createElement("span");
        verb.className = "visually-hidden";
        verb.textContent = "Open the job of ";
        button.append(verb, when, status);
        if (job.jobId === (selectedId || imageList.dataset.jobId)) button.setAttribute("aria-current", "true");
        button.addEventListener("click", function () { reopen(job.jobId); });
        item.append(button);
        return item;
      }));
      recentHelp.textContent = body.jobs.length ? "" : "No jobs yet.";
      recentHelp.hidden = body.jobs.length > 0;
    }).catch(function (error) {
      recentList.replaceChildren();
      recentHelp.textContent = error.message;
      recentHelp.hidden = false;
    });
  }

  /* Show a job again: its request in the form, its images, its outcome, and its live events if
     it is still running. */
  function reopen(jobId) {
    stopFollowing();
    current = null;
    request("GET", "/api/jobs/" + encodeURIComponent(jobId)).then(function (job) {
      clearGallery();
      fillForm(job.data || {});
      imageList.dataset.jobId = job.jobId;
      resetStatus("");
      setProgress(job.progress);
      ((job.result && job.result.images) || []).forEach(addImage);
      var started = Date.parse(job.createdAt);
      if (UNFINISHED.indexOf(job.status) >= 0) {
        stageText.textContent = "Reopened: " + job.status + ".";
        follow(job.jobId, "/api/sse/jobs/" + encodeURIComponent(job.jobId) + "?access_token=" +
               encodeURIComponent(token()), started);
      } else {
        submitButton.disabled = false;
        cancelButton.disabled = true;
        stageText.textContent = "Reopened: " + job.status + (job.result ? ", " + plural(job.result.images.length, "image") : "") + ".";
        if (job.finishedAt) show(estimateText, "Took " + formatSeconds((Date.parse(job.finishedAt) - started) / 1000) + ".");
        if (job.error) show(jobError, job.error.message + " (" + job.error.code + ")");
      }
      loadRecent(job.jobId);
    }).catch(function (error) {
      show(jobError, error.message);
    });
  }

  // -- start -----------------------------------------------------------------------------------
  tokenInput.value = localStorage.getItem(TOKEN_KEY) || "";
  tokenInput.addEventListener("change", function () {
    localStorage.setItem(TOKEN_KEY, token());
    loadRecent();
  });
  recentRefresh.addEventListener("click", function () { loadRecent(); });
  loadPlatforms();
  loadRecent();
})();
