// The two pieces of SVG text the benchmark charts share (decode-chart.mjs, serving-chart.mjs).

/** Text escaped for an SVG element's content. */
export const esc = (t) => String(t).replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** A <text> element at (x, y), with extra attributes `o`. */
export const text = (x, y, t, o = '') => `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${o}>${esc(t)}</text>`;
