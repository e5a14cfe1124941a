//! DORA lead time for changes and deployment frequency: the pure arithmetic.
//!
//! Lead time of one deployment = its `created_at` (when the image reached the app
//! environment) minus the commit's `git_hash_commit_timestamp`, as exact elapsed minutes
//! between two UTC instants (fractional). Not MSSQL's `DATEDIFF(minute, …)`, which counts minute
//! *boundaries* crossed: 10:00:59 → 10:01:00 is one minute there and 1/60 here.
//!
//! Performance levels follow the State of DevOps report of the year a query names
//! ([`Benchmark`]; `docs/dora-benchmarks.md` has the tables and their sources). 2024 (the
//! default): lead time for changes — elite: less than one day; high: one day to one week;
//! medium: one week to one month; low: one to six months (and beyond). Deployment frequency —
//! elite: on demand (multiple deploys per day); high: between once per day and once per week;
//! medium: between once per week and once per month; low: less often. 2023's clusters give
//! medium and low the same lead time and frequency band, so only what is slower than medium's
//! band is low there, as in 2024. 2025's report has no clusters: a figure gets the bucket of
//! DORA's Quick Check it falls in.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::Error;

use super::Timestamp;
use super::sorted_runs::LeadTimes;

/// Elapsed whole microseconds from `commit` to `deployed` (negative when the commit's clock is
/// ahead). Instants are microseconds in years 1–9999, so the difference always fits.
fn duration_micros(commit: Timestamp, deployed: Timestamp) -> i64 {
    (deployed.instant() - commit.instant())
        .num_microseconds()
        .unwrap_or(i64::MAX)
}

/// Elapsed minutes from `commit` to `deployed` (negative when the commit's clock is ahead).
pub(crate) fn duration_mins(commit: Timestamp, deployed: Timestamp) -> f64 {
    duration_micros(commit, deployed) as f64 / super::sorted_runs::MICROS_PER_MINUTE
}

/// The longest range a DORA query may cover.
pub(crate) const MAX_RANGE_DAYS: i64 = 366;

/// An inclusive time range `[start, end]` (SQL `BETWEEN`), at most [`MAX_RANGE_DAYS`] long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TimeRange {
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
}

/// A query parameter that must be there: a 400 naming it otherwise.
fn required<'a>(field: &str, value: Option<&'a str>) -> Result<&'a str, Error> {
    value.ok_or_else(|| {
        Error::malformed_field(
            field,
            format!("{field} is required (RFC 3339 with offset, e.g. 2026-03-01T00:00:00Z)"),
        )
    })
}

/// An instant in a query: a 400 naming `field` when it is not one.
fn query_instant(field: &str, value: &str) -> Result<Timestamp, Error> {
    Timestamp::parse(field, value).map_err(|e| Error::malformed_field(field, e.problem().detail))
}

impl TimeRange {
    /// Parses query values. Every failure is a 400 naming the parameter: these are the query
    /// of a GET, not a body to validate.
    pub(crate) fn parse(start: Option<&str>, end: Option<&str>) -> Result<TimeRange, Error> {
        TimeRange::checked(
            query_instant("start", required("start", start)?)?,
            query_instant("end", required("end", end)?)?,
            ("start", "end"),
        )
    }

    /// A range of a list's query: `start` and `end` each optional (the epoch and the end of
    /// RFC 3339's year 9999 without them), ordered, of any length.
    pub(crate) fn parse_open(start: Option<&str>, end: Option<&str>) -> Result<TimeRange, Error> {
        let range = TimeRange {
            start: start.map_or(Timestamp::from_micros(0), |s| query_instant("start", s))?,
            end: end.map_or(Ok(Timestamp::last()), |e| query_instant("end", e))?,
        };
        range.ordered(("start", "end"))?;
        Ok(range)
    }

    fn ordered(&self, (start_field, end_field): (&str, &str)) -> Result<(), Error> {
        if self.start > self.end {
            return Err(Error::malformed_field(
                start_field,
                format!("{start_field} must not be after {end_field}"),
            ));
        }
        Ok(())
    }

