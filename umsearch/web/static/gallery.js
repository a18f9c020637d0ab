// umsearch gallery: plain JavaScript, no build step, no dependencies, nothing fetched from outside.
// Strings from the index (file names, places, errors) only ever reach the page through textContent.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, cls, text) => {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
};
const fmt = new Intl.NumberFormat();
const PAGE = 48;

async function getJSON(url, options) {
  let response;
  try {
    response = await fetch(url, { credentials: "same-origin", ...options });
  } catch (err) {
    throw new Error("The gallery is not answering: it stops with its umsearch service. Run 'umsearch web' again.");
  }
  if (response.status === 403 && !(response.headers.get("content-type") || "").includes("json")) {
    throw new Error("This gallery was restarted: open the new URL that 'umsearch web' prints.");
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 1800);
}

function humanBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const area = el("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

// A video's tile shows the matching frame (?t=), a document's the matching page (?p=).
function thumbURL(id, size = 256, hit = null) {
  const at = hit && hit.time != null ? `?t=${hit.time}` : hit && hit.page != null ? `?p=${hit.page}` : "";
  return `/api/thumb/${id}/${size}${at}`;
}

// The original opens where the match is: a browser's player honours #t=, its PDF viewer #page=.
function originalURL(hit) {
  const at = hit.time != null ? `#t=${hit.time}` : hit.page != null ? `#page=${hit.page}` : "";
  return `/api/original/${hit.id}${at}`;
}

function isMedia(hit) { return hit.kind === "video" || (hit.kind === "document" && hit.page != null); }

// A square tile for one photo; the score shows on hover (and always on phones).
function makeTile(hit, index) {
  const tile = el("div", "tile");
  tile.dataset.index = index;
  tile.setAttribute("role", "option");
  tile.tabIndex = -1;
  const img = el("img");
  img.alt = hit.name || "";
  img.loading = index < 24 ? "eager" : "lazy";
  img.decoding = "async";
  img.addEventListener("load", () => img.classList.add("loaded"), { once: true });
  img.addEventListener("error", () => tile.classList.add("broken"), { once: true });
  img.src = thumbURL(hit.id, 256, hit);
  tile.append(img);
  if (hit.score !== null && hit.score !== undefined) tile.append(el("span", "score", hit.score.toFixed(3)));
  const meta = el("div", "meta");
  meta.append(el("span", null, hit.name), el("span", null, hit.at || (hit.taken ? hit.taken.slice(0, 10) : "")));
  tile.append(meta);
  tile.title = hit.name + (hit.score !== null && hit.score !== undefined ? ` — score ${hit.score.toFixed(4)}` : "");
  return tile;
}

// ---- the lightbox (shared by the search and duplicates views) ---------------------------------------------
const lightbox = {
  items: [],
  index: -1,
  details: null,
  onMove: null,
  get open() { return !$("#lightbox").hidden; },

  show(items, index, onMove) {
    this.items = items;
    this.onMove = onMove || null;
    $("#lightbox").hidden = false;
    document.body.style.overflow = "hidden";
    this.go(index);
  },

  close() {
    $("#lightbox").hidden = true;
    document.body.style.overflow = "";
    $("#lb-img").removeAttribute("src");
    if (this.onMove) this.onMove(this.index, true);
  },

  go(index) {
    if (index < 0 || index >= this.items.length) return;
    this.index = index;
    const hit = this.items[index];
    const img = $("#lb-img");
    img.alt = hit.name || "";
    img.src = thumbURL(hit.id, 1024, hit);  // the cached preview at once, the original when it arrives
    if (!isMedia(hit)) {  // a video or a PDF stays its matching frame or page here; "original" plays or opens it
      const full = new Image();
      full.onload = () => { if (this.index === index && this.open) img.src = full.src; };
      full.src = `/api/original/${hit.id}`;
    }
    $("#lb-original").href = originalURL(hit);
    $("#lb-name").textContent = (hit.name || "") + (hit.at ? `  ${hit.at}` : "");
    for (const id of ["lb-path", "lb-taken", "lb-camera", "lb-place", "lb-size"]) $("#" + id).textContent = "";
    $("#lb-score").textContent = hit.score !== null && hit.score !== undefined ? hit.score.toFixed(4) : "—";
    $("#lb-prev").disabled = index === 0;
    $("#lb-next").disabled = index === this.items.length - 1;
    this.details = null;
    getJSON(`/api/photo/${hit.id}`).then((d) => {
      if (this.index !== index) return;
      this.details = d;
      $("#lb-name").textContent = d.name + (hit.at ? `  ${hit.at}` : "");
      $("#lb-path").textContent = d.path;
      $("#lb-taken").textContent = d.taken || "unknown";
      $("#lb-camera").textContent = d.camera || "—";
      $("#lb-place").textContent = d.place || "—";
      const pixels = d.width && d.height ? `${d.width} × ${d.height} px · ` : "";
      $("#lb-size").textContent = `${pixels}${humanBytes(d.bytes)} · ${(d.type || "").toUpperCase()}`;
    }).catch((err) => { $("#lb-path").textContent = err.message; });
    for (const near of [index + 1, index - 1]) {  // arrows feel instant: the neighbours' previews are fetched now
      if (near >= 0 && near < this.items.length) new Image().src = thumbURL(this.items[near].id, 1024, this.items[near]);
    }
    if (this.onMove) this.onMove(index, false);
    if (index >= this.items.length - 4 && this.needMore) this.needMore();
  },

  current() { return this.items[this.index]; },

  async copyPath() {
    const hit = this.current();
    if (!hit) return;
    const d = this.details || await getJSON(`/api/photo/${hit.id}`);
    await copyText(d.path);
    toast("Path copied");
  },
};

function similarTo(hit) {
  if (document.body.dataset.view !== "search") {
    location.href = `/?like=${encodeURIComponent(hit.id)}`;
    return;
  }
  gallery.setImage({ like: hit.id, name: hit.name, src: thumbURL(hit.id) });
  $("#q").value = "";
  lightbox.close();
  gallery.search();
}

function wireLightbox() {
  $("#lb-close").addEventListener("click", () => lightbox.close());
  $("#lb-prev").addEventListener("click", () => lightbox.go(lightbox.index - 1));
  $("#lb-next").addEventListener("click", () => lightbox.go(lightbox.index + 1));
  $("#lb-similar").addEventListener("click", () => similarTo(lightbox.current()));
  $("#lb-copy").addEventListener("click", () => lightbox.copyPath());
  $("#lightbox").addEventListener("click", (e) => {
    if (e.target.id === "lb-stage" || e.target.id === "lightbox") lightbox.close();
  });
}

// ---- the search view -----------------------------------------------------------------------------------
const gallery = {
  hits: [],
  more: false,
  loading: false,
  generation: 0,
  selected: -1,
  image: null,  // {like: id} or {upload: handle}, with a name and a picture for the chip

  params(offset) {
    const p = new URLSearchParams();
    const q = $("#q").value.trim();
    if (q) p.set("q", q);
    const form = new FormData($("#filters"));
    for (const [key, value] of form.entries()) if (value) p.append(key, value);
    if (this.image && this.image.like !== undefined) p.set("like", this.image.like);
    if (this.image && this.image.upload) p.set("upload", this.image.upload);
    if (offset !== undefined) { p.set("offset", offset); p.set("limit", PAGE); }
    return p;
  },

  remember() {
    const p = this.params();
    p.delete("upload");
    const url = p.toString() ? `/?${p}` : "/";
    history.replaceState(null, "", url);
    const active = [...new FormData($("#filters")).values()].filter(Boolean).length;
    $("#filter-count").hidden = active === 0;
    $("#filter-count").textContent = active;
  },

  setImage(image) {
    if (this.image && this.image.blob) URL.revokeObjectURL(this.image.blob);
    this.image = image;
    const chip = $("#query-image");
    chip.hidden = !image;
    if (image) {
      $("#query-image-thumb").src = image.src;
      $("#query-image-label").textContent = image.like !== undefined ? `like ${image.name}` : image.name;
      $("#q").placeholder = "Add words to refine the picture… (“at night”)";
    } else {
      $("#q").placeholder = "Describe a photo…";
    }
  },

  async search() {
    const generation = ++this.generation;
    this.remember();
    this.hits = [];
    this.more = false;
    this.selected = -1;
    this.loading = true;
    const info = $("#info");
    info.className = "";
    info.textContent = "Searching…";
    const started = performance.now();
    let body;
    try {
      body = await getJSON(`/api/search?${this.params(0)}`);
    } catch (err) {
      if (generation !== this.generation) return;
      this.loading = false;
      $("#grid").replaceChildren();
      info.className = "error";
      info.textContent = err.message;
      return;
    }
    if (generation !== this.generation) return;
    this.loading = false;
    $("#grid").replaceChildren();
    window.scrollTo(0, 0);
    this.append(body);
    this.describe(body, performance.now() - started);
  },

  describe(body, ms) {
    const info = $("#info");
    info.replaceChildren();
    const asked = $("#q").value.trim();
    if (!this.hits.length) {
      const empty = el("div", "empty");
      empty.append(el("b", null, asked || this.image ? "Nothing matches" : "No photos yet"));
      empty.append(el("span", null, asked || this.image
        ? "Try other words, or fewer filters."
        : "Run 'umsearch index FOLDER' to add your photos."));
      $("#grid").append(empty);
      return;
    }
    let text;
    if (body.searched === null || body.searched === undefined) text = "Newest photos";
    else {
      const what = [asked && `“${asked}”`, this.image && `like ${this.image.name}`].filter(Boolean).join(" + ");
      text = `Best matches${what ? " for " + what : ""} among ${fmt.format(body.searched)} photos`;
    }
    info.append(el("span", null, `${text} · ${Math.round(ms)} ms`));
    if (body.notice) info.append(el("span", "notice", ` · ${body.notice}`));
  },

  append(body) {
    const grid = $("#grid");
    const start = this.hits.length;
    const known = new Set(this.hits.map((h) => h.id));
    const fresh = body.hits.filter((h) => !known.has(h.id));
    this.hits.push(...fresh);
    const fragment = document.createDocumentFragment();
    fresh.forEach((hit, i) => fragment.append(makeTile(hit, start + i)));
    grid.append(fragment);
    this.more = body.more;
    // The observer fires on changes only: when the sentinel is still near the screen, fetch on.
    requestAnimationFrame(() => {
      if (this.more && $("#sentinel").getBoundingClientRect().top < innerHeight + 1500) this.loadMore();
    });
  },

  async loadMore() {
    if (this.loading || !this.more) return;
    const generation = this.generation;
    this.loading = true;
    try {
      const body = await getJSON(`/api/search?${this.params(this.hits.length)}`);
      if (generation === this.generation) this.append(body);
    } catch (err) {
      if (generation === this.generation) { this.more = false; toast(err.message); }
    } finally {
      if (generation === this.generation) this.loading = false;
    }
  },

  select(index, scroll = true) {
    const tiles = $("#grid").children;
    if (!this.hits.length) return;
    index = Math.max(0, Math.min(this.hits.length - 1, index));
    if (this.selected >= 0 && tiles[this.selected]) tiles[this.selected].classList.remove("selected");
    this.selected = index;
    const tile = tiles[index];
    tile.classList.add("selected");
    if (scroll) tile.scrollIntoView({ block: "nearest" });
    tile.focus({ preventScroll: true });
    if (index >= this.hits.length - 8) this.loadMore();
  },

  columns() {
    return getComputedStyle($("#grid")).gridTemplateColumns.split(" ").filter(Boolean).length || 1;
  },

  preview(index) {
    if (index < 0 || index >= this.hits.length) return;
    lightbox.needMore = () => this.loadMore().then(() => { lightbox.items = this.hits; });
    lightbox.show(this.hits, index, (i, closed) => { if (!closed) this.select(i, true); });
  },

  async upload(file) {
    if (!file || !file.type.startsWith("image/")) { toast("That is not an image"); return; }
    const info = $("#info");
    info.className = "";
    info.textContent = "Reading the image…";
    try {
      const body = await getJSON("/api/upload", { method: "POST", body: file, headers: { "content-type": file.type } });
      this.setImage({ upload: body.upload, name: file.name || "pasted image", src: URL.createObjectURL(file), blob: true });
      this.image.blob = this.image.src;
      this.search();
    } catch (err) {
      info.className = "error";
      info.textContent = err.message;
    }
  },

  async loadFacets() {
    let facets;
    try { facets = await getJSON("/api/facets"); } catch (e) { return; }
    const fill = (id, values) => {
      const list = $("#" + id);
      list.replaceChildren(...values.map((v) => { const o = el("option"); o.value = v.value; return o; }));
    };
    fill("folders", facets.folder);
    fill("cameras", facets.camera);
    fill("places", facets.place);
    const type = $("#filters select[name=type]");
    const chosen = type.value;
    for (const v of facets.ext) {
      const option = el("option", null, `${v.value} (${fmt.format(v.count)})`);
      option.value = v.value;
      type.append(option);
    }
    type.value = chosen;
  },

  restore() {
    const p = new URLSearchParams(location.search);
    $("#q").value = p.get("q") || "";
    const form = $("#filters");
    for (const key of ["after", "before", "in", "type", "camera", "place"]) {
      if (p.get(key)) form.elements[key].value = p.get(key);
    }
    if (p.get("like")) {
      const id = p.get("like");
      this.setImage({ like: id, name: `photo ${id}`, src: thumbURL(id) });
      getJSON(`/api/photo/${encodeURIComponent(id)}`).then((d) => {
        if (this.image && String(this.image.like) === String(id)) {
          this.image.name = d.name;
          $("#query-image-label").textContent = `like ${d.name}`;
        }
      }).catch(() => {});
    }
    if ([...new FormData(form).values()].some(Boolean)) {
      form.hidden = false;
      $("#toggle-filters").setAttribute("aria-expanded", "true");
    }
  },

  wire() {
    $("#search").addEventListener("submit", (e) => { e.preventDefault(); this.search(); });
    $("#q").addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown" && this.hits.length) {
        e.preventDefault();
        e.stopPropagation();
        $("#q").blur();
        this.select(0);
      }
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); $("#q").blur(); }
    });
    $("#toggle-filters").addEventListener("click", () => {
      const form = $("#filters");
      form.hidden = !form.hidden;
      $("#toggle-filters").setAttribute("aria-expanded", String(!form.hidden));
    });
    $("#filters").addEventListener("change", () => this.search());
    $("#filters").addEventListener("submit", (e) => { e.preventDefault(); this.search(); });
    $("#filters").addEventListener("reset", () => setTimeout(() => this.search(), 0));
    $("#pick-image").addEventListener("click", () => $("#file").click());
    $("#file").addEventListener("change", (e) => { this.upload(e.target.files[0]); e.target.value = ""; });
    $("#query-image-clear").addEventListener("click", () => { this.setImage(null); this.search(); });
    $("#grid").addEventListener("click", (e) => {
      const tile = e.target.closest(".tile");
      if (tile) { this.select(Number(tile.dataset.index), false); this.preview(Number(tile.dataset.index)); }
    });
    new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadMore();
    }, { rootMargin: "1500px 0px" }).observe($("#sentinel"));
    // Drop or paste an image anywhere: an image query (typed words fuse with it).
    let depth = 0;
    window.addEventListener("dragenter", (e) => {
      if (![...e.dataTransfer.types].includes("Files")) return;
      depth++;
      $("#drop").hidden = false;
    });
    window.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) $("#drop").hidden = true; });
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      $("#drop").hidden = true;
      const file = [...(e.dataTransfer.files || [])].find((f) => f.type.startsWith("image/"));
      if (file) this.upload(file);
    });
    document.addEventListener("paste", (e) => {
      const file = [...(e.clipboardData.files || [])].find((f) => f.type.startsWith("image/"));
      if (file) { e.preventDefault(); this.upload(file); }
    });
  },

  keys(e) {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (lightbox.open) {
      if (e.key === "Escape") lightbox.close();
      else if (e.key === "ArrowLeft") lightbox.go(lightbox.index - 1);
      else if (e.key === "ArrowRight") lightbox.go(lightbox.index + 1);
      else if (e.key === "s") similarTo(lightbox.current());
      else if (e.key === "c") lightbox.copyPath();
      else return;
      e.preventDefault();
      return;
    }
    if (typing) return;
    const columns = this.columns();
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns };
    if (e.key === "/") { e.preventDefault(); $("#q").focus(); $("#q").select(); }
    else if (e.key in moves) {
      e.preventDefault();
      if (e.key === "ArrowUp" && this.selected >= 0 && this.selected < columns) { $("#q").focus(); return; }
      this.select(this.selected < 0 ? 0 : this.selected + moves[e.key]);
    } else if (e.key === "Enter" && this.selected >= 0) { e.preventDefault(); this.preview(this.selected); }
    else if (e.key === "s" && this.selected >= 0) { e.preventDefault(); similarTo(this.hits[this.selected]); }
    else if (e.key === "Escape") {
      if (this.image) { this.setImage(null); this.search(); }
      else if (this.selected >= 0) { $("#grid").children[this.selected].classList.remove("selected"); this.selected = -1; }
    }
  },

  start() {
    this.wire();
    this.restore();
    this.loadFacets();
    this.search();
    document.addEventListener("keydown", (e) => this.keys(e));
  },
};

