//! The lead times of a DORA period as a multiset of sorted runs, and its exact order statistics.
//!
//! A query over many days reads each day's lead times already sorted (one run per day and
//! environment, from `lead_time_days`) plus the records of the partial days at the range's
//! edges. The median and p90 of the union are found by *selection* — a binary search over the
//! value, counting each run with a binary search of its own — so the figures cost
//! O(runs · log values) and never a sort of every value. A run may also be *subtracted*: the
//! records of a partial day that fall outside the range, taken from that day's full run. The
//! answer is the same, bit for bit, as sorting every value: the figures here are exact.
//!
//! Lead times are whole microseconds (what `duration_mins` divides by 60,000,000), never
//! negative: a negative duration is clock skew and is counted apart, not held here.

use std::sync::Arc;

/// Microseconds per minute: lead times are exact microseconds, shown in minutes.
pub(crate) const MICROS_PER_MINUTE: f64 = 60_000_000.0;

/// Whole microseconds as (fractional) minutes, exactly as `duration_mins` computes them.
pub(crate) fn micros_to_mins(micros: u64) -> f64 {
    micros as f64 / MICROS_PER_MINUTE
}

/// Minutes back to whole microseconds, rounding as SQLite's `round()` does (half away from
/// zero; integral values past 2^52 unchanged). The inverse of [`micros_to_mins`] below 2^52 µs.
pub(crate) fn mins_to_micros(mins: f64) -> i64 {
    (mins * MICROS_PER_MINUTE).round() as i64
}

/// Candidates [`LeadTimes::successor`] tries before it searches like [`LeadTimes::nth`].
const SUCCESSOR_CANDIDATES: usize = 3;

/// Bytes per lead time in the rollups' blobs: big-endian, so that they sort as bytes too.
pub(crate) const BYTES_PER_LEAD_TIME: usize = 8;

/// Lead times in ascending order: a stretch (`start..end`, in values) of a shared buffer of
/// 8-byte little-endian values (wasm's own order: a plain load reads one). A rollup's blobs
/// are kept in the buffer they were read into, not decoded into a second copy: a summary
/// selects over a few MB of them per request, and in a wasm component the copy (allocation,
/// fresh memory pages) cost more than the selection (docs/performance.md).
#[derive(Debug, Clone, PartialEq)]
struct Ascending {
    buffer: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Ascending {
    /// Values in any order, in a buffer of their own.
    fn from_unsorted(mut values: Vec<u64>) -> Ascending {
        values.sort_unstable();
        Ascending {
            buffer: Arc::new(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            start: 0,
            end: values.len(),
        }
    }

    #[inline]
    fn values(&self) -> &[[u8; BYTES_PER_LEAD_TIME]] {
        &self.buffer.as_chunks().0[self.start..self.end]
    }

    #[inline]
    fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline]
    fn get(&self, index: usize) -> Option<u64> {
        self.values().get(index).map(|v| u64::from_le_bytes(*v))
    }

    fn first(&self) -> Option<u64> {
        self.get(0)
    }

    fn last(&self) -> Option<u64> {
        self.len().checked_sub(1).and_then(|last| self.get(last))
    }

    /// The first position of `start..end` whose value is above `value` (`end` if none).
    #[inline]
    fn split(&self, (start, end): (usize, usize), value: u64) -> usize {
        start + self.values()[start..end].partition_point(|v| u64::from_le_bytes(*v) <= value)
    }

    /// How many of its values are at most `value`: the position of the first above it.
    fn count_at_most(&self, value: u64) -> usize {
        self.split((0, self.len()), value)
    }

    /// The values of positions `start..end`.
    fn window(&self, (start, end): (usize, usize)) -> impl Iterator<Item = u64> + '_ {
        self.values()[start..end]
            .iter()
            .map(|v| u64::from_le_bytes(*v))
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.window((0, self.len()))
    }
}

/// A stored blob that is not whole lead times (its length is not a multiple of 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotWholeLeadTimes;

/// `ascending` as the rollups store it (big-endian).
pub(crate) fn encode(ascending: &[u64]) -> Vec<u8> {
    ascending.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// The values left in the search windows at which [`LeadTimes::nth`] sorts them instead of
/// halving the interval further.
const GATHERED: usize = 128;

/// The value of 0-based `rank` among the windows' values: the added ones less the subtracted
/// ones (each of which an added window holds: both lie inside the search interval).
fn gathered_nth(windows: &[(&Run, usize, usize)], rank: usize) -> Option<u64> {
    let (mut added, mut subtracted) = (Vec::new(), Vec::new());
    for (run, start, end) in windows {
        let into = if run.subtracted {
            &mut subtracted
        } else {
            &mut added
        };
        into.extend(run.ascending.window((*start, *end)));
    }
    added.sort_unstable();
    subtracted.sort_unstable();
    let mut subtracted = subtracted.into_iter().peekable();
    added
        .into_iter()
        .filter(|value| {
            while subtracted.next_if(|s| s < value).is_some() {}
            subtracted.next_if_eq(value).is_none()
        })
        .nth(rank)
}

/// One sorted run with the sign it counts with; its buffer is shared, so the union of a
/// series' periods costs no copy of their values.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    ascending: Ascending,
    subtracted: bool,
}