    /// A range of two instants, ordered and at most [`MAX_RANGE_DAYS`] long; errors are 400s
    /// naming `fields` (the query's names for its start and end).
    pub(crate) fn checked(
        start: Timestamp,
        end: Timestamp,
        (start_field, end_field): (&str, &str),
    ) -> Result<TimeRange, Error> {
        TimeRange { start, end }.ordered((start_field, end_field))?;
        if end.instant() - start.instant() > Duration::days(MAX_RANGE_DAYS) {
            return Err(Error::malformed_field(
                end_field,
                format!("the range must be at most {MAX_RANGE_DAYS} days"),
            ));
        }
        Ok(TimeRange { start, end })
    }

    /// The range's length in days (fractional), at least one second's worth.
    pub(crate) fn days(&self) -> f64 {
        let seconds = (self.end.instant() - self.start.instant())
            .num_seconds()
            .max(1);
        seconds as f64 / 86_400.0
    }
}

/// Where the records of a DORA range are read from: whole UTC days from the daily rollup
/// (`lead_time_days`), and the partial days at the edges from the records themselves.
///
/// A partial day is read whichever way touches fewer records, judged by time: if the range
/// covers most of it, the day's rollup is read and the records of the part *outside* the
/// range are subtracted (for "the last 30 days" ending now, that part is in the future and
/// empty); otherwise the records of the part inside are added.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReadPlan {
    /// The first and last day read from the rollup (inclusive), if any.
    pub(crate) days: Option<(NaiveDate, NaiveDate)>,
    /// Ranges whose records are added.
    pub(crate) add: Vec<TimeRange>,
    /// Ranges whose records are subtracted (inside a rollup day, outside the query range).
    pub(crate) subtract: Vec<TimeRange>,
}

impl ReadPlan {
    /// Every record of `range`, none from the rollup: what filters the rollup cannot answer
    /// (project, app) use.
    pub(crate) fn records_only(range: &TimeRange) -> ReadPlan {
        ReadPlan {
            days: None,
            add: vec![*range],
            subtract: Vec::new(),
        }
    }

    /// Whole days from the rollup, edges from the records.
    pub(crate) fn with_rollup(range: &TimeRange) -> ReadPlan {
        let start = range.start.instant();
        let end = range.end.instant();
        let (first, last) = (start.date_naive(), end.date_naive());
        let mut plan = ReadPlan {
            days: None,
            add: Vec::new(),
            subtract: Vec::new(),
        };
        let mut edge = |day: NaiveDate, from: DateTime<Utc>, to: DateTime<Utc>| -> bool {
            let (day_start, day_end) = day_bounds(day);
            if from == day_start && to == day_end {
                return true;
            }
            let covered = (to - from).num_microseconds().unwrap_or(i64::MAX);
            if covered >= Duration::hours(12).num_microseconds().unwrap_or(i64::MAX) {
                if from > day_start {
                    plan.subtract.push(between(day_start, from - MICROSECOND));
                }
                if to < day_end {
                    plan.subtract.push(between(to + MICROSECOND, day_end));
                }
                true
            } else {
                plan.add.push(between(from, to));
                false
            }
        };
        let (first_read, last_read) = if first == last {
            let whole = edge(first, start, end);
            (whole, whole)
        } else {
            let first_read = edge(first, start, day_bounds(first).1);
            let last_read = edge(last, day_bounds(last).0, end);
            (first_read, last_read)
        };
        let from = if first_read {
            Some(first)
        } else {
            first.succ_opt()
        };
        let to = if last_read {
            Some(last)
        } else {
            last.pred_opt()
        };
        plan.days = match (from, to) {
            (Some(from), Some(to)) if from <= to => Some((from, to)),
            _ => None,
        };
        plan
    }
}

const MICROSECOND: Duration = Duration::microseconds(1);

/// A day's first and last microsecond.
fn day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight exists"));
    (start, start + Duration::days(1) - MICROSECOND)
}

