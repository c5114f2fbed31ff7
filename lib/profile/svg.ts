/**
 * The roofline picture, written as plain SVG (no dependencies): log-log axes, arithmetic intensity
 * (FLOP/byte) across and achieved GFLOP/s up, decade ticks with labels (minor ticks at 2..9), the memory
 * bandwidth slope (GFLOP/s = intensity × GB/s) up to each dtype's compute ceiling, and one labelled point
 * per kernel group. Groups without FLOPs (layout ops) cannot sit on a log axis and are listed below it.
 * Elements carry classes (axis, tick-label, roof bandwidth/ceiling, point, point-label) for tests and CSS.
 */
import { Calibration, peakFor } from './calibrate';
import type { GroupStats } from './report';

export interface RooflineOptions {
  title?: string;
  width?: number;
  height?: number;
}

const COLORS: Record<string, string> = { cpu: '#1f77b4', js: '#ff7f0e', cuda: '#2ca02c' };

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** 10^k written the way an axis shows it: 0.001 ... 10000 plainly, 1e5 / 1e-4 beyond. */
export function decadeLabel(k: number): string {
  if (k >= 0 && k <= 4) return String(10 ** k);
  if (k < 0 && k >= -3) return (10 ** k).toFixed(-k);
  return `1e${k}`;
}

function rate(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toPrecision(2);
}

const f = (x: number): string => x.toFixed(2);

interface Box { x: number; y: number; w: number; h: number }
const overlaps = (a: Box, b: Box): boolean => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