impl Run {
    /// `n` of this run's values, with the sign they count with.
    fn signed(&self, n: usize) -> i64 {
        if self.subtracted {
            -(n as i64)
        } else {
            n as i64
        }
    }
}

/// A multiset of lead times (µs): sorted runs added, and sorted runs subtracted from them.
///
/// Invariant (the caller's): every subtracted value is also in an added run, so the multiset
/// is well defined. Violating it cannot panic; it gives wrong figures, which the rollup tests
/// would catch.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LeadTimes {
    runs: Vec<Run>,
}

impl LeadTimes {
    /// Adds the lead times of stored blobs, concatenated in any order (a day's chunks, as
    /// `group_concat` joins them): 8 bytes each, big-endian, in ascending runs. They are
    /// turned to little-endian in the buffer they were read into, and each ascending stretch
    /// of it becomes a run over that buffer: no copy, and no order assumed of the blobs.
    pub(crate) fn add_stored(&mut self, mut stored: Vec<u8>) -> Result<(), NotWholeLeadTimes> {
        let (values, rest) = stored.as_chunks_mut::<BYTES_PER_LEAD_TIME>();
        if !rest.is_empty() {
            return Err(NotWholeLeadTimes);
        }
        let count = values.len();
        let mut descents = Vec::new();
        let mut previous = 0;
        for (index, value) in values.iter_mut().enumerate() {
            let micros = u64::from_be_bytes(*value);
            if micros < previous {
                descents.push(index);
            }
            previous = micros;
            *value = micros.to_le_bytes();
        }
        if count == 0 {
            return Ok(());
        }
        let buffer = Arc::new(stored);
        let mut start = 0;
        for end in descents.into_iter().chain([count]) {
            self.runs.push(Run {
                ascending: Ascending {
                    buffer: Arc::clone(&buffer),
                    start,
                    end,
                },
                subtracted: false,
            });
            start = end;
        }
        Ok(())
    }

    /// Adds values in any order.
    pub(crate) fn add_unsorted(&mut self, values: Vec<u64>) {
        if !values.is_empty() {
            self.runs.push(Run {
                ascending: Ascending::from_unsorted(values),
                subtracted: false,
            });
        }
    }

    /// Removes values (in any order) that an added run holds.
    pub(crate) fn subtract_unsorted(&mut self, values: Vec<u64>) {
        if !values.is_empty() {
            self.runs.push(Run {
                ascending: Ascending::from_unsorted(values),
                subtracted: true,
            });
        }
    }

    /// Adds every run of `other` (its subtractions too): the union of two periods.
    pub(crate) fn extend(&mut self, other: &LeadTimes) {
        self.runs.extend(other.runs.iter().cloned());
    }

    /// How many lead times the set holds.
    pub(crate) fn count(&self) -> u64 {
        let (added, subtracted) = self.runs.iter().fold((0u64, 0u64), |(a, s), run| {
            let n = run.ascending.len() as u64;
            if run.subtracted {
                (a, s + n)
            } else {
                (a + n, s)
            }
        });
        added.saturating_sub(subtracted)
    }

    /// The exact sum in microseconds (wide: a year of long lead times overflows `u64`).
    pub(crate) fn sum_micros(&self) -> u128 {
        let (added, subtracted) = self.runs.iter().fold((0u128, 0u128), |(a, s), run| {
            let sum: u128 = run.ascending.iter().map(u128::from).sum();
            if run.subtracted {
                (a, s + sum)
            } else {
                (a + sum, s)
            }
        });
        added.saturating_sub(subtracted)
    }