fn between(start: DateTime<Utc>, end: DateTime<Utc>) -> TimeRange {
    TimeRange {
        start: Timestamp::from_utc(start),
        end: Timestamp::from_utc(end),
    }
}

/// What one lead time is of: a commit (from its timestamp to the first succeeded deployment
/// that carried it to the app environment), or a deployment (from its head commit, counted
/// at the first succeeded deployment of its image there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LeadTimeUnit {
    #[default]
    Commit,
    Deployment,
}

impl LeadTimeUnit {
    pub(crate) fn parse(value: &str) -> Result<LeadTimeUnit, Error> {
        match value {
            "commit" => Ok(LeadTimeUnit::Commit),
            "deployment" => Ok(LeadTimeUnit::Deployment),
            _ => Err(Error::malformed_field(
                "unit",
                "unit must be commit or deployment",
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LeadTimeUnit::Commit => "commit",
            LeadTimeUnit::Deployment => "deployment",
        }
    }

    /// The table of its lead times.
    pub(crate) fn table(self) -> &'static str {
        match self {
            LeadTimeUnit::Commit => "commit_lead_times",
            LeadTimeUnit::Deployment => "image_lead_times",
        }
    }
}

/// The bucket size of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interval {
    Day,
    /// ISO weeks, starting Monday 00:00 UTC.
    Week,
    /// Calendar months, starting on the 1st 00:00 UTC.
    Month,
    /// One bucket: the whole range.
    All,
}

impl Interval {
    pub(crate) fn parse(value: &str) -> Result<Interval, Error> {
        match value {
            "day" => Ok(Interval::Day),
            "week" => Ok(Interval::Week),
            "month" => Ok(Interval::Month),
            "all" => Ok(Interval::All),
            _ => Err(Error::malformed_field(
                "interval",
                "interval must be one of day, week, month, all",
            )),
        }
    }

    /// The start of the period holding `instant` (for `All`: the range start).
    pub(crate) fn period_start(&self, instant: DateTime<Utc>, range: &TimeRange) -> DateTime<Utc> {
        let midnight = |d: chrono::NaiveDate| {
            Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        };
        match self {
            Interval::Day => midnight(instant.date_naive()),
            Interval::Week => {
                let date = instant.date_naive();
                midnight(date - Duration::days(i64::from(date.weekday().num_days_from_monday())))
            }
            Interval::Month => midnight(
                instant
                    .date_naive()
                    .with_day(1)
                    .expect("every month has a 1st"),
            ),
            Interval::All => range.start.instant(),
        }
    }

    /// Every period start from the one holding `range.start` to the one holding `range.end`:
    /// empty periods included, so a chart needs no gap filling.
    pub(crate) fn periods(&self, range: &TimeRange) -> Vec<DateTime<Utc>> {
        let last = self.period_start(range.end.instant(), range);
        let mut periods = vec![self.period_start(range.start.instant(), range)];
        loop {
            let current = *periods.last().expect("never empty");
            let next = match self {
                Interval::Day => current + Duration::days(1),
                Interval::Week => current + Duration::weeks(1),
                Interval::Month => {
                    let (year, month) = if current.month() == 12 {
                        (current.year() + 1, 1)
                    } else {
                        (current.year(), current.month() + 1)
                    };
                    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
                        .single()
                        .expect("the 1st at midnight is unambiguous in UTC")
                }
                Interval::All => return periods,
            };
            if next > last {
                return periods;
            }
            periods.push(next);
        }
    }
}

/// The period holding `second`: the last start at or before it. Records come from the range,
/// so there always is one; clamping keeps a stray one in the first period rather than
/// panicking.
pub(crate) fn period_index(starts: &[i64], second: i64) -> usize {
    starts
        .partition_point(|start| *start <= second)
        .saturating_sub(1)
}

/// The `q`-quantile (0..=1) of sorted values, interpolating linearly between closest ranks
/// (the "R-7" definition used by numpy and spreadsheets). `None` for no values. The
/// definition, kept as the tests' oracle: the service selects order statistics from sorted
/// runs instead (`LeadTimes::quantile_mins`), and must agree with this.
#[cfg(test)]
pub(crate) fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let fraction = position - lower as f64;
    Some(sorted[lower] + (sorted[upper] - sorted[lower]) * fraction)
}

