// Inline stroke icons (24-unit grid), so nothing is fetched from an icon font or CDN.

import { s } from "./dom.js";

const PATHS = {
  check: "M5 12.5l4.5 4.5L19 7.5",
  user: "M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4.5 20c1.2-3.6 4-5.5 7.5-5.5s6.3 1.9 7.5 5.5",
  comment: "M4.5 5.5h15v10h-8l-4.5 3.5v-3.5h-2.5z",
  resolve: "M12 3.5a8.5 8.5 0 1 0 0 17 8.5 8.5 0 0 0 0-17zM8 12.2l2.8 2.8L16.2 9.5",
  mute: "M9.5 18.5a2.5 2.5 0 0 0 5 0M6 15.5h12l-1.5-2.2V10a4.5 4.5 0 0 0-7.6-3.3M7.5 10v3.3L6 15.5M4 4l16 16",
  pin: "M12 21s-6-5.7-6-10.5a6 6 0 1 1 12 0C18 15.3 12 21 12 21zM12 12.5a2 2 0 1 0 0-4 2 2 0 0 0 0 4z",
  layers: "M12 4l8.5 4.5L12 13 3.5 8.5zM3.5 12.5L12 17l8.5-4.5M3.5 16.5L12 21l8.5-4.5",
  clock: "M12 3.5a8.5 8.5 0 1 0 0 17 8.5 8.5 0 0 0 0-17zM12 7.5V12l3 2",
  event: "M13 3.5L5.5 13.5H12l-1 7 7.5-10H12z",
  x: "M6 6l12 12M18 6L6 18",
};

export function icon(name, className = "icon") {
  return s("svg", { class: className, viewBox: "0 0 24 24", "aria-hidden": "true", focusable: "false" },
    s("path", { d: PATHS[name] || "", fill: "none", stroke: "currentColor", "stroke-width": "1.8",
      "stroke-linecap": "round", "stroke-linejoin": "round" }));
}
