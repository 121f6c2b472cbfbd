// The write controls (only on a writer's listing): files chosen or dropped (folders too) are
// uploaded one at a time with their own progress bar, then the page is loaded again to show
// them; a new folder is MKCOL, rename is MOVE (never over an existing name), delete asks first.
(() => {
  const here = location.pathname.endsWith("/") ? location.pathname : location.pathname + "/";
  const input = document.getElementById("upload-input"), list = document.getElementById("uploads");
  const mkdir = document.getElementById("mkdir"), saved = "cgibox-uploads:" + here;
  document.getElementById("upload-send").hidden = true;  // choosing files starts the upload
  mkdir.hidden = false;
  document.getElementById("drop-note").hidden = false;
  const url = (folder, name, isDir) => folder + encodeURIComponent(name) + (isDir ? "/" : "");
  const why = (xhr) => `${xhr.status} ${xhr.statusText || "failed"}`;

  const row = (name) => {
    const item = document.createElement("li"), label = document.createElement("span");
    const bar = document.createElement("progress"), state = document.createElement("span");
    label.className = "name"; label.textContent = name;
    bar.max = 1; bar.value = 0; bar.setAttribute("aria-label", "Upload of " + name);
    state.className = "state"; state.textContent = "waiting";
    item.append(label, bar, state);
    list.append(item);
    return {item, bar, state};
  };
  const finished = (view, ok, text) => {
    view.state.textContent = text;
    view.item.classList.toggle("failed", !ok);
    if (ok) { view.bar.max = 1; view.bar.value = 1; }
  };
  const request = (method, target, headers = {}) => new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, target);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.onload = xhr.onerror = () => resolve(xhr);
    xhr.send();
  });
  const send = (file, folder, view) => new Promise((resolve) => {
    const xhr = new XMLHttpRequest(), form = new FormData();
    form.append("file", file, file.name);
    xhr.open("POST", folder);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (event) => {
      if (!event.lengthComputable) return;
      view.bar.max = event.total; view.bar.value = event.loaded;
      view.state.textContent = Math.floor(100 * event.loaded / event.total) + "%";
    };
    xhr.onload = () => { finished(view, xhr.status < 300, xhr.status < 300 ? "done" : why(xhr)); resolve(xhr.status < 300); };
    xhr.onerror = () => { finished(view, false, "connection lost"); resolve(false); };
    view.state.textContent = "0%";
    xhr.send(form);
  });
  const made = new Set();
  const folderFor = async (path) => {  // "a/b/" below here: each level made once (405: it exists)
    let folder = here;
    for (const part of path.split("/").filter(Boolean)) {
      folder = url(folder, part, true);
      if (!made.has(folder)) { made.add(folder); await request("MKCOL", folder); }
    }
    return folder;
  };
  const uploadAll = async (items) => {  // items: [{file, path: "sub/dir/" or ""}]
    const views = items.map(({file, path}) => row(path + file.name));
    let good = 0;
    for (const [i, {file, path}] of items.entries()) good += await send(file, await folderFor(path), views[i]);
    if (!good) return;
    sessionStorage.setItem(saved, JSON.stringify(items.map(({file, path}, i) => ({
      name: path + file.name, ok: !views[i].item.classList.contains("failed"), state: views[i].state.textContent}))));
    location.reload();
  };
  for (const {name, ok, state} of JSON.parse(sessionStorage.getItem(saved) || "[]")) finished(row(name), ok, state);
  sessionStorage.removeItem(saved);

  input.addEventListener("change", () => {
    const files = Array.from(input.files || []);
    input.value = "";
    if (files.length) uploadAll(files.map((file) => ({file, path: ""})));
  });
  // drops: folders through the entries API (hidden names left out, as the server refuses them)
  const entries = async (entry, path, out) => {
    if (entry.name.startsWith(".")) return;
    if (entry.isFile) {
      out.push({file: await new Promise((ok, bad) => entry.file(ok, bad)), path});
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((ok, bad) => reader.readEntries(ok, bad));
        if (!batch.length) break;
        for (const child of batch) await entries(child, path + entry.name + "/", out);
      }
    }
  };
  let depth = 0;
  const dragging = (on) => document.body.classList.toggle("dragging", on);
  document.addEventListener("dragenter", (event) => { event.preventDefault(); depth += 1; dragging(true); });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) dragging(false); });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", async (event) => {
    event.preventDefault(); depth = 0; dragging(false);
    const data = event.dataTransfer, out = [];
    const found = Array.from(data.items || []).map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry());
    if (found.length && found.every(Boolean)) {
      for (const entry of found) await entries(entry, "", out);
    } else {
      for (const file of Array.from(data.files || [])) out.push({file, path: ""});
    }
    if (out.length) uploadAll(out);
  });

  mkdir.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = mkdir.elements.name.value.trim();
    if (!name) return;
    const xhr = await request("MKCOL", url(here, name, true));
    if (xhr.status === 201) location.reload(); else alert(`Could not make "${name}": ${why(xhr)}`);
  });
  // rename and delete on every row but the parent's (the table comes after this script)
  const rowActions = () => { for (const tr of document.querySelectorAll("#listing tbody tr")) {
    const link = tr.cells.length === 3 && !tr.classList.contains("up") && tr.cells[0].querySelector("a");
    if (!link) continue;
    const href = link.getAttribute("href"), isDir = href.endsWith("/");
    const shown = link.textContent.replace(/\/$/, "");
    const acts = document.createElement("span"), rename = document.createElement("button");
    const remove = document.createElement("button");
    acts.className = "row-acts";
    rename.type = remove.type = "button";
    rename.textContent = "Rename"; rename.setAttribute("aria-label", "Rename " + shown);
    remove.textContent = "Delete"; remove.setAttribute("aria-label", "Delete " + shown);
    rename.addEventListener("click", async () => {
      const next = (prompt(`New name for "${shown}"`, shown) || "").trim();
      if (!next || next === shown) return;
      const xhr = await request("MOVE", here + href, {Destination: url(here, next, isDir), Overwrite: "F"});
      if (xhr.status < 300) location.reload();
      else alert(xhr.status === 412 ? `"${next}" exists already.` : `Could not rename: ${why(xhr)}`);
    });
    remove.addEventListener("click", async () => {
      if (!confirm(isDir ? `Delete the folder "${shown}" and everything in it?` : `Delete "${shown}"?`)) return;
      const xhr = await request("DELETE", here + href);
      if (xhr.status < 300) location.reload(); else alert(`Could not delete: ${why(xhr)}`);
    });
    acts.append(rename, remove);
    tr.cells[0].append(acts);
  } };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", rowActions); else rowActions();
})();
