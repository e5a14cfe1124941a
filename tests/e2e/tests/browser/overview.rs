//! The overview's figures are the API's: for each range and filter, every tile's value,
//! previous value, count and level, and every chart table's cells, read from the DOM the
//! browser built, equal what `/api/v1/dora/*` answers for the range the page says it used
//! (`#range`) and the same filters. Numbers are compared as parsed `f64`, exactly.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::history::History;
use crate::site::{form, sign_in};

/// The five metrics: the summary's key, which is also the tile's id (`tile-{key}`).
const METRICS: [&str; 5] = [
    "lead_time",
    "deployment_frequency",
    "change_failure_rate",
    "recovery_time",
    "rework_rate",
];

/// Each weekly chart: its id (`chart-{id}`), the API route of its series, and the series'
/// fields in the order of the table's columns.
const CHARTS: [(&str, &str, &[&str]); 5] = [
    (
        "lead_time",
        "lead-time",
        &["count", "median_mins", "p90_mins"],
    ),
    ("deployments", "deployment-frequency", &["count"]),
    (
        "change_failure_rate",
        "change-failure-rate",
        &["deployments", "failed", "rate"],
    ),
    (
        "recovery_time",
        "recovery-time",
        &["count", "median_mins", "p90_mins"],
    ),
    (
        "rework_rate",
        "rework-rate",
        &["deployments", "rework", "rate"],
    ),
];

/// The lead-time stages, each a row of `chart-stages` (`data-stage`).
const STAGES: [&str; 3] = [
    "commit_to_build",
    "build_to_deploy_start",
    "deploy_start_to_finish",
];

/// Reads the overview in one go: `#range`, the tiles and the chart tables, each figure as
/// its `<data value>` text (`null` where there is none).
const READ_OVERVIEW: &str = r#"
const value = (scope, css) => {
  let data = scope.querySelector(css);
  // The class may be on the <data> or on what wraps it.
  if (data && data.tagName !== 'DATA') data = data.querySelector('data');
  return data && data.hasAttribute('value') ? data.getAttribute('value') : null;
};
const range = document.querySelector('p#range');
const tiles = {};
for (const id of arguments[0]) {
  const tile = document.querySelector('section.tile#tile-' + id);
  tiles[id] = tile && {
    value: value(tile, '.value'),
    previous: value(tile, '.previous'),
    count: value(tile, '.count'),
    level: tile.querySelector('.level') && tile.querySelector('.level').textContent,
  };
}
const charts = {};
for (const id of arguments[1]) {
  const chart = document.querySelector('figure.chart#chart-' + id);
  charts[id] = chart && {
    svg: chart.querySelector('svg') !== null,
    rows: Array.from(chart.querySelectorAll('table tbody tr')).map(row => ({
      period: row.getAttribute('data-period'),
      stage: row.getAttribute('data-stage'),
      cells: Array.from(row.querySelectorAll('td')).map(cell => value(cell, 'data')),
    })),
  };
}
return {
  start: range && range.getAttribute('data-start'),
  end: range && range.getAttribute('data-end'),
  tiles,
  charts,
};
"#;

