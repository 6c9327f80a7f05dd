/* global window, document, location, sessionStorage, fetch, setInterval, clearInterval, URLSearchParams */
// The dashboard (docs/operating.md §10): three pages drawn from the api with Chart.js (window.Chart, served by the api).
// Every data fetch carries the token kept in sessionStorage; a 401 asks for one. Routes: #/user/<id>,
// #/cpt/<id>, #/ops. `?refresh=<s>` sets the operator page's refresh period (default 5 s).

const Chart = window.Chart
const $ = (id) => document.getElementById(id)
const TOKEN_KEY = 'hph.token'
const LABEL_COLOURS = { high: '#2e9e5b', medium: '#e0a526', low: '#d1453b' }
const STAGE_COLOURS = { deep: '#1f3c88', core: '#4f7cd6', rem: '#9a6fd6', asleep: '#9fb3d9', awake: '#f0b45b' }
const params = new URLSearchParams(location.search)
const REFRESH_S = Number(params.get('refresh')) > 0 ? Number(params.get('refresh')) : 5

Chart.defaults.animation = false
Chart.defaults.maintainAspectRatio = false

class Unauthorized extends Error {}

/** GET a JSON path of the api with the kept token; 401 shows the token form. */
async function api(path) {
  const token = sessionStorage.getItem(TOKEN_KEY)
  const res = await fetch(path, { headers: token ? { authorization: `Bearer ${token}` } : {} })
  if (res.status === 401) {
    askToken(token ? 'That token was refused; enter another.' : undefined)
    throw new Unauthorized('a token is needed')
  }
  const body = await res.json()
  if (!res.ok) throw new Error(body.message || `${res.status} on ${path}`)
  return body
}

function askToken(reason) {
  if (reason) $('token-reason').textContent = reason
  $('token-form').hidden = false
  $('token').focus()
}

function say(text) {
  $('message').textContent = text
}

const charts = new Map()
/** Draws (or redraws) the chart of a canvas. */
function draw(id, config) {
  charts.get(id)?.destroy()
  charts.set(id, new Chart($(id), config))
}

const short = (day) => day.slice(5)
const round = (x, d = 1) => (x === null || x === undefined ? null : Math.round(x * 10 ** d) / 10 ** d)

async function showUser(userId) {
  const t = await api(`/v1/users/${encodeURIComponent(userId)}/trends?days=90`)
  $('range').textContent = `${t.from} … ${t.to}`
  draw('readiness-chart', {
    type: 'bar',
    data: {
      labels: t.readiness.map((r) => short(r.day)),
      datasets: [
        {
          label: 'readiness score',
          data: t.readiness.map((r) => r.score),
          backgroundColor: t.readiness.map((r) => LABEL_COLOURS[r.label] ?? '#888'),
        },
      ],
    },
    options: {
      scales: { y: { min: 0, max: 100 } },
      plugins: { legend: { display: false }, tooltip: { callbacks: { afterLabel: (c) => t.readiness[c.dataIndex]?.label } } },
    },
  })

  const hrv = t.hrv
  // each day is judged on its own metric (docs/insights.md §2): a change of device
  // changes it, and the point where it changes is drawn as a triangle and named in the caption
  const changed = (i) => i > 0 && hrv[i].metric !== hrv[i - 1].metric
  const switches = hrv.filter((_, i) => changed(i))
  $('hrv-metric').textContent = `${[hrv[0]?.metric ?? 'sdnn', ...switches.map((r) => `${r.metric} from ${short(r.day)}`)].join(' → ')}, ms`
  $('hrv-metric').dataset.changes = switches.map((r) => `${r.day}:${r.metric}`).join(' ')
  draw('hrv-chart', {
    type: 'line',
    data: {
      labels: hrv.map((r) => short(r.day)),
      datasets: [
        {
          label: 'nightly HRV',
          data: hrv.map((r) => round(r.valueMs)),
          showLine: false,
          borderColor: '#1d2330',
          backgroundColor: '#1d2330',
          order: 0,
          pointStyle: hrv.map((_, i) => (changed(i) ? 'triangle' : 'circle')),
          pointRadius: hrv.map((_, i) => (changed(i) ? 7 : 3)),
        },
        { label: '7-day mean', data: hrv.map((r) => round(r.mean7dMs)), borderColor: '#4f7cd6', pointRadius: 0, borderWidth: 2, order: 1 },
        { label: 'baseline', data: hrv.map((r) => round(r.baselineMs)), borderColor: '#2e9e5b', borderDash: [6, 4], pointRadius: 0, order: 2 },
        { label: 'good band (from)', data: hrv.map((r) => round(r.goodMs)), borderColor: '#2e9e5b55', backgroundColor: '#2e9e5b18', pointRadius: 0, fill: 'end', order: 3 },
        { label: 'medium band (from)', data: hrv.map((r) => round(r.mediumMs)), borderColor: '#e0a52677', backgroundColor: '#e0a52630', pointRadius: 0, fill: '-1', order: 4 },
      ],
    },
    options: {
      plugins: {
        legend: { position: 'bottom' },
        tooltip: { callbacks: { afterLabel: (c) => (c.datasetIndex === 0 ? `${hrv[c.dataIndex]?.metric}${changed(c.dataIndex) ? ' (metric changed)' : ''}` : undefined) } },
      },
      scales: { y: { title: { display: true, text: 'ms' } } },
    },
  })

  const sleep = t.sleep
  const h = (min) => round(min / 60, 2)
  const stage = (label, key, colour) => ({ label, data: sleep.map((r) => h(r[key])), backgroundColor: colour, stack: 'sleep', order: 1 })
  draw('sleep-chart', {
    type: 'bar',
    data: {
      labels: sleep.map((r) => short(r.day)),
      datasets: [
        stage('deep', 'deepMin', STAGE_COLOURS.deep),
        stage('core', 'coreMin', STAGE_COLOURS.core),
        stage('rem', 'remMin', STAGE_COLOURS.rem),
        stage('asleep (no stage)', 'asleepUnspecifiedMin', STAGE_COLOURS.asleep),
        stage('awake', 'awakeMin', STAGE_COLOURS.awake),
        {
          type: 'line',
          label: 'sleep baseline',
          data: sleep.map((r) => round(r.baselineHours, 2)),
          borderColor: '#2e9e5b',
          borderDash: [6, 4],
          pointRadius: 0,
          stack: 'baseline',
          order: 0,
        },
      ],
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: 'hours' } } }, plugins: { legend: { position: 'bottom' } } },
  })
  if (t.readiness.length === 0) say('no readiness in this window yet')
}

