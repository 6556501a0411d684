// One bench run as a standalone SVG: latency percentiles, server CPU per delivered frame and per
// message, memory per socket, upgrade and request rates, by server. No dependencies, no external
// fonts or scripts, so the file can be committed next to the JSON and opened anywhere.
//
// Every panel is the same horizontal bar chart: groups (one per step) of clusters (one per server)
// of bars (p50/p90/p99, or one figure). Horizontal bars leave room for long step and server names
// on the left and for each bar's value at its end.
import { SERVER_LABELS, SERVERS, type BenchRun, type Percentiles, type ResultRow, type RowScenario, type ServerName } from './results.js'

const SERVER_COLOURS: Readonly<Record<ServerName, string>> = {
  chat: '#1f77b4',
  'chat-cluster': '#17becf',
  'uws-raw': '#2ca02c',
  socketio: '#d62728',
  'uws-pg-insert': '#ff7f0e',
  'chat-fastify-listener': '#9467bd',
  'http-pg-history': '#8c564b'
}

const WIDTH = 1000
const MARGIN = 20
/** Room right of the plot for the value printed after the longest bar ("p99 1,230"). */
const VALUE_ROOM = 90
/** The label columns never take more than this, so the plot keeps at least ~330 px. */
const MAX_PLOT_X0 = 560
const FONT = 'font-family="sans-serif"'
const BAR = 11
const BAR_GAP = 2
const CLUSTER_GAP = 6
const GROUP_PAD = 6
const LABEL_SIZE = 11
const VALUE_SIZE = 10
/** Higher percentiles are lighter, so p50 stands out and the tail reads as its shadow. */
const PERCENTILE_OPACITY = [1, 0.7, 0.45] as const

/** Three significant digits, thousands separated: 0.123, 4.56, 78.9, 1,230. */
const short = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3 })

interface Bar { readonly tag: string, readonly value: number | null }
interface Cluster { readonly server: ServerName, readonly generatorBound: boolean, readonly bars: readonly Bar[] }
interface Group { readonly label: string, readonly clusters: readonly Cluster[] }
interface Panel {
  readonly title: string
  /** What is measured and in which unit, under the title. */
  readonly note: string
  readonly unit: string
  readonly scale: 'log' | 'linear'
  readonly groups: readonly Group[]
}

/** Where the plot starts and ends, shared by all panels so their axes line up. */
interface Layout { readonly plotX0: number, readonly plotX1: number }

interface Scale {
  /** Value to x; x(0) is where bars start: zero on a linear scale, the lowest decade on a log one. */
  readonly x: (value: number) => number
  readonly ticks: ReadonlyArray<{ readonly x: number, readonly label: string }>
}

interface Block { readonly svg: string, readonly height: number }

export function renderChart (run: BenchRun): string {
  const title = `chat backend bench — ${run.date} — ${run.profile} profile, ${run.database} database, ${run.machine.cpus} cores`
  const subtitle = `Node ${run.machine.node}, ${run.machine.cpuModel}`
  const panels = buildPanels(run.rows)
  const parts: string[] = [
    text(MARGIN, 30, title, { size: 18, weight: 'bold' }),
    text(MARGIN, 50, subtitle, { size: LABEL_SIZE, fill: '#555' })
  ]
  let y = 66
  if (panels.length === 0) {
    parts.push(text(WIDTH / 2, y + 40, 'no data', { size: 16, anchor: 'middle', fill: '#555' }))
    return svgDocument(y + 70, parts)
  }
  const legend = renderLegend(run.rows, y)
  parts.push(legend.svg)
  y += legend.height
  const layout = layoutFor(panels)
  for (const panel of panels) {
    const block = renderPanel(panel, y, layout)
    parts.push(block.svg)
    y += block.height
  }
  return svgDocument(y + MARGIN, parts)
}

// ---- data: rows → panels ----