// ---- the duplicates view -----------------------------------------------------------------------------
const dupes = {
  async load() {
    const info = $("#info");
    const threshold = $("#threshold").value;
    info.className = "";
    info.textContent = "Comparing every pair of photos…";
    $("#groups").replaceChildren();
    let body;
    try { body = await getJSON(`/api/dupes?threshold=${encodeURIComponent(threshold)}`); } catch (err) {
      info.className = "error";
      info.textContent = err.message;
      return;
    }
    const photos = body.groups.reduce((n, g) => n + g.ids.length, 0);
    info.textContent = body.groups.length
      ? `${fmt.format(body.groups.length)} groups, ${fmt.format(photos)} photos at similarity ≥ ${body.threshold}`
      : `No near-duplicates at similarity ≥ ${body.threshold}`;
    const fragment = document.createDocumentFragment();
    for (const group of body.groups) {
      const box = el("section", "group");
      box.append(el("h3", null, `${group.ids.length} photos · similarity ≥ ${group.similarity.toFixed(3)}`));
      const row = el("div", "row");
      const items = group.ids.map((id, i) => ({ id, name: group.names[i], score: null }));
      items.forEach((item, i) => {
        const figure = el("figure");
        const tile = makeTile(item, i);
        tile.addEventListener("click", () => lightbox.show(items, i));
        const caption = el("figcaption", null, group.names[i]);
        caption.title = group.paths[i];
        figure.append(tile, caption);
        row.append(figure);
      });
      box.append(row);
      fragment.append(box);
    }
    $("#groups").append(fragment);
  },

  start() {
    $("#threshold").addEventListener("change", () => this.load());
    document.addEventListener("keydown", (e) => {
      if (!lightbox.open) return;
      if (e.key === "Escape") lightbox.close();
      else if (e.key === "ArrowLeft") lightbox.go(lightbox.index - 1);
      else if (e.key === "ArrowRight") lightbox.go(lightbox.index + 1);
      else if (e.key === "s") similarTo(lightbox.current());
      else if (e.key === "c") lightbox.copyPath();
    });
    this.load();
  },
};

