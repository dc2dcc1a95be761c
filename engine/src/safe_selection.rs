//! Row selections the Parquet reader decodes safely on a damaged file: every selected range starts at a page start of each byte-array column read.
//!
//! parquet 60's plain byte-array decoder skips values by their length
//! prefixes without checking them against the page
//! (`ByteArrayDecoderPlain::skip`). On a damaged page the skip leaves the
//! decoder's offset past the page's end, and a read that follows on the
//! same page computes the bytes left as `len - offset`: the subtraction
//! wraps, and the reader asks for an allocation of exabytes, which aborts
//! the process (found by fuzzing the raw-log reader). Reading values, unlike
//! skipping them, checks every length, and a skip that ends at a page's end
//! is followed by no read of that page (a short skip is an error). So each
//! selected range is widened back to a row where a page of every byte-array
//! column starts, and the rows that adds are dropped after decoding
//! ([`Narrowed`]).

use std::ops::Range;

use arrow::array::BooleanArray;
use arrow::array::BooleanBufferBuilder;
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::RowSelector;
use parquet::basic::Type as PhysicalType;
use parquet::file::metadata::ParquetMetaData;

/// The rows of one row group where a page of every byte-array column among
/// `columns` (leaf indices) starts: where decoding may safely begin.
#[derive(Debug)]
pub(crate) struct SafeStarts {
    /// Per byte-array column, its page starts in ascending order (at least
    /// `0`: without a page index, only the row group's start is known).
    pages: Vec<Vec<usize>>,
}

impl SafeStarts {
    pub(crate) fn of(
        meta: &ParquetMetaData,
        row_group: usize,
        columns: impl IntoIterator<Item = usize>,
    ) -> Self {
        let schema = meta.file_metadata().schema_descr();
        let index = meta.page_index_for_row_group(row_group);
        let pages = columns
            .into_iter()
            .filter(|&c| schema.column(c).physical_type() == PhysicalType::BYTE_ARRAY)
            .map(|c| {
                let mut starts: Vec<usize> = index
                    .offset_index(c)
                    .map(|pages| pages.page_locations())
                    .into_iter()
                    .flatten()
                    .filter_map(|page| usize::try_from(page.first_row_index).ok())
                    .collect();
                starts.push(0);
                starts.sort_unstable();
                starts.dedup();
                starts
            })
            .collect();
        SafeStarts { pages }
    }

    /// The last safe start at or before `row`.
    pub(crate) fn at_or_before(&self, row: usize) -> usize {
        let mut at = row;
        // Each column's page start at or before `at` moves `at` back until
        // all agree; `0` is common to all, so this ends.
        loop {
            let back = self
                .pages
                .iter()
                .map(|starts| starts[starts.partition_point(|&s| s <= at) - 1])
                .min()
                .unwrap_or(at);
            if back == at {
                return at;
            }
            at = back;
        }
    }

    /// Whether decoding may start at `row`.
    pub(crate) fn is_safe(&self, row: usize) -> bool {
        self.at_or_before(row) == row
    }
}

/// A selection of ranges (ascending, disjoint) widened to safe starts: the
/// selectors to read, and which of the rows they read were asked for
/// (`None` when all were).
pub(crate) fn widen(
    ranges: &[Range<usize>],
    safe: &SafeStarts,
) -> (Vec<RowSelector>, Option<BooleanBuffer>) {
    let mut read: Vec<Range<usize>> = Vec::new();
    for range in ranges.iter().filter(|r| !r.is_empty()) {
        let start = safe.at_or_before(range.start);
        match read.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(range.end),
            _ => read.push(start..range.end),
        }
    }
    let mut selectors = Vec::new();
    let mut next = 0;
    for range in &read {
        if range.start > next {
            selectors.push(RowSelector::skip(range.start - next));
        }
        selectors.push(RowSelector::select(range.len()));
        next = range.end;
    }
    let asked: usize = ranges.iter().map(Range::len).sum();
    let reading: usize = read.iter().map(Range::len).sum();
    if asked == reading {
        return (selectors, None);
    }
    // The rows read, each range's added rows dropped and its asked rows kept.
    let mut keep = BooleanBufferBuilder::new(reading);
    let mut asked_ranges = ranges.iter().filter(|r| !r.is_empty()).peekable();
    for range in &read {
        let mut at = range.start;
        while let Some(asked) = asked_ranges.next_if(|a| a.end <= range.end) {
            keep.append_n(asked.start - at, false);
            keep.append_n(asked.len(), true);
            at = asked.end;
        }
        keep.append_n(range.end - at, false);
    }
    (selectors, Some(keep.finish()))
}