function buildPanels (rows: readonly ResultRow[]): Panel[] {
  const of = (scenario: RowScenario): ResultRow[] => rows.filter((row) => row.scenario === scenario)
  const fanouts = [...of('fanout'), ...of('small-rooms')]
  const panels: Array<Panel | null> = [
    latencyPanel('fan-out: delivery latency', 'send → message at each receiver', of('fanout'), (row) => row.delivery),
    latencyPanel('small rooms: delivery latency', 'send → message at each receiver', of('small-rooms'), (row) => row.delivery),
    latencyPanel('ingest: ack latency', 'send → ack at the sender (stored first where the server stores)', of('ingest'), (row) => row.ack),
    latencyPanel('reads: read reply latency', 'read → read reply at the reader (the position stored)', of('reads'), (row) => row.ack),
    // Two scenarios share this panel, so a group names both the scenario and the step.
    figurePanel('server CPU per delivered frame', 'user + system CPU of the server process', 'µs', 'log', fanouts, (row) => row.cpuUsPerDelivery, (row) => `${row.scenario}, ${row.step}`),
    figurePanel('server CPU per message', 'user + system CPU of the server process per acked message', 'µs', 'log', of('ingest'), (row) => row.cpuUsPerMessage),
    figurePanel('server CPU per read', 'user + system CPU of the server process per answered read, its receipt included', 'µs', 'log', of('reads'), (row) => row.cpuUsPerMessage),
    figurePanel('memory per socket', 'server RSS growth per socket', 'KB', 'linear', of('memory'), (row) => row.rssKbPerSocket),
    figurePanel('connect: upgrade rate', 'WebSocket upgrades per second', 'upgrades/s', 'linear', of('connect'), (row) => row.upgradesPerSecond),
    figurePanel('connect: server CPU per upgrade', 'user + system CPU of the server process per accepted upgrade', 'µs', 'linear', of('connect'), (row) => row.cpuUsPerUpgrade),
    figurePanel('REST: request rate', 'requests per second', 'requests/s', 'linear', of('rest'), (row) => row.requestsPerSecond),
    figurePanel('REST: server CPU per request', 'user + system CPU of the server process per request', 'µs', 'log', of('rest'), (row) => row.cpuUsPerRequest),
    latencyPanel('cluster: delivery latency by receiver', 'send on node 1 → message at receivers on node 1 and on the other nodes', of('cluster-latency'), (row) => row.delivery),
    figurePanel('cluster: server CPU per delivered frame', 'user + system CPU of every node, summed, one room', 'µs', 'linear', of('cluster-cpu'), (row) => row.cpuUsPerDelivery)
  ]
  return panels.filter((panel): panel is Panel => panel !== null)
}

/** p50/p90/p99 per server and step; a scenario with rows gets its panel even if nothing was measured (all "n/a"). */
function latencyPanel (title: string, what: string, rows: readonly ResultRow[], pick: (row: ResultRow) => Percentiles | undefined): Panel | null {
  if (rows.length === 0) return null
  const groups = groupBySteps(rows, (row) => row.step, (row) => {
    const percentiles = pick(row)
    return (['p50', 'p90', 'p99'] as const).map((tag) => ({ tag, value: percentiles?.[tag] ?? null }))
  })
  return { title, note: `${what}; ms, log scale`, unit: 'ms', scale: 'log', groups }
}

/** One figure per server and step; omitted when no row of the scenario(s) carries the figure. */
function figurePanel (
  title: string, what: string, unit: string, scale: Panel['scale'], rows: readonly ResultRow[],
  pick: (row: ResultRow) => number | undefined, groupLabel: (row: ResultRow) => string = (row) => row.step
): Panel | null {
  const measured = rows.filter((row) => pick(row) !== undefined)
  if (measured.length === 0) return null
  const groups = groupBySteps(measured, groupLabel, (row) => [{ tag: '', value: pick(row) ?? null }])
  return { title, note: `${what}; ${unit}${scale === 'log' ? ', log scale' : ''}`, unit, scale, groups }
}

