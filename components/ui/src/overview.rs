//! The organization overview: the five DORA metrics as tiles, against the previous period,
//! and their weekly charts, each with its numbers in a table.
//!
//! Every figure is an API answer for the same range and filters: `/dora/summary` for the
//! tiles and the stages, `/dora/lead-time`, `/dora/deployment-frequency`,
//! `/dora/change-failure-rate`, `/dora/recovery-time` and `/dora/rework-rate` with
//! `interval=week` for the charts.

use chrono::{DateTime, Days, NaiveDate, Utc};
use maud::{Markup, html};
use serde_json::Value;

use crate::Rendered;
use crate::api::{Api, ApiFailure, param, query};
use crate::charts::{self, Chart, Point};
use crate::format::{self, Unit};
use crate::layout::Section;

/// The ranges the picker offers, in days.
const RANGES: [u64; 3] = [30, 90, 365];

/// The days shown: from `start` to the end of `last`, UTC.
struct Range {
    start: NaiveDate,
    last: NaiveDate,
}

impl Range {
    /// `start`/`end` dates when both are given, else the last `days` (30 by default) up to
    /// and including today.
    fn of(query: &[(String, String)], today: NaiveDate) -> Result<Range, ApiFailure> {
        let get = |name: &str| param(query, name).filter(|v| !v.is_empty());
        let date = |name: &str, value: &str| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| ApiFailure {
                status: 400,
                detail: format!("{name} must be a date, YYYY-MM-DD (got {value:?})"),
            })
        };
        if let (Some(start), Some(end)) = (get("start"), get("end")) {
            let (start, last) = (date("start", start)?, date("end", end)?);
            if start > last {
                return Err(ApiFailure {
                    status: 400,
                    detail: "start must not be after end".to_owned(),
                });
            }
            return Ok(Range { start, last });
        }
        let days = match get("days") {
            None => 30,
            Some(days) => days
                .parse::<u64>()
                .ok()
                .filter(|d| RANGES.contains(d))
                .ok_or_else(|| ApiFailure {
                    status: 400,
                    detail: format!("days must be one of 30, 90 or 365 (got {days:?})"),
                })?,
        };
        let start = today
            .checked_sub_days(Days::new(days - 1))
            .unwrap_or(NaiveDate::MIN);
        Ok(Range { start, last: today })
    }

    fn start_rfc3339(&self) -> String {
        format!("{}T00:00:00Z", self.start.format("%Y-%m-%d"))
    }

    /// The last microsecond of the last day: the API's range is inclusive at both ends, and
    /// a deployment at the next midnight belongs to the next day.
    fn end_rfc3339(&self) -> String {
        format!("{}T23:59:59.999999Z", self.last.format("%Y-%m-%d"))
    }
}

/// The filters a page passes on to every query (`org_id` goes with every read, `Api`).
const FILTERS: [&str; 3] = ["project_id", "app_id", "environment"];

pub(crate) fn page(
    api: &Api<'_>,
    params: &[(String, String)],
    now: DateTime<Utc>,
) -> Result<Rendered, ApiFailure> {
    let range = Range::of(params, now.date_naive())?;
    let get = |name: &str| param(params, name);
    let (start, end) = (range.start_rfc3339(), range.end_rfc3339());
    let mut pairs: Vec<(&str, Option<&str>)> =
        vec![("start", Some(start.as_str())), ("end", Some(end.as_str()))];
    pairs.extend(FILTERS.iter().map(|name| (*name, get(name))));
    let base = query(&pairs);
    let weekly = |path: &str, extra: &str| api.get(&format!("{path}{base}&interval=week{extra}"));
    let summary = api.get(&format!("/dora/summary{base}"))?;
    let lead_time = weekly("/dora/lead-time", "&limit=1")?;
    let frequency = weekly("/dora/deployment-frequency", "")?;
    let change_failure = weekly("/dora/change-failure-rate", "")?;
    let recovery = weekly("/dora/recovery-time", "")?;
    let rework = weekly("/dora/rework-rate", "")?;

    let body = html! {
        (filters_form(params))
        p #range data-start=(start) data-end=(end) {
            "From " (range.start.format("%Y-%m-%d")) " to " (range.last.format("%Y-%m-%d")) " (UTC), against the "
            (summary["previous_start_time"].as_str().unwrap_or("").get(..10).unwrap_or("")) " – "
            (summary["previous_end_time"].as_str().unwrap_or("").get(..10).unwrap_or(""))
            " period before. Lead time is per " (summary["unit"].as_str().unwrap_or("commit")) "; levels by the "
            (summary["benchmark"].as_str().unwrap_or("")) " State of DevOps report."
        }
        section aria-labelledby="metrics" {
            h2 #metrics { "DORA metrics" }
            div.tiles {
                (tile(&summary, "lead_time", "Lead time for changes", if summary["unit"] == "deployment" { "deployments" } else { "commits" }))
                (tile(&summary, "deployment_frequency", "Deployment frequency", "deployments"))
                (tile(&summary, "change_failure_rate", "Change failure rate", "deployments"))
                (tile(&summary, "recovery_time", "Failed deployment recovery time", "failures recovered"))
                (tile(&summary, "rework_rate", "Deployment rework rate", "deployments"))
            }
            @if let Some(open) = summary["open_failures"].as_u64().filter(|n| *n > 0) {
                p.error { (open) " change failure(s) still open." }
            }
        }
        section aria-labelledby="weekly" {
            h2 #weekly { "Week by week" }
            div.charts {
                (durations_chart("lead_time", "Lead time: weekly median, band to p90", &lead_time))
                (count_chart(&frequency))
                (rate_chart("change_failure_rate", "Change failure rate per week", "failed", &change_failure))
                (durations_chart("recovery_time", "Recovery time: weekly median, band to p90", &recovery))
                (rate_chart("rework_rate", "Rework rate per week", "rework", &rework))
                (stages_chart(&summary))
            }
        }
    };
    Ok(Rendered {
        title: "Overview".to_owned(),
        section: Section::Overview,
        body,
    })
}