/// Summary figures of a set of lead times (minutes).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeadTimeSummary {
    pub(crate) count: usize,
    pub(crate) median_mins: Option<f64>,
    pub(crate) p90_mins: Option<f64>,
    pub(crate) mean_mins: Option<f64>,
    pub(crate) min_mins: Option<f64>,
    pub(crate) max_mins: Option<f64>,
}

impl LeadTimeSummary {
    /// Summarises a set of lead times.
    pub(crate) fn of(lead_times: &LeadTimes) -> LeadTimeSummary {
        let median = lead_times.quantile_mins(0.5);
        LeadTimeSummary {
            count: lead_times.count() as usize,
            median_mins: median,
            p90_mins: lead_times.quantile_mins(0.9),
            mean_mins: lead_times.mean_mins(),
            min_mins: lead_times.min_mins(),
            max_mins: lead_times.max_mins(),
        }
    }
}

/// The State of DevOps report whose benchmarks a figure is judged by (`benchmark=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Benchmark {
    Y2023,
    #[default]
    Y2024,
    /// No clusters: the Quick Check's answer buckets.
    Y2025,
}

impl Benchmark {
    pub(crate) fn parse(value: &str) -> Result<Benchmark, Error> {
        match value {
            "2023" => Ok(Benchmark::Y2023),
            "2024" => Ok(Benchmark::Y2024),
            "2025" => Ok(Benchmark::Y2025),
            _ => Err(Error::malformed_field(
                "benchmark",
                "benchmark must be 2023, 2024 or 2025",
            )),
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Benchmark::Y2023 => "2023",
            Benchmark::Y2024 => "2024",
            Benchmark::Y2025 => "2025",
        }
    }

    /// The level (2023, 2024) or Quick Check bucket (2025) of a median lead time.
    pub(crate) fn lead_time(self, median_mins: f64) -> Standing {
        match self {
            Benchmark::Y2023 | Benchmark::Y2024 => {
                Standing::Level(DoraLevel::for_lead_time(median_mins))
            }
            Benchmark::Y2025 => Standing::Bucket(duration_bucket(median_mins)),
        }
    }

    /// The level or bucket of a deployment rate.
    pub(crate) fn deployment_frequency(self, per_day: f64) -> Standing {
        match self {
            Benchmark::Y2023 | Benchmark::Y2024 => {
                Standing::Level(DoraLevel::for_deployment_frequency(per_day))
            }
            Benchmark::Y2025 => Standing::Bucket(frequency_bucket(per_day)),
        }
    }
}

impl Benchmark {
    /// The level of a change failure rate (a fraction of deployments); `None` under 2025,
    /// whose Quick Check has no buckets for it. 2023's clusters are single values, read as
    /// upper bounds (≤ 5% elite, ≤ 10% high, ≤ 15% medium, above low). 2024's are not ordered
    /// (medium 10% is better than high 20%): a rate takes the level of the nearest cluster
    /// value (5, 10, 20, 40%), so the bounds are 7.5%, 15% and 30%.
    pub(crate) fn change_failure_rate(self, rate: f64) -> Option<Standing> {
        let percent = rate * 100.0;
        let level = match self {
            Benchmark::Y2023 if percent <= 5.0 => DoraLevel::Elite,
            Benchmark::Y2023 if percent <= 10.0 => DoraLevel::High,
            Benchmark::Y2023 if percent <= 15.0 => DoraLevel::Medium,
            Benchmark::Y2023 => DoraLevel::Low,
            Benchmark::Y2024 if percent <= 7.5 => DoraLevel::Elite,
            Benchmark::Y2024 if percent <= 15.0 => DoraLevel::Medium,
            Benchmark::Y2024 if percent <= 30.0 => DoraLevel::High,
            Benchmark::Y2024 => DoraLevel::Low,
            Benchmark::Y2025 => return None,
        };
        Some(Standing::Level(level))
    }

