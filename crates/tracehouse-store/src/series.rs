//! The shapes of metrics answers, built the same way by every backend from per-cell
//! aggregates: a backend computes [`Cell`]s (a bucket and a group with its value), this module
//! ranks groups and lays cells out as series.

use std::collections::HashMap;

use tracehouse_core::metrics::{Series, SeriesKey, Timeseries, TopEntry};

/// One aggregated cell: a bucket (0 without buckets, [`TOTALS`] for the whole range) and a
/// group.
pub(crate) struct Cell {
    pub(crate) bucket: i64,
    /// Whether the group is one of the named groups (always, without a group limit).
    pub(crate) top: bool,
    pub(crate) group: Option<String>,
    pub(crate) value: f64,
    pub(crate) requests: u64,
}

/// The bucket of cells that hold a whole range.
pub(crate) const TOTALS: i64 = -1;

/// Range cells as leaderboard rows: groups with spans, largest first, then by requests, then
/// by group value, so equal values always come in the same order.
pub(crate) fn ranked(cells: Vec<Cell>) -> Vec<TopEntry> {
    let mut entries: Vec<TopEntry> = cells
        .into_iter()
        .filter(|cell| cell.requests > 0)
        .map(|cell| TopEntry {
            value: cell.group,
            metric: cell.value,
            requests: cell.requests,
        })
        .collect();
    entries.sort_by(|a, b| {
        b.metric
            .total_cmp(&a.metric)
            .then_with(|| b.requests.cmp(&a.requests))
            .then_with(|| a.value.cmp(&b.value))
    });
    entries
}

/// The series a timeseries answers, in order: the named groups (the first `limit` of the
/// ranking), then "other" when groups were left out; without grouping, one series of all.
pub(crate) struct SeriesPlan {
    keys: Vec<SeriesKey>,
    /// Values of the named groups, for the backend's "is this row's group named" test.
    pub(crate) named: Vec<Option<String>>,
    has_other: bool,
    grouped: bool,
}

impl SeriesPlan {
    /// One series over every span.
    pub(crate) fn ungrouped() -> Self {
        Self {
            keys: vec![SeriesKey::All],
            named: Vec::new(),
            has_other: false,
            grouped: false,
        }
    }

    /// Named groups from a ranking (see [`ranked`]).
    pub(crate) fn grouped(ranking: Vec<TopEntry>, limit: usize) -> Self {
        let has_other = ranking.len() > limit;
        let named: Vec<Option<String>> = ranking
            .into_iter()
            .take(limit)
            .map(|entry| entry.value)
            .collect();
        let mut keys: Vec<SeriesKey> = named.iter().cloned().map(SeriesKey::Value).collect();
        if has_other {
            keys.push(SeriesKey::Other);
        }
        Self {
            keys,
            named,
            has_other,
            grouped: true,
        }
    }

    /// Lays out bucket cells (and [`TOTALS`] cells, or `totals` computed apart) as series of
    /// `buckets` values, 0 where no cell fell.
    pub(crate) fn fill(self, buckets: usize, cells: Vec<Cell>, totals: Vec<Cell>) -> Timeseries {
        let key_of = |cell: &Cell| -> SeriesKey {
            match (self.grouped, cell.top) {
                (false, _) => SeriesKey::All,
                (true, true) => SeriesKey::Value(cell.group.clone()),
                (true, false) => SeriesKey::Other,
            }
        };
        let index: HashMap<SeriesKey, usize> = self
            .keys
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, key)| (key, i))
            .collect();
        let mut series: Vec<Series> = self
            .keys
            .iter()
            .cloned()
            .map(|key| Series {
                key,
                values: vec![0.0; buckets],
                total: 0.0,
            })
            .collect();
        for cell in cells.into_iter().chain(totals) {
            let Some(&i) = index.get(&key_of(&cell)) else {
                continue;
            };
            if cell.bucket == TOTALS {
                series[i].total = cell.value;
            } else if let Some(slot) = usize::try_from(cell.bucket)
                .ok()
                .and_then(|bucket| series[i].values.get_mut(bucket))
            {
                *slot = cell.value;
            }
        }
        if !self.has_other {
            series.retain(|s| s.key != SeriesKey::Other);
        }
        Timeseries { series }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(bucket: i64, top: bool, group: Option<&str>, value: f64) -> Cell {
        Cell {
            bucket,
            top,
            group: group.map(str::to_owned),
            value,
            requests: 1,
        }
    }

    #[test]
    fn named_groups_then_other_with_zero_filled_buckets() {
        let ranking = ranked(vec![
            cell(0, true, Some("b"), 2.0),
            cell(0, true, Some("a"), 2.0),
            cell(0, true, None, 5.0),
            cell(0, true, Some("c"), 1.0),
        ]);
        let order: Vec<Option<&str>> = ranking.iter().map(|e| e.value.as_deref()).collect();
        assert_eq!(order, [None, Some("a"), Some("b"), Some("c")]);
        let plan = SeriesPlan::grouped(ranking, 2);
        assert_eq!(plan.named, [None, Some("a".to_owned())]);
        let answer = plan.fill(
            3,
            vec![cell(1, true, Some("a"), 7.0), cell(2, false, None, 3.0)],
            vec![
                cell(TOTALS, true, Some("a"), 7.0),
                cell(TOTALS, false, None, 3.0),
            ],
        );
        let keys: Vec<&SeriesKey> = answer.series.iter().map(|s| &s.key).collect();
        assert_eq!(
            keys,
            [
                &SeriesKey::Value(None),
                &SeriesKey::Value(Some("a".to_owned())),
                &SeriesKey::Other
            ]
        );
        assert_eq!(answer.series[0].values, [0.0, 0.0, 0.0]);
        assert_eq!(answer.series[1].values, [0.0, 7.0, 0.0]);
        assert_eq!(answer.series[2].values, [0.0, 0.0, 3.0]);
        assert_eq!(answer.series[2].total, 3.0);
    }

    #[test]
    fn no_other_series_when_every_group_is_named() {
        let plan = SeriesPlan::grouped(ranked(vec![cell(0, true, Some("a"), 1.0)]), 5);
        let answer = plan.fill(1, vec![cell(0, true, Some("a"), 1.0)], Vec::new());
        assert_eq!(answer.series.len(), 1);
    }
}
