//! Rows, targets, the printed table and the JSON file.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::load::Measurement;

/// How a row was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Real HTTP against the host (or `--base-url`).
    Http,
    /// cd-core's handler on rusqlite in this process: the baseline.
    InProcess,
    /// `Host::handle`: the host without sockets.
    InMemory,
    /// Not a load: a file size.
    File,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::InProcess => "in-process",
            Via::InMemory => "in-memory",
            Via::File => "file",
        }
    }
}

/// A target from issue 6, checked on one row.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is promised, e.g. `≥ 0.50× baseline`.
    pub promise: String,
    /// The measured figure, formatted, when it is not already a column of the row.
    pub measured: Option<String>,
    /// `None`: could not be checked in this run (no baseline, a failed measurement).
    pub pass: Option<bool>,
    /// A figure worth a line of its own that nothing promises (printed as `info`, not `n/a`).
    pub note: bool,
}

impl Target {
    /// `measured ≤ limit` (or `≥` when `at_least`); NaN is "not checked".
    pub fn check(promise: impl Into<String>, measured: f64, limit: f64, at_least: bool) -> Target {
        Target {
            promise: promise.into(),
            measured: None,
            pass: (!measured.is_nan()).then_some(if at_least {
                measured >= limit
            } else {
                measured <= limit
            }),
            note: false,
        }
    }

    /// A figure derived from other rows, shown in the target column without a verdict.
    pub fn note(what: impl Into<String>, measured: String) -> Target {
        Target {
            promise: what.into(),
            measured: Some(measured),
            pass: None,
            note: true,
        }
    }

    pub fn showing(mut self, measured: String) -> Target {
        self.measured = Some(measured);
        self
    }

    fn verdict(&self) -> &'static str {
        if self.note {
            return "info";
        }
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub via: Via,
    /// Concurrent clients (HTTP, in-memory) or threads (in-process).
    pub clients: Option<usize>,
    pub measurement: Option<Measurement>,
    /// The in-process baseline's rate this row is compared with.
    pub baseline_rps: Option<f64>,
    /// A non-load figure (a file size).
    pub value: Option<String>,
    pub targets: Vec<Target>,
    /// `(records in the database, rows the query reads)`, for data-size scenarios.
    pub records: Option<(u64, u64)>,
    /// The scenario's response size in bytes, where it was measured.
    pub response_bytes: Option<usize>,
}

impl Row {
    pub fn load(
        scenario: impl Into<String>,
        via: Via,
        clients: usize,
        measurement: Measurement,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            via,
            clients: Some(clients),
            measurement: Some(measurement),
            baseline_rps: None,
            value: None,
            targets: Vec::new(),
            records: None,
            response_bytes: None,
        }
    }

    /// A row of one figure, not a load (a file size, a one-off timing).
    pub fn value(scenario: impl Into<String>, via: Via, value: String) -> Row {
        Row {
            scenario: scenario.into(),
            via,
            clients: None,
            measurement: None,
            baseline_rps: None,
            value: Some(value),
            targets: Vec::new(),
            records: None,
            response_bytes: None,
        }
    }

    pub fn rps(&self) -> f64 {
        self.measurement.as_ref().map_or(f64::NAN, Measurement::rps)
    }

    pub fn p50_ms(&self) -> f64 {
        self.measurement
            .as_ref()
            .map_or(f64::NAN, Measurement::p50_ms)
    }

    pub fn p99_ms(&self) -> f64 {
        self.measurement
            .as_ref()
            .map_or(f64::NAN, Measurement::p99_ms)
    }

    /// This row's rate over its baseline's.
    pub fn ratio(&self) -> f64 {
        self.baseline_rps.map_or(f64::NAN, |b| self.rps() / b)
    }

    fn label(&self) -> String {
        match self.via {
            Via::Http | Via::File => self.scenario.clone(),
            via => format!("{} [{}]", self.scenario, via.as_str()),
        }
    }
}

fn number(value: f64, decimals: usize) -> String {
    if value.is_nan() {
        "-".to_owned()
    } else {
        format!("{value:.decimals$}")
    }
}

/// The table, one line per row and per extra target.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let header = [
        "scenario", "clients", "req/s", "p50 ms", "p99 ms", "baseline", "ratio", "target", "",
    ];
    let errors = |row: &Row| {
        row.measurement
            .as_ref()
            .filter(|m| m.errors > 0)
            .map(|m| format!(" ({} errors)", m.errors))
            .unwrap_or_default()
    };
    let label_width = rows
        .iter()
        .map(|r| r.label().chars().count() + errors(r).len())
        .max()
        .unwrap_or(0);
    let widths = [label_width.max(20), 7, 9, 8, 8, 10, 7, 36, 4];
    let line = |out: &mut String, cells: [String; 9]| {
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i == 0 || i == 7 {
                let _ = write!(out, "{cell:<width$} ");
            } else {
                let _ = write!(out, "{cell:>width$} ");
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    };
    line(&mut out, header.map(str::to_owned));
    let total: usize = widths.iter().sum::<usize>() + widths.len() - 1;
    let _ = writeln!(out, "{}", "-".repeat(total));
    for row in rows {
        let suffix = errors(row);
        let first = row.targets.first();
        let target_text = |t: Option<&Target>| {
            t.map(|t| match &t.measured {
                Some(measured) => format!("{}: {measured}", t.promise),
                None => t.promise.clone(),
            })
            .unwrap_or_default()
        };
        line(
            &mut out,
            [
                format!("{}{suffix}", row.label()),
                row.clients.map_or("-".to_owned(), |c| c.to_string()),
                row.value.clone().unwrap_or_else(|| number(row.rps(), 0)),
                number(row.p50_ms(), 2),
                number(row.p99_ms(), 2),
                row.baseline_rps
                    .map_or("-".to_owned(), |b| format!("{b:.0}/s")),
                if row.baseline_rps.is_some() {
                    format!("{:.2}×", row.ratio())
                } else {
                    "-".to_owned()
                },
                target_text(first),
                first.map_or("", Target::verdict).to_owned(),
            ],
        );
        for extra in row.targets.iter().skip(1) {
            let mut cells: [String; 9] = Default::default();
            cells[7] = target_text(Some(extra));
            cells[8] = extra.verdict().to_owned();
            line(&mut out, cells);
        }
    }
    out
}

fn finite(value: f64) -> Value {
    if value.is_finite() {
        json!((value * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// The rows as JSON (`meta` is whatever describes the run).
pub fn json(rows: &[Row], meta: Value) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| {
            let measurement = row.measurement.as_ref().map(|m| {
                json!({
                    "requests": m.requests(),
                    "seconds": m.seconds,
                    "errors": m.errors,
                    "first_error": m.first_error,
                    "statuses": m.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
                    "rps": finite(m.rps()),
                    "p50_ms": finite(m.p50_ms()),
                    "p90_ms": finite(m.quantile_ms(0.90)),
                    "p99_ms": finite(m.p99_ms()),
                    "max_ms": finite(m.max_ms()),
                })
            });
            json!({
                "scenario": row.scenario,
                "via": row.via.as_str(),
                "clients": row.clients,
                "measurement": measurement,
                "baseline_rps": row.baseline_rps.map(finite),
                "ratio": row.baseline_rps.map(|_| finite(row.ratio())),
                "value": row.value,
                "records": row.records.map(|(records, read)| json!({"database": records, "read_by_query": read})),
                "targets": row.targets.iter().map(|t| json!({
                    "target": t.promise,
                    "measured": t.measured,
                    "result": t.verdict(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "meta": meta, "rows": rows })
}