/** Groups in offered-load order, servers in SERVERS order within a group, so every panel reads the same way. */
function groupBySteps (rows: readonly ResultRow[], label: (row: ResultRow) => string, bars: (row: ResultRow) => Bar[]): Group[] {
  const byLabel = new Map<string, ResultRow[]>()
  for (const row of [...rows].sort((a, b) => a.offered - b.offered)) {
    const members = byLabel.get(label(row)) ?? []
    members.push(row)
    byLabel.set(label(row), members)
  }
  return [...byLabel].map(([key, members]) => ({
    label: key,
    clusters: [...members]
      .sort((a, b) => SERVERS.indexOf(a.server) - SERVERS.indexOf(b.server))
      .map((row) => ({ server: row.server, generatorBound: row.generatorBound, bars: bars(row) }))
  }))
}

// ---- scales ----

function scaleFor (panel: Panel, x0: number, x1: number): Scale {
  const values = panel.groups.flatMap((group) => group.clusters.flatMap((cluster) => cluster.bars.map((bar) => bar.value)))
    .filter((value): value is number => value !== null && Number.isFinite(value))
  return panel.scale === 'log' ? logScale(values, x0, x1) : linearScale(values, x0, x1)
}

/** Whole decades around the data; values at or below the lowest decade (0 included) get no bar length. */
function logScale (values: readonly number[], x0: number, x1: number): Scale {
  const positive = values.filter((value) => value > 0)
  // Start a little below the smallest value so that even it gets a visible bar.
  const lo = positive.length === 0 ? -1 : Math.floor(Math.log10(Math.min(...positive)) - 0.1)
  let hi = positive.length === 0 ? 3 : Math.ceil(Math.log10(Math.max(...positive)))
  if (hi <= lo) hi = lo + 1
  const x = (value: number): number => value <= 0 ? x0 : x0 + (Math.max(Math.log10(value), lo) - lo) / (hi - lo) * (x1 - x0)
  const ticks = []
  for (let decade = lo; decade <= hi; decade++) ticks.push({ x: x(10 ** decade), label: short.format(10 ** decade) })
  return { x, ticks }
}

/** 1/2/5 × 10^k steps, about five ticks, always including zero (memory per socket can be negative). */
function linearScale (values: readonly number[], x0: number, x1: number): Scale {
  const min = Math.min(0, ...values)
  const max = Math.max(0, ...values)
  const span = max - min === 0 ? 1 : max - min
  const rough = span / 5
  const magnitude = 10 ** Math.floor(Math.log10(rough))
  const step = ([1, 2, 5, 10].find((factor) => factor * magnitude >= rough) ?? 10) * magnitude
  const lo = Math.floor(min / step) * step
  const hi = Math.max(Math.ceil(max / step) * step, lo + step)
  const x = (value: number): number => x0 + (value - lo) / (hi - lo) * (x1 - x0)
  const ticks = []
  for (let at = lo; at <= hi + step / 2; at += step) ticks.push({ x: x(at), label: short.format(at) })
  return { x, ticks }
}

// ---- rendering ----

function layoutFor (panels: readonly Panel[]): Layout {
  const groupLabels = panels.flatMap((panel) => panel.groups.map((group) => textWidth(group.label, LABEL_SIZE, 'bold')))
  const serverLabels = panels.flatMap((panel) => panel.groups.flatMap((group) => group.clusters.map((cluster) => textWidth(SERVER_LABELS[cluster.server], LABEL_SIZE))))
  const plotX0 = MARGIN + Math.max(...groupLabels) + 16 + Math.max(...serverLabels) + 8
  return { plotX0: Math.min(plotX0, MAX_PLOT_X0), plotX1: WIDTH - MARGIN - VALUE_ROOM }
}