export function rooflineSvg(groups: GroupStats[], cal: Calibration, options: RooflineOptions = {}): string {
  const W = options.width ?? 900;
  const H = options.height ?? 600;
  const m = { l: 80, r: 30, t: 64, b: 84 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const bw = cal.bandwidth.gbps;
  const pts = groups.filter((g) => g.flops > 0 && g.bytes > 0 && g.gflops > 0);
  const flat = groups.filter((g) => !pts.includes(g));
  const dtypes = [...new Set(['float32', ...pts.map((g) => g.computeDtype)])].filter((d) => cal.peaks[d] || d === 'float32');
  const ceilings = dtypes.map((d) => ({ dtype: cal.peaks[d] ? d : 'float32', peak: peakFor(cal, d) }))
    .filter((c, i, a) => a.findIndex((o) => o.dtype === c.dtype) === i);

  // domain: whole decades covering every point, every ridge and every ceiling
  const xs = [...pts.map((g) => g.intensity), ...ceilings.map((c) => c.peak.gflops / bw)];
  const lx0 = Math.floor(Math.log10(Math.min(...xs) / 1.5));
  let lx1 = Math.ceil(Math.log10(Math.max(...xs) * 3));
  if (lx1 - lx0 < 2) lx1 = lx0 + 2;
  const ys = [...pts.map((g) => g.gflops), ...ceilings.map((c) => c.peak.gflops), bw * 10 ** lx0];
  let ly0 = Math.floor(Math.log10(Math.min(...ys) / 1.5));
  const ly1 = Math.ceil(Math.log10(Math.max(...ys) * 2));
  if (ly1 - ly0 < 2) ly0 = ly1 - 2;
  const X = (v: number) => m.l + ((Math.log10(v) - lx0) / (lx1 - lx0)) * pw;
  const Y = (v: number) => m.t + ph - ((Math.log10(v) - ly0) / (ly1 - ly0)) * ph;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" class="roofline" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<defs><clipPath id="plot-area"><rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/></clipPath></defs>`);
  out.push(`<rect class="background" width="${W}" height="${H}" fill="#ffffff"/>`);
  const title = options.title ?? `Roofline: ${cal.cpu} (${cal.cores} cores, ${cal.simd})`;
  out.push(`<text class="title" x="${m.l}" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`);
  const peaks = ceilings.map((c) => `${c.dtype} ${rate(c.peak.gflops)} G${c.peak.unit === 'op' ? 'OP' : 'FLOP'}/s`).join(', ');
  out.push(`<text class="subtitle" x="${m.l}" y="44" fill="#555">${esc(`bandwidth ${rate(bw)} GB/s; peak ${peaks}`)}</text>`);

  // grid and ticks
  const grid: string[] = [];
  const xt: string[] = [];
  const yt: string[] = [];
  for (let k = lx0; k <= lx1; k++) {
    const x = X(10 ** k);
    grid.push(`<line class="grid major" x1="${f(x)}" y1="${m.t}" x2="${f(x)}" y2="${m.t + ph}" stroke="#ddd"/>`);
    xt.push(`<line class="tick x-tick" x1="${f(x)}" y1="${m.t + ph}" x2="${f(x)}" y2="${m.t + ph + 6}" stroke="#000"/>`);
    xt.push(`<text class="tick-label x-tick-label" x="${f(x)}" y="${m.t + ph + 20}" text-anchor="middle">${decadeLabel(k)}</text>`);
    for (let j = 2; j <= 9 && k < lx1; j++) {
      const xm = X(j * 10 ** k);
      xt.push(`<line class="tick minor" x1="${f(xm)}" y1="${m.t + ph}" x2="${f(xm)}" y2="${m.t + ph + 3}" stroke="#000"/>`);
    }
  }
  for (let k = ly0; k <= ly1; k++) {
    const y = Y(10 ** k);
    grid.push(`<line class="grid major" x1="${m.l}" y1="${f(y)}" x2="${m.l + pw}" y2="${f(y)}" stroke="#ddd"/>`);
    yt.push(`<line class="tick y-tick" x1="${m.l - 6}" y1="${f(y)}" x2="${m.l}" y2="${f(y)}" stroke="#000"/>`);
    yt.push(`<text class="tick-label y-tick-label" x="${m.l - 9}" y="${f(y + 4)}" text-anchor="end">${decadeLabel(k)}</text>`);
    for (let j = 2; j <= 9 && k < ly1; j++) {
      const ym = Y(j * 10 ** k);
      yt.push(`<line class="tick minor" x1="${m.l - 3}" y1="${f(ym)}" x2="${m.l}" y2="${f(ym)}" stroke="#000"/>`);
    }
  }
  out.push(`<g class="grid">${grid.join('')}</g>`);
  out.push(`<g class="axis x-axis"><line class="axis-line" x1="${m.l}" y1="${m.t + ph}" x2="${m.l + pw}" y2="${m.t + ph}" stroke="#000"/>${xt.join('')}` +
    `<text class="axis-title" x="${f(m.l + pw / 2)}" y="${H - 40}" text-anchor="middle">arithmetic intensity (FLOP/byte)</text></g>`);
  out.push(`<g class="axis y-axis"><line class="axis-line" x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ph}" stroke="#000"/>${yt.join('')}` +
    `<text class="axis-title" transform="translate(22 ${f(m.t + ph / 2)}) rotate(-90)" text-anchor="middle">performance (GFLOP/s)</text></g>`);

  // roofs: the bandwidth slope from the left edge to the highest ridge, a ceiling per dtype from its ridge
  const roofs: string[] = [];
  const top = Math.max(...ceilings.map((c) => c.peak.gflops));
  const xl = 10 ** lx0;
  const ridgeTop = top / bw;
  roofs.push(`<line class="roof bandwidth" x1="${f(X(xl))}" y1="${f(Y(bw * xl))}" x2="${f(X(ridgeTop))}" y2="${f(Y(top))}" stroke="#c0392b" stroke-width="2"/>`);
  // the slope's label sits a little way along its visible part, turned to its angle on screen
  const xs0 = Math.max(xl, 10 ** ly0 / bw);
  const xa = 10 ** (Math.log10(xs0) + 0.08 * (Math.log10(ridgeTop) - Math.log10(xs0)));
  const angle = (Math.atan2(Y(top) - Y(bw * xs0), X(ridgeTop) - X(xs0)) * 180) / Math.PI;
  roofs.push(`<text class="roof-label bandwidth-label" transform="translate(${f(X(xa))} ${f(Y(bw * xa) - 8)}) rotate(${f(angle)})" fill="#c0392b">${esc(`memory ${rate(bw)} GB/s`)}</text>`);
  for (const c of ceilings) {
    const ridge = c.peak.gflops / bw;
    const y = Y(c.peak.gflops);
    roofs.push(`<line class="roof ceiling" data-dtype="${c.dtype}" x1="${f(X(ridge))}" y1="${f(y)}" x2="${f(m.l + pw)}" y2="${f(y)}" stroke="#2c3e50" stroke-width="2"/>`);
    roofs.push(`<text class="roof-label ceiling-label" x="${f(m.l + pw - 4)}" y="${f(y - 6)}" text-anchor="end" fill="#2c3e50">${esc(`${c.dtype} peak ${rate(c.peak.gflops)} G${c.peak.unit === 'op' ? 'OP' : 'FLOP'}/s (${c.peak.variant})`)}</text>`);
  }
  out.push(`<g class="roofs" clip-path="url(#plot-area)">${roofs.join('')}</g>`);

  // points, labels placed greedily where they overlap nothing placed before
  const placed: Box[] = pts.map((g) => ({ x: X(g.intensity) - 6, y: Y(g.gflops) - 6, w: 12, h: 12 }));
  const marks: string[] = [];
  const labels: string[] = [];
  for (const g of [...pts].sort((a, b) => a.intensity - b.intensity)) {
    const cx = X(g.intensity);
    const cy = Y(g.gflops);
    const text = g.name.length > 56 ? g.name.slice(0, 55) + '…' : g.name;
    const w = text.length * 6.6;
    const tries = [[8, 4], [8, -10], [8, 18], [-8 - w, 4], [8, -24], [8, 32], [-8 - w, -10], [-8 - w, 18]];
    let at = tries[0];
    for (const [dx, dy] of tries) {
      const b = { x: cx + dx, y: cy + dy - 11, w, h: 14 };
      const inside = b.x >= m.l && b.x + b.w <= W - 4 && b.y >= m.t && b.y + b.h <= m.t + ph;
      if (inside && !placed.some((p) => overlaps(p, b))) {
        at = [dx, dy];
        break;
      }
    }
    placed.push({ x: cx + at[0], y: cy + at[1] - 11, w, h: 14 });
    const color = COLORS[g.backend] ?? '#7f7f7f';
    const tip = `${g.name}: ${g.calls} calls, ${rate(g.gflops)} G${g.unit === 'op' ? 'OP' : 'FLOP'}/s, ${rate(g.gbps)} GB/s, ` +
      `intensity ${g.intensity.toPrecision(3)} FLOP/B${g.roofline === null ? '' : `, ${g.roofline.toFixed(1)}% of roofline`}`;
    marks.push(`<circle class="point" data-group="${esc(g.key)}" data-backend="${esc(g.backend)}" cx="${f(cx)}" cy="${f(cy)}" r="5" fill="${color}" stroke="#000" stroke-width="0.8"><title>${esc(tip)}</title></circle>`);
    labels.push(`<text class="point-label" data-group="${esc(g.key)}" x="${f(cx + at[0])}" y="${f(cy + at[1])}" fill="#222">${esc(text)}</text>`);
  }
  out.push(`<g class="points">${marks.join('')}</g>`);
  out.push(`<g class="point-labels">${labels.join('')}</g>`);

  // legend (backends present) and the groups that could not be plotted
  const present = [...new Set(pts.map((g) => g.backend))];
  out.push(`<g class="legend">${present.map((b, i) => `<circle cx="${m.l + 10 + i * 90}" cy="${H - 14}" r="5" fill="${COLORS[b] ?? '#7f7f7f'}"/><text x="${m.l + 20 + i * 90}" y="${H - 10}">${esc(b)}</text>`).join('')}</g>`);
  if (flat.length) {
    const names = [...new Set(flat.map((g) => g.op))].join(', ');
    out.push(`<text class="not-plotted" x="${m.l + 10 + present.length * 90}" y="${H - 10}" fill="#777">${esc(`not plotted (no FLOPs or no time): ${names}`)}</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
