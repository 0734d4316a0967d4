// pledgebot dashboard: small progressive enhancements; every page works without this file.
"use strict";
document.addEventListener("submit", (event) => {
  const question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
// The calendar shows the viewer's own time zone unless they chose one.
document.addEventListener("DOMContentLoaded", () => {
  const field = document.querySelector("[data-default-tz]");
  if (!field || new URLSearchParams(location.search).has("tz")) return;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && zone !== field.value) {
    const url = new URL(location.href);
    url.searchParams.set("tz", zone);
    location.replace(url);
  }
});
// A time zone field starts as the viewer's own, unless it was chosen already.
document.addEventListener("DOMContentLoaded", () => {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const field of document.querySelectorAll("input[data-browser-tz]")) {
    if (zone && !field.dataset.chosen) field.value = zone;
  }
});
