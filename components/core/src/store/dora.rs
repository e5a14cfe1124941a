//! The reads behind the DORA figures: lead times and deployments per period of a range.
//!
//! Whole UTC days come from the daily rollup (`lead_time_days`), the partial days at the
//! range's edges from the records (`image_lead_times`), as [`ReadPlan`] decides. Filters the
//! rollup cannot answer — project and app — read every record of the range instead, and so
//! does every query while the rollup is still being back-filled. Either
//! way the figures are the same, exactly: the rollup holds the records' own lead times.

use crate::db::Db;
use crate::domain::OrgId;
use chrono::NaiveDate;

use crate::domain::dora::{LeadTimeUnit, ReadPlan, TimeRange, period_index};
use crate::domain::sorted_runs::LeadTimes;
use crate::error::Error;

use super::commit_lead_times::{self, STAGES};
use super::daily_rollup::{self, LeadTimeDay};
use super::deployments::{DoraFilter, deployment_times, lead_time_durations, outcome_times};

/// The lead times of each period, and its clock-skewed records.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LeadTimesByPeriod {
    pub(crate) periods: Vec<LeadTimes>,
    /// Of each period.
    pub(crate) clock_skew_by_period: Vec<u64>,
    /// The stages of each period, when read with them.
    pub(crate) stages: Option<Vec<[LeadTimes; STAGES]>>,
}

impl LeadTimesByPeriod {
    /// The clock-skewed records of the whole range.
    pub(crate) fn clock_skew(&self) -> u64 {
        self.clock_skew_by_period.iter().sum()
    }
}

/// How to read `range` for `filter`: the records alone unless `rollup_complete` (no back-fill
/// pending, `migrations::Schema`).
pub(crate) fn plan(rollup_complete: bool, range: &TimeRange, filter: &DoraFilter) -> ReadPlan {
    // The rollup holds every author's lead times: with exclusions, the records are read.
    if filter.project_id.is_some()
        || filter.app_id.is_some()
        || !filter.excluded_authors.is_empty()
        || !rollup_complete
    {
        ReadPlan::records_only(range)
    } else {
        ReadPlan::with_rollup(range)
    }
}

fn rollup_days(
    db: &dyn Db,
    org_id: &OrgId,
    plan: &ReadPlan,
    filter: &DoraFilter,
    with_lead_times: bool,
) -> Result<Vec<LeadTimeDay>, Error> {
    match plan.days {
        None => Ok(Vec::new()),
        Some(days) => daily_rollup::read(
            db,
            org_id,
            days,
            filter.environment.as_deref(),
            filter.prod,
            with_lead_times,
        ),
    }
}

/// One rollup day's lead times: (its first second, clock-skewed, lead times and stages as
/// stored, the stages empty unless read with them).
type RollupDay = (i64, u64, Vec<u8>, [Vec<u8>; STAGES]);

/// The rollup's days for lead times of `unit` (commit chunks with their stages if
/// `stages_from` a day on).
fn rollup_lead_times(
    db: &dyn Db,
    org_id: &OrgId,
    plan: &ReadPlan,
    filter: &DoraFilter,
    unit: LeadTimeUnit,
    stages_from: Option<NaiveDate>,
) -> Result<Vec<RollupDay>, Error> {
    let Some(days) = plan.days else {
        return Ok(Vec::new());
    };
    let (environment, prod) = (filter.environment.as_deref(), filter.prod);
    Ok(match unit {
        LeadTimeUnit::Deployment => daily_rollup::read(db, org_id, days, environment, prod, true)?
            .into_iter()
            .map(|d| (d.midnight, d.clock_skew, d.lead_times, Default::default()))
            .collect(),
        LeadTimeUnit::Commit => {
            commit_lead_times::read_days(db, org_id, days, environment, prod, stages_from)?
                .into_iter()
                .map(|d| (d.midnight, d.clock_skew, d.lead_times, d.stages))
                .collect()
        }
    })
}

fn midnight_second(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp()
}