    /// The level or bucket of a median failed-deployment recovery time. 2023: < 1 hour
    /// elite, < 1 day high, < 1 week medium, else low. 2024 gives high and medium the same
    /// band (< 1 day; the better level is taken) and none to 1 day–1 week: < 1 hour elite,
    /// < 1 day high, else low.
    pub(crate) fn recovery_time(self, median_mins: f64) -> Standing {
        let level = match self {
            Benchmark::Y2025 => return Standing::Bucket(duration_bucket(median_mins)),
            _ if median_mins < 60.0 => DoraLevel::Elite,
            _ if median_mins < DAY_MINS => DoraLevel::High,
            Benchmark::Y2023 if median_mins < 7.0 * DAY_MINS => DoraLevel::Medium,
            _ => DoraLevel::Low,
        };
        Standing::Level(level)
    }
}

/// Where a figure stands under a benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    Level(DoraLevel),
    /// A Quick Check answer, in its words (`one day to one week`).
    Bucket(&'static str),
}

impl Standing {
    pub(crate) fn level(self) -> Option<&'static str> {
        match self {
            Standing::Level(level) => Some(level.as_str()),
            Standing::Bucket(_) => None,
        }
    }

    pub(crate) fn bucket(self) -> Option<&'static str> {
        match self {
            Standing::Level(_) => None,
            Standing::Bucket(bucket) => Some(bucket),
        }
    }
}

/// Six months, as DORA's bands use it (180 days; a month is 30).
const SIX_MONTHS_MINS: f64 = 180.0 * DAY_MINS;

/// The Quick Check bucket of a duration (lead time, recovery time): each bound exclusive above.
fn duration_bucket(mins: f64) -> &'static str {
    if mins < 60.0 {
        "less than one hour"
    } else if mins < DAY_MINS {
        "less than one day"
    } else if mins < 7.0 * DAY_MINS {
        "one day to one week"
    } else if mins < 30.0 * DAY_MINS {
        "one week to one month"
    } else if mins < SIX_MONTHS_MINS {
        "one to six months"
    } else {
        "more than six months"
    }
}

/// The Quick Check bucket of a deployment rate, read as the mean interval between deployments
/// with the buckets' bounds (an hour, a day, a week, a month, six months). "On demand
/// (multiple deploys per day)" and "between once per hour and once per day" overlap in DORA's
/// words; on demand is taken to mean more than one deployment an hour.
fn frequency_bucket(per_day: f64) -> &'static str {
    if per_day > 24.0 {
        "on demand (multiple deploys per day)"
    } else if per_day >= 1.0 {
        "between once per hour and once per day"
    } else if per_day >= 1.0 / 7.0 {
        "between once per day and once per week"
    } else if per_day >= 1.0 / 30.0 {
        "between once per week and once per month"
    } else if per_day * 180.0 >= 1.0 {
        "between once per month and once every six months"
    } else {
        "less than once per six months"
    }
}

/// DORA's performance clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DoraLevel {
    Elite,
    High,
    Medium,
    Low,
}

const DAY_MINS: f64 = 24.0 * 60.0;

impl DoraLevel {
    /// From the median lead time: < 1 day elite, < 1 week high, < 1 month (30 days) medium, else low.
    pub(crate) fn for_lead_time(median_mins: f64) -> DoraLevel {
        if median_mins < DAY_MINS {
            DoraLevel::Elite
        } else if median_mins < 7.0 * DAY_MINS {
            DoraLevel::High
        } else if median_mins < 30.0 * DAY_MINS {
            DoraLevel::Medium
        } else {
            DoraLevel::Low
        }
    }

