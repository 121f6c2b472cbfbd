// The listing works without this script; with it: times in the reader's own zone, each a
// <time datetime title> with the exact time as a tooltip (the page itself carries short UTC
// times only, to stay small), and a filter box that narrows the rows as one types ("/" jumps to it).
(() => {
  const table = document.getElementById("listing"), input = document.getElementById("filter");
  const shown = document.getElementById("shown"), nomatch = document.getElementById("nomatch");
  const thisYear = new Date().getFullYear();
  // the reader's own languages, in their order (not only the browser's UI language), and the
  // clock they use there: 15:26 or 3:26 PM
  const locales = navigator.languages && navigator.languages.length ? navigator.languages : undefined;
  const day = new Intl.DateTimeFormat(locales, {month: "short", day: "numeric"});
  const dayOfYear = new Intl.DateTimeFormat(locales, {year: "numeric", month: "short", day: "numeric"});
  const clock = new Intl.DateTimeFormat(locales, {timeStyle: "short"});
  const exact = new Intl.DateTimeFormat(locales, {weekday: "long", year: "numeric", month: "long", day: "numeric",
                                                  hour: "numeric", minute: "2-digit", timeZoneName: "short"});
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
  // the columns keep the widths they have now, so they do not jump when the filter hides every row:
  // Size and Modified as measured, the name takes the rest (a fixed layout reads only the head)
  const fixColumns = () => {
    const heads = Array.from(table.tHead.rows[0].cells).filter((th) => !th.classList.contains("n"));
    table.style.tableLayout = "";
    heads.forEach((th) => { th.style.width = ""; });
    const widths = heads.map((th) => th.getBoundingClientRect().width);
    heads.forEach((th, i) => { th.style.width = widths[i] + "px"; });
    table.style.tableLayout = "fixed";
  };
  fixColumns();
  addEventListener("resize", fixColumns);
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
