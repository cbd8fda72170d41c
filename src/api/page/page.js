// vastwatch status page. Reads /api/v1 (or, in a report, the data inlined as
// window.VASTWATCH_REPORT), draws the charts with uPlot, and refreshes every poll interval.
(function () {
  'use strict';

  const REPORT = window.VASTWATCH_REPORT || null;
  const RANGES = { '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };
  const TOKEN_KEY = 'vastwatch.token';
  const $ = (id) => document.getElementById(id);

  const view = {
    target: new URLSearchParams(location.search).get('target'),
    range: new URLSearchParams(location.search).get('range') || '1h',
    timer: null,
    charts: [],
    sort: { key: 'worker_id', descending: false },
    workers: [],
  };
  if (!RANGES[view.range]) view.range = '1h';

  // ---- API access, with the bearer token asked for once and kept in localStorage.

  let tokenPrompt = null;
  function askToken(refused) {
    if (!tokenPrompt) {
      tokenPrompt = new Promise((resolve) => {
        const dialog = $('token-dialog');
        if (refused) $('token-message').textContent = 'That token was refused. Enter the API token.';
        $('token-form').onsubmit = (event) => {
          event.preventDefault();
          const token = $('token-input').value.trim();
          if (!token) return;
          localStorage.setItem(TOKEN_KEY, token);
          dialog.close();
          tokenPrompt = null;
          resolve();
        };
        dialog.showModal();
      });
    }
    return tokenPrompt;
  }

  async function api(path, params) {
    const query = new URLSearchParams(params || {}).toString();
    const token = localStorage.getItem(TOKEN_KEY);
    const headers = token ? { Authorization: 'Bearer ' + token } : {};
    const response = await fetch('api/v1/' + path + (query ? '?' + query : ''), { headers });
    if (response.status === 401) {
      await askToken(Boolean(token));
      return api(path, params);
    }
    const body = await response.json();
    if (!response.ok) throw new Error(path + ': ' + (body.error || response.statusText));
    return body;
  }

  async function fetchAll() {
    const targets = await api('targets');
    const names = targets.targets.map((target) => target.name);
    if (!names.includes(view.target)) view.target = names[0] || null;
    if (!view.target) return { targets };
    const target = view.target;
    const seconds = RANGES[view.range];
    const width = Math.max(300, $('main').clientWidth - 40);
    const step = Math.max(1, Math.ceil(seconds / width)) + 's';
    const since = view.range;
    const [series, intervals, workers, alerts] = await Promise.all([
      api('series', { target, since, step }),
      api('alerts/intervals', { target, since }),
      api('workers', { target }),
      api('alerts', { target, state: 'all', since }),
    ]);
    return { targets, series, intervals, workers, alerts };
  }

  // ---- Formatting.

  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function number(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return '–';
    const abs = Math.abs(value);
    if (digits === undefined) digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
    return value.toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }
  const percent = (value) => (value === null || value === undefined ? '–' : number(value * 100, 0) + '%');

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    seconds = Math.max(0, Math.round(seconds));
    const days = Math.floor(seconds / 86400);
    const hours = Math.floor((seconds % 86400) / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    if (days) return days + 'd ' + hours + 'h';
    if (hours) return hours + 'h ' + minutes + 'm';
    if (minutes) return minutes + 'm ' + (seconds % 60) + 's';
    return seconds + 's';
  }

  const when = (text) => (text ? new Date(text).toLocaleString() : '–');

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'text') node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // ---- Header: counts, utilization, recommendation, last poll.

  function renderSummary(target, series) {
    const counts = target.workers || {};
    const recommendation = target.recommendation;
    const utilization = recommendation && recommendation.evidence
      ? recommendation.evidence.utilization
      : lastValue(series.avg.utilization);
    const stat = (label, value, color) => element('div', { class: 'stat' }, [
      element('div', { class: 'value num' }, [
        color ? element('span', { class: 'dot', style: 'background:' + css(color) }) : null,
        String(value),
      ]),
      element('div', { class: 'label', text: label }),
    ]);
    const poll = target.last_poll;
    const pollLine = poll
      ? element('div', { class: 'muted' }, [
        'Last poll ' + when(poll.started_at) + ' ',
        element('span', {
          class: 'badge ' + (poll.outcome === 'ok' ? 'outcome-ok' : 'outcome-bad'),
          text: poll.outcome,
        }),
        poll.error ? element('span', { class: 'error', text: ' ' + poll.error }) : null,
      ])
      : element('div', { class: 'muted', text: 'No poll yet' });
    const left = element('div', {}, [
      element('h1', { text: target.name }),
      element('div', { class: 'muted', text: target.kind + ' ' + target.vast_id }),
      element('div', { class: 'stats' }, [
        stat('ready', counts.ready ?? '–', '--ready'),
        stat('starting', counts.starting ?? '–', '--starting'),
        stat('inactive', counts.inactive ?? '–', '--inactive'),
        stat('failed', counts.failed ?? '–', '--failed'),
        stat('utilization', percent(utilization)),
      ]),
      pollLine,
    ]);
    const right = element('div', { class: 'recommendation' });
    if (recommendation) {
      right.append(
        element('div', {}, [
          'Recommendation ',
          element('span', {
            class: 'badge action-' + recommendation.action,
            id: 'recommendation-action',
            text: recommendation.action.replace('_', ' '),
          }),
          ' ' + recommendation.current_workers + ' → ' + recommendation.desired_workers + ' workers',
        ]),
        element('p', { class: 'reason', text: recommendation.reason }),
      );
      if (recommendation.commands.length) {
        const text = recommendation.commands.join('\n');
        const copy = element('button', { type: 'button', text: 'Copy' });
        copy.onclick = async () => {
          try {
            await navigator.clipboard.writeText(text);
            copy.textContent = 'Copied';
          } catch (error) {
            copy.textContent = 'Select and copy';
          }
        };
        right.append(element('div', { class: 'commands' }, [element('pre', { text }), copy]));
      }
    } else {
      right.append(element('p', { class: 'muted', text: 'No recommendation yet.' }));
    }
    $('summary').replaceChildren(left, right);
  }

  function lastValue(values) {
    for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null) return values[i];
    return null;
  }

  // ---- Charts.

  function axes(unit) {
    const stroke = css('--muted');
    const grid = { stroke: css('--grid'), width: 1 };
    return [
      { stroke, grid, ticks: grid },
      { stroke, grid, ticks: grid, size: 56, values: (u, ticks) => ticks.map((v) => number(v) + (unit || '')) },
    ];
  }

  function chartSize(node) {
    return { width: Math.max(300, node.clientWidth), height: 260 };
  }

  function xRange(series) {
    return { time: true, range: () => [series.since_unix, series.until_unix] };
  }

  // The union of the firing intervals of each severity, so that many alerts firing
  // together shade the time once instead of darkening it with every layer.
  function mergedIntervals(intervals, until) {
    const bySeverity = {};
    const sorted = intervals
      .map((i) => ({ severity: i.severity, start: i.start_unix, end: i.end_unix ?? until }))
      .sort((a, b) => a.start - b.start);
    for (const interval of sorted) {
      const spans = (bySeverity[interval.severity] = bySeverity[interval.severity] || []);
      const last = spans[spans.length - 1];
      if (last && interval.start <= last.end) last.end = Math.max(last.end, interval.end);
      else spans.push({ start: interval.start, end: interval.end });
    }
    return bySeverity;
  }

  // Shades the time alerts were firing under the series, coloured by severity.
  function shadeIntervals(intervals, until) {
    const merged = mergedIntervals(intervals, until);
    return (u) => {
      const { ctx } = u;
      const { top, height } = u.bbox;
      ctx.save();
      for (const severity of ['info', 'warning', 'critical']) {
        ctx.fillStyle = css('--' + severity);
        for (const span of merged[severity] || []) {
          const start = Math.max(span.start, u.scales.x.min);
          const end = Math.min(span.end, u.scales.x.max);
          if (end < start) continue;
          const x0 = u.valToPos(start, 'x', true);
          const x1 = u.valToPos(end, 'x', true);
          ctx.fillRect(x0, top, Math.max(x1 - x0, 2), height);
        }
      }
      ctx.restore();
    };
  }

  function loadChart(series, intervals) {
    const node = $('chart-load');
    const line = (label, color, extra) => Object.assign(
      { label, stroke: css(color), width: 2, value: (u, v) => number(v) }, extra || {});
    const options = Object.assign(chartSize(node), {
      scales: { x: xRange(series), y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.1)] } },
      axes: axes(),
      series: [
        { label: 'time' },
        line('rolling load', '--load', { fill: css('--load') + '22' }),
        line('peak load', '--load', { width: 1, dash: [2, 3] }),
        line('ready perf', '--perf'),
        line('desired capacity', '--desired', { dash: [8, 5] }),
      ],
      hooks: { drawClear: [shadeIntervals(intervals.intervals, series.until_unix)] },
    });
    const data = [series.t, series.avg.load_rolling, series.max.load_rolling, series.avg.perf, series.desired_capacity];
    return draw(node, options, data, series.t.length);
  }

  function statesChart(series) {
    const node = $('chart-states');
    const classes = ['ready', 'starting', 'inactive', 'failed'];
    // Stacked: each layer is the sum of its class and those below it, drawn top first
    // so the lower layers paint over the upper ones.
    const stacks = [];
    let running = series.t.map(() => 0);
    for (const name of classes) {
      running = running.map((sum, i) => (series.avg[name][i] === null ? sum : sum + series.avg[name][i]));
      stacks.push(running);
    }
    const layers = classes.map((name, index) => ({
      label: name,
      stroke: css('--' + name),
      fill: css('--' + name),
      width: 1,
      value: (u, v, si, i) => (i === null || i === undefined ? '–' : number(series.avg[name][i])),
      index,
    })).reverse();
    const options = Object.assign(chartSize(node), {
      scales: { x: xRange(series), y: { range: (u, min, max) => [0, Math.max(1, Math.ceil((max || 0) * 1.15))] } },
      axes: axes(),
      series: [{ label: 'time' }].concat(layers),
    });
    const data = [series.t].concat(layers.map((layer) => stacks[layer.index]));
    return draw(node, options, data, series.t.length);
  }

  function draw(node, options, data, points) {
    node.replaceChildren();
    node.dataset.points = String(points);
    const chart = new uPlot(options, data, node);
    view.charts.push(chart);
    return chart;
  }

  // ---- Workers table.

  const COLUMNS = [
    { key: 'worker_id', label: 'id', value: (w) => Number(w.worker_id), show: (w) => w.worker_id },
    { key: 'status', label: 'status', value: (w) => w.status || '', show: null },
    { key: 'reliability', label: 'reliability', value: (w) => w.reliability, show: (w) => number(w.reliability, 3) },
    { key: 'perf', label: 'perf', value: (w) => w.perf, show: (w) => number(w.perf) },
    { key: 'reqs_working', label: 'reqs_working', value: (w) => w.reqs_working, show: (w) => number(w.reqs_working, 0) },
    { key: 'utilization', label: 'utilization', value: (w) => w.utilization, show: (w) => percent(w.utilization) },
    { key: 'age_seconds', label: 'age', value: (w) => w.age_seconds, show: (w) => duration(w.age_seconds) },
  ];

  function renderWorkers() {
    const { key, descending } = view.sort;
    const column = COLUMNS.find((c) => c.key === key);
    const rows = view.workers.slice().sort((a, b) => {
      const x = column.value(a);
      const y = column.value(b);
      // Missing values sort last whichever the direction.
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      const order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
    const head = element('tr', {}, COLUMNS.map((c) => {
      const th = element('th', {
        scope: 'col',
        text: c.label,
        'aria-sort': c.key === key ? (descending ? 'descending' : 'ascending') : null,
      });
      th.tabIndex = 0;
      th.onclick = () => {
        view.sort = { key: c.key, descending: c.key === key ? !descending : false };
        renderWorkers();
      };
      th.onkeydown = (event) => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          th.onclick();
        }
      };
      return th;
    }));
    const body = rows.map((w) => element('tr', { class: w.replace ? 'replace' : null, 'data-worker': w.worker_id },
      COLUMNS.map((c) => {
        if (c.key === 'status') {
          return element('td', {}, [
            element('span', { class: 'dot', style: 'background:' + css('--' + (w.class === 'unknown' ? 'inactive' : w.class)) }),
            w.status || '–',
            w.replace ? element('span', { class: 'badge action-replace', text: 'replace', style: 'margin-left:6px' }) : null,
          ]);
        }
        return element('td', { class: 'num', text: c.show(w) });
      })));
    const table = $('workers');
    table.replaceChildren(element('thead', {}, [head]), element('tbody', {}, body));
    if (!rows.length) table.append(element('caption', { class: 'muted', text: 'No workers in the latest poll.' }));
  }

  // ---- Alerts.

  function renderAlerts(alerts, since) {
    const active = alerts.filter((a) => a.state === 'firing' || a.state === 'pending');
    const recent = alerts.filter((a) => a.state === 'resolved' && a.resolved_at && Date.parse(a.resolved_at) / 1000 >= since);
    const rank = { critical: 0, warning: 1, info: 2 };
    active.sort((a, b) => (a.state === b.state ? rank[a.severity] - rank[b.severity] : a.state === 'firing' ? -1 : 1));
    recent.sort((a, b) => Date.parse(b.resolved_at) - Date.parse(a.resolved_at));
    const item = (alert) => element('div', { class: 'alert ' + alert.state, 'data-alertname': alert.alertname }, [
      element('div', { class: 'title' }, [
        element('span', { class: 'badge state-' + alert.state, text: alert.state }),
        element('span', { class: 'name', text: alert.alertname }),
        element('span', { class: 'badge sev-' + alert.severity, text: alert.severity }),
        alert.worker_id ? element('span', { class: 'muted', text: 'worker ' + alert.worker_id }) : null,
        element('span', {
          class: 'muted',
          text: alert.state === 'resolved'
            ? when(alert.fired_at) + ' – ' + when(alert.resolved_at)
            : 'since ' + when(alert.fired_at || alert.active_at),
        }),
      ]),
      Object.keys(alert.annotations || {}).length
        ? element('dl', {}, Object.entries(alert.annotations).flatMap(([k, v]) => [
          element('dt', { text: k }), element('dd', { text: v })]))
        : null,
    ]);
    const section = (title, list, empty) => [
      element('h3', { class: 'hint', text: title + ' (' + list.length + ')' }),
      list.length ? element('div', {}, list.map(item)) : element('p', { class: 'muted', text: empty }),
    ];
    $('alerts').replaceChildren(
      ...section('Active', active, 'Nothing firing or pending.'),
      ...section('Recent', recent, 'Nothing resolved in this range.'),
    );
  }

  // ---- Page.

  function renderNav(targets) {
    if (REPORT) {
      $('ranges').hidden = true;
      $('targets').replaceChildren();
      return;
    }
    $('targets').replaceChildren(...targets.map((t) => {
      const button = element('button', { type: 'button', class: t.name === view.target ? 'active' : null, text: t.name });
      button.onclick = () => select({ target: t.name });
      return button;
    }));
    for (const button of $('ranges').querySelectorAll('button')) {
      button.classList.toggle('active', button.dataset.range === view.range);
    }
  }

  function render(data) {
    const targets = data.targets.targets;
    renderNav(targets);
    const target = targets.find((t) => t.name === view.target);
    if (!target) {
      $('status').textContent = 'No targets are configured.';
      return;
    }
    for (const chart of view.charts) chart.destroy();
    view.charts = [];
    $('status').hidden = true;
    $('view').hidden = false;
    renderSummary(target, data.series);
    loadChart(data.series, data.intervals);
    statesChart(data.series);
    view.workers = data.workers.workers;
    $('workers-polled').textContent = data.workers.polled_at ? 'as of ' + when(data.workers.polled_at) : '';
    renderWorkers();
    renderAlerts(data.alerts.alerts, data.series.since_unix);
    $('updated').textContent = REPORT
      ? 'Report of ' + when(data.series.since) + ' – ' + when(data.series.until)
      : 'Updated ' + new Date().toLocaleTimeString();
    document.title = target.name + ' · vastwatch';
    document.body.dataset.rendered = target.name;
  }

  async function refresh() {
    clearTimeout(view.timer);
    let interval = 10;
    try {
      const data = REPORT || await fetchAll();
      if (REPORT) view.target = REPORT.targets.targets[0].name;
      render(data);
      const target = data.targets.targets.find((t) => t.name === view.target);
      if (target && target.poll_interval_seconds) interval = target.poll_interval_seconds;
    } catch (error) {
      $('status').hidden = false;
      $('status').className = 'error';
      $('status').textContent = 'Could not load the status: ' + error.message;
      console.error(error);
    }
    if (!REPORT) view.timer = setTimeout(refresh, Math.max(2, interval) * 1000);
  }

  function select(change) {
    Object.assign(view, change);
    const params = new URLSearchParams({ target: view.target || '', range: view.range });
    history.replaceState(null, '', '?' + params);
    refresh();
  }

  function start() {
    for (const button of $('ranges').querySelectorAll('button')) {
      button.onclick = () => select({ range: button.dataset.range });
    }
    window.addEventListener('resize', () => {
      for (const chart of view.charts) chart.setSize(chartSize(chart.root.parentNode));
    });
    refresh();
  }

  // A report inlines this script in <head>, before the elements it fills exist.
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