function renderPanel (panel: Panel, top: number, layout: Layout): Block {
  const scale = scaleFor(panel, layout.plotX0, layout.plotX1)
  const plotTop = top + 46
  const bands: string[] = []
  const groups: string[] = []
  let y = plotTop
  panel.groups.forEach((group, index) => {
    const block = renderGroup(group, y, layout, scale)
    // Every other group on a grey band, so a step's clusters read as one.
    if (index % 2 === 1) bands.push(`<rect x="${MARGIN}" y="${y}" width="${WIDTH - 2 * MARGIN}" height="${block.height}" fill="#f3f3f3"/>`)
    groups.push(block.svg)
    y += block.height
  })
  // Bands, then grid lines, then bars: each stays visible under the next.
  return {
    svg: [
      text(MARGIN, top + 20, panel.title, { size: 15, weight: 'bold' }),
      text(MARGIN, top + 36, panel.note, { size: LABEL_SIZE, fill: '#555' }),
      ...bands,
      renderAxis(scale, plotTop, y, panel.unit),
      ...groups
    ].join('\n'),
    height: y - top + 40
  }
}

function renderGroup (group: Group, top: number, layout: Layout, scale: Scale): Block {
  const parts: string[] = []
  let y = top + GROUP_PAD
  for (const cluster of group.clusters) {
    const height = cluster.bars.length * (BAR + BAR_GAP) - BAR_GAP
    // Right-aligned against the plot, so each server name sits next to its own bars.
    parts.push(text(layout.plotX0 - 8, y + height / 2 + 4, SERVER_LABELS[cluster.server], { size: LABEL_SIZE, anchor: 'end' }))
    cluster.bars.forEach((bar, index) => {
      parts.push(renderBar(bar, cluster, y + index * (BAR + BAR_GAP), scale, PERCENTILE_OPACITY[index] ?? 1))
    })
    y += height + CLUSTER_GAP
  }
  const height = y - CLUSTER_GAP + GROUP_PAD - top
  parts.push(text(MARGIN, top + height / 2 + 4, group.label, { size: LABEL_SIZE, weight: 'bold' }))
  return { svg: parts.join('\n'), height }
}

/** A bar from the scale's origin, its value at its end, "n/a" where nothing was measured. */
function renderBar (bar: Bar, cluster: Cluster, y: number, scale: Scale, opacity: number): string {
  const prefix = bar.tag === '' ? '' : `${bar.tag} `
  const origin = scale.x(0)
  if (bar.value === null) return text(origin + 4, y + BAR - 2, `${prefix}n/a`, { size: VALUE_SIZE, fill: '#777' })
  const end = scale.x(bar.value)
  const x = Math.min(origin, end)
  const width = Math.max(Math.abs(end - origin), 1)
  const colour = SERVER_COLOURS[cluster.server]
  const parts = [`<rect x="${fixed(x)}" y="${y}" width="${fixed(width)}" height="${BAR}" fill="${colour}" fill-opacity="${opacity}"/>`]
  if (cluster.generatorBound) parts.push(`<rect x="${fixed(x)}" y="${y}" width="${fixed(width)}" height="${BAR}" fill="url(#hatch)" stroke="#333" stroke-width="1"/>`)
  parts.push(text(Math.max(origin, end) + 4, y + BAR - 2, `${prefix}${short.format(bar.value)}`, { size: VALUE_SIZE }))
  return parts.join('')
}

function renderAxis (scale: Scale, top: number, bottom: number, unit: string): string {
  const parts = scale.ticks.map((tick) => [
    `<line x1="${fixed(tick.x)}" y1="${top}" x2="${fixed(tick.x)}" y2="${bottom}" stroke="#999" stroke-opacity="0.4"/>`,
    text(tick.x, bottom + 14, tick.label, { size: VALUE_SIZE, anchor: 'middle', fill: '#333' })
  ].join(''))
  // The unit after the last tick label, clear of it (that label is centred on its tick).
  const last = scale.ticks[scale.ticks.length - 1]
  if (last !== undefined) parts.push(text(last.x + textWidth(last.label, VALUE_SIZE) / 2 + 6, bottom + 14, unit, { size: VALUE_SIZE, fill: '#333' }))
  parts.push(`<line x1="${fixed(scale.x(0))}" y1="${top}" x2="${fixed(scale.x(0))}" y2="${bottom}" stroke="#333"/>`)
  return parts.join('\n')
}

