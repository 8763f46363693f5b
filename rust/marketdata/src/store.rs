//! Reads the integer columns of the store's Parquet day files, one row group
//! at a time, straight into vectors.
//!
//! The store (`python/nexus/services/marketdata/store.py`) writes its days
//! with pyarrow; replay streams read them here, without the GIL and without
//! pyarrow's per-file and per-batch overhead, which costs more than the
//! decoding itself on days of a few ten thousand rows. Any encoding and
//! compression the store has written (zstd and dictionaries in earlier
//! files, `DELTA_BINARY_PACKED` now) reads; columns must be INT64 or INT32
//! without nulls.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::basic::{ConvertedType, LogicalType};
use parquet::column::reader::ColumnReader;
use parquet::errors::ParquetError;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnDescriptor;
use thiserror::Error;

/// Why a day file could not be read.
#[derive(Debug, Error)]
pub enum StoreReadError {
    /// The file could not be opened.
    #[error("cannot open {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid Parquet, or its pages do not decode.
    #[error("{path} is not readable Parquet: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ParquetError,
    },
    /// A requested column is not in the file.
    #[error("{path} has no column {column:?}")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column asked for.
        column: String,
    },
    /// A column is neither INT64 nor INT32, or holds nulls.
    #[error("{path}: column {column:?} {reason}")]
    BadColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A row group index past the last.
    #[error("{path} has {row_groups} row groups, not {index}")]
    NoRowGroup {
        /// The file.
        path: PathBuf,
        /// Row groups in the file.
        row_groups: usize,
        /// The index asked for.
        index: usize,
    },
}

/// One decoded column of a row group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// An INT64 column.
    Int64(Vec<i64>),
    /// A signed INT32 column.
    Int32(Vec<i32>),
    /// An INT32 column of unsigned 32-bit integers (the store's flags).
    UInt32(Vec<u32>),
}

impl Column {
    /// Returns the number of values.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Int64(v) => v.len(),
            Self::Int32(v) => v.len(),
            Self::UInt32(v) => v.len(),
        }
    }

    /// Returns true when the column holds no value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether an INT32 column holds unsigned integers.
fn is_unsigned(descr: &ColumnDescriptor) -> bool {
    match descr.logical_type_ref() {
        Some(LogicalType::Integer(int)) => !int.is_signed,
        _ => descr.converted_type() == ConvertedType::UINT_32,
    }
}

/// An open day file.
pub struct DayFile {
    path: PathBuf,
    reader: SerializedFileReader<File>,
}

impl std::fmt::Debug for DayFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayFile").field("path", &self.path).finish()
    }
}

impl DayFile {
    /// Opens a day file and reads its footer.
    ///
    /// # Errors
    /// Returns `Io` when the file cannot be opened and `Parquet` when its
    /// footer is not valid Parquet.
    pub fn open(path: &Path) -> Result<Self, StoreReadError> {
        let file = File::open(path).map_err(|source| StoreReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let reader = SerializedFileReader::new(file).map_err(|source| StoreReadError::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
        })
    }

    /// Returns the number of row groups.
    #[must_use]
    pub fn row_groups(&self) -> usize {
        self.reader.num_row_groups()
    }

