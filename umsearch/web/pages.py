"""The gallery's HTML: one small shell per page, filled in by static/gallery.js from the JSON endpoints.

Every string that comes from the user's files or the request is escaped here (html.escape, quotes included);
the script only ever puts such strings into the page as text (textContent), never as markup.
"""

from __future__ import annotations

import html

TITLES = {"search": "Photos", "dupes": "Near-duplicates", "status": "Index status"}

_NAV = (("search", "/", "Photos"), ("dupes", "/dupes", "Duplicates"), ("status", "/status", "Status"))

_SEARCH_TOOLS = """
      <form id="search" role="search" autocomplete="off">
        <span id="query-image" hidden>
          <img id="query-image-thumb" alt="">
          <span id="query-image-label"></span>
          <button type="button" id="query-image-clear" title="Remove the image from the search" aria-label="Remove the image">×</button>
        </span>
        <input id="q" name="q" type="search" spellcheck="false" enterkeyhint="search"
               placeholder="Describe a photo…" aria-label="Search photos">
        <button type="button" id="pick-image" class="icon" title="Search with an image (or drop / paste one)" aria-label="Search with an image">
          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 7h3l2-2h6l2 2h3v12H4z" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round"/><circle cx="12" cy="13" r="3.5" fill="none" stroke="currentColor" stroke-width="1.8"/></svg>
        </button>
        <button type="button" id="toggle-filters" class="icon" title="Filters" aria-label="Filters" aria-expanded="false">
          <svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 6h16M7 12h10M10 18h4" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>
          <span id="filter-count" hidden></span>
        </button>
        <input id="file" type="file" accept="image/*" hidden>
      </form>"""

_FILTERS = """
    <form id="filters" hidden>
      <label>From <input type="date" name="after"></label>
      <label>Until <input type="date" name="before"></label>
      <label>Folder <input name="in" list="folders" placeholder="any folder"></label>
      <label>Type <select name="type"><option value="">any</option></select></label>
      <label>Camera <input name="camera" list="cameras" placeholder="any camera"></label>
      <label>Place <input name="place" list="places" placeholder="anywhere"></label>
      <button type="reset" id="clear-filters">Clear</button>
      <datalist id="folders"></datalist><datalist id="cameras"></datalist><datalist id="places"></datalist>
    </form>"""

_LIGHTBOX = """
  <div id="lightbox" hidden role="dialog" aria-modal="true" aria-label="Photo preview">
    <button type="button" id="lb-close" class="lb-nav" title="Back (Esc)" aria-label="Close">×</button>
    <button type="button" id="lb-prev" class="lb-nav" title="Previous (←)" aria-label="Previous photo">‹</button>
    <figure id="lb-stage"><img id="lb-img" alt=""></figure>
    <button type="button" id="lb-next" class="lb-nav" title="Next (→)" aria-label="Next photo">›</button>
    <aside id="lb-info">
      <h2 id="lb-name"></h2>
      <p id="lb-path" class="path"></p>
      <dl>
        <dt>Taken</dt><dd id="lb-taken"></dd>
        <dt>Camera</dt><dd id="lb-camera"></dd>
        <dt>Place</dt><dd id="lb-place"></dd>
        <dt>Size</dt><dd id="lb-size"></dd>
        <dt>Score</dt><dd id="lb-score"></dd>
      </dl>
      <div class="actions">
        <button type="button" id="lb-similar" class="primary" title="More like this (s)">More like this</button>
        <button type="button" id="lb-copy" title="Copy the path (c)">Copy path</button>
        <a id="lb-original" target="_blank" rel="noopener noreferrer">Open original</a>
      </div>
    </aside>
  </div>"""

_MAIN = {
    "search": """
  <main id="results" data-view="search">
    <p id="info" aria-live="polite"></p>
    <div id="grid" role="listbox" aria-label="Photos"></div>
    <div id="sentinel" aria-hidden="true"></div>
  </main>
  <div id="drop" hidden><div>Drop an image to search with it<small>Typed words refine it: “at night”, “in winter”</small></div></div>""",
    "dupes": """
  <main id="dupes" data-view="dupes">
    <div class="toolbar">
      <h1>Near-duplicates</h1>
      <label>Similarity at least
        <select id="threshold">
          <option>0.90</option><option>0.93</option><option selected>0.95</option><option>0.97</option><option>0.99</option>
        </select>
      </label>
    </div>
    <p id="info" aria-live="polite"></p>
    <div id="groups"></div>
  </main>""",
    "status": """
  <main id="status" data-view="status">
    <h1>Index status</h1>
    <p id="info" aria-live="polite"></p>
    <div id="cards" class="cards"></div>
    <h2 id="failures-title" hidden>Files that could not be indexed</h2>
    <table id="failures" hidden><thead><tr><th>File</th><th>Reason</th></tr></thead><tbody></tbody></table>
  </main>""",
}


def shell(view: str, *, index_name: str) -> bytes:
    """The page for one view; `index_name` (the index file's path) is shown in the footer, escaped."""
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if name == view else ""}>{label}</a>' for name, href, label in _NAV
    )
    tools = _SEARCH_TOOLS if view == "search" else ""
    filters = _FILTERS if view == "search" else ""
    page = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
  <meta name="referrer" content="no-referrer">
  <meta name="color-scheme" content="dark light">
  <title>{html.escape(TITLES[view])} · umsearch</title>
  <link rel="icon" href="/static/icon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/static/gallery.css">
  <script src="/static/gallery.js" defer></script>
</head>
<body data-view="{html.escape(view)}">
  <header>
    <a class="brand" href="/" title="umsearch">um<b>search</b></a>
    {tools}
    <nav>{nav}</nav>
  </header>
  {filters}
  {_MAIN[view]}
  {_LIGHTBOX}
  <div id="toast" role="status" hidden></div>
  <footer>Index <span class="path">{html.escape(index_name, quote=True)}</span> · private: served only to this computer</footer>
</body>
</html>
"""
    return page.encode("utf-8", "backslashreplace")