    /// The lead time of 0-based `rank` in ascending order; `None` past the end.
    ///
    /// A binary search over the value: the answer is the smallest value with more than `rank`
    /// lead times at or below it. Each run keeps a window of the positions that may still
    /// hold values inside the search interval, so as the interval narrows, each count is a
    /// binary search of a few elements; a run whose window is empty leaves the search (its
    /// count no longer changes), and once the windows hold [`GATHERED`] values or fewer, they
    /// are sorted and the answer read off, instead of halving the interval down to one value.
    pub(crate) fn nth(&self, rank: u64) -> Option<u64> {
        if rank >= self.count() {
            return None;
        }
        if let [only] = self.runs.as_slice() {
            return only.ascending.get(rank as usize);
        }
        let added = || self.runs.iter().filter(|run| !run.subtracted);
        let mut low = added().filter_map(|run| run.ascending.first()).min()?;
        let mut high = added().filter_map(|run| run.ascending.last()).max()?;
        // Per run still searched: values before `start` are < low, values from `end` on are
        // > high. `settled`: the lead times ≤ any value of the interval in the other runs.
        let mut searched: Vec<(&Run, usize, usize)> = self
            .runs
            .iter()
            .map(|run| (run, 0, run.ascending.len()))
            .collect();
        let mut settled = 0i64;
        let rank = rank as i64;
        let mut splits = Vec::with_capacity(searched.len());
        loop {
            let left: usize = searched.iter().map(|(_, start, end)| end - start).sum();
            if left <= GATHERED {
                let below = settled
                    + searched
                        .iter()
                        .map(|(run, start, _)| run.signed(*start))
                        .sum::<i64>();
                return gathered_nth(&searched, usize::try_from(rank - below).ok()?);
            }
            if low >= high {
                return Some(low);
            }
            let middle = low + (high - low) / 2;
            let mut at_most = settled;
            splits.clear();
            for (run, start, end) in &searched {
                let split = run.ascending.split((*start, *end), middle);
                splits.push(split);
                at_most += run.signed(split);
            }
            let narrow_high = at_most > rank;
            for ((_, start, end), split) in searched.iter_mut().zip(&splits) {
                if narrow_high {
                    *end = *split;
                } else {
                    *start = *split;
                }
            }
            if narrow_high {
                high = middle;
            } else {
                low = middle + 1;
            }
            searched.retain(|(run, start, end)| {
                let done = start == end;
                if done {
                    settled += run.signed(*start);
                }
                !done
            });
        }
    }

    /// The `q`-quantile (0..=1) in minutes, interpolating linearly between closest ranks (the
    /// "R-7" definition of numpy and spreadsheets). `None` for an empty set.
    pub(crate) fn quantile_mins(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let position = q.clamp(0.0, 1.0) * (count - 1) as f64;
        let lower = position.floor() as u64;
        let upper = position.ceil() as u64;
        let fraction = position - lower as f64;
        let low_micros = self.nth(lower)?;
        let low = micros_to_mins(low_micros);
        let high = if upper == lower {
            low
        } else {
            micros_to_mins(self.successor(lower, low_micros)?)
        };
        Some(low + (high - low) * fraction)
    }

    /// How many lead times are at or below `value`.
    fn at_most(&self, value: u64) -> i64 {
        self.runs
            .iter()
            .map(|run| run.signed(run.ascending.count_at_most(value)))
            .sum()
    }

    /// The lead time of rank `rank + 1`, given `value`, the one of rank `rank`: `value` again
    /// if more than `rank + 1` are at or below it, else the smallest added value above it that
    /// the subtractions leave. A pass per candidate (one, unless values just above `value`
    /// were subtracted; past [`SUCCESSOR_CANDIDATES`], a search) where [`LeadTimes::nth`]
    /// searches the whole value range: the interpolated quantiles read two neighbouring ranks.
    fn successor(&self, rank: u64, mut value: u64) -> Option<u64> {
        if let [only] = self.runs.as_slice() {
            return only.ascending.get(rank as usize + 1);
        }
        let wanted = rank as i64 + 1;
        for _ in 0..SUCCESSOR_CANDIDATES {
            if self.at_most(value) > wanted {
                return Some(value);
            }
            value = self
                .runs
                .iter()
                .filter(|run| !run.subtracted)
                .filter_map(|run| {
                    let at = run.ascending.count_at_most(value);
                    run.ascending.get(at)
                })
                .min()?;
        }
        // Values just above were subtracted (a partial day's outside): search instead.
        self.nth(rank + 1)
    }

    /// The mean in minutes, from the exact sum.
    pub(crate) fn mean_mins(&self) -> Option<f64> {
        let count = self.count();
        (count > 0).then(|| self.sum_micros() as f64 / count as f64 / MICROS_PER_MINUTE)
    }

    pub(crate) fn min_mins(&self) -> Option<f64> {
        if self.runs.iter().all(|run| !run.subtracted) {
            let first = self.runs.iter().filter_map(|run| run.ascending.first());
            return first.min().map(micros_to_mins);
        }
        self.nth(0).map(micros_to_mins)
    }

