// The listing works without this script; with it: times in the reader's own zone, each a
// <time datetime title> with the exact time as a tooltip (the page itself carries short UTC
// times only, to stay small), and a filter box that narrows the rows as one types ("/" jumps to it).
(() => {
  const table = document.getElementById("listing"), input = document.getElementById("filter");
  const shown = document.getElementById("shown"), nomatch = document.getElementById("nomatch");
  const thisYear = new Date().getFullYear();
  const day = new Intl.DateTimeFormat(undefined, {month: "short", day: "numeric"});
  const dayOfYear = new Intl.DateTimeFormat(undefined, {year: "numeric", month: "short", day: "numeric"});
  const clock = new Intl.DateTimeFormat(undefined, {hour: "2-digit", minute: "2-digit"});
  const exact = new Intl.DateTimeFormat(undefined, {weekday: "long", year: "numeric", month: "long", day: "numeric",
                                                    hour: "2-digit", minute: "2-digit", timeZoneName: "short"});
  for (const icon of document.querySelectorAll("svg:not(.defs)")) icon.setAttribute("aria-hidden", "true");
  const rows = Array.from(table.tBodies[0].rows).filter((row) => row.cells.length === 3 && !row.classList.contains("up"));
  for (const row of rows) {
    const cell = row.cells[2], when = new Date(cell.textContent.trim().replace(" ", "T") + "Z");  // UTC
    if (isNaN(when)) continue;
    const time = document.createElement("time"), hours = document.createElement("span");
    time.dateTime = when.toISOString();
    time.title = exact.format(when);
    hours.className = "clock";  // hidden on narrow screens: the date alone is the short form
    hours.textContent = " " + clock.format(when);
    time.append((when.getFullYear() === thisYear ? day : dayOfYear).format(when), hours);
    cell.replaceChildren(time);
  }
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone) table.querySelector("th.m").title = "Times in " + zone;
  const names = rows.map((row) => row.cells[0].textContent.toLowerCase());
  input.removeAttribute("hidden");
  const narrow = () => {
    const wanted = input.value.trim().toLowerCase();
    let count = 0;
    rows.forEach((row, i) => {
      const hit = names[i].includes(wanted);
      row.toggleAttribute("hidden", !hit);
      count += hit;
    });
    shown.textContent = wanted ? ` · ${count} of ${rows.length} shown` : "";
    nomatch.toggleAttribute("hidden", count > 0 || rows.length === 0);
  };
  input.addEventListener("input", narrow);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { input.value = ""; narrow(); }
    if (event.key === "Enter") {
      const first = rows.find((row) => !row.hasAttribute("hidden"));
      if (first) first.querySelector("a").click();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "/" && document.activeElement !== input && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      input.focus();
    }
  });
  if (input.value) narrow();  // a value the browser restored on "back"
})();