const STATES = ['good', 'medium', 'poor']
/** Red (score 0) through amber to green (100). */
const heat = (score) => `hsl(${Math.round(1.2 * score)}, 65%, ${78 - Math.abs(score - 50) / 5}%)`

async function showCpt(userId) {
  const cpt = await api(`/v1/users/${encodeURIComponent(userId)}/cpt`)
  $('cpt-as-of').textContent = `as of ${cpt.as_of_day}`
  const table = $('cpt-heatmap')
  table.replaceChildren()
  const head = table.insertRow()
  head.append(Object.assign(document.createElement('th'), { textContent: 'sleep \\ HRV' }))
  for (const hrv of STATES) head.append(Object.assign(document.createElement('th'), { textContent: hrv }))
  for (const sleep of STATES) {
    const row = table.insertRow()
    row.append(Object.assign(document.createElement('th'), { textContent: sleep }))
    for (const hrv of STATES) {
      const [ph, pm, pl] = cpt.cpt_probabilities.table[`${sleep}|${hrv}`]
      const score = Math.floor(100 * (ph + 0.5 * pm) + 0.5)
      const cell = row.insertCell()
      cell.className = 'cell'
      cell.dataset.score = String(score)
      cell.style.background = heat(score)
      cell.title = `sleep ${sleep}, HRV ${hrv}`
      cell.innerHTML = `<span class="score">${score}</span>${ph.toFixed(2)} / ${pm.toFixed(2)} / ${pl.toFixed(2)}`
    }
  }
  $('cpt-thresholds').textContent =
    `sleep good from ${cpt.sleep_good_threshold.toFixed(2)} h, medium from ${cpt.sleep_medium_threshold.toFixed(2)} h; ` +
    `HRV good from ${cpt.hrv_good_threshold.toFixed(1)} ms, medium from ${cpt.hrv_medium_threshold.toFixed(1)} ms`
}

/** The operator page: `hph status` every REFRESH_S seconds; throughput from the ack floors' progress. */
let opsTimer
let previous
const history = new Map()

function fillTable(table, header, rows) {
  table.replaceChildren()
  const head = table.insertRow()
  for (const h of header) head.append(Object.assign(document.createElement('th'), { textContent: h }))
  for (const r of rows) {
    const row = table.insertRow()
    for (const v of r) row.insertCell().textContent = v === null || v === undefined ? '–' : String(v)
  }
}