/// Batches of a reader of widened ranges, narrowed back to the rows asked for.
pub(crate) struct Narrowed<R> {
    reader: R,
    /// Which rows read were asked for (`None`: all).
    keep: Option<BooleanBuffer>,
    /// Rows read so far.
    at: usize,
}

impl<R> Narrowed<R> {
    pub(crate) fn new(reader: R, keep: Option<BooleanBuffer>) -> Self {
        Narrowed {
            reader,
            keep,
            at: 0,
        }
    }
}

impl<R: Iterator<Item = Result<RecordBatch, ArrowError>>> Iterator for Narrowed<R> {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let batch = match self.reader.next()? {
                Ok(batch) => batch,
                error => return Some(error),
            };
            let Some(keep) = &self.keep else {
                return Some(Ok(batch));
            };
            let rows = batch.num_rows();
            if self.at + rows > keep.len() {
                return Some(Err(ArrowError::ComputeError(
                    "the reader returned more rows than selected".into(),
                )));
            }
            let mask = keep.slice(self.at, rows);
            self.at += rows;
            if mask.count_set_bits() == rows {
                return Some(Ok(batch));
            }
            let kept = filter_record_batch(&batch, &BooleanArray::new(mask, None));
            match kept {
                Ok(kept) if kept.num_rows() == 0 => continue,
                kept => return Some(kept),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(pages: &[&[usize]]) -> SafeStarts {
        SafeStarts {
            pages: pages.iter().map(|p| p.to_vec()).collect(),
        }
    }

    /// With pages of two columns at 0, 10, 20, 30 and 0, 15, 30, rows are
    /// safe only where both start a page.
    #[test]
    fn safe_starts_are_common_page_starts() {
        let safe = starts(&[&[0, 10, 20, 30], &[0, 15, 30]]);
        let back: Vec<usize> = [0, 5, 10, 14, 15, 29, 30, 44]
            .map(|r| safe.at_or_before(r))
            .to_vec();
        assert_eq!(back, [0, 0, 0, 0, 0, 0, 30, 30]);
        assert!(safe.is_safe(30) && !safe.is_safe(20));
        // No byte-array column: every row is safe.
        assert_eq!(starts(&[]).at_or_before(7), 7);
    }

    /// Ranges are widened back to safe starts and merged; the mask keeps
    /// exactly the rows asked for, in order.
    #[test]
    fn widened_ranges_keep_the_rows_asked_for() {
        let safe = starts(&[&[0, 10, 20, 30]]);
        let (selectors, keep) = widen(&[12..14, 16..17, 25..35], &safe);
        // 12..14 and 16..17 read from 10, 25..35 from 20.
        assert_eq!(
            selectors,
            [
                RowSelector::skip(10),
                RowSelector::select(7),
                RowSelector::skip(3),
                RowSelector::select(15),
            ]
        );
        let keep = keep.expect("rows were added");
        let read: Vec<usize> = (10..17).chain(20..35).collect();
        assert_eq!(keep.len(), read.len());
        let kept: Vec<usize> = read
            .iter()
            .zip(keep.iter())
            .filter(|(_, k)| *k)
            .map(|(r, _)| *r)
            .collect();
        let asked: Vec<usize> = [12..14, 16..17, 25..35].into_iter().flatten().collect();
        assert_eq!(kept, asked);

        // Ranges already at safe starts are read as they are.
        let (selectors, keep) = widen(&[10..12, 20..25], &safe);
        assert_eq!(
            selectors,
            [
                RowSelector::skip(10),
                RowSelector::select(2),
                RowSelector::skip(8),
                RowSelector::select(5)
            ]
        );
        assert!(keep.is_none());
    }
}