fn filters_form(params: &[(String, String)]) -> Markup {
    let get = |name: &str| param(params, name).unwrap_or_default().to_owned();
    let days = get("days");
    html! {
        form.filters method="get" action="/ui/" {
            label {
                "Range"
                select name="days" {
                    @for d in RANGES {
                        @let value = d.to_string();
                        option value=(value) selected[days == value || (days.is_empty() && d == 30)] { "Last " (d) " days" }
                    }
                }
            }
            label { "From (date)" input type="date" name="start" value=(get("start")); }
            label { "To (date)" input type="date" name="end" value=(get("end")); }
            label { "Project" input type="text" name="project_id" value=(get("project_id")) size="12"; }
            label { "App" input type="text" name="app_id" value=(get("app_id")) size="12"; }
            label { "Environment" input type="text" name="environment" value=(get("environment")) size="12"; }
            @let org = get("org_id");
            @if !org.is_empty() {
                input type="hidden" name="org_id" value=(org);
            }
            button type="submit" { "Apply" }
        }
    }
}

/// A metric's tile: value, level in words with its year, previous value and change.
fn tile(summary: &Value, metric: &str, name: &str, counted: &str) -> Markup {
    let figures = &summary[metric];
    let unit = Unit::of_api(figures["unit"].as_str().unwrap_or(""));
    let benchmark = summary["benchmark"].as_str().unwrap_or("");
    let standing = match (
        figures["dora_level"].as_str(),
        figures["dora_bucket"].as_str(),
    ) {
        (Some(level), _) => format!("{level} ({benchmark})"),
        (None, Some(bucket)) => format!("{bucket} ({benchmark} quick check)"),
        (None, None) => "no level".to_owned(),
    };
    let change = &figures["change_percent"];
    html! {
        section.tile #{"tile-" (metric)} aria-labelledby={"tile-" (metric) "-name"} {
            h3 #{"tile-" (metric) "-name"} { (name) }
            span.value { (format::figure(&figures["value"], unit)) }
            p { "Level: " span.level { (standing) } }
            p {
                "Previous period: " span.previous { (format::figure(&figures["previous_value"], unit)) }
                @if let Some(percent) = change.as_f64() {
                    " (" data.change value=(change.to_string()) { (format!("{percent:+.1} %")) } ")"
                }
            }
            p { data.count value=(figures["count"].to_string()) { (figures["count"].to_string()) } " " (counted) }
        }
    }
}

/// The week a period starts, as an axis label.
fn week_label(period: &Value) -> String {
    period["period_start"]
        .as_str()
        .and_then(|s| s.get(5..10))
        .unwrap_or("?")
        .to_owned()
}

fn series(answer: &Value) -> &[Value] {
    answer["series"].as_array().map_or(&[], Vec::as_slice)
}

/// A table cell holding one figure.
fn cell(value: &Value, unit: Unit) -> Markup {
    html! { td.num { (format::figure(value, unit)) } }
}

/// One column of a weekly table: its header, the series' field, how it reads.
struct Column<'a> {
    header: &'a str,
    field: &'a str,
    unit: Unit,
}