async function refreshOps() {
  const s = await api('/v1/ops/status')
  const dt = previous ? (Date.parse(s.at) - Date.parse(previous.at)) / 1000 : 0
  const rate = (c) => {
    const before = previous?.consumers.find((p) => p.durable === c.durable)
    return before && dt > 0 ? round(Math.max(0, c.ackFloor - before.ackFloor) / dt) : null
  }
  $('ops-at').textContent = new Date(s.at).toLocaleTimeString()
  $('ops-dlq').textContent = s.dlq.depth ?? '?'
  $('ops-dlq').classList.toggle('warn', (s.dlq.depth ?? 0) > 0)
  $('ops-nats').textContent = s.nats.reachable ? 'up' : 'DOWN'
  $('ops-db').textContent = s.database.reachable ? 'up' : 'DOWN'
  fillTable(
    $('ops-consumers'),
    ['stage', 'consumer', 'pending', 'ack pending', 'redelivered', 'lag (msgs)', 'lag (s)', 'throughput (msg/s)'],
    s.consumers.map((c) => [
      c.stage,
      `${c.stream}/${c.durable}`,
      c.pending,
      c.ackPending,
      c.redelivered,
      c.lagMessages,
      c.lagSeconds === null ? '?' : round(c.lagSeconds),
      rate(c),
    ]),
  )
  // a message carries many samples or rows: the tables say how many of those a second
  const rowsPerS = (t) => {
    const before = previous?.tables?.find((p) => p.table === t.table)
    return before && dt > 0 ? round(Math.max(0, t.written - before.written) / dt) : null
  }
  fillTable(
    $('ops-tables'),
    ['table', 'rows (estimate)', 'rows/s'],
    (s.tables ?? []).map((t) => [t.table, t.rows, rowsPerS(t)]),
  )
  fillTable(
    $('ops-streams'),
    ['stream', 'messages', 'bytes', 'first seq', 'last seq', 'last message'],
    s.streams.map((x) => [x.stream, x.messages, x.bytes, x.firstSeq, x.lastSeq, x.lastTime ?? '–']),
  )
  if (previous) {
    const label = new Date(s.at).toLocaleTimeString()
    for (const c of s.consumers) {
      const points = history.get(c.stage) ?? []
      points.push({ label, value: rate(c) ?? 0 })
      history.set(c.stage, points.slice(-60))
    }
    const stages = [...history.keys()]
    draw('throughput-chart', {
      type: 'line',
      data: {
        labels: history.get(stages[0])?.map((p) => p.label) ?? [],
        datasets: stages.map((stage) => ({ label: stage, data: history.get(stage).map((p) => p.value), pointRadius: 0 })),
      },
      options: { plugins: { legend: { position: 'right' } }, scales: { y: { min: 0, title: { display: true, text: 'msg/s' } } } },
    })
  }
  previous = s
  const page = $('page-ops')
  page.dataset.refreshes = String(Number(page.dataset.refreshes ?? 0) + 1)
}

function startOps() {
  $('ops-every').textContent = String(REFRESH_S)
  const tick = () => refreshOps().catch(report)
  tick()
  opsTimer = setInterval(tick, REFRESH_S * 1000)
}

function report(err) {
  if (!(err instanceof Unauthorized)) say(err.message)
}

/** #/<page>/<user> → the page shown. */
async function route() {
  const [, page = 'user', userId] = location.hash.split('/')
  clearInterval(opsTimer)
  say('')
  for (const p of ['user', 'cpt', 'ops']) {
    $(`page-${p}`).hidden = p !== page
    document.querySelector(`nav a[data-page="${p}"]`).classList.toggle('active', p === page)
  }
  const user = userId ? decodeURIComponent(userId) : $('user').value || sessionStorage.getItem('hph.user') || ''
  $('user').value = user
  for (const a of document.querySelectorAll('nav a[data-page="user"], nav a[data-page="cpt"]')) a.href = `#/${a.dataset.page}/${encodeURIComponent(user)}`
  for (const el of document.querySelectorAll('.user-name')) el.textContent = user
  document.body.dataset.ready = 'false'
  try {
    if (page === 'ops') startOps()
    else if (!user) say('choose a user')
    else {
      sessionStorage.setItem('hph.user', user)
      await (page === 'cpt' ? showCpt(user) : showUser(user))
    }
  } catch (err) {
    report(err)
  } finally {
    document.body.dataset.ready = 'true'
  }
}

async function listUsers() {
  // only an admin token may list users; a user token types its own id
  const users = await api('/v1/users').catch(() => [])
  $('users').replaceChildren(...users.map((u) => Object.assign(document.createElement('option'), { value: u.userId })))
  if (!$('user').value && users[0]) $('user').value = users[0].userId
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault()
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim())
  $('token').value = ''
  $('token-form').hidden = true
  $('sign-out').hidden = false
  listUsers().then(route, report)
})
$('sign-out').hidden = !sessionStorage.getItem(TOKEN_KEY)
$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY)
  location.reload()
})
$('user-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const [, page = 'user'] = location.hash.split('/')
  location.hash = `#/${page === 'ops' ? 'user' : page}/${encodeURIComponent($('user').value.trim())}`
})
window.addEventListener('hashchange', route)
listUsers().then(route, report)
