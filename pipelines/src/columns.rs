//! Builds an Arrow record batch column by column, naming each column where its values are made.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, Int64Array, StringBuilder, UInt8Array, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use twinflow_engine::sink::{NO_STATISTICS, RANDOM_BYTES, with_hint};

/// Columns of a batch under construction; [`Columns::finish`] makes the batch.
#[derive(Default)]
pub struct Columns {
    fields: Vec<Field>,
    arrays: Vec<ArrayRef>,
}

impl Columns {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, name: &str, array: ArrayRef, nullable: bool) -> &mut Self {
        let data_type: DataType = array.data_type().clone();
        self.fields.push(Field::new(name, data_type, nullable));
        self.arrays.push(array);
        self
    }

    pub fn utf8<'a>(&mut self, name: &str, values: impl Iterator<Item = &'a str>) -> &mut Self {
        // Sized up front: most string columns are short codes and names, and
        // growing the buffers value by value cost more than the values.
        let rows = values.size_hint().0;
        let mut builder = StringBuilder::with_capacity(rows, rows * 12);
        values.for_each(|v| builder.append_value(v));
        self.push(name, Arc::new(builder.finish()), false)
    }

    pub fn utf8_opt<'a>(
        &mut self,
        name: &str,
        values: impl Iterator<Item = Option<&'a str>>,
    ) -> &mut Self {
        let rows = values.size_hint().0;
        let mut builder = StringBuilder::with_capacity(rows, rows * 12);
        values.for_each(|v| builder.append_option(v));
        self.push(name, Arc::new(builder.finish()), true)
    }

    /// Like [`Columns::utf8`], for a short code from a small fixed set
    /// (a source, a health): written without min/max statistics, which cost
    /// a comparison per value and serve no query.
    pub fn code<'a>(&mut self, name: &str, values: impl Iterator<Item = &'a str>) -> &mut Self {
        self.utf8(name, values).mark_last(NO_STATISTICS)
    }

    /// Like [`Columns::code`], some values missing.
    pub fn code_opt<'a>(
        &mut self,
        name: &str,
        values: impl Iterator<Item = Option<&'a str>>,
    ) -> &mut Self {
        self.utf8_opt(name, values).mark_last(NO_STATISTICS)
    }

    /// Sets the writer hint `key` (see [`twinflow_engine::sink`]) on the last column.
    fn mark_last(&mut self, key: &str) -> &mut Self {
        let field = self.fields.pop().expect("a column was pushed");
        self.fields.push(with_hint(field, key));
        self
    }

    pub fn i64(&mut self, name: &str, values: impl Iterator<Item = i64>) -> &mut Self {
        self.push(name, Arc::new(values.collect::<Int64Array>()), false)
    }

    pub fn i64_opt(&mut self, name: &str, values: impl Iterator<Item = Option<i64>>) -> &mut Self {
        self.push(name, Arc::new(values.collect::<Int64Array>()), true)
    }

    pub fn u64(&mut self, name: &str, values: impl Iterator<Item = u64>) -> &mut Self {
        self.push(name, Arc::new(values.collect::<UInt64Array>()), false)
    }

    pub fn u32(&mut self, name: &str, values: impl Iterator<Item = u32>) -> &mut Self {
        self.push(name, Arc::new(values.collect::<UInt32Array>()), false)
    }

    pub fn u8(&mut self, name: &str, values: impl Iterator<Item = u8>) -> &mut Self {
        self.push(name, Arc::new(values.collect::<UInt8Array>()), false)
    }

    /// A column of random bytes (tags, digests), some missing: written
    /// uncompressed and without statistics, as [`twinflow_engine::sink::RANDOM_BYTES`] says.
    pub fn random_bytes_opt<'a>(
        &mut self,
        name: &str,
        values: impl Iterator<Item = Option<&'a [u8]>>,
    ) -> &mut Self {
        self.push(name, Arc::new(values.collect::<BinaryArray>()), true)
            .mark_last(RANDOM_BYTES)
    }

    pub fn f64(&mut self, name: &str, values: impl Iterator<Item = f64>) -> &mut Self {
        self.push(name, Arc::new(values.collect::<Float64Array>()), false)
    }

    pub fn f64_opt(&mut self, name: &str, values: impl Iterator<Item = Option<f64>>) -> &mut Self {
        self.push(name, Arc::new(values.collect::<Float64Array>()), true)
    }

    pub fn finish(&mut self) -> RecordBatch {
        let schema = Arc::new(Schema::new(std::mem::take(&mut self.fields)));
        RecordBatch::try_new(schema, std::mem::take(&mut self.arrays))
            .expect("columns of equal length")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    /// A code column with missing values keeps them as nulls, and carries
    /// the hint that drops its statistics, as a code column without any does.
    #[test]
    fn code_opt_is_a_nullable_code_column() {
        let batch = Columns::new()
            .code("source", ["measured", "carried"].into_iter())
            .code_opt("state", [Some("trusted"), None].into_iter())
            .finish();
        let state = batch.schema().field(1).clone();
        assert!(state.is_nullable());
        assert_eq!(
            state.metadata().get(NO_STATISTICS).map(String::as_str),
            Some("true")
        );
        assert_eq!(
            batch.schema().field(0).metadata(),
            state.metadata(),
            "the same hint as a code column"
        );
        let values = batch.column(1).as_string::<i32>();
        assert_eq!(values.value(0), "trusted");
        assert!(values.is_null(1));
    }
}