#[test]
fn every_tile_and_chart_table_equals_the_api_for_the_same_range_and_filters() {
    let history = History::post();
    // Not a comparison of nulls: the last 30 days have every metric, the 30 before some.
    let last_30_days = history.api(&format!(
        "/api/v1/dora/summary?{}",
        form(&[
            ("start", &history.ago(30, 0)),
            ("end", &crate::history::rfc3339(Utc::now()))
        ])
    ));
    for metric in METRICS {
        assert!(
            !last_30_days[metric]["value"].is_null(),
            "{metric} in the last 30 days: {last_30_days}"
        );
    }
    for metric in ["lead_time", "deployment_frequency"] {
        assert!(
            !last_30_days[metric]["previous_value"].is_null(),
            "{metric} in the 30 days before: {last_30_days}"
        );
    }
    for stage in STAGES {
        assert!(
            last_30_days["stages"][stage]["count"].as_u64() > Some(0),
            "the {stage} stage in the last 30 days: {last_30_days}"
        );
    }
    let browser = Browser::open("overview", history.app.host.addr());
    sign_in(&browser, &history.reader);
    let today = history.now.date_naive();
    // (name, query, the days it covers): the default, filters, dates, a year.
    let views = [
        ("default", String::new(), Some(30)),
        (
            "production-90-days",
            "days=90&environment=production".to_owned(),
            Some(90),
        ),
        (
            "api-dates",
            format!(
                "start={}&end={today}&app_id=api",
                today - Duration::days(35)
            ),
            None,
        ),
        (
            "web-production-year",
            "days=365&project_id=shop&app_id=web&environment=production".to_owned(),
            Some(365),
        ),
    ];
    let mut differences = Vec::new();
    for (name, query, days) in &views {
        browser.goto(&format!("/ui/?{query}"));
        let page = read_overview(&browser);
        let start = instant(&page["start"], "#range data-start");
        let end = instant(&page["end"], "#range data-end");
        let view = format!("/ui/?{query}");
        match days {
            Some(days) => {
                let length = end - start;
                if (length - Duration::days(*days)).num_hours().abs() > 24 {
                    differences.push(format!("{view}: #range {start} – {end} is not {days} days"));
                }
                if (end - history.now).num_hours().abs() > 24 {
                    differences.push(format!("{view}: #range ends {end}, not about now"));
                }
            }
            // The dates' whole days and no more: from the start's midnight to the end's last
            // instant (the API's end is inclusive).
            None => {
                let first = (today - Duration::days(35))
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
                    .and_utc();
                let last = today
                    .and_hms_micro_opt(23, 59, 59, 999_999)
                    .unwrap()
                    .and_utc();
                if (start, end) != (first, last) {
                    differences.push(format!(
                        "{view}: #range {start} – {end}, the dates asked for are {first} – {last}"
                    ));
                }
            }
        }
        let filters: String = query
            .split('&')
            .filter(|pair| {
                ["project_id=", "app_id=", "environment="]
                    .iter()
                    .any(|name| pair.starts_with(name))
            })
            .map(|pair| format!("&{pair}"))
            .collect();
        let api_query = format!(
            "{}{filters}",
            form(&[
                ("start", page["start"].as_str().unwrap()),
                ("end", page["end"].as_str().unwrap())
            ])
        );
        let summary = history.api(&format!("/api/v1/dora/summary?{api_query}"));
        compare_tiles(&view, &page["tiles"], &summary, &mut differences);
        for (id, route, fields) in CHARTS {
            let answer = history.api(&format!("/api/v1/dora/{route}?{api_query}&interval=week"));
            compare_chart(
                &view,
                id,
                &page["charts"][id],
                &answer["series"],
                fields,
                &mut differences,
            );
        }
        compare_stages(
            &view,
            &page["charts"]["stages"],
            &summary["stages"],
            &mut differences,
        );
        browser.screenshot(name, 1440, false);
    }
    assert!(
        differences.is_empty(),
        "the overview differs from the API:\n{}",
        differences.join("\n")
    );
}

fn read_overview(browser: &Browser) -> Value {
    let mut charts: Vec<&str> = CHARTS.iter().map(|(id, ..)| *id).collect();
    charts.push("stages");
    browser.script(READ_OVERVIEW, &[json!(METRICS), json!(charts)])
}