/// A weekly chart: `chart` drawn from `points`, and its numbers, a row per period of the
/// API's series (`data-period`), in `columns`.
fn weekly_chart(
    id: &str,
    caption: &str,
    chart: &Chart<'_>,
    y_unit: &str,
    periods: &[Value],
    columns: &[Column<'_>],
) -> Markup {
    let svg = charts::svg(chart, caption, y_unit);
    html! {
        figure.chart #{"chart-" (id)} {
            figcaption { (caption) }
            (maud::PreEscaped(svg))
            div.table-wrap {
                table {
                    thead {
                        tr {
                            th scope="col" { "Week of" }
                            @for column in columns { th.num scope="col" { (column.header) } }
                        }
                    }
                    tbody {
                        @for p in periods {
                            @let start = p["period_start"].as_str().unwrap_or("");
                            tr data-period=(start) {
                                th scope="row" { (start.get(..10).unwrap_or("")) }
                                @for column in columns { (cell(&p[column.field], column.unit)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Each period's `field` as a point, scaled.
fn points(periods: &[Value], field: &str, scale: f64, upper: Option<&str>) -> Vec<Point> {
    periods
        .iter()
        .map(|p| Point {
            label: week_label(p),
            value: p[field].as_f64().map(|v| v * scale),
            upper: upper.and_then(|u| p[u].as_f64()).map(|v| v * scale),
        })
        .collect()
}

/// Durations (lead time, recovery time): the weekly median in hours with a band to the p90.
fn durations_chart(id: &str, caption: &str, answer: &Value) -> Markup {
    let periods = series(answer);
    let points = points(periods, "median_mins", 1.0 / 60.0, Some("p90_mins"));
    let columns = [
        Column {
            header: "Count",
            field: "count",
            unit: Unit::Count,
        },
        Column {
            header: "Median",
            field: "median_mins",
            unit: Unit::Minutes,
        },
        Column {
            header: "p90",
            field: "p90_mins",
            unit: Unit::Minutes,
        },
    ];
    weekly_chart(
        id,
        caption,
        &Chart::Band(&points),
        "hours",
        periods,
        &columns,
    )
}

fn count_chart(answer: &Value) -> Markup {
    let periods = series(answer);
    let points = points(periods, "count", 1.0, None);
    let columns = [Column {
        header: "Deployments",
        field: "count",
        unit: Unit::Count,
    }];
    let caption = "Deployments per week";
    weekly_chart(
        "deployments",
        caption,
        &Chart::Bars(&points),
        "deployments",
        periods,
        &columns,
    )
}

/// A rate (change failure, rework) per week, as a percentage.
fn rate_chart(id: &str, caption: &str, counted: &str, answer: &Value) -> Markup {
    let periods = series(answer);
    let points = points(periods, "rate", 100.0, None);
    let columns = [
        Column {
            header: "Deployments",
            field: "deployments",
            unit: Unit::Count,
        },
        Column {
            header: counted,
            field: counted,
            unit: Unit::Count,
        },
        Column {
            header: "Rate",
            field: "rate",
            unit: Unit::Ratio,
        },
    ];
    weekly_chart(id, caption, &Chart::Bars(&points), "%", periods, &columns)
}

/// The summary's stages (per commit) as one stacked bar of their medians.
fn stages_chart(summary: &Value) -> Markup {
    let stages = [
        ("commit_to_build", "Commit → build"),
        ("build_to_deploy_start", "Build → deploy start"),
        ("deploy_start_to_finish", "Deploy start → finish"),
    ];
    let caption = "Lead time stages (medians)";
    let figures = &summary["stages"];
    let parts: Vec<(&str, f64)> = stages
        .iter()
        .map(|(key, name)| (*name, figures[key]["median_mins"].as_f64().unwrap_or(0.0)))
        .collect();
    html! {
        figure.chart #chart-stages {
            figcaption { (caption) }
            @if figures.is_null() {
                p.note { "Stages split lead times per commit: they show when the lead time is per commit." }
            } @else {
                (maud::PreEscaped(charts::svg(&Chart::Stacked(&parts), caption, "minutes")))
                div.table-wrap {
                    table {
                        thead { tr { th scope="col" { "Stage" } th.num scope="col" { "Commits" } th.num scope="col" { "Median" } } }
                        tbody {
                            @for (key, name) in stages {
                                tr data-stage=(key) {
                                    th scope="row" { (name) }
                                    (cell(&figures[key]["count"], Unit::Count))
                                    (cell(&figures[key]["median_mins"], Unit::Minutes))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_last_30_days_end_with_today() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let range = Range::of(&[], today).unwrap();
        assert_eq!(range.start_rfc3339(), "2026-11-08T00:00:00Z");
        assert_eq!(range.end_rfc3339(), "2026-12-07T23:59:59.999999Z");
        let range = Range::of(
            &params(&[("start", "2026-03-01"), ("end", "2026-03-31")]),
            today,
        )
        .unwrap();
        assert_eq!(range.end_rfc3339(), "2026-03-31T23:59:59.999999Z");
    }

    #[test]
    fn a_bad_range_is_a_400_naming_it() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        for bad in [
            params(&[("days", "7")]),
            params(&[("start", "2026-13-01"), ("end", "2026-12-01")]),
            params(&[("start", "2026-12-02"), ("end", "2026-12-01")]),
        ] {
            let failure = Range::of(&bad, today).err().unwrap();
            assert_eq!(failure.status, 400, "{bad:?}");
        }
    }
}
