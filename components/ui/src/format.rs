//! Figures as people read them, next to the exact value each `<data>` element carries.
//!
//! A figure is rendered as `<data value="RAW">shown</data>`: RAW is the API's number exactly
//! as its JSON wrote it (the browser tests compare it with the API's answer), the text is
//! rounded for reading.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde_json::Value;

/// Minutes as the largest unit that keeps the figure readable: `45 s`, `12.5 min`, `3.2 h`,
/// `4.1 days`.
pub(crate) fn minutes(mins: f64) -> String {
    if mins < 1.0 {
        format!("{:.0} s", mins * 60.0)
    } else if mins < 60.0 {
        format!("{mins:.1} min")
    } else if mins < 24.0 * 60.0 {
        format!("{:.1} h", mins / 60.0)
    } else {
        format!("{:.1} days", mins / (24.0 * 60.0))
    }
}

/// A 0–1 ratio as a percentage.
pub(crate) fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}

/// How a figure of some unit reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Unit {
    Minutes,
    PerDay,
    Ratio,
    Count,
}

impl Unit {
    /// The API's `unit` of a summary metric.
    pub(crate) fn of_api(unit: &str) -> Unit {
        match unit {
            "minutes" => Unit::Minutes,
            "per_day" => Unit::PerDay,
            "ratio" => Unit::Ratio,
            _ => Unit::Count,
        }
    }

    pub(crate) fn show(self, value: f64) -> String {
        match self {
            Unit::Minutes => minutes(value),
            Unit::PerDay => format!("{value:.2} per day"),
            Unit::Ratio => percent(value),
            Unit::Count => format!("{value}"),
        }
    }
}

/// A JSON number as `<data>`: its exact text as the value, shown in `unit`; a dash for null.
pub(crate) fn figure(value: &Value, unit: Unit) -> Markup {
    match value.as_f64() {
        Some(number) => html! { data value=(value.to_string()) { (unit.show(number)) } },
        None => html! { data value="" { "—" } },
    }
}

/// An RFC 3339 instant as `YYYY-MM-DD HH:MM UTC` in a `<time>`; a dash without one.
pub(crate) fn instant(value: &Value) -> Markup {
    match value.as_str().and_then(parse_instant) {
        Some(at) => html! {
            time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) }
        },
        None => html! { "—" },
    }
}

pub(crate) fn parse_instant(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// The minutes between two RFC 3339 instants, when both are there and in order.
pub(crate) fn minutes_between(from: &Value, to: &Value) -> Option<f64> {
    let from = parse_instant(from.as_str()?)?;
    let to = parse_instant(to.as_str()?)?;
    let micros = (to - from).num_microseconds()?;
    (micros >= 0).then(|| micros as f64 / 60_000_000.0)
}

/// The first 12 characters of a sha or digest (the full one in its `title`).
pub(crate) fn short(hash: &str) -> String {
    let hex = hash.split_once(':').map_or(hash, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_read_in_the_largest_sensible_unit() {
        assert_eq!(minutes(0.5), "30 s");
        assert_eq!(minutes(12.25), "12.2 min");
        assert_eq!(minutes(150.0), "2.5 h");
        assert_eq!(minutes(4.0 * 1440.0), "4.0 days");
    }

    #[test]
    fn a_figure_keeps_the_exact_json_number() {
        let shown = figure(&serde_json::json!(0.1234567890123), Unit::Ratio).into_string();
        assert_eq!(shown, "<data value=\"0.1234567890123\">12.3 %</data>");
        assert_eq!(
            figure(&Value::Null, Unit::Ratio).into_string(),
            "<data value=\"\">—</data>"
        );
    }
}