    /// From deployments per day: ≥ 1 a day elite, ≥ 1 a week high, ≥ 1 a month (30 days)
    /// medium, else low.
    pub(crate) fn for_deployment_frequency(per_day: f64) -> DoraLevel {
        if per_day >= 1.0 {
            DoraLevel::Elite
        } else if per_day >= 1.0 / 7.0 {
            DoraLevel::High
        } else if per_day >= 1.0 / 30.0 {
            DoraLevel::Medium
        } else {
            DoraLevel::Low
        }
    }

    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            DoraLevel::Elite => "elite",
            DoraLevel::High => "high",
            DoraLevel::Medium => "medium",
            DoraLevel::Low => "low",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(value: &str) -> Timestamp {
        Timestamp::parse("t", value).unwrap()
    }

    fn range(start: &str, end: &str) -> TimeRange {
        TimeRange {
            start: t(start),
            end: t(end),
        }
    }

    #[test]
    fn durations_are_exact_minutes_between_utc_instants() {
        assert_eq!(
            duration_mins(t("2026-03-01T10:00:59Z"), t("2026-03-01T10:01:00Z")),
            1.0 / 60.0
        );
        // 10:00+05:30 is 04:30 UTC.
        assert_eq!(
            duration_mins(t("2026-03-01T10:00:00+05:30"), t("2026-03-01T05:00:00Z")),
            30.0
        );
        assert_eq!(
            duration_mins(t("2026-03-01T10:00:00Z"), t("2026-03-01T09:00:00Z")),
            -60.0
        );
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert!(
            (quantile(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9).unwrap() - 9.1)
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn the_2025_benchmark_answers_quick_check_buckets_with_exclusive_upper_bounds() {
        let lead = |mins| Benchmark::Y2025.lead_time(mins).bucket().unwrap();
        assert_eq!(lead(59.9), "less than one hour");
        assert_eq!(lead(60.0), "less than one day");
        assert_eq!(lead(DAY_MINS), "one day to one week");
        assert_eq!(lead(7.0 * DAY_MINS), "one week to one month");
        assert_eq!(lead(30.0 * DAY_MINS), "one to six months");
        assert_eq!(lead(180.0 * DAY_MINS), "more than six months");
        let frequency = |per_day| {
            Benchmark::Y2025
                .deployment_frequency(per_day)
                .bucket()
                .unwrap()
        };
        assert_eq!(frequency(48.0), "on demand (multiple deploys per day)");
        assert_eq!(frequency(24.0), "between once per hour and once per day");
        assert_eq!(frequency(1.0), "between once per hour and once per day");
        assert_eq!(frequency(0.5), "between once per day and once per week");
        assert_eq!(
            frequency(1.0 / 7.0),
            "between once per day and once per week"
        );
        assert_eq!(frequency(0.05), "between once per week and once per month");
        assert_eq!(
            frequency(1.0 / 60.0),
            "between once per month and once every six months"
        );
        assert_eq!(frequency(1.0 / 365.0), "less than once per six months");
        assert_eq!(Benchmark::Y2025.lead_time(1.0).level(), None);
        for year in [Benchmark::Y2023, Benchmark::Y2024] {
            assert_eq!(year.lead_time(1.0).level(), Some("elite"));
            assert_eq!(year.lead_time(1.0).bucket(), None);
        }
        assert_eq!(Benchmark::default(), Benchmark::Y2024);
        assert!(Benchmark::parse("2022").is_err());
    }

    #[test]
    fn dora_levels_use_the_2024_thresholds() {
        assert_eq!(DoraLevel::for_lead_time(60.0), DoraLevel::Elite);
        assert_eq!(DoraLevel::for_lead_time(DAY_MINS), DoraLevel::High);
        assert_eq!(DoraLevel::for_lead_time(7.0 * DAY_MINS), DoraLevel::Medium);
        assert_eq!(DoraLevel::for_lead_time(30.0 * DAY_MINS), DoraLevel::Low);
        assert_eq!(DoraLevel::for_deployment_frequency(3.0), DoraLevel::Elite);
        assert_eq!(DoraLevel::for_deployment_frequency(0.2), DoraLevel::High);
        assert_eq!(DoraLevel::for_deployment_frequency(0.05), DoraLevel::Medium);
        assert_eq!(DoraLevel::for_deployment_frequency(0.01), DoraLevel::Low);
    }

    #[test]
    fn periods_include_empty_ones_and_align_to_utc_boundaries() {
        let r = range("2026-02-27T15:00:00Z", "2026-03-02T01:00:00Z");
        let days: Vec<String> = Interval::Day
            .periods(&r)
            .iter()
            .map(|d| d.to_rfc3339())
            .collect();
        assert_eq!(
            days,
            [
                "2026-02-27T00:00:00+00:00",
                "2026-02-28T00:00:00+00:00",
                "2026-03-01T00:00:00+00:00",
                "2026-03-02T00:00:00+00:00"
            ]
        );
        let weeks = Interval::Week.periods(&r);
        assert_eq!(weeks[0].to_rfc3339(), "2026-02-23T00:00:00+00:00", "Monday");
        assert_eq!(weeks.len(), 2);
        let months =
            Interval::Month.periods(&range("2025-11-15T00:00:00Z", "2026-02-01T00:00:00Z"));
        assert_eq!(months.len(), 4);
        assert_eq!(months[2].to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(Interval::All.periods(&r), vec![r.start.instant()]);
    }

    #[test]
    fn whole_days_come_from_the_rollup_and_edges_from_the_smaller_side() {
        // 30 whole days ending a millisecond before midnight: the last day is read from the
        // rollup minus its final millisecond.
        let plan =
            ReadPlan::with_rollup(&range("2026-03-01T00:00:00Z", "2026-03-30T23:59:59.999Z"));
        assert_eq!(
            plan.days,
            Some((
                NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
                NaiveDate::from_ymd_opt(2026, 3, 30).unwrap()
            ))
        );
        assert!(plan.add.is_empty());
        assert_eq!(
            plan.subtract,
            [range(
                "2026-03-30T23:59:59.999001Z",
                "2026-03-30T23:59:59.999999Z"
            )]
        );
        // Starting at 20:00: that day's four hours are records; ending at 06:00: six hours.
        let plan = ReadPlan::with_rollup(&range("2026-03-01T20:00:00Z", "2026-03-04T06:00:00Z"));
        assert_eq!(
            plan.days,
            Some((
                NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
                NaiveDate::from_ymd_opt(2026, 3, 3).unwrap()
            ))
        );
        assert_eq!(
            plan.add,
            [
                range("2026-03-01T20:00:00Z", "2026-03-01T23:59:59.999999Z"),
                range("2026-03-04T00:00:00Z", "2026-03-04T06:00:00Z"),
            ]
        );
        // Within one day: a short range is records, a long one the day minus both ends.
        let short = ReadPlan::with_rollup(&range("2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"));
        assert_eq!((short.days, short.add.len()), (None, 1));
        let long = ReadPlan::with_rollup(&range("2026-03-01T01:00:00Z", "2026-03-01T23:00:00Z"));
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(long.days, Some((day, day)));
        assert_eq!(
            long.subtract,
            [
                range("2026-03-01T00:00:00Z", "2026-03-01T00:59:59.999999Z"),
                range("2026-03-01T23:00:00.000001Z", "2026-03-01T23:59:59.999999Z"),
            ]
        );
        // An instant: one record range, no rollup.
        let instant = ReadPlan::with_rollup(&range("2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z"));
        assert_eq!((instant.days, instant.add.len()), (None, 1));
    }

    #[test]
    fn ranges_are_ordered_bounded_and_need_offsets() {
        assert!(
            TimeRange::parse(Some("2026-01-01T00:00:00Z"), Some("2026-01-01T00:00:00Z")).is_ok()
        );
        for (start, end) in [
            (Some("2026-01-02T00:00:00Z"), Some("2026-01-01T00:00:00Z")),
            (Some("2026-01-01T00:00:00"), Some("2026-01-02T00:00:00Z")),
            (None, Some("2026-01-02T00:00:00Z")),
            (Some("2025-01-01T00:00:00Z"), Some("2026-01-03T00:00:00Z")),
        ] {
            assert_eq!(
                TimeRange::parse(start, end).unwrap_err().status(),
                http::StatusCode::BAD_REQUEST
            );
        }
    }
}