    pub(crate) fn max_mins(&self) -> Option<f64> {
        if self.runs.iter().all(|run| !run.subtracted) {
            let last = self.runs.iter().filter_map(|run| run.ascending.last());
            return last.max().map(micros_to_mins);
        }
        self.count()
            .checked_sub(1)
            .and_then(|last| self.nth(last))
            .map(micros_to_mins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition the selection must agree with: sort everything, index, interpolate.
    fn sorted_quantile(sorted: &[u64], q: f64) -> Option<f64> {
        let minutes: Vec<f64> = sorted.iter().map(|v| micros_to_mins(*v)).collect();
        crate::domain::dora::quantile(&minutes, q)
    }

    #[test]
    fn an_empty_set_has_no_figures() {
        let set = LeadTimes::default();
        assert_eq!(set.count(), 0);
        assert_eq!(set.nth(0), None);
        assert_eq!(set.quantile_mins(0.5), None);
        assert_eq!(set.mean_mins(), None);
        assert_eq!(set.max_mins(), None);
    }

    #[test]
    fn the_median_of_runs_is_the_median_of_their_union() {
        let mut set = LeadTimes::default();
        set.add_unsorted(vec![60_000_000, 180_000_000]);
        set.add_unsorted(vec![120_000_000, 240_000_000]);
        assert_eq!(set.count(), 4);
        assert_eq!(set.quantile_mins(0.5), Some(2.5));
        assert_eq!(set.min_mins(), Some(1.0));
        assert_eq!(set.max_mins(), Some(4.0));
        assert_eq!(set.mean_mins(), Some(2.5));
    }

    #[test]
    fn stored_blobs_are_read_in_place_as_their_ascending_runs() {
        let mut set = LeadTimes::default();
        // Two chunks of one day, concatenated: 256 < 1 would read here if the byte order were
        // mistaken, and the second chunk starts below the first's end.
        let mut stored = encode(&[3, 256, 1 << 40]);
        stored.extend(encode(&[1, 7, 7]));
        set.add_stored(stored).unwrap();
        assert_eq!(set.runs.len(), 2);
        assert_eq!(set.count(), 6);
        let ranks: Vec<u64> = (0..6).map(|r| set.nth(r).unwrap()).collect();
        assert_eq!(ranks, [1, 3, 7, 7, 256, 1 << 40]);
        assert_eq!(set.sum_micros(), 1 + 3 + 7 + 7 + 256 + (1 << 40));
        assert_eq!(set.add_stored(Vec::new()), Ok(()));
        assert_eq!(set.add_stored(vec![0; 9]), Err(NotWholeLeadTimes));
        assert_eq!(set.count(), 6);
    }

    #[test]
    fn subtracting_the_outside_of_a_partial_day_leaves_the_inside() {
        let mut set = LeadTimes::default();
        set.add_unsorted(vec![1, 5, 5, 9, 12]);
        set.subtract_unsorted(vec![5, 12]);
        assert_eq!(set.count(), 3);
        assert_eq!(
            (0..3).map(|r| set.nth(r).unwrap()).collect::<Vec<_>>(),
            [1, 5, 9]
        );
        assert_eq!(set.sum_micros(), 15);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any split of any values into runs, with any part of them subtracted again, has the
        /// order statistics of the values that remain, sorted. Up to 600 values, so that the
        /// search runs before it gathers (`GATHERED`), and values from a narrow range too, so
        /// that it also ends on an interval of one value.
        #[test]
        fn selection_agrees_with_sorting(
            values in prop_oneof![
                proptest::collection::vec(0u64..1u64 << 45, 0..600),
                proptest::collection::vec(0u64..40, 0..600),
            ],
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
            removed in proptest::collection::vec(any::<bool>(), 600),
            q in 0.0f64..=1.0,
            stored in any::<bool>(),
        ) {
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(values.len() + 1)).collect();
            bounds.push(0);
            bounds.push(values.len());
            bounds.sort_unstable();
            let mut set = LeadTimes::default();
            // Each part sorted, as a chunk is; stored: all of them in one blob, as a day's.
            let mut blob = Vec::new();
            for pair in bounds.windows(2) {
                let mut part = values[pair[0]..pair[1]].to_vec();
                if stored {
                    part.sort_unstable();
                    blob.extend(encode(&part));
                } else {
                    set.add_unsorted(part);
                }
            }
            prop_assert_eq!(set.add_stored(blob), Ok(()));
            let gone: Vec<u64> = (0..values.len()).filter(|i| removed[*i]).map(|i| values[i]).collect();
            let mut remaining: Vec<u64> =
                (0..values.len()).filter(|i| !removed[*i]).map(|i| values[i]).collect();
            set.subtract_unsorted(gone);
            remaining.sort_unstable();

            prop_assert_eq!(set.count(), remaining.len() as u64);
            for (rank, value) in remaining.iter().enumerate() {
                prop_assert_eq!(set.nth(rank as u64), Some(*value));
                // The next rank from this one's value, as the quantiles read it.
                prop_assert_eq!(
                    set.successor(rank as u64, *value),
                    remaining.get(rank + 1).copied()
                );
            }
            prop_assert_eq!(set.quantile_mins(q), sorted_quantile(&remaining, q));
            prop_assert_eq!(set.sum_micros(), remaining.iter().map(|v| u128::from(*v)).sum::<u128>());
        }
    }
}