/** Colour per server present, the percentile shading, and the generator-bound hatch if any row has it; wraps to the width. */
function renderLegend (rows: readonly ResultRow[], top: number): Block {
  const present = SERVERS.filter((server) => rows.some((row) => row.server === server))
  const items = present.map((server) => ({ label: SERVER_LABELS[server], swatch: swatch(SERVER_COLOURS[server]) }))
  if (rows.some((row) => ['fanout', 'small-rooms', 'ingest', 'reads', 'cluster-latency'].includes(row.scenario))) {
    items.push({ label: 'latency bars: p50, p90, p99 (lighter = higher percentile)', swatch: percentileSwatch() })
  }
  if (rows.some((row) => row.generatorBound)) {
    items.push({ label: 'generator-bound: the load generator, not the server, may have been the limit', swatch: swatch('#bbb', true) })
  }
  const parts: string[] = []
  let x = MARGIN
  let y = top + 8
  for (const item of items) {
    const width = 18 + textWidth(item.label, LABEL_SIZE) + 18
    if (x + width > WIDTH - MARGIN && x > MARGIN) {
      x = MARGIN
      y += 20
    }
    parts.push(`<g transform="translate(${fixed(x)},${y})">${item.swatch}${text(18, 11, item.label, { size: LABEL_SIZE })}</g>`)
    x += width
  }
  return { svg: parts.join('\n'), height: y - top + 24 }
}

function swatch (colour: string, hatched = false): string {
  const base = `<rect width="13" height="13" fill="${colour}"/>`
  return hatched ? `${base}<rect width="13" height="13" fill="url(#hatch)" stroke="#333"/>` : base
}

function percentileSwatch (): string {
  return PERCENTILE_OPACITY.map((opacity, index) => `<rect y="${index * 4 + 1}" width="13" height="3" fill="#555" fill-opacity="${opacity}"/>`).join('')
}

// ---- SVG and text helpers ----

function svgDocument (height: number, parts: readonly string[]): string {
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${Math.ceil(height)}" viewBox="0 0 ${WIDTH} ${Math.ceil(height)}">`,
    // White stripes over the bar's own colour: a generator-bound bar keeps its server's colour.
    '<defs><pattern id="hatch" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">' +
      '<rect width="3" height="6" fill="#fff" fill-opacity="0.75"/></pattern></defs>',
    `<rect width="${WIDTH}" height="${Math.ceil(height)}" fill="#fff"/>`,
    ...parts,
    '</svg>',
    ''
  ].join('\n')
}

interface TextStyle { readonly size: number, readonly weight?: 'bold', readonly anchor?: 'middle' | 'end', readonly fill?: string }

function text (x: number, y: number, content: string, style: TextStyle): string {
  const weight = style.weight === undefined ? '' : ` font-weight="${style.weight}"`
  const anchor = style.anchor === undefined ? '' : ` text-anchor="${style.anchor}"`
  const fill = style.fill === undefined ? '' : ` fill="${style.fill}"`
  return `<text x="${fixed(x)}" y="${fixed(y)}" ${FONT} font-size="${style.size}"${weight}${anchor}${fill}>${escapeXml(content)}</text>`
}

/**
 * Without measuring fonts, an estimate of a sans-serif string's width: about 0.6 em per character
 * (0.65 bold) errs wide, so label columns are never too narrow.
 */
function textWidth (content: string, size: number, weight?: 'bold'): number {
  return content.length * size * (weight === 'bold' ? 0.65 : 0.6)
}

function escapeXml (content: string): string {
  return content.replace(/[&<>"']/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[char] ?? char)
}

/** Coordinates to 0.1 px keep the file small. */
function fixed (value: number): string {
  return String(Math.round(value * 10) / 10)
}