/// Lead times of `unit` per period (`starts`: the periods' first seconds, ascending), and,
/// for commits, the stages of each period from the second `stages_from` on (earlier periods'
/// are left empty, their blobs unread), in the same pass (each stage's durations: commit →
/// build, build → deploy start, deploy start → finish).
pub(crate) fn lead_times_by_period(
    db: &dyn Db,
    org_id: &OrgId,
    plan: &ReadPlan,
    filter: &DoraFilter,
    unit: LeadTimeUnit,
    starts: &[i64],
    stages_from: Option<i64>,
) -> Result<LeadTimesByPeriod, Error> {
    let stages_from = stages_from.filter(|_| unit == LeadTimeUnit::Commit);
    let with_stages = stages_from.is_some();
    let stages_from_day = stages_from.map(|second| {
        chrono::DateTime::from_timestamp(second, 0)
            .map_or(NaiveDate::MIN, |instant| instant.date_naive())
    });
    // The first second whose records' stages are read (the rollup's are read by whole day).
    let stages_from_second = stages_from_day.map(midnight_second);
    let mut periods = vec![LeadTimes::default(); starts.len()];
    let mut stages: Vec<[LeadTimes; STAGES]> = vec![Default::default(); starts.len()];
    let mut clock_skew: Vec<i64> = vec![0; starts.len()];
    for (midnight, skewed, lead_times, day_stages) in
        rollup_lead_times(db, org_id, plan, filter, unit, stages_from_day)?
    {
        let period = period_index(starts, midnight);
        clock_skew[period] += skewed as i64;
        daily_rollup::add_stored(&mut periods[period], lead_times)?;
        for (set, stored) in stages[period].iter_mut().zip(day_stages) {
            daily_rollup::add_stored(set, stored)?;
        }
    }
    for (ranges, subtract) in [(&plan.add, false), (&plan.subtract, true)] {
        for range in ranges {
            let mut by_period: Vec<Vec<u64>> = vec![Vec::new(); starts.len()];
            let mut by_stage: Vec<[Vec<u64>; STAGES]> = vec![Default::default(); starts.len()];
            let records = if with_stages {
                commit_lead_times::durations_with_stages(db, org_id, range, filter)?
            } else {
                lead_time_durations(db, org_id, range, filter, unit)?
                    .into_iter()
                    .map(|(second, micros)| (second, micros, [None; STAGES]))
                    .collect()
            };
            for (second, micros, record_stages) in records {
                let period = period_index(starts, second);
                match u64::try_from(micros) {
                    Ok(micros) => {
                        by_period[period].push(micros);
                        // By day, as the rollup's stages are read: a partial day's records
                        // are subtracted from its whole day.
                        if stages_from_second.is_some_and(|from| second < from) {
                            continue;
                        }
                        // A stage's negative durations are left out of that stage only.
                        for (values, stage) in by_stage[period].iter_mut().zip(record_stages) {
                            if let Some(stage) = stage.and_then(|m| u64::try_from(m).ok()) {
                                values.push(stage);
                            }
                        }
                    }
                    Err(_) if subtract => clock_skew[period] -= 1,
                    Err(_) => clock_skew[period] += 1,
                }
            }
            let sets = periods.iter_mut().zip(by_period).chain(
                stages
                    .iter_mut()
                    .zip(by_stage)
                    .flat_map(|(sets, values)| sets.iter_mut().zip(values)),
            );
            for (set, values) in sets {
                if subtract {
                    set.subtract_unsorted(values);
                } else {
                    set.add_unsorted(values);
                }
            }
        }
    }
    let clock_skew_by_period = clock_skew
        .into_iter()
        .map(|n| {
            u64::try_from(n)
                .map_err(|_| Error::storage("the rollup counts fewer skewed lead times than exist"))
        })
        .collect::<Result<Vec<u64>, Error>>()?;
    Ok(LeadTimesByPeriod {
        periods,
        clock_skew_by_period,
        stages: with_stages.then_some(stages),
    })
}

/// What a period's deployments came to: how many, how many failed, how many were rework.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Outcomes {
    pub(crate) deployments: u64,
    pub(crate) failed: u64,
    pub(crate) rework: u64,
}

impl Outcomes {
    pub(crate) fn add(&mut self, other: Outcomes) {
        self.deployments += other.deployments;
        self.failed += other.failed;
        self.rework += other.rework;
    }

    /// Failed deployments over deployments; `None` without deployments.
    pub(crate) fn failure_rate(&self) -> Option<f64> {
        (self.deployments > 0).then(|| self.failed as f64 / self.deployments as f64)
    }

    /// Rework deployments over deployments; `None` without deployments.
    pub(crate) fn rework_rate(&self) -> Option<f64> {
        (self.deployments > 0).then(|| self.rework as f64 / self.deployments as f64)
    }
}

/// Deployments, failed and rework ones per period (`starts` as for
/// [`lead_times_by_period`]). Whole days from the rollup; partial days from the records (all
/// of them counted, and the failed or rework ones read from their partial index).
pub(crate) fn outcomes_by_period(
    db: &dyn Db,
    org_id: &OrgId,
    plan: &ReadPlan,
    filter: &DoraFilter,
    starts: &[i64],
) -> Result<Vec<Outcomes>, Error> {
    let mut counts = vec![[0i64; 3]; starts.len()];
    for day in rollup_days(db, org_id, plan, filter, false)? {
        let period = &mut counts[period_index(starts, day.midnight)];
        period[0] += day.deployments as i64;
        period[1] += day.failed as i64;
        period[2] += day.rework as i64;
    }
    for (ranges, sign) in [(&plan.add, 1), (&plan.subtract, -1)] {
        for range in ranges {
            for second in deployment_times(db, org_id, range, filter)? {
                counts[period_index(starts, second)][0] += sign;
            }
            for (second, failed, rework) in outcome_times(db, org_id, range, filter)? {
                let period = &mut counts[period_index(starts, second)];
                period[1] += sign * i64::from(failed);
                period[2] += sign * i64::from(rework);
            }
        }
    }
    counts
        .into_iter()
        .map(|[deployments, failed, rework]| {
            let count = |n: i64| {
                u64::try_from(n).map_err(|_| {
                    Error::storage("lead_time_days counts fewer deployments than exist")
                })
            };
            Ok(Outcomes {
                deployments: count(deployments)?,
                failed: count(failed)?,
                rework: count(rework)?,
            })
        })
        .collect()
}
