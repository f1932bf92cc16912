/* A small offline API explorer: reads /openapi.json, lists every operation, lets one try it. */
(function () {
  "use strict";

  var TOKEN_KEY = "snapasset.token";
  var METHODS = ["get", "post", "put", "patch", "delete"];
  var tokenInput = document.getElementById("token");
  var apiKeyInput = document.getElementById("api-key");
  var container = document.getElementById("operations");
  var summary = document.getElementById("doc-summary");
  var spec = null;

  tokenInput.value = localStorage.getItem(TOKEN_KEY) || "";
  tokenInput.addEventListener("change", function () {
    localStorage.setItem(TOKEN_KEY, tokenInput.value.trim());
  });

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name === "className") node.className = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.append(child); });
    return node;
  }

  /* The document's descriptions are Markdown (as OpenAPI says), rendered by the vendored marked;
     the text is this server's own /openapi.json. `inline` for a table cell or a line. */
  function markdown(text, inline) {
    var node = el(inline ? "span" : "div", { className: "markdown" });
    node.innerHTML = inline ? window.marked.parseInline(text || "") : window.marked.parse(text || "");
    return node;
  }

  function resolve(schema) {
    var seen = 0;
    while (schema && schema.$ref && seen++ < 10) {
      schema = schema.$ref.replace(/^#\//, "").split("/").reduce(function (node, key) { return node[key]; }, spec);
    }
    return schema || {};
  }

  function typeOf(schema) {
    schema = resolve(schema);
    if (schema.enum) return "one of: " + schema.enum.join(", ");
    if (schema.type === "array") return "array of " + typeOf(schema.items);
    return [].concat(schema.type || "object").join(" | ");
  }

  function example(schema) {
    schema = resolve(schema);
    if (schema.examples) return schema.examples[0];
    if (schema.default !== undefined) return schema.default;
    return undefined;
  }

  function parameterTable(parameters) {
    if (!parameters.length) return null;
    var body = el("tbody", {}, parameters.map(function (p) {
      return el("tr", {}, [el("td", {}, [el("code", { text: p.name })]), el("td", { text: p.in }),
                           el("td", { text: typeOf(p.schema) + (p.required ? " (required)" : "") }),
                           el("td", {}, [markdown(p.description, true)])]);
    }));
    return el("table", {}, [el("thead", {}, [el("tr", {}, ["name", "in", "type", "about"].map(function (h) {
      return el("th", { scope: "col", text: h });
    }))]), body]);
  }

  function responseList(responses) {
    return el("ul", {}, Object.keys(responses).map(function (status) {
      var response = responses[status].$ref ? resolve(responses[status]) : responses[status];
      var content = response.content || {};
      var types = Object.keys(content).map(function (type) {
        var schema = content[type].schema;
        return type + (schema && schema.$ref ? " — " + schema.$ref.split("/").pop() : "");
      });
      return el("li", {}, [el("code", { text: status }), " ", markdown(response.description, true),
                           types.length ? " [" + types.join(", ") + "]" : null]);
    }));
  }

  function headers(hasBody) {
    var out = {};
    if (hasBody) out["Content-Type"] = "application/json";
    if (tokenInput.value.trim()) out["Authorization"] = "Bearer " + tokenInput.value.trim();
    if (apiKeyInput.value.trim()) out["X-API-Key"] = apiKeyInput.value.trim();
    return out;
  }

  function tryIt(path, method, operation) {
    var parameters = (operation.parameters || []).filter(function (p) { return p.in === "path" || p.in === "query"; });
    var isStream = Object.keys(operation.responses || {}).some(function (status) {
      var content = operation.responses[status].content || {};
      return "text/event-stream" in content;
    });
    var inputs = {};
    var fields = parameters.map(function (p) {
      var id = "try-" + (operation.operationId || method + path) + "-" + p.name;
      inputs[p.name] = el("input", { id: id, type: "text", placeholder: p.required ? "required" : "optional" });
      return el("div", { className: "field" }, [el("label", { for: id, text: p.name + " (" + p.in + ")" }), inputs[p.name]]);
    });
    var bodyInput = null;
    var requestBody = operation.requestBody && operation.requestBody.content &&
                      operation.requestBody.content["application/json"];
    if (requestBody) {
      var bodyId = "try-" + (operation.operationId || method + path) + "-body";
      var sample = example(requestBody.schema);
      bodyInput = el("textarea", { id: bodyId, className: "json", rows: "6" });
      bodyInput.value = sample === undefined ? "{}" : JSON.stringify(sample, null, 2);
      fields.push(el("div", { className: "field" }, [el("label", { for: bodyId, text: "JSON body" }), bodyInput]));
    }
    var output = el("pre", { "aria-live": "polite", "aria-label": "Response", tabindex: "0" });   // scrollable: reachable by keyboard
    var button = el("button", { type: "button", className: "primary", text: isStream ? "Open stream" : "Send" });
    var source = null;

    button.addEventListener("click", function () {
      var url = path.replace(/\{(\w+)\}/g, function (_, name) {
        return encodeURIComponent(inputs[name] ? inputs[name].value.trim() : "");
      });
      var query = new URLSearchParams();
      parameters.forEach(function (p) {
        if (p.in === "query" && inputs[p.name].value.trim()) query.set(p.name, inputs[p.name].value.trim());
      });
      if (isStream) {
        // EventSource cannot send headers: the access token travels in the query.
        if (source) { source.close(); source = null; button.textContent = "Open stream"; return; }
        if (!query.has("token") && tokenInput.value.trim()) query.set("access_token", tokenInput.value.trim());
        output.textContent = "";
        source = new EventSource(url + (query.toString() ? "?" + query : ""));
        button.textContent = "Close stream";
        source.onmessage = function (message) {
          output.textContent += "id: " + message.lastEventId + "\ndata: " + message.data + "\n\n";
        };
        source.onerror = function () {
          if (source && source.readyState === EventSource.CLOSED) {
            output.textContent += "(stream closed)\n";
            source = null;
            button.textContent = "Open stream";
          }
        };
        return;
      }
      output.textContent = "…";
      var init = { method: method.toUpperCase(), headers: headers(!!bodyInput) };
      if (bodyInput) init.body = bodyInput.value;
      fetch(url + (query.toString() ? "?" + query : ""), init).then(function (response) {
        return response.text().then(function (text) {
          var shown = text;
          try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (error) { /* not JSON */ }
          var head = response.status + " " + response.statusText + "\n";
          ["content-type", "x-ratelimit-remaining", "retry-after", "location"].forEach(function (name) {
            if (response.headers.get(name)) head += name + ": " + response.headers.get(name) + "\n";
          });
          output.textContent = head + "\n" + shown;
        });
      }).catch(function (error) { output.textContent = "Request failed: " + error.message; });
    });
    return el("div", { className: "try" }, fields.concat([el("div", {}, [button]), output]));
  }

  function operationView(path, method, operation) {
    var body = el("div", { className: "body" }, [
      operation.description ? markdown(operation.description) : null,
      el("p", { text: "Auth: " + ((operation.security || spec.security || []).map(function (req) {
        return Object.keys(req).join(" + ") || "none";
      }).join(" or ") || "none") }),
      parameterTable(operation.parameters || []),
      el("h3", { text: "Responses" }),
      responseList(operation.responses || {}),
      el("h3", { text: "Try it" }),
      tryIt(path, method, operation)
    ]);
    return el("details", { className: "op", id: operation.operationId || "" }, [
      el("summary", {}, [el("span", { className: "method " + method, text: method }),
                         el("span", { className: "path", text: path }),
                         el("span", { className: "summary", text: operation.summary || "" })]),
      body
    ]);
  }

  function render() {
    summary.replaceChildren(spec.info.title + " " + spec.info.version + " (OpenAPI " + spec.openapi + "). ",
                            markdown(spec.info.description, true));
    var byTag = {};
    Object.keys(spec.paths).forEach(function (path) {
      METHODS.forEach(function (method) {
        var operation = spec.paths[path][method];
        if (!operation) return;
        var tag = (operation.tags || ["other"])[0];
        (byTag[tag] = byTag[tag] || []).push(operationView(path, method, operation));
      });
    });
    var order = (spec.tags || []).map(function (tag) { return tag.name; });
    Object.keys(byTag).sort(function (a, b) { return order.indexOf(a) - order.indexOf(b); }).forEach(function (tag) {
      container.append(el("section", { "aria-label": tag }, [el("h2", { text: tag })].concat(byTag[tag])));
    });
  }

  fetch("/openapi.json").then(function (response) { return response.json(); }).then(function (document) {
    spec = document;
    render();
  }).catch(function (error) {
    summary.textContent = "Could not load /openapi.json: " + error.message;
  });
})();
