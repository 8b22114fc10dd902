/* dockyard console: the one script of the page that `dockyard serve` serves at /.
 *
 * It owns:
 *   - the router: #/ (endpoints), #/endpoints/NAME (one endpoint), #/choose (container strategy);
 *   - the live channel: one EventSource on /_dockyard/console/events (?endpoint=NAME on an
 *     endpoint's page) whose events (endpoints, traffic, instances, history, point, logs) update
 *     the views in place — nothing here polls;
 *   - the views, built with the small h() helper below (text is always set as text, never as
 *     HTML), and the charts (uPlot, vendored beside this file);
 *   - the invoke form, which posts to the runtime API (/endpoints/NAME/invocations) like any
 *     client, and the strategy form, which asks the server's advisor (/_dockyard/console/api/advice);
 *   - on a server with credentials (signed in at /_dockyard/console/signin): the session's CSRF
 *     token, copied from its cookie into the X-Dockyard-Console-Token header of every POST, and
 *     signing out.
 * No framework and no build step: edit this file and reload.
 */
"use strict";

(() => {
  const API = "/_dockyard/console/api";
  const EVENTS = "/_dockyard/console/events";
  const SIGNIN = "/_dockyard/console/signin";
  const SIGNOUT = "/_dockyard/console/signout";
  const HISTORY = 120; // points kept per chart (one a second)
  const MAX_LOG_LINES = 2000;
  const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d"];

  const state = {
    endpoints: [],   // the latest `endpoints` event
    rates: {},       // endpoint (lower-cased) → invocations/s, from `traffic`
    source: null,    // the EventSource
    page: null,      // the current view: {root, and the handlers of the events it shows}
  };

  // --- DOM helpers -------------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "className") el.className = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const main = () => document.getElementById("main");
  const statusBadge = (status) => h("span", { className: `status status-${status}` }, status);
  const fmt = (value, digits = 1) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));
  const time = (epochSeconds) => new Date(epochSeconds * 1000).toLocaleString();
  const endpointHref = (name) => `#/endpoints/${encodeURIComponent(name)}`;
  const findEndpoint = (name) => state.endpoints.find((e) => e.name.toLowerCase() === name.toLowerCase());

  function table(headings, rows) {
    const head = headings ? h("thead", {}, h("tr", {}, headings.map((x) => h("th", {}, x)))) : null;
    return h("table", {}, head, h("tbody", {}, rows));
  }

  // --- the sign-in session (only on a server with credentials) ------------------------------------

  // The session's CSRF token: the server sets this cookie at sign-in (the session id itself is
  // HttpOnly). Without credentials there is none, and no header is needed.
  const csrfToken = () => (document.cookie.match(/(?:^|; )dockyard-console-csrf=([^;]*)/) || [])[1];

  function post(url, headers, body) {
    const token = csrfToken();
    return fetch(url, { method: "POST", headers: token ? { ...headers, "X-Dockyard-Console-Token": token } : headers, body });
  }

  async function signOut() {
    await post(SIGNOUT, {});
    location.assign(SIGNIN);
  }

  // The live channel failed: if that is because the session ended, sign in again.
  async function checkSession() {
    let response;
    try {
      response = await fetch(`${API}/endpoints`);
    } catch {
      return; // the server is unreachable (restarting?): the live channel retries by itself
    }
    if (response.status === 403) location.assign(SIGNIN);
  }

  // --- the live channel --------------------------------------------------------------------------

  function connect(endpoint) {
    if (state.source) state.source.close();
    const source = new EventSource(endpoint ? `${EVENTS}?endpoint=${encodeURIComponent(endpoint)}` : EVENTS);
    state.source = source;
    const on = (name, handler) => source.addEventListener(name, (e) => handler(JSON.parse(e.data)));
    on("endpoints", (data) => {
      state.endpoints = data.endpoints;
      if (state.page.onEndpoints) state.page.onEndpoints();
    });
    on("traffic", (data) => {
      state.rates = data.endpoints;
      if (state.page.onTraffic) state.page.onTraffic();
    });
    for (const name of ["instances", "history", "point", "logs"]) {
      on(name, (data) => state.page[name] && state.page[name](data));
    }
    source.onopen = () => setLive(true);
    source.onerror = () => {
      setLive(false);
      checkSession();
    };
  }

  function setLive(up) {
    const el = document.getElementById("live");
    el.textContent = up ? "live" : "reconnecting";
    el.className = up ? "live on" : "live off";
  }

  // --- router ------------------------------------------------------------------------------------

  function route() {
    const hash = location.hash || "#/";
    const match = hash.match(/^#\/endpoints\/(.+)$/);
    if (match) show(endpointPage(decodeURIComponent(match[1])), decodeURIComponent(match[1]), "endpoints");
    else if (hash === "#/choose") show(choosePage(), null, "choose");
    else show(listPage(), null, "endpoints");
  }

  function show(page, endpoint, nav) {
    state.page = page;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === nav);
    main().replaceChildren(page.root);
    connect(endpoint);
  }

  // --- the endpoint list -------------------------------------------------------------------------

  function listPage() {
    const body = h("tbody", { id: "endpoint-rows" });
    const empty = h("p", { className: "muted", id: "no-endpoints" },
      "No endpoints yet. Create one with boto3, the AWS CLI or the SageMaker SDK pointed at this server.");
    const root = h("section", {}, h("h1", {}, "Endpoints"),
      h("table", { className: "endpoints" },
        h("thead", {}, h("tr", {}, ["Name", "Status", "Variants", "Endpoint config", "Created", "Invocations/s"].map((x) => h("th", {}, x)))),
        body),
      empty);

    function render() {
      empty.hidden = state.endpoints.length > 0;
      body.replaceChildren(...state.endpoints.flatMap((ep) => {
        const row = h("tr", { "data-endpoint": ep.name },
          h("td", {}, h("a", { href: endpointHref(ep.name) }, ep.name)),
          h("td", {}, statusBadge(ep.status)),
          h("td", {}, ep.variants.map((v) => h("div", {},
            `${v.name} · weight ${v.weight} · ${v.currentInstances}/${v.desiredInstances} instances`))),
          h("td", {}, ep.configName),
          h("td", {}, time(ep.created)),
          h("td", { className: "num rate", "data-rate": ep.name.toLowerCase() }, rate(ep.name.toLowerCase())));
        if (!ep.failureReason) return [row];
        return [row, h("tr", { className: "failure" }, h("td", { colspan: 6 }, h("pre", {}, ep.failureReason)))];
      }));
    }
    const rate = (key) => fmt((state.rates[key] || {}).rps);
    // Every second only the rates change: update those cells, keep the rest of the table.
    const onTraffic = () => { for (const cell of body.querySelectorAll("td.rate")) cell.textContent = rate(cell.dataset.rate); };
    render();
    return { root, onEndpoints: render, onTraffic };
  }

  // --- one endpoint ------------------------------------------------------------------------------

  function endpointPage(name) {
    const header = h("div", { className: "endpoint-header" });
    const variants = h("div", {});
    const instances = h("div", {}, h("p", { className: "muted" }, "No instances running."));
    const contention = h("div", { className: "contention" });
    const cards = h("div", { className: "cards" });
    const deployment = h("pre", { className: "json" }, "…");
    const invoke = invokeForm(name);
    const logs = logView();
    const root = h("section", { className: "endpoint" },
      header,
      h("h2", {}, "Variants"), variants,
      h("h2", {}, "Instances and containers"), instances,
      h("h2", {}, "Live"),
      h("p", { className: "muted" }, "Containers of one instance share its CPU and memory: compare them side by side."),
      contention, cards,
      h("h2", {}, "Invoke"), invoke.root,
      h("h2", {}, "Logs"), logs.root,
      h("details", { className: "deployment" }, h("summary", {}, "Model and endpoint config"), deployment));
    const charts = chartSet(contention, cards);
    let lastModified = null;

    function onEndpoints() {
      const ep = findEndpoint(name);
      if (!ep) {
        header.replaceChildren(h("h1", {}, name), h("p", { className: "muted" }, "This endpoint does not exist (any more)."));
        variants.replaceChildren();
        return;
      }
      header.replaceChildren(...[
        h("h1", {}, ep.name, " ", statusBadge(ep.status)),
        h("div", { className: "muted" }, ep.arn),
        h("div", {}, "Endpoint config ", h("b", {}, ep.configName),
          ep.pendingConfigName ? [" → ", h("b", {}, ep.pendingConfigName)] : []),
        ep.failureReason ? h("pre", { className: "failure" }, ep.failureReason) : null].filter(Boolean));
      variants.replaceChildren(table(
        ["Variant", "Model", "Instance type", "Mode", "Weight", "Instances (current / desired)", "Containers"],
        ep.variants.map((v) => h("tr", {},
          h("td", {}, v.name), h("td", {}, v.model), h("td", {}, v.instanceType), h("td", {}, v.mode),
          h("td", { className: "num" }, v.weight, v.pendingWeight !== null ? ` → ${v.pendingWeight}` : ""),
          h("td", { className: "num" }, `${v.currentInstances} / ${v.desiredInstances}`,
            v.pendingInstances !== null ? ` → ${v.pendingInstances}` : ""),
          h("td", {}, v.containers.join(", "))))));
      invoke.setVariants(ep.variants);
      if (ep.lastModified !== lastModified) {
        lastModified = ep.lastModified;
        fetch(`${API}/endpoints/${encodeURIComponent(name)}`)
          .then((r) => (r.ok ? r.json() : null))
          .then((details) => { deployment.textContent = details ? JSON.stringify(details, null, 2) : "–"; });
      }
    }

    function onInstances(data) {
      if (!data.instances.length) {
        instances.replaceChildren(h("p", { className: "muted" }, "No instances running."));
        return;
      }
      instances.replaceChildren(table(
        ["Instance", "Variant", "Instance type", "Container", "Image", "Strategy", "Runtime", "Health"],
        data.instances.flatMap((i) => i.containers.map((c) => h("tr", {},
          h("td", { className: "mono" }, i.id), h("td", {}, i.variant), h("td", {}, i.instanceType),
          h("td", {}, c.hostname), h("td", { className: "mono image" }, c.image),
          h("td", {}, h("span", { className: `strategy strategy-${c.strategy}` }, c.strategy)),
          h("td", {}, i.runtime), h("td", {}, h("span", { className: `health health-${c.health}` }, c.health)))))));
    }

    onEndpoints();
    return {
      root, onEndpoints,
      instances: onInstances,
      history: (data) => charts.reset(data.points),
      point: (data) => charts.add(data),
      logs: (data) => logs.add(data),
    };
  }

  // --- charts ------------------------------------------------------------------------------------

  // One card per container (traffic, latency, resources) and, above them, CPU and memory of every
  // container on one chart each, where a container starving its neighbours shows.
  function chartSet(contentionEl, cardsEl) {
    let t = [];
    let keys = [];      // "variant/container", in order of appearance
    let values = {};    // key → {rps, errorsPerSecond, p50, p99, cpu, memory}: arrays aligned with t
    let cards = {};     // key → [uPlot charts]
    let shared = [];    // the contention charts
    const FIELDS = ["rps", "errorsPerSecond", "p50", "p99", "cpu", "memory"];

    function append(point) {
      t.push(point.t);
      const seen = new Set();
      for (const c of point.containers) {
        const key = `${c.variant}/${c.container}`;
        seen.add(key);
        if (!values[key]) {
          keys.push(key);
          values[key] = Object.fromEntries(FIELDS.map((f) => [f, new Array(t.length - 1).fill(null)]));
        }
        for (const f of FIELDS) {
          const v = c[f];
          values[key][f].push(v === null || v === undefined ? null : f === "memory" ? v / 2 ** 20 : v);
        }
      }
      for (const key of keys) if (!seen.has(key)) for (const f of FIELDS) values[key][f].push(null);
      if (t.length > HISTORY) {
        t = t.slice(-HISTORY);
        for (const key of keys) for (const f of FIELDS) values[key][f] = values[key][f].slice(-HISTORY);
      }
    }

    // The last HISTORY seconds, and at least the last 30 while there are fewer points.
    function slidingWindow(u, min, max) {
      const end = max ?? Date.now() / 1000;
      return [Math.max(end - HISTORY, Math.min(min ?? end, end - 30)), end];
    }

    // series: labels, or {label, scale} where a second scale gets its own axis on the right.
    function chart(el, title, series) {
      const box = h("div", { className: "chart", "data-title": title }, h("div", { className: "chart-title" }, title));
      el.append(box);
      const specs = series.map((s) => (typeof s === "string" ? { label: s, scale: "y" } : s));
      const scales = [...new Set(specs.map((s) => s.scale))];
      const axis = { stroke: "#555", grid: { stroke: "#eee" }, size: 50 };
      const plot = new uPlot({
        width: Math.max(240, box.clientWidth - 8), height: 140,
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true, range: slidingWindow },
          // Every value is a rate, a time, a share or a size: from zero, so that heights compare.
          ...Object.fromEntries(scales.map((scale) => [scale, { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] }])),
        },
        axes: [{ stroke: "#555", grid: { stroke: "#eee" } },
          ...scales.map((scale, i) => ({ ...axis, scale, side: i ? 1 : 3, grid: { show: i === 0, stroke: "#eee" } }))],
        series: [{}, ...specs.map((s, i) => ({ label: s.label, scale: s.scale, stroke: COLORS[i % COLORS.length], width: 1.5 }))],
      }, [t, ...series.map(() => [])], box);
      return { box, plot };
    }

    function build() {
      contentionEl.replaceChildren();
      cardsEl.replaceChildren();
      cards = {};
      shared = keys.length ? [chart(contentionEl, "CPU % by container", keys), chart(contentionEl, "Memory (MiB) by container", keys)] : [];
      for (const key of keys) {
        const card = h("div", { className: "card", "data-container": key }, h("h3", {}, key));
        cardsEl.append(card);
        cards[key] = [
          chart(card, "Invocations/s and errors/s", ["invocations/s", "errors/s"]),
          chart(card, "Latency p50 / p99 (ms)", ["p50", "p99"]),
          chart(card, "CPU % and memory (MiB)", [{ label: "CPU %", scale: "%" }, { label: "memory MiB", scale: "MiB" }]),
        ];
      }
    }

    function draw() {
      const set = (c, data) => {
        c.plot.setData(data);
        // How many points the first series has, and its largest: what a test can read.
        const points = data[1].filter((v) => v !== null);
        c.box.dataset.points = points.length;
        c.box.dataset.max = points.length ? Math.max(...points) : 0;
      };
      if (shared.length) {
        set(shared[0], [t, ...keys.map((k) => values[k].cpu)]);
        set(shared[1], [t, ...keys.map((k) => values[k].memory)]);
      }
      for (const key of keys) {
        const v = values[key];
        const [traffic, latency, resources] = cards[key];
        set(traffic, [t, v.rps, v.errorsPerSecond]);
        set(latency, [t, v.p50, v.p99]);
        set(resources, [t, v.cpu, v.memory]);
      }
    }

    return {
      reset(points) {
        t = []; keys = []; values = {};
        for (const p of points) append(p);
        build();
        draw();
      },
      add(point) {
        const before = keys.length;
        append(point);
        if (keys.length !== before) build();
        draw();
      },
    };
  }

  // --- invoke ------------------------------------------------------------------------------------

  function invokeForm(name) {
    const field = (label, input) => h("label", {}, h("span", {}, label), input);
    const contentType = h("input", { name: "contentType", value: "text/csv", list: "content-types" });
    const accept = h("input", { name: "accept", value: "application/json", list: "content-types" });
    const body = h("textarea", { name: "body", rows: 4, placeholder: "Request body, e.g. 5.1,3.5,1.4,0.2" });
    const file = h("input", { name: "file", type: "file" });
    const variant = h("select", { name: "targetVariant" }, h("option", { value: "" }, "(by weight)"));
    const container = h("select", { name: "targetContainer" }, h("option", { value: "" }, "(none)"));
    const model = h("input", { name: "targetModel", placeholder: "multi-model endpoints only" });
    const result = h("div", { className: "invoke-result", hidden: true });
    const types = h("datalist", { id: "content-types" },
      ["text/csv", "application/json", "application/jsonlines", "application/x-npy", "text/plain", "application/octet-stream"]
        .map((v) => h("option", { value: v })));
    const form = h("form", { className: "invoke", onsubmit: send },
      types,
      h("div", { className: "row" }, field("Content type", contentType), field("Accept", accept)),
      field("Body", body),
      field("…or a file (sent instead of the body)", file),
      h("div", { className: "row" },
        field("TargetVariant", variant), field("TargetContainerHostname", container), field("TargetModel", model)),
      h("button", { type: "submit" }, "Invoke"));

    async function send(event) {
      event.preventDefault();
      const headers = { "Content-Type": contentType.value || "application/octet-stream" };
      if (accept.value) headers.Accept = accept.value;
      if (variant.value) headers["X-Amzn-SageMaker-Target-Variant"] = variant.value;
      if (container.value) headers["X-Amzn-SageMaker-Target-Container-Hostname"] = container.value;
      if (model.value) headers["X-Amzn-SageMaker-Target-Model"] = model.value;
      const payload = file.files.length ? file.files[0] : body.value;
      const started = performance.now();
      let response, text;
      try {
        response = await post(`/endpoints/${encodeURIComponent(name)}/invocations`, headers, payload);
        text = await response.text();
      } catch (error) {
        result.hidden = false;
        result.replaceChildren(h("p", { className: "error" }, `The request failed: ${error}`));
        return;
      }
      const ms = performance.now() - started;
      const headerRows = [...response.headers.entries()].map(([k, v]) => h("tr", {}, h("td", { className: "mono" }, k), h("td", { className: "mono" }, v)));
      result.hidden = false;
      result.replaceChildren(
        h("div", { className: "invoke-status" },
          h("span", { className: response.ok ? "ok" : "error", id: "invoke-status" }, `HTTP ${response.status}`),
          h("span", { id: "invoke-latency" }, ` in ${ms.toFixed(1)} ms`)),
        h("pre", { className: "response", id: "invoke-response" }, pretty(text)),
        h("details", {}, h("summary", {}, "Response headers"), table(["Header", "Value"], headerRows)));
    }

    return {
      root: h("div", {}, form, result),
      setVariants(list) {
        const keep = (select, values, blank) => {
          const current = select.value;
          select.replaceChildren(h("option", { value: "" }, blank), ...values.map((v) => h("option", { value: v }, v)));
          if (values.includes(current)) select.value = current;
        };
        keep(variant, list.map((v) => v.name), "(by weight)");
        const direct = list.filter((v) => v.mode === "Direct").flatMap((v) => v.containers);
        keep(container, [...new Set(direct)], direct.length ? "(choose one)" : "(none: not a Direct endpoint)");
      },
    };
  }

  function pretty(text) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  }

  // --- logs --------------------------------------------------------------------------------------

  function logView() {
    const pre = h("pre", { className: "logs", id: "logs" });
    const filter = h("select", { onchange: applyFilter }, h("option", { value: "" }, "all containers"));
    const follow = h("input", { type: "checkbox", checked: true });
    const containers = new Set();

    function applyFilter() {
      for (const line of pre.children) line.hidden = Boolean(filter.value) && line.dataset.container !== filter.value;
    }

    return {
      root: h("div", {}, h("div", { className: "row log-controls" },
        h("label", {}, "Show ", filter), h("label", {}, follow, " follow")), pre),
      add(data) {
        if (data.reset) pre.replaceChildren();
        for (const line of data.lines) {
          if (!containers.has(line.container)) {
            containers.add(line.container);
            filter.append(h("option", { value: line.container }, line.container));
          }
          const el = h("div", { "data-container": line.container },
            h("span", { className: "who" }, `${line.instance}/${line.container} `), line.text);
          el.hidden = Boolean(filter.value) && line.container !== filter.value;
          pre.append(el);
        }
        while (pre.children.length > MAX_LOG_LINES) pre.firstChild.remove();
        if (follow.checked) pre.scrollTop = pre.scrollHeight;
      },
    };
  }

  // --- choose a container ------------------------------------------------------------------------

  // The questions of `dockyard advise`, skipping those earlier answers make moot; the decision
  // itself is the server's (dockyard.strategy.advisor), asked again on every change.
  function choosePage() {
    const form = h("form", { className: "choose", onsubmit: (e) => e.preventDefault() });
    const answer = h("div", { className: "advice" });
    const root = h("section", {}, h("h1", {}, "Choose a container"),
      h("p", { className: "muted" }, "Managed → Extend → BYOC, or BYOM; one container, a pipeline, Direct, multi-model or separate endpoints."),
      h("div", { className: "choose-layout" }, form, answer));

    fetch(`${API}/advice`).then((r) => r.json()).then((q) => {
      const d = q.defaults;
      const inputs = {
        language: h("input", { name: "language", value: d.language }),
        framework: h("select", { name: "framework" }, [...q.frameworks, "other"].map((f) => h("option", { value: f, selected: f === d.framework }, f))),
        extra_libraries: h("input", { name: "extra_libraries", type: "checkbox", checked: d.extra_libraries }),
        trained_elsewhere: h("input", { name: "trained_elsewhere", type: "checkbox", checked: d.trained_elsewhere }),
        models: h("input", { name: "models", type: "number", min: 1, value: d.models }),
        chain: h("input", { name: "chain", type: "checkbox", checked: d.chain }),
        shared_container: h("input", { name: "shared_container", type: "checkbox", checked: d.shared_container }),
        traffic: h("select", { name: "traffic" }, q.traffic.map((t) => h("option", { value: t, selected: t === d.traffic }, t))),
        latency_ms: h("input", { name: "latency_ms", type: "number", min: 1, placeholder: "no particular budget" }),
        directory: h("input", { name: "directory", value: "my-model" }),
      };
      const labels = {
        language: "Language of the serving code",
        framework: "Framework",
        extra_libraries: "The serving code needs libraries the framework's image lacks",
        trained_elsewhere: "The model was trained outside SageMaker (a saved model file)",
        models: "How many models serve together",
        chain: "They chain (one model's output is the next one's input)",
        shared_container: "They all run in the same container (same framework and code)",
        traffic: "Expected traffic",
        latency_ms: `Latency budget per request, ms (below ${q.tightLatencyMs} counts as tight)`,
        directory: "Project directory",
      };
      const rows = Object.fromEntries(Object.entries(inputs).map(([key, input]) => [key,
        input.type === "checkbox" ? h("label", { className: "check" }, input, " ", labels[key]) : h("label", {}, h("span", {}, labels[key]), input)]));
      form.append(...Object.values(rows));

      function answers() {
        const python = inputs.language.value.trim().toLowerCase() === "python";
        const models = Math.max(1, parseInt(inputs.models.value, 10) || 1);
        rows.framework.hidden = rows.extra_libraries.hidden = !python;
        rows.chain.hidden = rows.traffic.hidden = models < 2;
        rows.shared_container.hidden = models < 2 || inputs.chain.checked;
        const out = { language: inputs.language.value, trained_elsewhere: inputs.trained_elsewhere.checked, models };
        if (python) Object.assign(out, { framework: inputs.framework.value, extra_libraries: inputs.extra_libraries.checked });
        if (models > 1) {
          Object.assign(out, { chain: inputs.chain.checked, traffic: inputs.traffic.value });
          if (!inputs.chain.checked) out.shared_container = inputs.shared_container.checked;
        }
        const latency = parseInt(inputs.latency_ms.value, 10);
        if (latency > 0) out.latency_ms = latency;
        return out;
      }

      async function advise() {
        const response = await post(`${API}/advice`, { "Content-Type": "application/json" },
          JSON.stringify({ answers: answers(), directory: inputs.directory.value }));
        const a = await response.json();
        if (!response.ok) {
          answer.replaceChildren(h("p", { className: "error" }, a.message));
          return;
        }
        answer.replaceChildren(
          h("h2", {}, "Recommended: ", h("span", { id: "advice-title" }, a.title)),
          h("ul", {}, a.reasons.map((r) => h("li", {}, r))),
          table(null, Object.entries(a.trade_offs).map(([k, v]) => h("tr", {}, h("th", {}, k.replace("_", " ")), h("td", {}, v)))),
          a.caveats.length ? h("div", { className: "caveats" }, h("h3", {}, "Caveats"), h("ul", {}, a.caveats.map((c) => h("li", {}, c)))) : null,
          h("h3", {}, "Next"),
          h("pre", { className: "command", id: "advice-command" }, a.next_command));
      }

      form.addEventListener("input", advise);
      form.addEventListener("change", advise);
      advise();
    });
    return { root };
  }

  window.addEventListener("hashchange", route);
  if (csrfToken()) {
    const button = document.getElementById("signout");
    button.hidden = false;
    button.addEventListener("click", signOut);
  }
  route();
})();