// ---- the status view ---------------------------------------------------------------------------------
const status = {
  card(title, value, sub, small) {
    const card = el("div", "card");
    card.append(el("h3", null, title));
    const p = el("p", small ? "small" : null, value);
    if (sub) p.append(el("span", "sub", sub));
    card.append(p);
    return card;
  },

  async load() {
    let s;
    try { s = await getJSON("/api/status"); } catch (err) {
      $("#info").className = "error";
      $("#info").textContent = err.message;
      return;
    }
    const watcher = s.watcher
      ? [`running (pid ${s.watcher.pid})`, `${s.watcher.activity} — ${s.watcher.roots.join(", ")}`]
      : ["not running", "umsearch watch FOLDER keeps the index live"];
    const runtime = [s.device, s.dtype, s.quant && s.quant !== "none" ? s.quant : null].filter(Boolean).join(" · ");
    $("#cards").replaceChildren(
      this.card("Photos indexed", fmt.format(s.indexed), s.metadata_missing ? `${fmt.format(s.metadata_missing)} waiting for metadata` : null),
      this.card("Could not index", fmt.format(s.failed), s.failed ? "listed below with the reason" : "none"),
      this.card("Model", s.model || "none yet", [s.dim && `${s.dim}-d vectors`, s.model_loaded ? "loaded" : "not loaded yet"].filter(Boolean).join(" · "), true),
      this.card("Runtime", runtime || "—", s.quality ? `quality ${s.quality}` : null, true),
      this.card("Watcher", watcher[0], watcher[1], true),
      this.card("Index file", humanBytes(s.db_bytes), s.db, true),
      this.card("Thumbnails", `${fmt.format(s.thumbnails.files)} · ${humanBytes(s.thumbnails.bytes)}`, s.thumbnails.folder, true),
      this.card("Places", s.places, null, true),
    );
    const rows = s.failures.map((f) => {
      const tr = el("tr");
      tr.append(el("td", null, f.path), el("td", null, f.reason));
      return tr;
    });
    $("#failures tbody").replaceChildren(...rows);
    $("#failures").hidden = $("#failures-title").hidden = rows.length === 0;
    if (s.failed > rows.length) $("#info").textContent = `Showing the first ${rows.length} of ${fmt.format(s.failed)} failures.`;
  },

  start() { this.load(); },
};

document.addEventListener("DOMContentLoaded", () => {
  wireLightbox();
  const view = document.body.dataset.view;
  ({ search: gallery, dupes, status })[view].start();
});