fn compare_tiles(view: &str, tiles: &Value, summary: &Value, differences: &mut Vec<String>) {
    for metric in METRICS {
        let tile = &tiles[metric];
        if tile.is_null() {
            differences.push(format!("{view}: no section.tile#tile-{metric}"));
            continue;
        }
        let api = &summary[metric];
        for (on_page, in_api) in [
            ("value", "value"),
            ("previous", "previous_value"),
            ("count", "count"),
        ] {
            compare(
                &format!("{view} tile {metric} data.{on_page}"),
                &tile[on_page],
                &api[in_api],
                differences,
            );
        }
        let level = tile["level"].as_str().unwrap_or_default();
        let expected = match api["dora_level"].as_str() {
            Some(name) => format!("{name} ({})", summary["benchmark"].as_str().unwrap()),
            None => "no level".to_owned(),
        };
        if !level.contains(&expected) {
            differences.push(format!(
                "{view} tile {metric} .level: {level:?}, the API's is {expected:?}"
            ));
        }
    }
}

fn compare_chart(
    view: &str,
    id: &str,
    chart: &Value,
    series: &Value,
    fields: &[&str],
    differences: &mut Vec<String>,
) {
    if chart.is_null() {
        differences.push(format!("{view}: no figure.chart#chart-{id}"));
        return;
    }
    if chart["svg"] != true {
        differences.push(format!("{view} chart {id}: no <svg>"));
    }
    let rows = chart["rows"].as_array().unwrap();
    let periods = series.as_array().unwrap();
    let row_periods: Vec<Option<DateTime<Utc>>> = rows
        .iter()
        .map(|row| row["period"].as_str().and_then(parse_instant))
        .collect();
    let api_periods: Vec<Option<DateTime<Utc>>> = periods
        .iter()
        .map(|period| period["period_start"].as_str().and_then(parse_instant))
        .collect();
    if row_periods != api_periods {
        differences.push(format!(
            "{view} chart {id}: rows for weeks {row_periods:?}, the API's are {api_periods:?}"
        ));
        return;
    }
    for (row, period) in rows.iter().zip(periods) {
        let cells = row["cells"].as_array().unwrap();
        if cells.len() != fields.len() {
            differences.push(format!(
                "{view} chart {id} week {}: {} cells, expected {fields:?}",
                row["period"],
                cells.len()
            ));
            continue;
        }
        for (cell, field) in cells.iter().zip(fields) {
            let what = format!("{view} chart {id} week {} {field}", row["period"]);
            if period.get(*field).is_none() {
                differences.push(format!("{what}: the API's series has no {field}"));
                continue;
            }
            compare(&what, cell, &period[*field], differences);
        }
    }
}

fn compare_stages(view: &str, chart: &Value, stages: &Value, differences: &mut Vec<String>) {
    if chart.is_null() {
        differences.push(format!("{view}: no figure.chart#chart-stages"));
        return;
    }
    for stage in STAGES {
        let row = chart["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["stage"] == stage);
        let Some(row) = row else {
            differences.push(format!("{view} chart stages: no row data-stage={stage}"));
            continue;
        };
        for (cell, field) in row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .zip(["count", "median_mins"])
        {
            compare(
                &format!("{view} chart stages {stage} {field}"),
                cell,
                &stages[stage][field],
                differences,
            );
        }
    }
}

/// Notes a difference when the page's raw `<data value>` (a string; none, empty or `-` for
/// no figure) is not the API's number (or `null`), compared as `f64` exactly.
fn compare(what: &str, on_page: &Value, in_api: &Value, differences: &mut Vec<String>) {
    let page_number = match on_page.as_str() {
        None | Some("" | "-") => None,
        Some(raw) => match raw.parse::<f64>() {
            Ok(number) => Some(number),
            Err(_) => {
                differences.push(format!("{what}: {raw:?} is not a number"));
                return;
            }
        },
    };
    let api_number = in_api.as_f64();
    if page_number != api_number {
        differences.push(format!("{what}: page {on_page}, API {in_api}"));
    }
}

fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|instant| instant.with_timezone(&Utc))
}

fn instant(value: &Value, what: &str) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(parse_instant)
        .unwrap_or_else(|| panic!("{what} is not an RFC 3339 instant: {value}"))
}