    /// Returns the number of rows of all row groups.
    #[must_use]
    pub fn rows(&self) -> usize {
        usize::try_from(self.reader.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    fn parquet_error(&self, source: ParquetError) -> StoreReadError {
        StoreReadError::Parquet {
            path: self.path.clone(),
            source,
        }
    }

    fn bad_column(&self, column: &str, reason: impl Into<String>) -> StoreReadError {
        StoreReadError::BadColumn {
            path: self.path.clone(),
            column: column.to_owned(),
            reason: reason.into(),
        }
    }

    /// Reads the named columns of row group `index`, in the order asked.
    ///
    /// # Errors
    /// Returns `NoRowGroup` or `MissingColumn` for what the file lacks,
    /// `BadColumn` for a column that is not INT64/INT32 or holds nulls, and
    /// `Parquet` when a page does not decode.
    pub fn read_row_group(
        &self,
        index: usize,
        names: &[&str],
    ) -> Result<Vec<Column>, StoreReadError> {
        if index >= self.row_groups() {
            return Err(StoreReadError::NoRowGroup {
                path: self.path.clone(),
                row_groups: self.row_groups(),
                index,
            });
        }
        let group = self
            .reader
            .get_row_group(index)
            .map_err(|e| self.parquet_error(e))?;
        let rows = usize::try_from(group.metadata().num_rows()).unwrap_or(0);
        let schema = self.reader.metadata().file_metadata().schema_descr();
        names
            .iter()
            .map(|name| {
                let position = (0..schema.num_columns())
                    .find(|i| schema.column(*i).path().string() == *name)
                    .ok_or_else(|| StoreReadError::MissingColumn {
                        path: self.path.clone(),
                        column: (*name).to_owned(),
                    })?;
                let descr = schema.column(position);
                if descr.max_rep_level() > 0 {
                    return Err(self.bad_column(name, "is repeated"));
                }
                let mut levels = (descr.max_def_level() > 0).then(|| Vec::with_capacity(rows));
                let reader = group
                    .get_column_reader(position)
                    .map_err(|e| self.parquet_error(e))?;
                let (column, read) = match reader {
                    ColumnReader::Int64ColumnReader(mut r) => {
                        let mut values = Vec::with_capacity(rows);
                        let (records, _, _) = r
                            .read_records(rows, levels.as_mut(), None, &mut values)
                            .map_err(|e| self.parquet_error(e))?;
                        (Column::Int64(values), records)
                    }
                    ColumnReader::Int32ColumnReader(mut r) => {
                        let mut values = Vec::with_capacity(rows);
                        let (records, _, _) = r
                            .read_records(rows, levels.as_mut(), None, &mut values)
                            .map_err(|e| self.parquet_error(e))?;
                        let column = if is_unsigned(&descr) {
                            // The same 32 bits, read as the unsigned type stored.
                            Column::UInt32(
                                values
                                    .into_iter()
                                    .map(|v| u32::from_ne_bytes(v.to_ne_bytes()))
                                    .collect(),
                            )
                        } else {
                            Column::Int32(values)
                        };
                        (column, records)
                    }
                    _ => return Err(self.bad_column(name, "is neither INT64 nor INT32")),
                };
                if read != rows || column.len() != rows {
                    return Err(self.bad_column(
                        name,
                        format!(
                            "has {} values in {rows} rows (nulls are not stored)",
                            column.len()
                        ),
                    ));
                }
                Ok(column)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::data_type::{Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    use super::*;

    /// Writes one row group: required ts_ns, required uint32 flags, and an
    /// optional bid whose second value is null.
    fn write_day(path: &Path) {
        let schema = parse_message_type(
            "message day { required int64 ts_ns; required int32 flags (INTEGER(32,false)); \
             optional int64 bid; }",
        )
        .unwrap();
        let file = File::create(path).unwrap();
        let props = Arc::new(WriterProperties::builder().build());
        let mut writer = SerializedFileWriter::new(file, Arc::new(schema), props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<Int64Type>()
            .write_batch(&[1, 2, 3], None, None)
            .unwrap();
        column.close().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<Int32Type>()
            .write_batch(&[0, -1, 4], None, None)
            .unwrap();
        column.close().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<Int64Type>()
            .write_batch(&[10, 30], Some(&[1, 0, 1]), None)
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
    }

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("nexus-store-{}-{name}", std::process::id()))
    }

    #[test]
    fn columns_come_back_typed_and_in_the_order_asked() {
        let path = temp_path("typed.parquet");
        write_day(&path);
        let day = DayFile::open(&path).unwrap();
        assert_eq!((day.row_groups(), day.rows()), (1, 3));
        let columns = day.read_row_group(0, &["flags", "ts_ns"]).unwrap();
        assert_eq!(
            columns,
            vec![
                Column::UInt32(vec![0, u32::MAX, 4]),
                Column::Int64(vec![1, 2, 3])
            ]
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn what_the_store_cannot_use_is_refused_with_the_reason() {
        let path = temp_path("refused.parquet");
        write_day(&path);
        let day = DayFile::open(&path).unwrap();
        let nulls = day.read_row_group(0, &["bid"]).unwrap_err().to_string();
        assert!(nulls.contains("\"bid\" has 2 values in 3 rows"), "{nulls}");
        let missing = day.read_row_group(0, &["ask"]).unwrap_err();
        assert!(matches!(missing, StoreReadError::MissingColumn { .. }));
        let past = day.read_row_group(1, &["ts_ns"]).unwrap_err();
        assert!(matches!(
            past,
            StoreReadError::NoRowGroup {
                row_groups: 1,
                index: 1,
                ..
            }
        ));
        std::fs::write(&path, b"not parquet at all").unwrap();
        assert!(matches!(
            DayFile::open(&path),
            Err(StoreReadError::Parquet { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            DayFile::open(&path),
            Err(StoreReadError::Io { .. })
        ));
    }
}
