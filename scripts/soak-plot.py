"""Plots a soak run (scripts/soak.sh) as an SVG: the daemon's RSS over time, and the
database's size (file + WAL) beside the growth docs/operations.md predicts for the run's
workers and poll interval. Prints the figures docs/reliability.md quotes: RSS at points
of the run, its slope over the last third, and the database's growth per hour.
Standard library only.

Usage: soak-plot.py SAMPLES_CSV OUT_SVG [PREDICTED_BYTES_PER_HOUR]"""

import csv
import sys

WIDTH, PANEL_HEIGHT, LEFT, RIGHT, TOP, GAP = 760, 220, 70, 20, 30, 70


def panel(title, unit, series, top, x_max):
    """One chart: `series` is a list of (label, colour, dashed, [(x, y)])."""
    top_value = max(y for _, _, _, points in series for _, y in points) or 1
    # Five gridlines at a round step: 1, 2 or 5 times a power of ten.
    step = next(
        base * 10**power
        for power in range(-2, 12)
        for base in (1, 2, 5)
        if base * 10**power * 5 >= top_value
    )
    y_max = step * 5
    inner = WIDTH - LEFT - RIGHT

    def px(x):
        return LEFT + inner * x / x_max

    def py(y):
        return top + PANEL_HEIGHT - PANEL_HEIGHT * y / y_max

    out = [f'<text x="{LEFT}" y="{top - 10}" font-weight="bold">{title}</text>']
    out.append(
        f'<rect x="{LEFT}" y="{top}" width="{inner}" height="{PANEL_HEIGHT}" '
        'fill="none" stroke="#888"/>'
    )
    for i in range(6):
        y = y_max * i / 5
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + inner}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            'stroke="#ddd"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>'
        )
    step = 10 if x_max > 20 else 1
    for minute in range(0, int(x_max) + 1, step):
        out.append(
            f'<text x="{px(minute):.1f}" y="{top + PANEL_HEIGHT + 16}" '
            f'text-anchor="middle">{minute}</text>'
        )
    out.append(
        f'<text x="{LEFT + inner / 2}" y="{top + PANEL_HEIGHT + 34}" '
        'text-anchor="middle">minutes</text>'
    )
    out.append(
        f'<text transform="translate(16 {top + PANEL_HEIGHT / 2}) rotate(-90)" '
        f'text-anchor="middle">{unit}</text>'
    )
    for index, (label, colour, dashed, points) in enumerate(series):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>'
        )
        out.append(
            f'<text x="{LEFT + 10}" y="{top + 18 + 16 * index}" fill="{colour}">{label}</text>'
        )
    return out


def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den


def at_minute(minutes, values, minute):
    """The value of the first sample at or after `minute`."""
    return next(v for m, v in zip(minutes, values) if m >= minute)


def report(minutes, rss, db, rows):
    end = minutes[-1]
    print(f"samples: {len(rows)} over {end:.1f} min")
    for minute in (0, 5, 15, 30, 40, 50, end):
        if minute <= end:
            print(f"RSS at {minute:.0f} min: {at_minute(minutes, rss, minute):.1f} MiB")
    print(f"RSS peak: {max(rss):.1f} MiB")
    last_third = [(m / 60, r) for m, r in zip(minutes, rss) if m >= end * 2 / 3]
    print(f"RSS slope over the last third: {slope(last_third):+.2f} MiB/h")
    print(f"database + WAL at the end: {db[-1]:.1f} MB")
    print(f"database growth: {slope([(m / 60, d) for m, d in zip(minutes, db)]):.1f} MB/h")
    last = rows[-1]
    for key in ("threads", "open_files", "sim_rss_kb"):
        values = [int(row[key]) for row in rows]
        print(f"{key}: {min(values)}..{max(values)}, at the end {last[key]}")


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    minutes = [int(row["elapsed_s"]) / 60 for row in rows]
    rss = [int(row["rss_kb"]) / 1024 for row in rows]
    db = [(int(row["db_bytes"]) + int(row["wal_bytes"])) / 1e6 for row in rows]
    x_max = max(minutes)
    report(minutes, rss, db, rows)
    series = [("database + WAL, measured", "#1f77b4", False, list(zip(minutes, db)))]
    if len(sys.argv) > 3:
        per_minute = float(sys.argv[3]) / 60 / 1e6
        series.append(
            (
                "predicted by docs/operations.md",
                "#d62728",
                True,
                [(0, 0), (x_max, per_minute * x_max)],
            )
        )
    height = TOP + 2 * PANEL_HEIGHT + GAP + 60
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
    ]
    svg += panel(
        "vastwatch run: resident memory (VmRSS)",
        "MiB",
        [("RSS", "#2ca02c", False, list(zip(minutes, rss)))],
        TOP,
        x_max,
    )
    svg += panel("Database size", "MB", series, TOP + PANEL_HEIGHT + GAP, x_max)
    svg.append("</svg>")
    with open(sys.argv[2], "w") as out:
        out.write("\n".join(svg) + "\n")


main()
